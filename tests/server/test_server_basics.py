"""Smoke tests of the fixtures, the version probe, and the core metric path."""

from __future__ import annotations

import requests

from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader


def test_version_probe_needs_no_key(comet_server: ServerHandle) -> None:
    resp = requests.get(comet_server.url + "/clientlib/isAlive/ver", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"version": "3.5.42"}


def test_comet_env_points_at_server(comet_env: ServerHandle) -> None:
    import os

    assert os.environ["COMET_URL_OVERRIDE"] == comet_env.url
    assert os.environ["COMET_API_KEY"] == comet_env.api_key
    assert os.path.isdir(os.environ["COMET_OFFLINE_DIRECTORY"])


def test_metric_roundtrip(api, reader: Reader) -> None:
    key = api.create()
    for step, value in enumerate([0.5, "0.25", "NaN", "Infinity", 0.125]):
        api.ok(
            api.post(
                "write/experiment/metric",
                {
                    "experimentKey": key,
                    "metricName": "loss",
                    "metricValue": value,
                    "step": float(step),
                    "epoch": 1,
                    "context": "train",
                    "timestamp": 1000 + step,
                },
            )
        )
    points = reader.metrics(key, "loss")
    assert [p["metricValue"] for p in points] == ["0.5", "0.25", "NaN", "Infinity", "0.125"]
    assert [p["step"] for p in points] == [0, 1, 2, 3, 4]
    assert points[0]["runContext"] == "train" and points[0]["epoch"] == 1
    (summary,) = reader.metric_summary(key)
    assert summary["valueMax"] == "0.5" and summary["stepMax"] == 0
    assert summary["valueMin"] == "0.125" and summary["stepMin"] == 4
    assert summary["valueCurrent"] == "0.125" and summary["timestampCurrent"] == 1004
