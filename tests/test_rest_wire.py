"""Wire format of every endpoint method (WIRE.md §1–§3), pinned against a recording HTTP server.

Each case calls one ``Endpoints`` method on a real :class:`RestClient` and checks exactly what
arrived: method, path, query, headers and body (JSON or multipart). The same call is then built
with ``calls`` (the sender / offline path), round-tripped through its JSON form and sent again:
it must produce the same request, so online, offline and replay cannot drift apart.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from werkzeug.wrappers import Request, Response

import comet_callbacks
from comet_callbacks.rest import (
    Call,
    CallBuilder,
    Endpoints,
    FilePart,
    RestClient,
    calls,
    metric_item,
    parameter_item,
)
from comet_callbacks.rest.transport import clientlib_base

REST = "/api/rest/v2/"
EK = "0123456789abcdef0123456789abcdef"
EK2 = "fedcba9876543210fedcba9876543210"
PID = "11112222333344445555666677778888"
EMID = "aaaabbbbccccddddeeeeffff00001111"
ITEM = "99998888777766665555444433332222"
RMID = "12121212343434345656565678787878"
T = 1_700_000_000_123

# A key carrying a payload, as issued by Comet: the whole string goes into `Authorization`.
PAYLOAD = base64.b64encode(json.dumps({"baseUrl": "https://example.invalid"}).encode()).decode()
KEY = f"wireRawKey0123456789*{PAYLOAD}"
PLAIN_KEY = "plainWireKey0123456789"

ZIP = io.BytesIO()
with zipfile.ZipFile(ZIP, "w") as _zf:
    _zf.writestr("git_diff.patch", "diff --git a/x b/x\n+1\n")
ZIP_BYTES = ZIP.getvalue()


@dataclass
class Part:
    filename: str
    data: bytes
    content_type: str


@dataclass
class Case:
    id: str
    method: str  # Endpoints method name
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    http: str = "GET"
    path: str = ""  # under /api/rest/v2/ unless it starts with "/"
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None  # expected JSON body (None: no body)
    file: Part | None = None  # expected multipart part "file"
    metadata: str | None = None  # expected multipart part "metadata" (exact text)
    status: int = 200  # what the server answers


def C(id: str, method: str, *args: Any, **kw: Any) -> Case:
    spec = {k: kw.pop(k) for k in list(kw) if k.startswith("x_")}
    return Case(id, method, args, kw, **{k[2:]: v for k, v in spec.items()})


GPU = {
    "gpuId": 0,
    "freeMemory": 1 << 30,
    "usedMemory": 2 << 30,
    "gpuUtilization": 42,
    "totalMemory": 3 << 30,
}
GPU_STATIC = {
    "gpuIndex": 0,
    "name": "H100",
    "uuid": "GPU-1",
    "totalMemory": 80 << 30,
    "powerLimit": 700000,
}
LINES = [
    {"output": "hello\n", "stderr": False, "localTimestamp": T, "offset": 0},
    {"output": "oops\n", "stderr": True, "localTimestamp": T + 1, "offset": 1},
]
HOOKS = [
    {
        "workspaceName": "ws",
        "modelName": "m",
        "webhookUrls": [{"url": "http://h/x", "header": {"A": "b"}}],
    }
]

CASES: list[Case] = [
    # 1
    C("1", "create_workspace", "ws-new", plan="free", x_http="POST", x_path="write/workspace/new", x_body={"name": "ws-new", "plan": "free"}),
    C("1-noplan", "create_workspace", "ws-new", x_http="POST", x_path="write/workspace/new", x_body={"name": "ws-new"}),
    # 2
    C("2", "create_experiment", "ws", "proj", "run-1", x_http="POST", x_path="write/experiment/create",
      x_body={"workspaceName": "ws", "projectName": "proj", "experimentName": "run-1"}),
    C("2-noname", "create_experiment", "ws", "proj", x_http="POST", x_path="write/experiment/create",
      x_body={"workspaceName": "ws", "projectName": "proj"}),
    # 3, 4
    C("3", "stop_experiment", EK, x_path="write/experiment/stop", x_query={"experimentKey": EK}),
    C("4", "archive_experiment", EK, x_path="write/experiment/archive", x_query={"experimentKey": EK}),
    # 5
    C("5", "move_experiments", "ws2", "p2", [EK, EK2], symlink=True, x_http="POST", x_path="write/experiment/move",
      x_body={"targetWorkspaceName": "ws2", "targetProjectName": "p2", "experimentKeys": [EK, EK2], "symlink": True}),
    C("5-move", "move_experiments", "ws2", "p2", (EK,), x_http="POST", x_path="write/experiment/move",
      x_body={"targetWorkspaceName": "ws2", "targetProjectName": "p2", "experimentKeys": [EK], "symlink": False}),
    # 6: experimentKey, not the document's `exerimentKey` typo (§3 #1)
    C("6", "symlink_experiment", EK, "p2", x_path="write/project/symlink", x_query={"experimentKey": EK, "projectName": "p2"}),
    # 7, 8
    C("7", "delete_experiment", EK, x_path="write/experiment/delete", x_query={"experimentKey": EK}),
    C("8", "restore_experiment", EK, x_path="write/experiment/restore", x_query={"experimentKey": EK}),
    # 9: projectDescription may be null (§3 #19)
    C("9", "create_project", "ws", "p", "desc", is_public=True, x_http="POST", x_path="write/project/create",
      x_body={"workspaceName": "ws", "projectName": "p", "projectDescription": "desc", "isPublic": True}),
    C("9-nulldesc", "create_project", "ws", "p", x_http="POST", x_path="write/project/create",
      x_body={"workspaceName": "ws", "projectName": "p", "projectDescription": None, "isPublic": False}),
    # 10
    C("10-name", "delete_project", "ws", "p", x_http="POST", x_path="write/project/delete",
      x_body={"workspaceName": "ws", "projectName": "p", "deleteAllExperiments": False}),
    C("10-id", "delete_project", project_id=PID, delete_all_experiments=True, x_http="POST", x_path="write/project/delete",
      x_body={"projectId": PID, "deleteAllExperiments": True}),
    # 11: ids in the body, not the query (§3 #2)
    C("11-id", "update_project", PID, new_project_name="p3", new_project_description="d3", is_public=False,
      x_http="POST", x_path="write/project/update",
      x_body={"projectId": PID, "newProjectName": "p3", "newProjectDescription": "d3", "isPublic": False}),
    C("11-name", "update_project", workspace_name="ws", project_name="p", new_project_name="p3",
      x_http="POST", x_path="write/project/update", x_body={"workspaceName": "ws", "projectName": "p", "newProjectName": "p3"}),
    # 12-14
    C("12", "set_project_notes", PID, "some notes", x_http="POST", x_path="write/project/notes",
      x_body={"projectId": PID, "notes": "some notes"}),
    C("13", "add_project_share_link", PID, x_path="write/project/add-share-link", x_query={"projectId": PID}),
    C("14", "delete_project_share_link", PID, "SC1", x_path="write/project/delete-project-share-link",
      x_query={"projectId": PID, "shareCode": "SC1"}),
    # 15-23: registry
    C("15", "create_registry_model", EMID, "my-model", "1.0.0", description="d", is_public=True, comment="c", stages=("staging",),
      x_http="POST", x_path="write/registry-model",
      x_body={"experimentModelId": EMID, "registryModelName": "my-model", "version": "1.0.0", "description": "d",
              "isPublic": True, "comment": "c", "stages": ["staging"]}),
    C("15-min", "create_registry_model", EMID, "my-model", "1.0.0", x_http="POST", x_path="write/registry-model",
      x_body={"experimentModelId": EMID, "registryModelName": "my-model", "version": "1.0.0"}),
    C("16", "create_registry_model_version", EMID, "my-model", "1.1.0", comment="c", stages=["production"],
      x_http="POST", x_path="write/registry-model/item",
      x_body={"experimentModelId": EMID, "registryModelName": "my-model", "version": "1.1.0", "comment": "c", "stages": ["production"]}),
    C("17", "update_registry_model_version", ITEM, comment="c2", stages=["a", "b"], x_http="POST",
      x_path="write/registry-model/item/update", x_body={"registryModelItemId": ITEM, "comment": "c2", "stages": ["a", "b"]}),
    C("18", "delete_registry_model_version", ITEM, x_path="write/registry-model/item/delete", x_query={"modelItemId": ITEM}),
    C("19", "update_registry_model", RMID, registry_model_name="n2", description="d2", is_public=False, x_http="POST",
      x_path="write/registry-model/update",
      x_body={"registryModelId": RMID, "registryModelName": "n2", "description": "d2", "isPublic": False}),
    C("20", "set_registry_model_notes", "ws", "my-model", "notes!", x_http="POST", x_path="write/registry-model/notes",
      x_body={"workspaceName": "ws", "registryModelName": "my-model", "notes": "notes!"}),
    C("21", "delete_registry_model", "ws", "my-model", x_path="write/registry-model/delete",
      x_query={"workspaceName": "ws", "modelName": "my-model"}),
    C("22", "add_registry_model_version_stage", ITEM, "production", x_path="write/registry-model/item/stage",
      x_query={"modelItemId": ITEM, "stage": "production"}),
    C("23", "delete_registry_model_version_stage", ITEM, "production", x_path="write/registry-model/item/stage/delete",
      x_query={"modelItemId": ITEM, "stage": "production"}),
    # 24-25
    C("24", "set_status", EK, x_path="write/experiment/set-status", x_query={"experimentKey": EK}),
    C("25-end", "set_start_end_time", EK, end_time_millis=T, x_http="POST", x_path="write/experiment/set-start-end-time",
      x_body={"experimentKey": EK, "endTimeMillis": T}),  # unset start time omitted (§3 #14)
    C("25-both", "set_start_end_time", EK, T - 5000, T, x_http="POST", x_path="write/experiment/set-start-end-time",
      x_body={"experimentKey": EK, "startTimeMillis": T - 5000, "endTimeMillis": T}),
    # 26
    C("26", "log_other", EK, "Name", "run-é", timestamp=T, x_http="POST", x_path="write/experiment/log-other",
      x_body={"experimentKey": EK, "key": "Name", "value": "run-é", "timestamp": T}),
    C("26-num", "log_other", EK, "k", 3.5, x_http="POST", x_path="write/experiment/log-other",
      x_body={"experimentKey": EK, "key": "k", "value": 3.5}),
    C("26-bool", "log_other", EK, "k", False, x_http="POST", x_path="write/experiment/log-other",
      x_body={"experimentKey": EK, "key": "k", "value": False}),
    # 27
    C("27", "log_parameter", EK, "opt|lr", 0.1, step=3, timestamp=T, x_http="POST", x_path="write/experiment/parameter",
      x_body={"experimentKey": EK, "parameterName": "opt|lr", "parameterValue": 0.1, "step": 3, "timestamp": T}),
    C("27-null", "log_parameter", EK, "p", None, x_http="POST", x_path="write/experiment/parameter",
      x_body={"experimentKey": EK, "parameterName": "p", "parameterValue": None}),
    C("27-list", "log_parameter", EK, "layers", [64, 32], x_http="POST", x_path="write/experiment/parameter",
      x_body={"experimentKey": EK, "parameterName": "layers", "parameterValue": [64, 32]}),
    # 28: non-finite values as strings (§1, §3 #15)
    C("28", "log_metric", EK, "loss", 0.25, step=7, epoch=1, context="train", timestamp=T, x_http="POST",
      x_path="write/experiment/metric",
      x_body={"experimentKey": EK, "metricName": "loss", "metricValue": 0.25, "context": "train", "step": 7, "epoch": 1, "timestamp": T}),
    C("28-int", "log_metric", EK, "count", 3, x_http="POST", x_path="write/experiment/metric",
      x_body={"experimentKey": EK, "metricName": "count", "metricValue": 3}),
    C("28-nan", "log_metric", EK, "loss", float("nan"), step=1, x_http="POST", x_path="write/experiment/metric",
      x_body={"experimentKey": EK, "metricName": "loss", "metricValue": "NaN", "step": 1}),
    C("28-inf", "log_metric", EK, "loss", float("inf"), x_http="POST", x_path="write/experiment/metric",
      x_body={"experimentKey": EK, "metricName": "loss", "metricValue": "Infinity"}),
    C("28-ninf", "log_metric", EK, "loss", float("-inf"), x_http="POST", x_path="write/experiment/metric",
      x_body={"experimentKey": EK, "metricName": "loss", "metricValue": "-Infinity"}),
    # clientlib batches (BATCH.md §2): gzip, all six keys with nulls, NaN/Infinity as strings
    C("batch-metric", "log_metric_batch", EK,
      [metric_item("loss", 0.25, 7, 1, "train", T), metric_item("loss", float("nan"), timestamp=T + 1),
       {"metricName": "acc", "metricValue": float("-inf"), "timestamp": T + 2},
       metric_item("ünï", float("inf"), 0, 0, None, T + 3)],
      x_http="POST", x_path="/clientlib/batch/logger/experiment/metric",
      x_body={"experimentKey": EK, "values": [
          {"metricName": "loss", "metricValue": 0.25, "step": 7, "epoch": 1, "context": "train", "timestamp": T},
          {"metricName": "loss", "metricValue": "NaN", "step": None, "epoch": None, "context": None, "timestamp": T + 1},
          {"metricName": "acc", "metricValue": "-Infinity", "step": None, "epoch": None, "context": None, "timestamp": T + 2},
          {"metricName": "ünï", "metricValue": "Infinity", "step": 0, "epoch": 0, "context": None, "timestamp": T + 3}]}),
    C("batch-parameter", "log_parameter_batch", EK,
      [parameter_item("opt|lr", 0.1, timestamp=T), parameter_item("layers", [64, 32], 2, "auto-logged", None, T + 1),
       parameter_item("argv", None, source="cli", timestamp=T + 2)],
      x_http="POST", x_path="/clientlib/batch/logger/experiment/parameter",
      x_body={"experimentKey": EK, "values": [
          {"parameterName": "opt|lr", "parameterValue": 0.1, "step": None, "source": "manual", "context": None, "timestamp": T},
          {"parameterName": "layers", "parameterValue": [64, 32], "step": 2, "source": "auto-logged", "context": None,
           "timestamp": T + 1},
          {"parameterName": "argv", "parameterValue": None, "step": None, "source": "cli", "context": None,
           "timestamp": T + 2}]}),
    # 29
    C("29", "log_html", EK, "<b>x</b>", override=True, timestamp=T, x_http="POST", x_path="write/experiment/html",
      x_body={"experimentKey": EK, "html": "<b>x</b>", "override": True, "timestamp": T}),
    C("29-append", "log_html", EK, "<i>y</i>", x_http="POST", x_path="write/experiment/html",
      x_body={"experimentKey": EK, "html": "<i>y</i>", "override": False}),
    # 30: multipart; metadata as a compact, sorted JSON part; extension without dot (§3 #4, #16, #17)
    C("30-model", "upload_asset", EK, FilePart("model.pt", data=b"\x00weights\xff\r\n--x"), file_name="my-model/model.pt",
      extension=".pt", step=5, type="model-element", overwrite=False, grouping_name="my-model",
      metadata={"b": "x", "a": 1, "nested": {"z": 1, "y": [1, 2]}},
      x_http="POST", x_path="write/experiment/upload-asset",
      x_query={"experimentKey": EK, "fileName": "my-model/model.pt", "extension": "pt", "step": "5", "type": "model-element",
               "overwrite": "false", "groupingName": "my-model"},
      x_file=Part("model.pt", b"\x00weights\xff\r\n--x", "application/octet-stream"),
      x_metadata='{"a":1,"b":"x","nested":{"y":[1,2],"z":1}}'),
    C("30-asset", "upload_asset", EK, FilePart("img.png", data=b"PNG", content_type="image/png"), extension="png", epoch=2,
      context="val", type="image", overwrite=True, x_http="POST", x_path="write/experiment/upload-asset",
      x_query={"experimentKey": EK, "extension": "png", "epoch": "2", "context": "val", "type": "image", "overwrite": "true"},
      x_file=Part("img.png", b"PNG", "image/png")),
    C("30-min", "upload_asset", EK, FilePart("a.txt", data=b""), x_http="POST", x_path="write/experiment/upload-asset",
      x_query={"experimentKey": EK}, x_file=Part("a.txt", b"", "application/octet-stream")),
    # 31: metadata as base64 JSON
    C("31", "upload_text_sample", EK, "hello", step=2, context="val", metadata={"k": "v", "a": 1}, x_http="POST",
      x_path="write/experiment/upload-text-sample",
      x_body={"experimentKey": EK, "content": "hello", "step": 2, "context": "val",
              "metadata": base64.b64encode(b'{"a":1,"k":"v"}').decode()}),
    C("31-min", "upload_text_sample", EK, "hi", x_http="POST", x_path="write/experiment/upload-text-sample",
      x_body={"experimentKey": EK, "content": "hi"}),
    # 32: part `file`, a zip
    C("32", "upload_git_patch", EK, ZIP_BYTES, x_http="POST", x_path="write/experiment/git/patch",
      x_query={"experimentKey": EK}, x_file=Part("git_diff.zip", ZIP_BYTES, "application/zip")),
    # 33: partial update, only given keys; GPU info in camelCase (§3 #9)
    C("33", "log_system_details", EK, user="me", python_version="3.11.7", python_version_verbose="3.11.7 (main)", pid=123,
      os_type="Linux", os="Linux-6", os_release="6.1", machine="x86_64", processor="x86_64", ip="127.0.0.1", hostname="h",
      command=("python", "train.py"), executable="/usr/bin/python", network_interface_ips=["127.0.0.1"],
      os_packages=["libc6==2.36"], installed_packages=["torch==2.13.0"], gpu_static_info_list=[GPU_STATIC],
      log_additional_system_info_list=[{"key": "k", "value": 1}], env={"A": "1"},
      x_http="POST", x_path="write/experiment/system-details",
      x_body={"experimentKey": EK, "user": "me", "pythonVersion": "3.11.7", "pythonVersionVerbose": "3.11.7 (main)", "pid": 123,
              "osType": "Linux", "os": "Linux-6", "osRelease": "6.1", "machine": "x86_64", "processor": "x86_64",
              "ip": "127.0.0.1", "hostname": "h", "command": ["python", "train.py"], "executable": "/usr/bin/python",
              "networkInterfaceIps": ["127.0.0.1"], "osPackages": ["libc6==2.36"], "installedPackages": ["torch==2.13.0"],
              "gpuStaticInfoList": [GPU_STATIC], "logAdditionalSystemInfoList": [{"key": "k", "value": 1}], "env": {"A": "1"}}),
    C("33-partial", "log_system_details", EK, installed_packages=["requests==2.32.0"], x_http="POST",
      x_path="write/experiment/system-details", x_body={"experimentKey": EK, "installedPackages": ["requests==2.32.0"]}),
    # 34: null for unknowns
    C("34", "log_git_metadata", EK, user="me", parent="abc123", x_http="POST", x_path="write/experiment/git/metadata",
      x_body={"experimentKey": EK, "user": "me", "root": None, "branch": None, "parent": "abc123", "origin": None}),
    # 35
    C("35", "log_output", EK, LINES, context="train", x_http="POST", x_path="write/experiment/output",
      x_body={"experimentKey": EK, "runContext": "train", "outputLines": LINES}),
    C("35-noctx", "log_output", EK, LINES[:1], x_http="POST", x_path="write/experiment/output",
      x_body={"experimentKey": EK, "outputLines": LINES[:1]}),
    # 36-40
    C("36", "set_graph", EK, "Linear(2, 1)", x_http="POST", x_path="write/experiment/graph", x_body={"experimentKey": EK, "graph": "Linear(2, 1)"}),
    C("37", "set_code", EK, "print(1)\n", x_http="POST", x_path="write/experiment/code", x_body={"experimentKey": EK, "code": "print(1)\n"}),
    C("38", "add_tags", EK, ("a", "b"), x_http="POST", x_path="write/experiment/tags", x_body={"experimentKey": EK, "addedTags": ["a", "b"]}),
    C("39", "log_cloud_details", EK, "aws", {"region": "eu"}, x_http="POST", x_path="write/experiment/cloud-details",
      x_body={"experimentKey": EK, "provider": "aws", "metadata": {"region": "eu"}}),
    C("40", "set_file_path", EK, "/src/train.py", x_http="POST", x_path="write/experiment/file-path",
      x_body={"experimentKey": EK, "filePath": "/src/train.py"}),
    # 41-44: +T
    C("41", "log_gpu_metrics", EK, [GPU], context="rank1", step=3, epoch=1, timestamp=T, x_http="POST", x_path="write/experiment/gpu-metrics",
      x_body={"experimentKey": EK, "gpus": [GPU], "context": "rank1", "step": 3, "epoch": 1, "timestamp": T}),
    C("42", "log_ram_metrics", EK, 16 << 30, 8 << 30, timestamp=T, x_http="POST", x_path="write/experiment/ram-metrics",
      x_body={"experimentKey": EK, "totalRam": 16 << 30, "usedRam": 8 << 30, "timestamp": T}),
    C("43", "log_cpu_metrics", EK, [12.5, 100.0], step=2, x_http="POST", x_path="write/experiment/cpu-metrics",
      x_body={"experimentKey": EK, "cpuPercentUtilization": [12.5, 100.0], "step": 2}),
    C("44", "log_load_metrics", EK, 1.25, epoch=4, timestamp=T, x_http="POST", x_path="write/experiment/load-metrics",
      x_body={"experimentKey": EK, "loadAverage": 1.25, "epoch": 4, "timestamp": T}),
    # 45-47
    C("45", "upsert_artifact", "data", EK, "dataset", version="1.0.0", is_public=False, x_http="POST", x_path="write/artifacts/upsert",
      x_body={"artifactName": "data", "experimentKey": EK, "artifactType": "dataset", "version": "1.0.0", "isPublic": False}),
    C("45-min", "upsert_artifact", "data", EK, "dataset", x_http="POST", x_path="write/artifacts/upsert",
      x_body={"artifactName": "data", "experimentKey": EK, "artifactType": "dataset"}),
    C("46", "set_artifact_state", EK, "AVID", "CLOSED", x_http="POST", x_path="write/artifacts/state",
      x_body={"experimentKey": EK, "artifactVersionId": "AVID", "state": "CLOSED"}),
    C("47", "save_viz_store", "INST", PID, '{"s":1}', x_http="POST", x_path="write/viz-instance/store/save",
      x_body={"instanceId": "INST", "projectId": PID, "store": '{"s":1}'}),
    # 48: experimentKey in the query (missing in the document)
    C("48", "log_remote_assets", EK, [{"link": "s3://b/k", "fileName": "k", "type": None, "metadata": '{"a":1}'}],
      x_http="POST", x_path="write/experiment/assets/remote/batch", x_query={"experimentKey": EK},
      x_body={"remoteAssets": [{"link": "s3://b/k", "fileName": "k", "metadata": '{"a":1}'}]}),
    # 49: GET, not the document's POST (§3 #3)
    C("49", "delete_asset", EK, "AID", x_path="write/experiment/asset/delete", x_query={"experimentKey": EK, "assetId": "AID"}),
    C("50", "add_asset_tags", EK, "AID", ["t1", "t2"], x_http="POST", x_path="write/experiment/asset/tag",
      x_body={"experimentKey": EK, "assetId": "AID", "tags": ["t1", "t2"]}),
    C("51", "delete_asset_tag", EK, "AID", "t1", x_path="write/experiment/asset/tag/delete",
      x_query={"experimentKey": EK, "assetId": "AID", "tag": "t1"}),
    # 52, 53: no body defined: passed through
    C("52", "upload_template", {"templateName": "t"}, x_http="POST", x_path="write/template/upload", x_body={"templateName": "t"}),
    C("52-empty", "upload_template", x_http="POST", x_path="write/template/upload", x_body={}),
    C("53", "send_rpc", {"functionName": "f"}, x_http="POST", x_path="write/experiment/rpc/send", x_body={"functionName": "f"}),
    # 54, 55: 204 answers
    C("54", "update_webhooks", HOOKS, x_http="POST", x_path="webhooks/config", x_body={"webhookConfigs": HOOKS}, x_status=204),
    C("55", "replace_webhooks", HOOKS, x_http="PUT", x_path="webhooks/config", x_body={"webhookConfigs": HOOKS}, x_status=204),
    # 56, 57
    C("56", "create_service_account", "sa", "team", "org", x_http="POST", x_path="write/service-account",
      x_body={"name": "sa", "teamName": "team", "organizationName": "org"}),
    C("57", "create_service_account", "sa", "team", "org", ["ws"], x_http="POST", x_path="write/service-account",
      x_body={"name": "sa", "teamName": "team", "organizationName": "org", "authorizedWorkspaces": ["ws"]}),
    # 58, 59
    C("58", "rotate_api_key", "sa", x_path="write/api/rotate", x_query={"userName": "sa"}),
    C("59", "add_workspace_member", "u", "ws", admin=True, x_http="POST", x_path="write/add-workspace-member",
      x_body={"userName": "u", "workspaceName": "ws", "admin": True}),
    # reads
    C("r-metadata", "get_experiment_metadata", EK, x_path="experiment/metadata", x_query={"experimentKey": EK}),
    C("r-models", "get_experiment_models", EK, x_path="experiment/model", x_query={"experimentKey": EK}),
    C("r-registry", "get_registry_models", "ws", x_path="registry-model", x_query={"workspaceName": "ws"}),
    C("r-registry-details", "get_registry_model_details", "ws", "my-model", x_path="registry-model/details",
      x_query={"workspaceName": "ws", "modelName": "my-model"}),
    C("r-account", "get_account_details", x_path="account-details"),
    C("r-version", "get_server_version", x_path="/clientlib/isAlive/ver"),
]  # fmt: skip


# --------------------------------------------------------------------------- helpers


@dataclass
class Seen:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


def _full_path(case: Case) -> str:
    return case.path if case.path.startswith("/") else REST + case.path


def _record(httpserver, case: Case, seen: list[Seen]) -> None:
    answer = {"msg": "OK", "case": case.id}

    def handler(request: Request) -> Response:
        seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string.decode("ascii"),
                {k: v for k, v in request.headers.items()},
                request.get_data(),
            )
        )
        if case.status == 204:
            return Response(status=204)
        return Response(json.dumps(answer), status=case.status, content_type="application/json")

    httpserver.expect_oneshot_request(_full_path(case), method=case.http).respond_with_handler(
        handler
    )


def parse_multipart(
    content_type: str, body: bytes
) -> dict[str, tuple[str | None, str | None, bytes]]:
    """Exact multipart parse: name -> (filename, content type, bytes)."""
    m = re.fullmatch(r"multipart/form-data; boundary=([0-9A-Za-z'()+_,\-./:=?]+)", content_type)
    assert m, content_type
    delim = b"--" + m.group(1).encode()
    assert body.startswith(delim + b"\r\n"), body[:80]
    assert body.endswith(b"\r\n" + delim + b"--\r\n"), body[-80:]
    inner = body[len(delim) + 2 : -(len(delim) + 6)]
    parts = {}
    for raw in inner.split(b"\r\n" + delim + b"\r\n"):
        head, _, data = raw.partition(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        disp = headers[b"Content-Disposition"].decode()
        assert disp.startswith("form-data; "), disp
        name = re.search(r'\bname="([^"]*)"', disp).group(1)
        fn = re.search(r'\bfilename="([^"]*)"', disp)
        ctype = headers.get(b"Content-Type")
        assert name not in parts, f"duplicate part {name}"
        parts[name] = (fn.group(1) if fn else None, ctype.decode() if ctype else None, data)
    return parts


def check(case: Case, s: Seen, key: str) -> None:
    assert s.method == case.http
    assert s.path == _full_path(case)
    # Exact query: every key once, exact values (incl. true/false), nothing else.
    parsed = parse_qs(s.query_string, keep_blank_values=True, strict_parsing=bool(s.query_string))
    assert parsed == {k: [v] for k, v in case.query.items()}, s.query_string
    assert "exerimentKey" not in s.query_string
    # Headers (WIRE §1)
    assert s.headers["Authorization"] == key
    assert not s.headers["Authorization"].lower().startswith("bearer")
    assert s.headers["User-Agent"] == f"comet-callbacks/{comet_callbacks.__version__}"
    if case.file is not None:
        ctype = s.headers["Content-Type"]
        assert int(s.headers["Content-Length"]) == len(s.body)
        parts = parse_multipart(ctype, s.body)
        expected = {"file": (case.file.filename, case.file.content_type, case.file.data)}
        if case.metadata is not None:
            expected["metadata"] = (None, "application/json", case.metadata.encode())
        assert parts == expected
        if case.metadata is not None:  # compact, sorted keys
            meta = json.loads(case.metadata)
            assert case.metadata == json.dumps(meta, separators=(",", ":"), sort_keys=True)
    elif case.body is not None:
        raw = s.body
        if case.path.startswith("/clientlib/batch/"):  # BATCH.md §2: gzip JSON, UTF-8
            assert s.headers["Content-Type"] == "application/json;charset=utf-8"
            assert s.headers["Content-Encoding"] == "gzip"
            assert int(s.headers["Content-Length"]) == len(raw)
            raw = gzip.decompress(raw)
            assert not any(k.lower().startswith("x-comet-sdk") for k in s.headers)
        else:
            assert s.headers["Content-Type"] == "application/json"
        text = raw.decode("utf-8")  # UTF-8 (non-ASCII cases check it is not \u-escaped garbage)
        assert "NaN" not in text.replace('"NaN"', ""), "bare NaN is not JSON"
        assert "Infinity" not in text.replace('"Infinity"', "").replace('"-Infinity"', "")
        assert json.loads(text) == case.body
    else:
        assert s.body == b"", "a GET without a body"
        assert "Content-Type" not in s.headers or s.headers["Content-Type"] == "application/json"


# --------------------------------------------------------------------------- tests


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, obj in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(obj)
    }


def test_every_endpoint_method_has_a_wire_case():
    methods = _public_methods(Endpoints)
    covered = {c.method for c in CASES}
    missing = methods - covered
    assert not missing, f"Endpoints methods without a wire case: {sorted(missing)}"
    assert covered <= methods, f"cases for unknown methods: {sorted(covered - methods)}"
    assert len(methods) >= 64  # #1-#59 (56/57 share one method) + 6 reads
    assert len({c.id for c in CASES}) == len(CASES)
    # every documented write #1..#59 has at least one case
    numbers = {int(c.id.split("-")[0]) for c in CASES if c.id[0].isdigit()}
    assert numbers == set(range(1, 60))


@pytest.fixture
def client(httpserver):
    c = RestClient(httpserver.url_for("/").rstrip("/"), KEY, retries=0, timeout=5)
    yield c
    c.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wire(case: Case, client: RestClient, httpserver):
    seen: list[Seen] = []
    _record(httpserver, case, seen)
    answer = getattr(client, case.method)(*case.args, **case.kwargs)
    httpserver.check_assertions()
    assert len(seen) == 1
    check(case, seen[0], KEY)
    if case.status == 204:
        assert answer is None
    else:
        assert answer == {"msg": "OK", "case": case.id}

    # The same operation built as an event, stored as JSON (offline log) and replayed.
    call = getattr(calls, case.method)(*case.args, **case.kwargs)
    assert isinstance(call, Call)
    replayed = Call.from_json(json.loads(json.dumps(call.to_json())))
    _record(httpserver, case, seen)
    client.send(replayed)
    httpserver.check_assertions()
    assert len(seen) == 2
    check(case, seen[1], KEY)
    if case.file is None:
        assert seen[1].body == seen[0].body, "replay must send the same bytes"


def test_plain_key_is_sent_whole(httpserver):
    seen: list[Seen] = []
    case = next(c for c in CASES if c.id == "28")
    _record(httpserver, case, seen)
    with RestClient(httpserver.url_for("/").rstrip("/"), PLAIN_KEY, retries=0) as c:
        c.log_metric(*case.args, **case.kwargs)
    check(case, seen[0], PLAIN_KEY)


def test_client_root_from_settings_key_payload(tmp_path, monkeypatch):
    """A payload key points the client at its ``baseUrl`` (WIRE §1, source 2)."""
    from comet_callbacks.config import Settings

    monkeypatch.chdir(tmp_path)  # no stray .comet.config
    monkeypatch.setenv("HOME", str(tmp_path))
    s = Settings.resolve(env={"COMET_API_KEY": KEY})
    with RestClient.from_settings(s) as c:
        assert c.root == "https://example.invalid"
        assert c.transport.base == "https://example.invalid/api/rest/v2/"


@pytest.mark.parametrize(
    ("override", "root", "expected"),
    [
        (None, "https://www.comet.com", "https://www.comet.com/clientlib/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/clientlib/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://127.0.0.1:8080/clientlib/"),
        ("https://h/clientlib", "https://h", "https://h/clientlib/"),
        ("https://h/comet/clientlib/", "https://h", "https://h/comet/clientlib/"),
    ],
)
def test_clientlib_base(override, root, expected):
    """BATCH.md §2: an override's own path is kept; a bare root gets ``/clientlib/``."""
    assert clientlib_base(root, override) == expected


