"""Restart persistence, retry de-duplication, webhooks, concurrency, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests

from comet_callbacks.server.reader import Reader


def test_restart_keeps_everything(comet_server, api, reader: Reader) -> None:
    key = api.create()
    api.ok(
        api.post(
            "write/experiment/metric", {"experimentKey": key, "metricName": "m", "metricValue": 1}
        )
    )
    aid = api.ok(api.upload("write/experiment/upload-asset", b"bytes", "f", experimentKey=key))[
        "assetId"
    ]
    url, admin_key = comet_server.url, comet_server.api_key
    comet_server.stop()
    try:
        requests.get(url + "/clientlib/isAlive/ver", timeout=1)
        raise AssertionError("server still answering")
    except requests.ConnectionError:
        pass
    comet_server.start()
    assert comet_server.url == url and comet_server.api_key == admin_key
    assert [p["metricValue"] for p in reader.metrics(key, "m")] == ["1"]
    assert reader.get_asset(key, aid) == b"bytes"


def test_retried_writes_are_kept_once(api, reader: Reader) -> None:
    """A retry carries the first attempt's ``X-Comet-Request-Id`` and is stored once; without
    an id each write is a new value (no duplicate scan: the same value twice is two points)."""
    key = api.create()
    point = {"experimentKey": key, "metricName": "m", "metricValue": 1, "step": 1, "timestamp": 5}
    url = api.base + "write/experiment/metric"
    for _ in range(3):
        r = requests.post(
            url, json=point, headers={**api.headers(), "X-Comet-Request-Id": "r-1"}, timeout=10
        )
        assert r.status_code == 200, r.text
    api.ok(api.post("write/experiment/metric", {**point, "timestamp": 6}))
    api.ok(api.post("write/experiment/metric", {**point, "timestamp": 6}))
    assert [p["timestamp"] for p in reader.metrics(key, "m")] == [5, 6, 6]


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict, dict]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Recorder.fail_first > 0:
            _Recorder.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Recorder.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_on_stage_change(api, reader: Reader) -> None:
    hook = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    _Recorder.fail_first = 1  # the first delivery fails and is retried
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_port}/hook"
        resp = api.post(
            "webhooks/config",
            {
                "webhookConfigs": [
                    {
                        "workspaceName": "local",
                        "modelName": "m",
                        "webhookUrls": [{"url": url, "header": {"X-Token": "t"}}],
                    }
                ]
            },
        )
        assert resp.status_code == 204 and resp.content == b""
        key = api.create()
        mid = api.model(key)
        item = api.ok(
            api.post(
                "write/registry-model",
                {"experimentModelId": mid, "registryModelName": "m", "version": "1.0.0"},
            )
        )["registryModelItemId"]
        assert _Recorder.received == []  # no stages yet
        t0 = time.monotonic()
        api.ok(api.get("write/registry-model/item/stage", modelItemId=item, stage="production"))
        assert time.monotonic() - t0 < 1.0  # did not wait for the receiver
        deadline = time.monotonic() + 10
        while not _Recorder.received and time.monotonic() < deadline:
            time.sleep(0.05)
        ((headers, body),) = _Recorder.received
        assert headers["X-Token"] == "t"
        assert body["modelName"] == "m" and body["version"] == "1.0.0"
        assert body["stages"] == ["production"] and body["previousStages"] == []
        # PUT replaces: with no URLs configured, later changes notify nobody
        resp = requests.put(
            api.base + "webhooks/config",
            json={"webhookConfigs": [{"workspaceName": "local", "webhookUrls": []}]},
            headers=api.headers(),
            timeout=5,
        )
        assert resp.status_code == 204
        api.ok(
            api.get("write/registry-model/item/stage/delete", modelItemId=item, stage="production")
        )
        time.sleep(0.5)
        assert len(_Recorder.received) == 1
    finally:
        hook.shutdown()


def test_eight_concurrent_writers(api, reader: Reader) -> None:
    keys = [api.create() for _ in range(4)]
    errors: list[str] = []

    def work(idx: int) -> None:
        session = requests.Session()
        key = keys[idx % len(keys)]
        for step in range(40):
            resp = session.post(
                api.base + "write/experiment/metric",
                headers=api.headers(),
                timeout=30,
                json={
                    "experimentKey": key,
                    "metricName": f"w{idx}",
                    "metricValue": step,
                    "step": step,
                },
            )
            if resp.status_code != 200:
                errors.append(resp.text)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for idx in range(8):
        points = reader.metrics(keys[idx % len(keys)], f"w{idx}")
        assert [p["step"] for p in points] == list(range(40))


def test_openapi_lists_write_endpoints(comet_server) -> None:
    spec = requests.get(comet_server.url + "/openapi.json", timeout=5).json()
    paths = spec["paths"]
    assert "/api/rest/v2/write/experiment/metric" in paths
    schema = paths["/api/rest/v2/write/experiment/metric"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    assert "metricName" in schema["schema"]["required"]


def test_cli_prints_url_and_key_and_stops_on_sigint(tmp_path) -> None:
    import signal

    env = {**os.environ, "COMET_SERVER_API_KEY": "fixed-test-key"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comet_callbacks.server",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        url = lines[2].strip().split("=", 1)[1]
        assert lines[2].startswith("  export COMET_URL_OVERRIDE=http://127.0.0.1:")
        deadline = time.monotonic() + 10
        while True:
            try:
                resp = requests.get(
                    url + "/api/rest/v2/workspaces",
                    headers={"Authorization": "fixed-test-key"},
                    timeout=1,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert resp.json() == {"workspaceNames": ["local"]}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "data" / "comet.sqlite").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
