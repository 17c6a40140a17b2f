"""Bad input answers {"msg","code"} naming the field, and stores nothing."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.reader import Reader

METRIC = "write/experiment/metric"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"step": "3"}, "step"),
        ({"step": 1.5}, "step"),
        ({"step": True}, "step"),
        ({"epoch": [1]}, "epoch"),
        ({"timestamp": 2**64}, "timestamp"),
        ({"metricValue": "abc"}, "metricValue"),
        ({"metricValue": True}, "metricValue"),
        ({"metricValue": None}, "metricValue"),
        ({"metricName": 5}, "metricName"),
        ({"context": {"a": 1}}, "context"),
    ],
)
def test_metric_field_errors(api, reader: Reader, patch: dict, field: str) -> None:
    key = api.create()
    body = {"experimentKey": key, "metricName": "m", "metricValue": 1, **patch}
    resp = api.post(METRIC, body)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    err = resp.json()
    assert err["code"] == 400 and err["msg"].startswith(field + ":")
    assert reader.metric_summary(key) == []


def test_encodings_accepted(api, reader: Reader) -> None:
    key = api.create()
    api.ok(
        api.post(
            METRIC,
            {
                "experimentKey": key,
                "metricName": "m",
                "metricValue": "-Infinity",
                "step": 3.0,
                "epoch": None,
                "unknown": {"x": 1},
                "apiKey": "ignored",
            },
        )
    )
    (point,) = reader.metrics(key, "m")
    assert point["metricValue"] == "-Infinity" and point["step"] == 3 and point["epoch"] is None


def test_missing_required_and_wrong_body(api, reader: Reader) -> None:
    key = api.create()
    resp = api.post(METRIC, {"experimentKey": key, "metricValue": 1})
    assert resp.status_code == 400 and resp.json()["msg"].startswith("metricName:")
    resp = requests.post(api.base + METRIC, data=b"{not json", headers=api.headers(), timeout=5)
    assert resp.status_code == 400 and resp.json()["msg"].startswith("body:")
    resp = api.post(METRIC, [1, 2])
    assert resp.status_code == 400
    resp = api.post(
        "write/experiment/output",
        {"experimentKey": key, "outputLines": [{"output": "x", "offset": "0"}]},
    )
    assert resp.status_code == 400 and resp.json()["msg"].startswith("outputLines[0].offset:")
    assert reader.output(key) == ""


def test_query_booleans_and_ints(api, reader: Reader) -> None:
    key = api.create()
    resp = api.upload(
        "write/experiment/upload-asset", b"x", "a.txt", experimentKey=key, overwrite="yes"
    )
    assert resp.status_code == 400 and resp.json()["msg"].startswith("overwrite:")
    resp = api.upload("write/experiment/upload-asset", b"x", "a.txt", experimentKey=key, step="x")
    assert resp.status_code == 400 and resp.json()["msg"].startswith("step:")
    assert reader.assets(key) == []
    api.ok(
        api.upload(
            "write/experiment/upload-asset",
            b"x",
            "a.txt",
            experimentKey=key,
            overwrite="TRUE",
            step="2.0",
        )
    )
    assert reader.assets(key)[0]["step"] == 2
    resp = api.get("experiments", workspaceName="local", projectName="proj", archived="maybe")
    assert resp.status_code == 400 and resp.json()["msg"].startswith("archived:")


def test_unknown_ids_are_404(api) -> None:
    assert api.get("experiment/metadata", experimentKey="0" * 32).status_code == 404
    assert (
        api.post(
            METRIC, {"experimentKey": "0" * 32, "metricName": "m", "metricValue": 1}
        ).status_code
        == 404
    )
    assert api.get("project", projectId="nope").status_code == 404
    assert (
        api.get("registry-model/details", workspaceName="local", modelName="x").status_code == 404
    )
    key = api.create()
    assert (
        api.get("experiment/asset/get-asset", experimentKey=key, assetId="nope").status_code == 404
    )
    resp = api.get("no/such/path")
    assert resp.status_code == 404 and resp.json()["code"] == 404


def test_gzip_body(api, reader: Reader) -> None:
    key = api.create()
    body = gzip.compress(
        json.dumps({"experimentKey": key, "metricName": "g", "metricValue": 2}).encode()
    )
    resp = requests.post(
        api.base + METRIC,
        data=body,
        timeout=5,
        headers={
            **api.headers(),
            "Content-Type": "application/json; charset=utf-8",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status_code == 200, resp.text
    assert reader.metrics(key, "g")[0]["metricValue"] == "2"
    resp = requests.post(
        api.base + METRIC,
        data=b"not gzip",
        timeout=5,
        headers={**api.headers(), "Content-Encoding": "gzip"},
    )
    assert resp.status_code == 400


def test_oversized_bodies_are_413(tmp_path) -> None:
    with start_server(
        db_path=tmp_path / "db.sqlite", max_json_bytes=1000, max_upload_bytes=2000
    ) as srv:
        h = {"Authorization": srv.api_key}
        base = srv.url + "/api/rest/v2/"
        key = requests.post(
            base + "write/experiment/create",
            json={"workspaceName": "local", "projectName": "p"},
            headers=h,
        ).json()["experimentKey"]
        resp = requests.post(
            base + "write/experiment/code",
            json={"experimentKey": key, "code": "x" * 5000},
            headers=h,
            timeout=5,
        )
        assert resp.status_code == 413 and resp.json()["code"] == 413
        resp = requests.post(
            base + "write/experiment/upload-asset",
            params={"experimentKey": key},
            files={"file": ("big", b"x" * 5000)},
            headers=h,
            timeout=5,
        )
        assert resp.status_code == 413
        bomb = gzip.compress(json.dumps({"experimentKey": key, "code": "x" * 100000}).encode())
        resp = requests.post(
            base + "write/experiment/code",
            data=bomb,
            timeout=5,
            headers={**h, "Content-Encoding": "gzip"},
        )
        assert resp.status_code == 413
        rd = Reader(srv.url, srv.api_key)
        assert rd.code(key) is None and rd.assets(key) == []


def test_failed_request_leaves_nothing_half_written(api, reader: Reader) -> None:
    """A registry create whose version fails SemVer stores neither model nor version."""
    key = api.create()
    mid = api.model(key)
    resp = api.post(
        "write/registry-model",
        {"experimentModelId": mid, "registryModelName": "m", "version": "v1"},
    )
    assert resp.status_code == 400 and resp.json()["msg"].startswith("version:")
    assert reader.registry_models("local") == []
    # a system-details request with one bad GPU item stores none of its keys
    resp = api.post(
        "write/experiment/system-details",
        {"experimentKey": key, "hostname": "h", "gpuStaticInfoList": [{"gpuIndex": "zero"}]},
    )
    assert resp.status_code == 400 and resp.json()["msg"].startswith(
        "gpuStaticInfoList[0].gpuIndex:"
    )
    assert reader.system_details(key)["hostname"] is None
