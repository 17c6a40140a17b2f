"""A server whose data folder is given relative to the working directory (the CLI's default,
``./comet-server-data``) stores uploads like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from comet_callbacks.server.embedded import start_server


def test_upload_with_a_relative_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with start_server(db_path="rel/comet.sqlite", assets_dir="rel/assets") as srv:
        h = {"Authorization": srv.api_key}
        base = srv.url + "/api/rest/v2/"
        key = requests.post(
            base + "write/experiment/create",
            json={"workspaceName": "local", "projectName": "p"},
            headers=h,
            timeout=10,
        ).json()["experimentKey"]
        r = requests.post(
            base + "write/experiment/upload-asset",
            params={"experimentKey": key, "fileName": "a.bin"},
            files={"file": ("a.bin", b"payload" * 100)},
            headers=h,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assets = requests.get(
            base + "experiment/asset/list", params={"experimentKey": key}, headers=h, timeout=10
        ).json()["assets"]
        got = requests.get(
            base + "experiment/asset/get-asset",
            params={"experimentKey": key, "assetId": assets[0]["assetId"]},
            headers=h,
            timeout=10,
        )
        assert got.content == b"payload" * 100