def test_batch_goes_to_the_overrides_clientlib_path(httpserver, tmp_path, monkeypatch):
    from comet_callbacks.config import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    override = httpserver.url_for("/comet/clientlib/")
    s = Settings.resolve(env={"COMET_API_KEY": PLAIN_KEY, "COMET_URL_OVERRIDE": override})
    httpserver.expect_oneshot_request(
        "/comet/clientlib/batch/logger/experiment/metric", method="POST"
    ).respond_with_json({"msg": "Saved"})
    with RestClient.from_settings(s, retries=0) as c:
        assert c.log_metric_batch(EK, [metric_item("m", 1, timestamp=T)]) == {"msg": "Saved"}
        assert c.transport.base == httpserver.url_for("/api/rest/v2/")  # REST base unchanged
    httpserver.check_assertions()


def test_call_builder_is_an_endpoints():
    assert isinstance(calls, CallBuilder) and isinstance(calls, Endpoints)
    call = calls.log_metric(EK, "m", float("nan"), step=1)
    assert call == Call(
        "POST",
        "write/experiment/metric",
        {},
        {"experimentKey": EK, "metricName": "m", "metricValue": "NaN", "step": 1},
    )
    assert call.experiment_key == EK
    moved = call.with_experiment_key(EK2)
    assert moved.json["experimentKey"] == EK2 and call.json["experimentKey"] == EK
    q = calls.stop_experiment(EK).with_experiment_key(EK2)
    assert q.query == {"experimentKey": EK2}


