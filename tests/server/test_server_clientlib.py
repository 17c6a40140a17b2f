"""The clientlib endpoints of the official SDK's ``Experiment``, over plain HTTP: the answers the
SDK reads, its error codes, and the same authentication and workspace rules as REST v2."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from comet_callbacks.server.reader import Reader

C = "/clientlib/"


class Clientlib:
    """POSTs/GETs under ``/clientlib/`` with one key (in the header, as the SDK sends it)."""

    def __init__(self, server, key: str | None = None) -> None:
        self.url = server.url + C
        self.key = server.api_key if key is None else key

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        headers = {"Authorization": self.key} if self.key else {}
        return requests.post(self.url + path, json=body, params=params, headers=headers, timeout=10)

    def get(self, path: str, **params: Any) -> requests.Response:
        headers = {"Authorization": self.key} if self.key else {}
        return requests.get(self.url + path, params=params, headers=headers, timeout=10)

    def upload(self, path: str, files: dict[str, Any], **params: Any) -> requests.Response:
        return requests.post(
            self.url + path,
            params=params,
            files=files,
            headers={"Authorization": self.key},
            timeout=10,
        )

    def add_run(self, key: str | None = None, **body: Any) -> requests.Response:
        payload = {
            "apiKey": self.key,
            "experimentKey": key or uuid.uuid4().hex,
            "projectName": "sdk",
            "teamName": None,
            "offline": False,
            "getOrCreateEnabled": False,
            "libVersion": "3.58.8",
        }
        payload.update(body)
        return self.post("logger/add/run", payload)


@pytest.fixture
def cl(comet_server) -> Clientlib:
    return Clientlib(comet_server)


def _ok(resp: requests.Response) -> Any:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/json"
    return resp.json()


def _sdk_error(resp: requests.Response, status: int, code: int, field: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["sdk_error_code"] == code and body["msg"].startswith(field), body


def test_handshake_creates_the_experiment_under_the_sdk_key(
    comet_server, cl, reader: Reader
) -> None:
    key = uuid.uuid4().hex
    hs = _ok(cl.add_run(key))
    assert hs["runId"] and hs["lastOffset"] == 0 and hs["featureToggles"] == []
    assert hs["focusUrl"] == f"{comet_server.url}/local/sdk/"
    assert hs["upload_file_size_limit_in_mb"] == 200
    meta = reader.metadata(key)
    assert (meta["projectId"], meta["projectName"], meta["running"]) == (
        hs["project_id"],
        "sdk",
        True,
    )
    # the same key again: "already exists", unless get-or-create
    _sdk_error(cl.add_run(key), 400, 90999, "experimentKey")
    again = _ok(cl.add_run(key, getOrCreateEnabled=True))
    assert again["project_id"] == hs["project_id"] and again["runId"] != hs["runId"]
    # a key that is not 32-50 letters and digits
    resp = cl.add_run("not-a-key")
    assert resp.status_code == 400 and resp.json()["msg"].startswith("experimentKey:")


def test_handshake_key_and_workspace_rules(comet_server, cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    bad = Clientlib(comet_server, "not-a-key")
    _sdk_error(bad.add_run(key), 400, 90212, "Authorization")
    _sdk_error(Clientlib(comet_server, "").add_run(key, apiKey=None), 400, 90212, "Authorization")
    comet_server.create_user("bob")  # owns workspace "bob"
    _sdk_error(cl.add_run(key, teamName="bob"), 403, 90219, "teamName")
    _sdk_error(cl.add_run(key, teamName="nobody"), 400, 90219, "teamName")
    assert reader.projects("local") == []  # nothing was created
    # the key may come in the body only (the SDK sends both)
    hs = _ok(Clientlib(comet_server, "").add_run(key, apiKey=comet_server.api_key))
    assert reader.metadata(key)["projectId"] == hs["project_id"]


def test_another_users_experiment_is_out_of_reach(comet_server, cl) -> None:
    key = uuid.uuid4().hex
    _ok(cl.add_run(key))
    bob = Clientlib(comet_server, comet_server.create_user("bob"))
    _sdk_error(
        bob.post("logger/get/run", {"previousExperiment": key}), 400, 90210, "previousExperiment"
    )
    _sdk_error(
        bob.add_run(key, getOrCreateEnabled=True, teamName="bob"), 403, 90999, "experimentKey"
    )
    assert (
        bob.post("status-report/update", {"experimentKey": key, "is_alive": True}).status_code
        == 403
    )
    resp = bob.upload("asset/upload", {"file": ("file", b"x")}, experimentId=key, fileName="x.txt")
    assert resp.status_code == 403 and resp.json()["msg"].startswith("experimentId:")
    resp = bob.post("tags/add-tags-to-experiment", {"experimentKey": key, "addedTags": ["x"]})
    assert resp.status_code == 403
    assert (
        Clientlib(comet_server, "").get("rpc/get-pending-rpcs", experimentKey=key).status_code
        == 401
    )


def test_status_reports_heartbeat_end_and_continuation(cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    hs = _ok(cl.add_run(key))
    beat = {"experimentKey": key, "runId": hs["runId"], "projectId": hs["project_id"]}
    answer = _ok(cl.post("status-report/update", {**beat, "is_alive": True}))
    assert answer == {
        "is_alive_beat_duration_millis": 5_000,  # half the 10 s window
        "gpu_monitor_interval_millis": 60_000,
        "cpu_monitor_interval_millis": 68_000,
        "parameter_update_interval_millis": 60_000,
        "pending_rpcs": False,
    }
    _ok(cl.post("status-report/update", {**beat, "is_alive": False}))
    meta = reader.metadata(key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
    # output continues from the handshake's lastOffset when the run is continued
    _ok(
        requests.post(
            cl.url + "rest/v2/write/experiment/output",
            json={
                "experimentKey": key,
                "outputLines": [
                    {"output": "a\n", "stderr": False, "localTimestamp": 1, "offset": 4}
                ],
                "runContext": None,
            },
            headers={"Authorization": cl.key},
            timeout=10,
        )
    )
    cont = _ok(cl.post("logger/get/run", {"apiKey": cl.key, "previousExperiment": key}))
    assert cont["lastOffset"] == 5 and cont["project_id"] == hs["project_id"]
    _ok(cl.post("status-report/update", {**beat, "is_alive": True}))
    meta = reader.metadata(key)
    assert meta["running"] is True and meta["endTimeMillis"] is None
    # the end of an uploaded offline run sets both times
    _ok(
        cl.post(
            "status-report/offline-metadata",
            {"experimentKey": key, "startTimestamp": 1000, "endTimestamp": 5000},
        )
    )
    meta = reader.metadata(key)
    assert (meta["startTimeMillis"], meta["endTimeMillis"], meta["running"]) == (1000, 5000, False)


def test_uploads_store_assets_models_images_and_patches(cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    hs = _ok(cl.add_run(key))
    q = {"experimentId": key, "projectId": hs["project_id"], "runId": hs["runId"]}
    asset_id = uuid.uuid4().hex
    _ok(
        cl.upload(
            "asset/upload",
            {"file": ("file", b"abc"), "metadata": (None, '{"m":1}')},
            **q,
            assetId=asset_id,
            fileName="a.txt",
            extension="txt",
            overwrite="False",
            step=3,
        )
    )
    _ok(
        cl.upload(
            "asset/upload",
            {"file": ("file", b"w")},
            **q,
            fileName="w.bin",
            type="model-element",
            groupingName="m",
        )
    )
    _ok(
        cl.upload(
            "visualizations/upload",
            {"file": ("file", b"png")},
            **q,
            figName="fig",
            extension="png",
            step=1,
        )
    )
    _ok(
        cl.upload(
            "asset/upload", {"link": ("link", b"s3://b/k")}, **q, fileName="remote", isRemote="True"
        )
    )
    assets = {a["fileName"]: a for a in reader.assets(key)}
    assert assets["a.txt"]["assetId"] == asset_id  # the SDK's own id
    assert (assets["a.txt"]["step"], assets["a.txt"]["metadata"]) == (3, '{"m":1}')
    assert reader.get_asset(key, asset_id) == b"abc"
    assert assets["fig"]["type"] == "image" and assets["fig"]["image"] is True
    assert (assets["remote"]["remote"], assets["remote"]["link"]) == (True, "s3://b/k")
    assert [m["modelName"] for m in reader.models(key)] == ["m"]
    _ok(cl.upload("git-patch/upload", {"file": ("file", b"diff --git a b\n")}, experimentId=key))
    assert reader.git_patch(key) is not None
    # what the server refuses, it names
    resp = cl.upload("asset/upload", {"other": ("file", b"x")}, **q, fileName="x")
    assert resp.status_code == 400 and resp.json()["msg"].startswith("file:")
    resp = cl.upload(
        "asset/upload", {"file": ("file", b"x")}, **q, fileName="x", type="model-element"
    )
    assert resp.status_code == 400 and resp.json()["msg"].startswith("groupingName:")
    resp = cl.upload("asset/upload", {"file": ("file", b"x")}, experimentId="nope", fileName="x")
    assert resp.status_code == 404 and resp.json()["msg"].startswith("experimentId:")


def test_registry_item_create(comet_server, cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    hs = _ok(cl.add_run(key))
    q = {"experimentId": key, "projectId": hs["project_id"]}
    _ok(
        cl.upload(
            "asset/upload",
            {"file": ("file", b"w")},
            **q,
            fileName="w",
            type="model-element",
            groupingName="My Model",
        )
    )
    rest = comet_server.url + "/api/rest/v2/write/registry-model/item/create"

    def create(**body: Any) -> requests.Response:
        payload = {"experimentKey": key, "experimentModelName": "My Model", **body}
        return requests.post(rest, json=payload, headers={"Authorization": cl.key}, timeout=10)

    first = _ok(
        create(registryModelName="My Model", version="2.0.0", versionComment="c", tags=["t"])
    )
    assert first["version"] == "2.0.0"
    assert _ok(create())["version"] == "2.0.1"  # no version: the next patch
    _sdk_error(create(version="v1"), 400, 42001, "version")
    assert create(version="2.0.0").status_code == 409
    resp = create(experimentModelName="other")
    assert resp.status_code == 404 and resp.json()["msg"].startswith("experimentModelName:")
    details = reader.registry_details("local", "my-model")
    assert [(v["version"], v["comment"]) for v in details["versions"]] == [
        ("2.0.0", "c"),
        ("2.0.1", None),
    ]
    assert details["versions"][0]["registryModelItemId"] == first["registryModelItemId"]


def test_small_endpoints_answer_what_the_sdk_reads(comet_server, cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    _ok(cl.add_run(key))
    assert requests.get(cl.url + "health/ping", timeout=10).status_code == 200  # no key needed
    assert (
        _ok(cl.post("asset/3d-limits", {"apiKey": cl.key, "experimentKey": key}))["maxPoints"] > 0
    )
    _ok(
        cl.post("tags/add-tags-to-experiment", {"experimentKey": key, "addedTags": ["x", "y", "x"]})
    )
    assert reader.tags(key) == ["x", "y"]
    link = _ok(cl.get("symlink/new", experimentKey=key, projectName="elsewhere"))["link"]
    assert link.endswith(f"/local/elsewhere/{key}")
    assert [e["experimentKey"] for e in reader.experiments("local", "elsewhere")] == [key]
    assert _ok(cl.get("rpc/get-pending-rpcs", experimentKey=key)) == {"remoteProcedureCalls": []}
    for path in ("notification/experiment", "rpc/register-rpc", "rpc/save-rpc-result"):
        assert cl.post(path, {"experimentKey": key}).status_code == 200
        assert Clientlib(comet_server, "").post(path, {}).status_code == 401


def test_batches_take_what_the_official_sdk_sends(cl, reader: Reader) -> None:
    key = uuid.uuid4().hex
    _ok(cl.add_run(key))
    metric = {"metricName": "loss", "metricValue": 1.5, "step": 1, "context": None, "timestamp": 5}
    _ok(
        cl.post(
            "batch/logger/experiment/metric",
            {
                "experimentKey": key,
                "values": [{**metric, "epoch": 0.5}, {**metric, "step": 2, "epoch": 1.0}],
            },
        )
    )
    assert [p["epoch"] for p in reader.metrics(key, "loss")] == [0, 1]
    param = {"parameterName": "opt", "parameterValue": None, "step": None, "source": "manual"}
    _ok(cl.post("batch/logger/experiment/parameter", {"experimentKey": key, "values": [param]}))
    assert reader.parameters(key)["opt"] == "null"


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "logger/add/run"),
        ("POST", "logger/get/run"),
        ("POST", "status-report/update"),
        ("POST", "status-report/offline-metadata"),
        ("POST", "tags/add-tags-to-experiment"),
        ("POST", "asset/3d-limits"),
        ("GET", "symlink/new"),
        ("GET", "rpc/get-pending-rpcs"),
        ("POST", "asset/upload"),
        ("POST", "git-patch/upload"),
    ],
)
def test_bad_requests_get_a_json_error_naming_the_field_never_500(
    cl, method: str, path: str
) -> None:
    for body in ([], "x", {"experimentKey": 5, "previousExperiment": [], "is_alive": "yes"}):
        if method == "GET":
            resp = cl.get(path, experimentKey="")
        else:
            resp = cl.post(path, body, experimentId="")
        assert 400 <= resp.status_code < 500, (path, body, resp.status_code, resp.text)
        assert resp.headers["content-type"] == "application/json"
        assert ":" in resp.json()["msg"]
