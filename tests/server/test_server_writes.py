"""Every write endpoint of WIRE §2 driven over real HTTP and read back through §4."""

from __future__ import annotations

import base64
import io
import json
import zipfile

from comet_callbacks.server.reader import Reader, ReadError

EXP = "write/experiment/"


def test_workspace_and_projects(api, reader: Reader) -> None:
    out = api.ok(api.post("write/workspace/new", {"name": "team", "plan": "free"}))
    assert out["workspace_name"] == "team" and out["code"] == 200 and len(out["workspace_id"]) == 36
    assert api.post("write/workspace/new", {"name": "team"}).status_code == 409
    assert set(reader.workspaces()) == {"local", "team"}
    pid = api.ok(
        api.post(
            "write/project/create",
            {
                "workspaceName": "team",
                "projectName": "p1",
                "projectDescription": None,
                "isPublic": False,
            },
        )
    )["projectId"]
    assert (
        api.post(
            "write/project/create",
            {
                "workspaceName": "team",
                "projectName": "p1",
                "projectDescription": "x",
                "isPublic": False,
            },
        ).status_code
        == 409
    )
    api.ok(
        api.post(
            "write/project/update",
            {
                "projectId": pid,
                "newProjectName": "p2",
                "newProjectDescription": "desc",
                "isPublic": True,
            },
        )
    )
    proj = reader.project(project_id=pid)
    assert (
        proj["projectName"] == "p2"
        and proj["projectDescription"] == "desc"
        and proj["isPublic"] is True
    )
    assert set(proj) == {
        "projectId",
        "projectName",
        "workspaceName",
        "projectDescription",
        "isPublic",
        "ownerUserName",
        "numberOfExperiments",
        "lastUpdated",
    }
    # ids in the query (document form) also work
    api.ok(
        api.post(
            "write/project/update", {"isPublic": False}, workspaceName="team", projectName="p2"
        )
    )
    assert reader.project("team", "p2")["isPublic"] is False
    assert api.ok(api.post("write/project/notes", {"projectId": pid, "notes": "n"})) == {
        "msg": "Saved"
    }
    code = api.ok(api.get("write/project/add-share-link", projectId=pid))["shareCode"]
    assert api.ok(api.get("write/project/delete-project-share-link", projectId=pid, shareCode=code))
    assert (
        api.get(
            "write/project/delete-project-share-link", projectId=pid, shareCode=code
        ).status_code
        == 404
    )
    key = api.create("p2", workspace="team")
    assert reader.project(project_id=pid)["numberOfExperiments"] == 1
    api.ok(api.post("write/project/delete", {"projectId": pid, "deleteAllExperiments": True}))
    assert [p["projectName"] for p in reader.projects("team")] == []
    assert api.get("experiment/metadata", experimentKey=key).status_code == 404
    # delete by name, keeping experiments
    key2 = api.create("p3", workspace="team")
    api.ok(
        api.post(
            "write/project/delete",
            {"workspaceName": "team", "projectName": "p3", "deleteAllExperiments": False},
        )
    )
    assert reader.metadata(key2)["experimentKey"] == key2