def test_large_file_upload_streams_from_disk(httpserver, tmp_path):
    """A 5 MB file given by path arrives intact, with Content-Length and no chunked encoding."""
    import os

    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    got: dict[str, Any] = {}

    def handler(request: Request) -> Response:
        got["headers"] = dict(request.headers)
        got["query"] = request.args.to_dict()
        f = request.files["file"]  # werkzeug's own multipart parser as a cross-check
        got["filename"] = f.filename
        got["data"] = f.read()
        got["metadata"] = request.form.get("metadata")
        return Response('{"msg":"Saved","assetId":"x"}', content_type="application/json")

    httpserver.expect_oneshot_request(
        REST + "write/experiment/upload-asset", method="POST"
    ).respond_with_handler(handler)
    with RestClient(httpserver.url_for("/").rstrip("/"), KEY, retries=0) as c:
        answer = c.upload_asset(
            EK, FilePart("big.bin", path=str(path)), type="asset", metadata={"k": 1}
        )
    httpserver.check_assertions()
    assert answer == {"msg": "Saved", "assetId": "x"}
    assert got["filename"] == "big.bin"
    assert got["data"] == data
    assert got["metadata"] == '{"k":1}'
    assert got["query"] == {"experimentKey": EK, "type": "asset"}
    length = int(got["headers"]["Content-Length"])
    assert len(data) < length < len(data) + 1024
    assert "Transfer-Encoding" not in got["headers"]


