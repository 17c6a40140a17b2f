"""A small read client for WIRE.md §4, used by tests to read back what was stored.

Plain ``requests`` GETs; any non-200 answer raises :class:`ReadError` carrying the
status and the server's ``msg``. Works against the local server or any Comet server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

from .names import safe_join


class ReadError(Exception):
    """A read answered with a status other than 200."""

    def __init__(self, status: int, msg: str, path: str) -> None:
        super().__init__(f"GET {path}: {status} {msg}")
        self.status = status
        self.msg = msg
        self.path = path


class Reader:
    """Read endpoints of the REST v2 API, one method each."""

    def __init__(self, url: str, api_key: str, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/") + "/api/rest/v2/"
        self.api_key = api_key
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = api_key

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:  # never show the key
        return f"Reader({self.base!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def raw(self, path: str, **params: Any) -> requests.Response:
        """GET ``path`` (relative to the REST base) with ``None`` params dropped."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self.session.get(self.base + path, params=clean, timeout=self.timeout)

    def get(self, path: str, **params: Any) -> Any:
        """GET and decode JSON; raise :class:`ReadError` unless 200."""
        resp = self.raw(path, **params)
        if resp.status_code != 200:
            try:
                msg = resp.json().get("msg", resp.text)
            except ValueError:
                msg = resp.text
            raise ReadError(resp.status_code, msg, path)
        return resp.json()

    def _bytes(self, path: str, **params: Any) -> bytes:
        resp = self.raw(path, **params)
        if resp.status_code != 200:
            raise ReadError(resp.status_code, resp.text, path)
        return resp.content

    # -- account, workspaces, projects ---------------------------------------------------------

    def version(self) -> str:
        root = self.base[: -len("api/rest/v2/")]
        return requests.get(root + "clientlib/isAlive/ver", timeout=self.timeout).json()["version"]

    def account_details(self) -> dict[str, Any]:
        return self.get("account-details")

    def workspaces(self) -> list[str]:
        return self.get("workspaces")["workspaceNames"]

    def projects(self, workspace: str) -> list[dict[str, Any]]:
        return self.get("projects", workspaceName=workspace)["projects"]

    def project(
        self,
        workspace: str | None = None,
        project: str | None = None,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        return self.get(
            "project", workspaceName=workspace, projectName=project, projectId=project_id
        )

    def experiments(
        self,
        workspace: str | None = None,
        project: str | None = None,
        project_id: str | None = None,
        archived: bool = False,
    ) -> list[dict[str, Any]]:
        return self.get(
            "experiments",
            workspaceName=workspace,
            projectName=project,
            projectId=project_id,
            archived=str(archived).lower(),
        )["experiments"]

    # -- one experiment ------------------------------------------------------------------------

    def metadata(self, key: str) -> dict[str, Any]:
        return self.get("experiment/metadata", experimentKey=key)

    def metrics(self, key: str, name: str) -> list[dict[str, Any]]:
        return self.get("experiment/metrics/get-metric", experimentKey=key, metricName=name)[
            "metrics"
        ]

    def metric_summary(self, key: str) -> list[dict[str, Any]]:
        return self.get("experiment/metrics/summary", experimentKey=key)["values"]

    def parameters(self, key: str) -> dict[str, str]:
        """Parameter name → ``valueCurrent``."""
        return {v["name"]: v["valueCurrent"] for v in self.parameters_raw(key)}

    def parameters_raw(self, key: str) -> list[dict[str, Any]]:
        return self.get("experiment/parameters", experimentKey=key)["values"]

    def others(self, key: str) -> dict[str, str]:
        """Other name → ``valueCurrent``."""
        return {v["name"]: v["valueCurrent"] for v in self.others_raw(key)}

    def others_raw(self, key: str) -> list[dict[str, Any]]:
        return self.get("experiment/log-other", experimentKey=key)["values"]

    def tags(self, key: str) -> list[str]:
        return self.get("experiment/tags", experimentKey=key)["tags"]

    def assets(self, key: str, type: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        return self.get("experiment/asset/list", experimentKey=key, type=type)["assets"]

    def get_asset(self, key: str, asset_id: str) -> bytes:
        return self._bytes("experiment/asset/get-asset", experimentKey=key, assetId=asset_id)

    def download_assets(
        self,
        key: str,
        folder: str | os.PathLike[str],
        type: str | None = None,  # noqa: A002
    ) -> list[Path]:
        """Save the experiment's uploaded assets under ``folder`` by their file names and
        return the paths. Names are made safe first (:func:`.names.safe_join`): whatever a
        server answers, nothing is written outside ``folder``. Remote assets (links) are
        skipped."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for asset in self.assets(key, type):
            if asset.get("remote"):
                continue
            target = safe_join(root, str(asset.get("fileName") or "asset"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get_asset(key, asset["assetId"]))
            written.append(target)
        return written

    def models(self, key: str) -> list[dict[str, Any]]:
        return self.get("experiment/model", experimentKey=key)["models"]

    def git_metadata(self, key: str) -> dict[str, Any]:
        return self.get("experiment/git/metadata", experimentKey=key)

    def git_patch(self, key: str) -> bytes | None:
        """The patch zip, or ``None`` when none was stored."""
        data = self._bytes("experiment/git/patch", experimentKey=key)
        return None if data.startswith(b'{"msg"') else data

    def system_details(self, key: str) -> dict[str, Any]:
        return self.get("experiment/system-details", experimentKey=key)

    def html(self, key: str) -> str | None:
        return self.get("experiment/html", experimentKey=key)["html"]

    def code(self, key: str) -> str | None:
        return self.get("experiment/code", experimentKey=key)["code"]

    def output(self, key: str) -> str:
        return self.get("experiment/output", experimentKey=key)["output"]

    def graph(self, key: str) -> str | None:
        return self.get("experiment/graph", experimentKey=key)["graph"]

    # -- registry ------------------------------------------------------------------------------

    def registry_models(self, workspace: str) -> list[dict[str, Any]]:
        return self.get("registry-model", workspaceName=workspace)["registryModels"]

    def registry_details(self, workspace: str, name: str) -> dict[str, Any]:
        return self.get("registry-model/details", workspaceName=workspace, modelName=name)

    def registry_notes(self, workspace: str, name: str) -> str:
        return self.get("registry-model/notes", workspaceName=workspace, modelName=name)["notes"]