def test_experiment_lifecycle(api, reader: Reader) -> None:
    key = api.create("proj", name="first")
    meta = reader.metadata(key)
    assert (
        meta["running"] is True and meta["archived"] is False and meta["experimentName"] == "first"
    )
    assert meta["endTimeMillis"] is None and meta["optimizationId"] is None
    assert reader.others(key) == {"Name": "first"}  # the SDK reads the name from here
    beat = api.ok(api.get(EXP + "set-status", experimentKey=key))
    assert beat == {
        "isAliveBeatDurationMillis": 10000,
        "gpuMonitorIntervalMillis": 60000,
        "cpuMonitorIntervalMillis": 68000,
    }
    api.ok(
        api.post(
            EXP + "set-start-end-time",
            {"experimentKey": key, "startTimeMillis": 1000, "endTimeMillis": None},
        )
    )
    meta = reader.metadata(key)
    assert meta["startTimeMillis"] == 1000 and meta["endTimeMillis"] is None
    api.ok(api.post(EXP + "file-path", {"experimentKey": key, "filePath": "/src/train.py"}))
    assert reader.metadata(key)["fileName"] == "train.py"
    assert api.ok(api.get(EXP + "archive", experimentKey=key)) == {"msg": "Archived"}
    assert reader.experiments("local", "proj") == []
    assert [e["experimentKey"] for e in reader.experiments("local", "proj", archived=True)] == [key]
    assert api.ok(api.get(EXP + "restore", experimentKey=key)) == {"msg": "Restore"}
    assert reader.metadata(key)["archived"] is False
    assert api.ok(api.get(EXP + "stop", experimentKey=key)) == {"msg": "Stop Requested"}
    meta = reader.metadata(key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
    assert meta["durationMillis"] == meta["endTimeMillis"] - 1000
    assert api.ok(api.get(EXP + "delete", experimentKey=key)) == {"msg": "Deleted"}
    assert api.get("experiment/metadata", experimentKey=key).status_code == 404


def test_beat_lapse_marks_not_running(comet_server, api) -> None:
    comet_server.limits.beat_interval_ms = 50
    key = api.create()
    import time

    time.sleep(0.15)
    meta = api.ok(api.get("experiment/metadata", experimentKey=key))
    assert meta["running"] is False and meta["hasCrashed"] is True
    api.ok(api.get(EXP + "set-status", experimentKey=key))
    assert api.ok(api.get("experiment/metadata", experimentKey=key))["running"] is True


def test_move_and_symlink(api, reader: Reader) -> None:
    key = api.create("a")
    api.ok(
        api.post(
            EXP + "move",
            {
                "targetWorkspaceName": "local",
                "targetProjectName": "b",
                "experimentKeys": [key],
                "symlink": True,
            },
        )
    )
    assert [e["experimentKey"] for e in reader.experiments("local", "b")] == [key]
    assert reader.metadata(key)["projectName"] == "a"
    api.ok(
        api.post(
            EXP + "move",
            {
                "targetWorkspaceName": "local",
                "targetProjectName": "c",
                "experimentKeys": [key],
                "symlink": False,
            },
        )
    )
    assert reader.metadata(key)["projectName"] == "c"
    assert reader.experiments("local", "a") == []
    link = api.ok(api.get("write/project/symlink", exerimentKey=key, projectName="d"))["link"]
    assert link.endswith(f"/local/d/{key}")
    assert [e["experimentKey"] for e in reader.experiments("local", "d")] == [key]


def test_values_params_others_tags_html(api, reader: Reader) -> None:
    key = api.create()
    for step, value in enumerate([0.1, 0.2]):
        api.ok(
            api.post(
                EXP + "parameter",
                {
                    "experimentKey": key,
                    "parameterName": "lr",
                    "parameterValue": value,
                    "step": step,
                },
            )
        )
    api.ok(
        api.post(
            EXP + "parameter",
            {
                "experimentKey": key,
                "parameterName": "layers",
                "parameterValue": [1, 2],
                "timestamp": 5,
            },
        )
    )
    api.ok(
        api.post(
            EXP + "parameter",
            {"experimentKey": key, "parameterName": "flag", "parameterValue": True},
        )
    )
    assert reader.parameters(key) == {"lr": "0.2", "layers": "[1,2]", "flag": "true"}
    lr = next(v for v in reader.parameters_raw(key) if v["name"] == "lr")
    assert lr["valueMin"] == lr["valueMax"] == "0.2" and lr["stepCurrent"] == 1
    api.ok(api.post(EXP + "log-other", {"experimentKey": key, "key": "Name", "value": "renamed"}))
    api.ok(api.post(EXP + "log-other", {"experimentKey": key, "key": "n", "value": 3.0}))
    assert reader.others(key) == {"Name": "renamed", "n": "3"}
    assert "stepMax" not in reader.others_raw(key)[0]
    assert reader.metadata(key)["experimentName"] == "renamed"
    api.ok(api.post(EXP + "tags", {"experimentKey": key, "addedTags": ["a", "b"]}))
    api.ok(api.post(EXP + "tags", {"experimentKey": key, "addedTags": ["b", "c"]}))
    assert reader.tags(key) == ["a", "b", "c"]
    api.ok(api.post(EXP + "html", {"experimentKey": key, "html": "<p>1</p>"}))
    api.ok(api.post(EXP + "html", {"experimentKey": key, "html": "<p>2</p>", "override": False}))
    assert reader.html(key) == "<p>1</p><p>2</p>"
    api.ok(api.post(EXP + "html", {"experimentKey": key, "html": "<b/>", "override": True}))
    assert reader.html(key) == "<b/>"
    api.ok(api.post(EXP + "code", {"experimentKey": key, "code": "print(1)"}))
    api.ok(api.post(EXP + "graph", {"experimentKey": key, "graph": "g"}))
    assert reader.code(key) == "print(1)" and reader.graph(key) == "g"
    assert api.ok(
        api.post(
            EXP + "cloud-details", {"experimentKey": key, "provider": "aws", "metadata": {"r": 1}}
        )
    ) == {"msg": "OK"}
    api.ok(
        api.post(
            EXP + "upload-text-sample",
            {
                "experimentKey": key,
                "content": "hello",
                "step": 1,
                "metadata": base64.b64encode(b'{"a":1}').decode(),
            },
        )
    )


def test_output_ordering_and_dedup(api, reader: Reader) -> None:
    key = api.create()
    lines = [
        {"output": "b\n", "stderr": True, "localTimestamp": 2, "offset": 1},
        {"output": "a\n", "stderr": False, "localTimestamp": 1, "offset": 0},
    ]
    api.ok(api.post(EXP + "output", {"experimentKey": key, "outputLines": lines}))
    api.ok(
        api.post(
            EXP + "output",
            {
                "experimentKey": key,
                "runContext": "x",
                "outputLines": lines
                + [{"output": "c", "stderr": False, "localTimestamp": 3, "offset": 2}],
            },
        )
    )
    assert reader.output(key) == "a\nb\nc"


def test_git_and_system(api, reader: Reader) -> None:
    key = api.create()
    assert reader.git_patch(key) is None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("git_diff.patch", "diff --git a b\n")
    api.ok(api.upload(EXP + "git/patch", buf.getvalue(), "p.zip", experimentKey=key))
    assert reader.git_patch(key) == buf.getvalue()
    api.ok(api.upload(EXP + "git/patch", b"plain patch\n", "p.patch", experimentKey=key))
    with zipfile.ZipFile(io.BytesIO(reader.git_patch(key) or b"")) as zf:
        assert zf.read("git_diff.patch") == b"plain patch\n"
    meta = {
        "experimentKey": key,
        "user": "me",
        "root": "abc",
        "branch": None,
        "parent": "def",
        "origin": "git@x",
    }
    api.ok(api.post(EXP + "git/metadata", meta))
    assert reader.git_metadata(key) == {
        "user": "me",
        "root": "abc",
        "branch": None,
        "parent": "def",
        "origin": "git@x",
    }
    api.ok(
        api.post(
            EXP + "system-details",
            {
                "experimentKey": key,
                "hostname": "h",
                "pid": 7,
                "command": ["python", "x.py"],
                "env": {"A": "1"},
                "logAdditionalSystemInfoList": [{"key": "a", "value": 1}],
            },
        )
    )
    api.ok(
        api.post(
            EXP + "system-details",
            {
                "experimentKey": key,
                "installedPackages": ["x==1"],
                "gpuStaticInfoList": [
                    {
                        "gpu_index": 0,
                        "name": "G",
                        "uuid": "u",
                        "total_memory": 80,
                        "power_limit": 300,
                    }
                ],
                "logAdditionalSystemInfoList": [{"key": "a", "value": 2}, {"key": "b", "value": 3}],
            },
        )
    )
    api.ok(api.post(EXP + "ram-metrics", {"experimentKey": key, "totalRam": 1000, "usedRam": 10}))
    api.ok(
        api.post(
            EXP + "cpu-metrics",
            {"experimentKey": key, "cpuPercentUtilization": [10, 30], "step": 1},
        )
    )
    api.ok(api.post(EXP + "load-metrics", {"experimentKey": key, "loadAverage": 1.5}))
    api.ok(
        api.post(
            EXP + "gpu-metrics",
            {
                "experimentKey": key,
                "gpus": [
                    {
                        "gpuId": 0,
                        "freeMemory": 1,
                        "usedMemory": 2,
                        "gpuUtilization": 50,
                        "totalMemory": 90,
                    }
                ],
            },
        )
    )
    sd = reader.system_details(key)
    assert sd["hostname"] == "h" and sd["pid"] == 7 and sd["installedPackages"] == ["x==1"]
    assert sd["env"] == {"A": "1"} and sd["osPackages"] == [] and sd["os"] is None
    assert sd["logAdditionalSystemInfoList"] == [{"key": "a", "value": 2}, {"key": "b", "value": 3}]
    assert sd["gpuStaticInfoList"] == [
        {"gpuIndex": 0, "name": "G", "uuid": "u", "totalMemory": 80, "powerLimit": 300}
    ]
    assert sd["totalRam"] == 1000 and sd["maxTotalMemory"] == 90
    assert {
        "sys.cpu.percent.avg",
        "sys.ram.total",
        "sys.ram.used",
        "sys.load.avg",
        "sys.gpu.0.gpu_utilization",
        "sys.gpu.0.total_memory",
    } <= set(sd["systemMetricNames"])
    assert [p["metricValue"] for p in reader.metrics(key, "sys.cpu.percent.avg")] == ["20"]
    assert reader.metrics(key, "sys.cpu.percent.avg")[0]["step"] == 1


def test_assets_and_models(api, reader: Reader) -> None:
    key = api.create()
    meta = json.dumps({"k": 1}, separators=(",", ":"))
    aid = api.ok(
        api.upload(
            EXP + "upload-asset",
            b"one",
            "../../etc/passwd",
            {"metadata": meta},
            experimentKey=key,
            type="image",
            step=3,
            extension=".png",
        )
    )["assetId"]
    (asset,) = reader.assets(key)
    assert (
        asset["assetId"] == aid
        and asset["fileName"] == "etc/passwd"  # stored as a safe display name
        and asset["fileSize"] == 3
    )
    assert asset["image"] is True and asset["canView"] is True and asset["step"] == 3
    assert asset["metadata"] == meta and asset["remote"] is False and asset["dir"] == "image"
    assert reader.get_asset(key, aid) == b"one"
    assert asset["link"].startswith(api.server.url)
    # overwrite rule: same fileName and type replaces
    api.ok(
        api.upload(
            EXP + "upload-asset",
            b"two",
            "x",
            experimentKey=key,
            fileName="../../etc/passwd",
            type="image",
            overwrite="True",
        )
    )
    (asset2,) = reader.assets(key)
    assert reader.get_asset(key, asset2["assetId"]) == b"two"
    api.ok(
        api.upload(EXP + "upload-asset", b"three", "y.txt", experimentKey=key, overwrite="false")
    )
    assert len(reader.assets(key)) == 2 and len(reader.assets(key, "image")) == 1
    # tags
    api.ok(
        api.post(
            EXP + "asset/tag",
            {"experimentKey": key, "assetId": asset2["assetId"], "tags": ["t1", "t2"]},
        )
    )
    api.ok(
        api.get(EXP + "asset/tag/delete", experimentKey=key, assetId=asset2["assetId"], tag="t1")
    )
    assert reader.assets(key, "image")[0]["tags"] == ["t2"]
    # delete by GET and POST
    api.ok(api.get(EXP + "asset/delete", experimentKey=key, assetId=asset2["assetId"]))
    other = reader.assets(key)[0]["assetId"]
    api.ok(api.post(EXP + "asset/delete", None, experimentKey=key, assetId=other))
    assert reader.assets(key) == []
    assert api.get(EXP + "asset/delete", experimentKey=key, assetId=other).status_code == 404
    # remote assets
    api.ok(
        api.post(
            EXP + "assets/remote/batch",
            {"remoteAssets": [{"link": "s3://b/k", "fileName": "k", "metadata": '{"a":1}'}]},
            experimentKey=key,
        )
    )
    (remote,) = reader.assets(key)
    assert remote["remote"] is True and remote["link"] == "s3://b/k"
    # model grouping
    assert (
        api.upload(
            EXP + "upload-asset", b"w", "w.bin", experimentKey=key, type="model-element"
        ).status_code
        == 400
    )
    for name in ("w.bin", "cfg/c.json"):
        api.ok(
            api.upload(
                EXP + "upload-asset",
                b"w",
                name,
                experimentKey=key,
                type="model-element",
                groupingName="My Model",
            )
        )
    api.ok(
        api.upload(
            EXP + "upload-asset",
            b"w",
            "o.bin",
            experimentKey=key,
            type="model-element",
            groupingName="other",
        )
    )
    models = reader.models(key)
    assert [m["modelName"] for m in models] == ["My Model", "other"]
    assert all(m["experimentKey"] == key and len(m["experimentModelId"]) == 32 for m in models)


def _model(api, reader: Reader) -> tuple[str, str]:
    key = api.create()
    api.ok(
        api.upload(
            EXP + "upload-asset",
            b"w",
            "w.bin",
            experimentKey=key,
            type="model-element",
            groupingName="My Model_v2!",
        )
    )
    return key, reader.models(key)[0]["experimentModelId"]


def test_registry(api, reader: Reader) -> None:
    key, mid = _model(api, reader)
    body = {
        "experimentModelId": mid,
        "registryModelName": "My Model_v2!",
        "version": "1.0.0",
        "description": "d",
        "isPublic": False,
        "comment": "c",
        "stages": ["dev"],
    }
    assert api.post("write/registry-model", {**body, "version": "1.0"}).status_code == 400
    out = api.ok(api.post("write/registry-model", body))
    assert api.post("write/registry-model", body).status_code == 409
    (listed,) = reader.registry_models("local")
    assert listed["modelName"] == "my-model-v2" and listed["numberOfVersions"] == 1
    assert (
        listed["latestVersion"] == "1.0.0" and listed["registryModelId"] == out["registryModelId"]
    )
    item = {"experimentModelId": mid, "registryModelName": "my-model-v2", "version": "1.1.0-rc.1"}
    out2 = api.ok(api.post("write/registry-model/item", item))
    assert api.post("write/registry-model/item", item).status_code == 409
    assert (
        api.post(
            "write/registry-model/item", {**item, "registryModelName": "nope", "version": "2.0.0"}
        ).status_code
        == 404
    )
    details = reader.registry_details("local", "my-model-v2")
    assert [v["version"] for v in details["versions"]] == ["1.0.0", "1.1.0-rc.1"]
    assert details["versions"][0]["stages"] == ["dev"]
    assert details["versions"][0]["experimentModel"] == {
        "experimentModelId": mid,
        "experimentModelName": "My Model_v2!",
        "experimentKey": key,
    }
    assert reader.registry_models("local")[0]["latestVersion"] == "1.1.0-rc.1"
    item_id = out2["registryModelItemId"]
    api.ok(
        api.post(
            "write/registry-model/item/update",
            {"registryModelItemId": item_id, "comment": "cc", "stages": ["a"]},
        )
    )
    api.ok(api.get("write/registry-model/item/stage", modelItemId=item_id, stage="prod"))
    api.ok(api.get("write/registry-model/item/stage/delete", modelItemId=item_id, stage="a"))
    v = reader.registry_details("local", "my-model-v2")["versions"][1]
    assert v["stages"] == ["prod"] and v["comment"] == "cc"
    api.ok(
        api.post(
            "write/registry-model/notes",
            {"workspaceName": "local", "registryModelName": "my-model-v2", "notes": "N"},
        )
    )
    assert reader.registry_notes("local", "my-model-v2") == "N"
    api.ok(
        api.post(
            "write/registry-model/update",
            {
                "registryModelId": out["registryModelId"],
                "registryModelName": "Renamed",
                "isPublic": True,
            },
        )
    )
    assert reader.registry_details("local", "renamed")["isPublic"] is True
    api.ok(api.get("write/registry-model/item/delete", modelItemId=item_id))
    assert len(reader.registry_details("local", "renamed")["versions"]) == 1
    api.ok(api.get("write/registry-model/delete", workspaceName="local", modelName="renamed"))
    assert reader.registry_models("local") == []
    try:
        reader.registry_details("local", "renamed")
        raise AssertionError("expected 404")
    except ReadError as exc:
        assert exc.status == 404


def test_artifacts_viz_templates(api, reader: Reader) -> None:
    key = api.create()
    a1 = api.ok(
        api.post(
            "write/artifacts/upsert",
            {"artifactName": "ds", "experimentKey": key, "artifactType": "dataset"},
        )
    )
    assert a1["currentVersion"] == "1.0.0" and a1["previousVersion"] is None
    a2 = api.ok(
        api.post(
            "write/artifacts/upsert",
            {"artifactName": "ds", "experimentKey": key, "artifactType": "dataset", "alias": ["x"]},
        )
    )
    assert a2["currentVersion"] == "2.0.0" and a2["previousVersion"] == "1.0.0"
    assert a2["artifactId"] == a1["artifactId"]
    assert (
        api.post(
            "write/artifacts/upsert",
            {
                "artifactName": "ds",
                "experimentKey": key,
                "artifactType": "dataset",
                "version": "2.0.0",
            },
        ).status_code
        == 409
    )
    api.ok(
        api.post(
            "write/artifacts/state",
            {"experimentKey": key, "artifactVersionId": a2["artifactVersionId"], "state": "CLOSED"},
        )
    )
    assert (
        api.post(
            "write/artifacts/state",
            {"experimentKey": key, "artifactVersionId": a2["artifactVersionId"], "state": "OPEN"},
        ).status_code
        == 400
    )
    pid = reader.metadata(key)["projectId"]
    assert api.ok(
        api.post(
            "write/viz-instance/store/save", {"instanceId": "i", "projectId": pid, "store": "{}"}
        )
    ) == {"msg": "Stored"}
    assert api.ok(api.post("write/template/upload", {"anything": 1})) == {"msg": "OK"}
    assert api.ok(api.post(EXP + "rpc/send", None)) == {"msg": "OK"}


def test_clientlib_alias(api) -> None:
    key = api.create()
    import requests

    resp = requests.post(
        api.server.url + "/clientlib/rest/v2/write/experiment/output",
        json={
            "experimentKey": key,
            "outputLines": [{"output": "x", "stderr": False, "localTimestamp": 1, "offset": 0}],
        },
        headers=api.headers(),
        timeout=5,
    )
    assert resp.status_code == 200
    assert api.ok(api.get("experiment/output", experimentKey=key))["output"] == "x"


def test_reader_account(reader: Reader) -> None:
    assert reader.account_details() == {"userName": "local", "defaultWorkspaceName": "local"}
    assert reader.version() == "3.5.42"
