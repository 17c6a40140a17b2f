"""Read endpoints of WIRE.md §4, answering the exact shapes (every key present)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any
from urllib.parse import urlencode

from .names import safe_asset_name
from .routes import Ctx, route
from .store import SERIES, SERIES_OF
from .validate import ApiError, metric_text, text_of

QEK = {"experimentKey": "s"}

SYSTEM_LIST_KEYS = (
    "command",
    "networkInterfaceIps",
    "osPackages",
    "installedPackages",
    "gpuStaticInfoList",
    "logAdditionalSystemInfoList",
)
SYSTEM_SCALAR_KEYS = (
    "user",
    "pythonVersion",
    "pythonVersionVerbose",
    "pid",
    "osType",
    "os",
    "ip",
    "hostname",
    "executable",
    "osRelease",
    "machine",
    "processor",
    "env",
)
MEDIA_TYPES = {"image": "image", "audio": "audio", "video": "video", "histogram3d": "histogram"}


@route("GET", "account-details")
def account_details(ctx: Ctx) -> dict[str, Any]:
    """The caller's user name and default workspace."""
    return {"userName": ctx.me.name, "defaultWorkspaceName": ctx.me.default_workspace}


@route("GET", "workspaces")
def workspaces(ctx: Ctx) -> dict[str, Any]:
    """Workspaces the key may use."""
    return {"workspaceNames": sorted(ctx.me.workspaces)}


