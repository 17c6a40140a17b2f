"""Small HTTP helpers for the server tests (plain ``requests``, real HTTP)."""

from __future__ import annotations

from typing import Any

import requests

from comet_callbacks.server.embedded import ServerHandle


class Api:
    """POST/GET against one server with one key; returns the raw response."""

    def __init__(self, server: ServerHandle, key: str | None = None) -> None:
        self.server = server
        self.key = server.api_key if key is None else key
        self.base = server.url + "/api/rest/v2/"

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.key} if self.key else {}

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.post(
            self.base + path, json=body, params=params or None, headers=self.headers(), timeout=10
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(
            self.base + path, params=params or None, headers=self.headers(), timeout=10
        )

    def upload(
        self,
        path: str,
        data: bytes,
        filename: str = "f.bin",
        form: dict[str, str] | None = None,
        **params: Any,
    ) -> requests.Response:
        return requests.post(
            self.base + path,
            params=params,
            files={"file": (filename, data)},
            data=form or {},
            headers=self.headers(),
            timeout=10,
        )

    def ok(self, resp: requests.Response) -> Any:
        assert resp.status_code == 200, (resp.status_code, resp.text)
        assert resp.headers["content-type"] == "application/json"
        return resp.json()

    def create(
        self, project: str = "proj", workspace: str | None = None, name: str | None = None
    ) -> str:
        body = {"workspaceName": workspace or self.server.workspace, "projectName": project}
        if name:
            body["experimentName"] = name
        return self.ok(self.post("write/experiment/create", body))["experimentKey"]

    def model(self, key: str, name: str = "m") -> str:
        """Upload one model-element asset grouped as ``name``; return its experimentModelId."""
        self.ok(
            self.upload(
                "write/experiment/upload-asset",
                b"w",
                "w",
                experimentKey=key,
                type="model-element",
                groupingName=name,
            )
        )
        models = self.ok(self.get("experiment/model", experimentKey=key))["models"]
        return next(m["experimentModelId"] for m in models if m["modelName"] == name)


import pytest  # noqa: E402


@pytest.fixture
def api(comet_server: ServerHandle) -> Api:
    """An :class:`Api` using the admin key of ``comet_server``."""
    return Api(comet_server)


@pytest.fixture
def make_api(comet_server: ServerHandle):
    """Factory: ``make_api(key)`` → :class:`Api` for ``comet_server`` using ``key``."""

    def make(key: str | None = None) -> Api:
        return Api(comet_server, key)

    return make
