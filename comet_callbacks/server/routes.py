"""Route registry and the per-request context shared by the handler modules.

Handlers are plain synchronous functions ``handler(ctx) -> dict | bytes | None`` that
run inside one database transaction; the dispatcher in :mod:`.app` does HTTP, auth,
body parsing and error mapping, so handlers only express the contract's semantics.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .store import Store, Tx, now_ms
from .validate import ApiError, Spec


@dataclass
class Limits:
    """Server limits and intervals (all configurable through ``start_server(**limits)``)."""

    max_json_bytes: int = 20 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024
    beat_interval_ms: int = 10_000
    gpu_monitor_ms: int = 60_000
    cpu_monitor_ms: int = 68_000
    webhook_retries: int = 3
    webhook_timeout_s: float = 5.0
    #: Serve the clientlib batch endpoints; ``False`` answers 404 there (``--no-batch``).
    batch_endpoints: bool = True
    #: Until this ``time.time()``, every write answers 429 (tests and benchmarks of throttling).
    throttle_until: float = 0.0
    #: The wait announced by those 429s (``Retry-After`` rounded up, ``Retry-After-Custom`` as is).
    throttle_retry_after: float = 5.0


@dataclass
class Route:
    """One endpoint: where it lives, what it takes, and the function that serves it."""

    methods: list[str]
    path: str
    handler: Callable[[Ctx], Any]
    body: Spec | None = None
    query: Spec | None = None
    multipart: bool = False
    auth: bool = True


ROUTES: list[Route] = []


def route(
    methods: str | list[str],
    path: str,
    *,
    body: Spec | None = None,
    query: Spec | None = None,
    multipart: bool = False,
    auth: bool = True,
) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
    """Register ``fn`` for ``path`` (relative to ``/api/rest/v2/``; absolute if it starts with ``/``)."""

    def deco(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        ms = [methods] if isinstance(methods, str) else list(methods)
        ROUTES.append(Route(ms, path, fn, body, query, multipart, auth))
        return fn

    return deco


@dataclass
class Principal:
    """The authenticated caller: a user or a service account."""

    user_id: str
    name: str
    is_service: bool
    workspaces: set[str]
    default_workspace: str


@dataclass
class Ctx:
    """Everything a handler needs for one request."""

    tx: Tx
    store: Store
    limits: Limits
    root: str
    principal: Principal | None
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    raw_query: dict[str, str] = field(default_factory=dict)
    #: multipart file parts: ``(client file name, Upload)`` (content in a temporary file)
    files: dict[str, tuple[str | None, Any]] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    now: int = field(default_factory=now_ms)
    notify: Callable[[list[tuple[str, dict[str, str]]], dict[str, Any]], None] | None = None
    #: The raw ``Authorization`` header, for handlers that authenticate themselves (``auth=False``).
    auth_header: str | None = None

    # -- access checks -------------------------------------------------------------------

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def ws(self, name: str) -> str:
        """Check the caller may use workspace ``name`` (403 if unknown or not allowed)."""
        if name not in self.me.workspaces:
            raise ApiError(403, f"workspaceName: no access to workspace {name!r}")
        return name

    def exp(self, key: str, field_name: str = "experimentKey") -> sqlite3.Row:
        """The live experiment ``key`` with its project and workspace; 404/403 otherwise."""
        row = self.tx.one(
            "SELECT e.*, p.name AS project_name, p.workspace AS workspace "
            "FROM experiments e JOIN projects p ON p.id = e.project_id "
            "WHERE e.key = ? AND e.deleted = 0",
            (key,),
        )
        if row is None:
            raise ApiError(404, f"{field_name}: unknown experiment {key!r}")
        if row["workspace"] not in self.me.workspaces:
            raise ApiError(403, f"{field_name}: no access to this experiment's workspace")
        return row

    def project_by_id(self, project_id: str, field_name: str = "projectId") -> sqlite3.Row:
        row = self.tx.one("SELECT * FROM projects WHERE id=? AND deleted=0", (project_id,))
        if row is None:
            raise ApiError(404, f"{field_name}: unknown project {project_id!r}")
        if row["workspace"] not in self.me.workspaces:
            raise ApiError(403, f"{field_name}: no access to this project's workspace")
        return row

    def project_by_name(self, workspace: str, name: str) -> sqlite3.Row:
        self.ws(workspace)
        row = self.tx.one(
            "SELECT * FROM projects WHERE workspace=? AND name=? AND deleted=0", (workspace, name)
        )
        if row is None:
            raise ApiError(404, f"projectName: unknown project {name!r}")
        return row

    def touch_project(self, project_id: str) -> None:
        self.tx.execute("UPDATE projects SET last_updated=? WHERE id=?", (self.now, project_id))

    def touch(self, exp: sqlite3.Row) -> None:
        """Note that an experiment's project changed (for ``lastUpdated``)."""
        self.touch_project(exp["project_id"])

    # -- small stored values --------------------------------------------------------------

    def get_value(self, exp_key: str, kind: str) -> Any:
        row = self.tx.one(
            "SELECT value FROM exp_values WHERE exp_key=? AND kind=?", (exp_key, kind)
        )
        return None if row is None else row["value"]

    def set_value(self, exp_key: str, kind: str, value: Any) -> None:
        self.tx.execute("INSERT OR REPLACE INTO exp_values VALUES (?,?,?)", (exp_key, kind, value))

    # -- shapes ---------------------------------------------------------------------------

    def experiment_json(self, row: sqlite3.Row) -> dict[str, Any]:
        """The §4 Experiment shape."""
        lapsed = self.now - row["last_beat_ms"] > self.limits.beat_interval_ms
        running = not row["stopped"] and not lapsed
        end = row["end_ms"]
        file_path = row["file_path"]
        return {
            "experimentKey": row["key"],
            "experimentName": row["name"],
            "projectId": row["project_id"],
            "projectName": row["project_name"],
            "workspaceName": row["workspace"],
            "archived": bool(row["archived"]),
            "running": running,
            "hasCrashed": bool(not row["stopped"] and lapsed),
            "startTimeMillis": row["start_ms"],
            "endTimeMillis": end,
            "durationMillis": max(0, (end if end is not None else self.now) - row["start_ms"]),
            "filePath": file_path,
            "fileName": os.path.basename(file_path.replace("\\", "/")) if file_path else None,
            "optimizationId": None,
            "throttle": False,
            "throttleMessage": None,
            "throttleReasons": [],
        }

    def link(self, workspace: str, project: str, key: str) -> str:
        return f"{self.root}/{workspace}/{project}/{key}"