def test_multipart_stream_reads_lazily(tmp_path):
    """The body object never holds the file: reads come in bounded chunks from disk."""
    from comet_callbacks.rest.call import MultipartStream

    data = bytes(range(256)) * 8192  # 2 MiB
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    stream = MultipartStream(FilePart("f.bin", path=str(path)), '{"a":1}')
    assert stream.length == len(stream.read())
    stream.seek(0)  # rewindable for retries
    chunks = iter(lambda: stream.read(64 * 1024), b"")
    body = b"".join(chunks)
    assert len(body) == stream.length
    parts = parse_multipart(stream.content_type, body)
    assert parts["file"] == ("f.bin", "application/octet-stream", data)
    assert parts["metadata"] == (None, "application/json", b'{"a":1}')
    stream.close()


def test_parameter_batch_carries_each_events_source(httpserver, tmp_path):
    """BATCH §2: an auto-logged parameter's batch item says ``"source":"auto-logged"``, a plain
    ``log_parameter`` call's item ``"manual"``. The source travels with the event (its event-log
    line), never in the per-point body, which has no such key."""
    from comet_callbacks.offline import RunStore
    from comet_callbacks.sender import Sender

    seen: list[bytes] = []

    def handler(request: Request) -> Response:
        seen.append(gzip.decompress(request.get_data()))
        return Response('{"msg":"Saved"}', content_type="application/json")

    httpserver.expect_oneshot_request(
        "/clientlib/batch/logger/experiment/parameter", method="POST"
    ).respond_with_handler(handler)
    store = RunStore(str(tmp_path))
    with RestClient(httpserver.url_for("/").rstrip("/"), KEY, retries=0) as client:
        sender = Sender(store, EK, client)
        sender.put(
            calls.log_parameter(EK, "opt|lr", 0.1, step=2, timestamp=T, source="auto-logged")
        )
        sender.put(calls.log_parameter(EK, "seed", 7, timestamp=T + 1))
        sender.put(calls.log_parameter(EK, "argv|0", "train.py", timestamp=T + 2, source="cli"))
        assert sender.close(10)
    store.close()
    httpserver.check_assertions()
    assert seen == [
        b'{"experimentKey":"0123456789abcdef0123456789abcdef","values":['
        b'{"parameterName":"opt|lr","parameterValue":0.1,"step":2,"source":"auto-logged",'
        b'"context":null,"timestamp":1700000000123},'
        b'{"parameterName":"seed","parameterValue":7,"step":null,"source":"manual",'
        b'"context":null,"timestamp":1700000000124},'
        b'{"parameterName":"argv|0","parameterValue":"train.py","step":null,"source":"cli",'
        b'"context":null,"timestamp":1700000000125}]}'
    ]
    lines = (tmp_path / store.run_id / "events.jsonl").read_text().splitlines()
    events = [json.loads(line)["call"] for line in lines]
    assert [e.get("source") for e in events] == ["auto-logged", None, "cli"]
    assert all("source" not in e["json"] for e in events)


def test_parameter_source_outside_the_three_is_refused():
    with pytest.raises(
        ValueError, match="parameter source must be one of manual, auto-logged, cli, got 'auto'"
    ):
        calls.log_parameter(EK, "lr", 0.1, source="auto")