def project_json(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    count = ctx.tx.row(
        "SELECT COUNT(*) FROM experiments WHERE deleted=0 AND (project_id=? OR key IN "
        "(SELECT exp_key FROM symlinks WHERE project_id=?))",
        (row["id"], row["id"]),
    )[0]
    return {
        "projectId": row["id"],
        "projectName": row["name"],
        "workspaceName": row["workspace"],
        "projectDescription": row["description"],
        "isPublic": bool(row["is_public"]),
        "ownerUserName": row["owner"],
        "numberOfExperiments": count,
        "lastUpdated": row["last_updated"],
    }


@route("GET", "projects", query={"workspaceName": "s"})
def projects(ctx: Ctx) -> dict[str, Any]:
    """Projects of a workspace."""
    ws = ctx.ws(ctx.query["workspaceName"])
    rows = ctx.tx.all(
        "SELECT * FROM projects WHERE workspace=? AND deleted=0 ORDER BY created_at, rowid", (ws,)
    )
    return {"projects": [project_json(ctx, r) for r in rows]}


def _project_from_query(ctx: Ctx) -> sqlite3.Row:
    q = ctx.raw_query
    if q.get("projectId"):
        return ctx.project_by_id(q["projectId"])
    if not q.get("workspaceName"):
        raise ApiError(400, "workspaceName: required (or projectId)")
    if not q.get("projectName"):
        raise ApiError(400, "projectName: required (or projectId)")
    return ctx.project_by_name(q["workspaceName"], q["projectName"])


@route("GET", "project", query={"projectId?": "s", "workspaceName?": "s", "projectName?": "s"})
def project(ctx: Ctx) -> dict[str, Any]:
    """One project, by id or by workspace and name."""
    return project_json(ctx, _project_from_query(ctx))


@route(
    "GET",
    "experiments",
    query={
        "projectId?": "s",
        "workspaceName?": "s",
        "projectName?": "s",
        "archived?": "b",
        "page?": "i",
        "size?": "i",
        "sortBy?": "s",
        "sortOrder?": "s",
    },
)
def experiments(ctx: Ctx) -> dict[str, Any]:
    """Experiments of a project (including linked ones), archived or not."""
    proj = _project_from_query(ctx)
    archived = bool(ctx.query["archived"])
    rows = ctx.tx.all(
        "SELECT e.*, p.name AS project_name, p.workspace AS workspace FROM experiments e "
        "JOIN projects p ON p.id = e.project_id WHERE e.deleted=0 AND e.archived=? AND "
        "(e.project_id=? OR e.key IN (SELECT exp_key FROM symlinks WHERE project_id=?)) "
        "ORDER BY e.created_at, e.rowid",
        (int(archived), proj["id"], proj["id"]),
    )
    out = [ctx.experiment_json(r) for r in rows]
    size, page = ctx.query["size"], ctx.query["page"]
    if size and size > 0:
        start = max((page or 1) - 1, 0) * size
        out = out[start : start + size]
    return {"experiments": out}


@route("GET", "experiment/metadata", query=QEK)
def metadata(ctx: Ctx) -> dict[str, Any]:
    """One experiment (404 for an unknown or deleted key)."""
    return ctx.experiment_json(ctx.exp(ctx.query["experimentKey"]))


@route("GET", "experiment/metrics/get-metric", query={"experimentKey": "s", "metricName": "s"})
def get_metric(ctx: Ctx) -> dict[str, Any]:
    """All points of one metric, in logging order: by timestamp, then arrival (points sent in
    parallel or in several batches arrive out of order)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = ctx.tx.all(
        f"SELECT * FROM metrics WHERE {SERIES} ORDER BY ts, seq",
        (exp["key"], ctx.query["metricName"]),
    )
    return {
        "metrics": [
            {
                "metricName": r["name"],
                "metricValue": _metric_row_text(r),
                "timestamp": r["ts"],
                "step": r["step"],
                "epoch": r["epoch"],
                "runContext": r["context"],
                "offset": r["seq"],
            }
            for r in rows
        ]
    }


def _metric_row_text(r: Mapping[str, Any] | sqlite3.Row) -> str:
    """The text of a ``metrics`` row's value (see :func:`~.validate.stored_text`)."""
    return metric_text(r["value"], r["value_text"])


def _summary(
    name: str,
    rows: Sequence[Mapping[str, Any]] | Sequence[sqlite3.Row],
    value_key: str,
    with_steps: bool = True,
    use_minmax: bool = True,
) -> dict[str, Any]:
    cur = rows[-1]
    finite = [r for r in rows if r["value"] is not None] if use_minmax else []
    hi = max(finite, key=lambda r: r["value"]) if finite else cur
    lo = min(finite, key=lambda r: r["value"]) if finite else cur
    text = _metric_row_text if value_key == "value_text" else itemgetter(value_key)
    out: dict[str, Any] = {
        "name": name,
        "valueMax": text(hi),
        "valueMin": text(lo),
        "valueCurrent": text(cur),
        "timestampMax": hi["ts"],
        "timestampMin": lo["ts"],
        "timestampCurrent": cur["ts"],
    }
    if with_steps:
        out.update(stepMax=hi["step"], stepMin=lo["step"], stepCurrent=cur["step"])
    out["editable"] = True
    return out


def _grouped(rows: list[sqlite3.Row]) -> dict[str, list[sqlite3.Row]]:
    groups: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        groups.setdefault(row["name"], []).append(row)
    return groups


@route("GET", "experiment/metrics/summary", query=QEK)
def metric_summary(ctx: Ctx) -> dict[str, Any]:
    """One summary per metric (max/min over finite values, current = last in logging order)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = ctx.tx.all(f"SELECT * FROM metrics WHERE {SERIES_OF} ORDER BY ts, seq", (exp["key"],))
    return {"values": [_summary(n, rs, "value_text") for n, rs in _grouped(rows).items()]}


def _texts(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        {
            "name": r["name"],
            "text": text_of(json.loads(r["value"])),
            "ts": r["ts"],
            "step": r["step"] if "step" in r.keys() else None,
            "value": None,
        }
        for r in rows
    ]


@route("GET", "experiment/parameters", query=QEK)
def parameters(ctx: Ctx) -> dict[str, Any]:
    """Parameters: all three values are the last one logged."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = _texts(ctx.tx.all("SELECT * FROM params WHERE exp_key=? ORDER BY seq", (exp["key"],)))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["name"], []).append(r)
    return {"values": [_summary(n, rs, "text", use_minmax=False) for n, rs in groups.items()]}


@route("GET", "experiment/log-other", query=QEK)
def others(ctx: Ctx) -> dict[str, Any]:
    """Others: like parameters, without the step keys."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = _texts(ctx.tx.all("SELECT * FROM others WHERE exp_key=? ORDER BY seq", (exp["key"],)))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["name"], []).append(r)
    return {
        "values": [
            _summary(n, rs, "text", with_steps=False, use_minmax=False) for n, rs in groups.items()
        ]
    }


@route("GET", "experiment/tags", query=QEK)
def tags(ctx: Ctx) -> dict[str, Any]:
    """Tags in first-added order."""
    exp = ctx.exp(ctx.query["experimentKey"])
    return {
        "tags": [
            r["tag"]
            for r in ctx.tx.all("SELECT tag FROM tags WHERE exp_key=? ORDER BY seq", (exp["key"],))
        ]
    }


def asset_json(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    kind = MEDIA_TYPES.get(row["type"])
    link = (
        row["link"]
        if row["remote"]
        else (
            f"{ctx.root}/api/rest/v2/experiment/asset/get-asset?"
            + urlencode({"experimentKey": row["exp_key"], "assetId": row["id"]})
        )
    )
    tag_rows = ctx.tx.all(
        "SELECT tag FROM asset_tags WHERE asset_id=? ORDER BY rowid", (row["id"],)
    )
    return {
        "assetId": row["id"],
        "fileName": safe_asset_name(row["file_name"]),  # stores from before names were made safe
        "fileSize": row["size"],
        "type": row["type"],
        "step": row["step"],
        "runContext": row["context"],
        "createdAt": row["created_at"],
        "link": link,
        "dir": row["type"],
        "image": kind == "image",
        "audio": kind == "audio",
        "video": kind == "video",
        "histogram": kind == "histogram",
        "canView": kind == "image",
        "metadata": row["metadata"],
        "remote": bool(row["remote"]),
        "tags": [t["tag"] for t in tag_rows],
    }


@route("GET", "experiment/asset/list", query={"experimentKey": "s", "type?": "s"})
def asset_list(ctx: Ctx) -> dict[str, Any]:
    """Assets, optionally of one type (``all`` or absent: every type)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    atype = ctx.query["type"]
    if atype and atype != "all":
        rows = ctx.tx.all(
            "SELECT * FROM assets WHERE exp_key=? AND type=? ORDER BY seq", (exp["key"], atype)
        )
    else:
        rows = ctx.tx.all("SELECT * FROM assets WHERE exp_key=? ORDER BY seq", (exp["key"],))
    return {"assets": [asset_json(ctx, r) for r in rows]}


@route(
    "GET",
    "experiment/asset/get-asset",
    query={"experimentKey": "s", "assetId": "s", "allow301?": "s"},
)
def get_asset(ctx: Ctx) -> bytes:
    """An asset's bytes as ``application/octet-stream``."""
    exp = ctx.exp(ctx.query["experimentKey"])
    row = ctx.tx.one(
        "SELECT * FROM assets WHERE id=? AND exp_key=?", (ctx.query["assetId"], exp["key"])
    )
    if row is None:
        other = ctx.tx.one("SELECT exp_key FROM assets WHERE id=?", (ctx.query["assetId"],))
        if other is not None:
            ctx.exp(other["exp_key"], "assetId")
        raise ApiError(404, f"assetId: unknown asset {ctx.query['assetId']!r}")
    if row["remote"]:
        raise ApiError(404, "assetId: remote asset has no stored bytes")
    try:
        return ctx.tx.file_path(row["storage"]).read_bytes()
    except OSError:
        raise ApiError(404, "assetId: asset file missing") from None


@route("GET", "experiment/model", query=QEK)
def exp_models(ctx: Ctx) -> dict[str, Any]:
    """Experiment models (made by grouping ``model-element`` uploads)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = ctx.tx.all(
        "SELECT * FROM exp_models WHERE exp_key=? ORDER BY created_at, rowid", (exp["key"],)
    )
    return {
        "models": [
            {"experimentModelId": r["id"], "experimentKey": r["exp_key"], "modelName": r["name"]}
            for r in rows
        ]
    }


def _semver_key(version: str) -> tuple[Any, ...]:
    core, _, pre = version.split("+", 1)[0].partition("-")
    try:
        nums = tuple(int(x) for x in core.split("."))
    except ValueError:
        nums = (0, 0, 0)
    pre_key = (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    )
    return nums, not pre, pre_key


def _latest(versions: list[str]) -> str | None:
    return max(versions, key=_semver_key) if versions else None


@route("GET", "registry-model", query={"workspaceName": "s"})
def registry_models(ctx: Ctx) -> dict[str, Any]:
    """Registered models of a workspace."""
    ws = ctx.ws(ctx.query["workspaceName"])
    out = []
    for m in ctx.tx.all(
        "SELECT * FROM registry_models WHERE workspace=? ORDER BY created_at, rowid", (ws,)
    ):
        versions = [
            r["version"]
            for r in ctx.tx.all("SELECT version FROM registry_items WHERE model_id=?", (m["id"],))
        ]
        out.append(
            {
                "registryModelId": m["id"],
                "modelName": m["name"],
                "description": m["description"],
                "isPublic": bool(m["is_public"]),
                "createdAt": m["created_at"],
                "lastUpdated": m["last_updated"],
                "numberOfVersions": len(versions),
                "latestVersion": _latest(versions),
            }
        )
    return {"registryModels": out}


def _model_by_name(ctx: Ctx) -> sqlite3.Row:
    from .handlers_write import normalise_name

    ws = ctx.ws(ctx.query["workspaceName"])
    row = ctx.tx.one(
        "SELECT * FROM registry_models WHERE workspace=? AND name=?",
        (ws, normalise_name(ctx.query["modelName"], "modelName")),
    )
    if row is None:
        raise ApiError(404, f"modelName: unknown registry model {ctx.query['modelName']!r}")
    return row


@route("GET", "registry-model/details", query={"workspaceName": "s", "modelName": "s"})
def registry_details(ctx: Ctx) -> dict[str, Any]:
    """A registered model with all its versions."""
    m = _model_by_name(ctx)
    versions = []
    for r in ctx.tx.all(
        "SELECT i.*, em.name AS em_name, em.exp_key AS em_exp FROM registry_items i "
        "LEFT JOIN exp_models em ON em.id = i.exp_model_id WHERE i.model_id=? ORDER BY i.created_at, i.rowid",
        (m["id"],),
    ):
        versions.append(
            {
                "registryModelItemId": r["id"],
                "version": r["version"],
                "stages": json.loads(r["stages"]),
                "comment": r["comment"],
                "createdAt": r["created_at"],
                "experimentModel": {
                    "experimentModelId": r["exp_model_id"],
                    "experimentModelName": r["em_name"],
                    "experimentKey": r["em_exp"],
                },
            }
        )
    return {
        "registryModelId": m["id"],
        "workspaceName": m["workspace"],
        "modelName": m["name"],
        "description": m["description"],
        "isPublic": bool(m["is_public"]),
        "createdAt": m["created_at"],
        "lastUpdated": m["last_updated"],
        "versions": versions,
    }


@route("GET", "registry-model/notes", query={"workspaceName": "s", "modelName": "s"})
def registry_notes(ctx: Ctx) -> dict[str, Any]:
    """A registered model's notes (``""`` when unset)."""
    return {"notes": _model_by_name(ctx)["notes"] or ""}


@route("GET", "experiment/git/metadata", query=QEK)
def git_metadata(ctx: Ctx) -> dict[str, Any]:
    """Git metadata; every key null when unknown."""
    exp = ctx.exp(ctx.query["experimentKey"])
    raw = ctx.get_value(exp["key"], "git_metadata")
    stored = json.loads(raw) if raw else {}
    return {k: stored.get(k) for k in ("user", "root", "branch", "parent", "origin")}


@route("GET", "experiment/git/patch", query=QEK)
def git_patch(ctx: Ctx) -> Any:
    """The patch zip, or ``{"msg":"No git patch"}``."""
    exp = ctx.exp(ctx.query["experimentKey"])
    data = ctx.get_value(exp["key"], "git_patch")
    return bytes(data) if data is not None else {"msg": "No git patch"}


@route("GET", "experiment/system-details", query=QEK)
def system_details(ctx: Ctx) -> dict[str, Any]:
    """Every system-details key (null or [] when unset) plus derived values."""
    exp = ctx.exp(ctx.query["experimentKey"])
    raw = ctx.get_value(exp["key"], "system_details")
    stored = json.loads(raw) if raw else {}
    out: dict[str, Any] = {"experimentKey": exp["key"]}
    for k in SYSTEM_SCALAR_KEYS:
        out[k] = stored.get(k)
    for k in SYSTEM_LIST_KEYS:
        out[k] = stored.get(k) or []
    ram = ctx.tx.one(
        f"SELECT value FROM metrics WHERE {SERIES} ORDER BY seq DESC LIMIT 1",
        (exp["key"], "sys.ram.total"),
    )
    out["totalRam"] = int(ram["value"]) if ram and ram["value"] is not None else None
    totals = [
        g.get("totalMemory") for g in out["gpuStaticInfoList"] if g.get("totalMemory") is not None
    ]
    gpu_totals = ctx.tx.row(
        "SELECT MAX(value) FROM metrics WHERE series IN (SELECT id FROM series WHERE exp_key=? "
        "AND name LIKE 'sys.gpu.%.total_memory')",
        (exp["key"],),
    )[0]
    if gpu_totals is not None:
        totals.append(int(gpu_totals))
    out["maxTotalMemory"] = max(totals) if totals else None
    out["systemMetricNames"] = [
        r[0]
        for r in ctx.tx.all(
            f"SELECT name FROM metrics WHERE {SERIES_OF} AND (system=1 OR name LIKE 'sys.%') "
            "GROUP BY name ORDER BY MIN(seq)",
            (exp["key"],),
        )
    ]
    return out


def _single(ctx: Ctx, kind: str) -> dict[str, Any]:
    exp = ctx.exp(ctx.query["experimentKey"])
    return {kind: ctx.get_value(exp["key"], kind)}


@route("GET", "experiment/html", query=QEK)
def html(ctx: Ctx) -> dict[str, Any]:
    """The experiment's HTML."""
    return _single(ctx, "html")


@route("GET", "experiment/code", query=QEK)
def code(ctx: Ctx) -> dict[str, Any]:
    """The experiment's code."""
    return _single(ctx, "code")


@route("GET", "experiment/graph", query=QEK)
def graph(ctx: Ctx) -> dict[str, Any]:
    """The experiment's graph."""
    return _single(ctx, "graph")


@route("GET", "experiment/output", query=QEK)
def output(ctx: Ctx) -> dict[str, Any]:
    """All output lines concatenated by offset, then arrival (lines of two requests may share
    an offset)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    rows = ctx.tx.all("SELECT text FROM output WHERE exp_key=? ORDER BY offset, seq", (exp["key"],))
    return {"output": "".join(r["text"] for r in rows)}
