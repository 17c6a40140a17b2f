"""The clientlib endpoints the official SDK's ``Experiment`` uses (``/clientlib/...``).

With ``COMET_URL_OVERRIDE=http://127.0.0.1:PORT/clientlib/`` and the server's key, the
official ``comet_ml.Experiment`` / ``ExistingExperiment`` (and through them Lightning's
``CometLogger`` and transformers' ``CometCallback``) log to this server unchanged. Everything
lands in the same tables as the REST v2 writes, so every read endpoint shows SDK runs like
ours. Authentication and workspace rules are those of the REST endpoints.

What the server answers but does not store (documented in ``docs/OFFICIAL-SDK.md``): the
end-of-run notification, 3D-upload limits, RPC registration and results (no remote
procedure calls are ever pending), thumbnails, and the registry ``tags``/``status`` of
``item/create``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from starlette.responses import Response

from .handlers_write import (
    _as_patch_zip,
    _model_for,
    _next_seq,
    _parse_metadata,
    add_tags,
    check_semver,
    drop_same_assets,
    get_or_create_project,
    insert_asset,
    normalise_name,
)
from .names import safe_asset_name
from .routes import Ctx, route
from .store import new_id
from .validate import ApiError, bad

C = "/clientlib/"
MIB = 1024 * 1024

#: ``sdk_error_code`` values the SDK turns into clear exceptions (``comet_ml/exceptions.py``).
API_KEY_NOT_REGISTERED = 90212
NO_WRITE_ACCESS_TO_EXPERIMENT = 90210
EXPERIMENT_ALREADY_EXISTS = 90999
NON_EXISTING_TEAM = 90219
INVALID_VERSION_STRING = 42001

#: Experiment keys the SDK makes (32 hex characters); Comet accepts 32–50 alphanumerics.
_KEY = re.compile(r"^[A-Za-z0-9]{32,50}$")

#: What ``asset/3d-limits`` answers (the SDK's own defaults).
POINTS_3D_LIMITS = {
    "maxPoints": 1_000_000,
    "maxPointsFileSizeInBytes": 0,
    "maxBoxes": 250_000,
    "maxBoxesFileSizeInBytes": 0,
}


def sdk_error(status: int, code: int, msg: str) -> Response:
    """An error the SDK recognises: ``{"msg", "code", "sdk_error_code"}``."""
    body = {"msg": msg, "code": status, "sdk_error_code": code}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _authenticate(ctx: Ctx, body_key: str | None) -> Response | None:
    """Authenticate from the ``Authorization`` header or the body's ``apiKey`` (the SDK sends
    both); on failure, the answer the SDK turns into ``InvalidAPIKey``."""
    from .app import authenticate  # the one auth function of the server

    try:
        ctx.principal = authenticate(ctx.tx, ctx.auth_header or body_key)
    except ApiError as exc:
        return sdk_error(400, API_KEY_NOT_REGISTERED, exc.msg)
    return None


def _last_offset(ctx: Ctx, key: str) -> int:
    row = ctx.tx.row("SELECT MAX(offset) FROM output WHERE exp_key=?", (key,))
    return 0 if row[0] is None else int(row[0]) + 1


def _handshake(ctx: Ctx, exp: sqlite3.Row, run_id: str) -> dict[str, Any]:
    """The ``add/run``/``get/run`` answer (``comet_ml/handshake.py`` reads these keys)."""
    limit_mb = max(1, ctx.limits.max_upload_bytes // MIB)
    return {
        "runId": run_id,
        "project_id": exp["project_id"],
        "projectName": exp["project_name"],
        "focusUrl": f"{ctx.root}/{exp['workspace']}/{exp['project_name']}/",
        "lastOffset": _last_offset(ctx, exp["key"]),
        "featureToggles": [],
        "name": exp["name"],
        "githubEnabled": False,
        "upload_file_size_limit_in_mb": limit_mb,
        "asset_upload_file_size_limit_in_mb": limit_mb,
        "uploadVideoMaxSizeMB": limit_mb,
        "s3DirectAccessEnabled": False,
    }


def _new_run(ctx: Ctx, key: str) -> str:
    run_id = new_id()
    ctx.set_value(key, "sdk_run_id", run_id)
    return run_id


@route(
    "POST",
    C + "logger/add/run",
    auth=False,
    body={
        "apiKey?": "s",
        "experimentKey?": "s",
        "projectName?": "s",
        "teamName?": "s",
        "offline?": "b",
        "getOrCreateEnabled?": "b",
        "local_timestamp?": "i",
        "libVersion?": "s",
    },
)
def add_run(ctx: Ctx) -> Any:
    """Create the experiment under the SDK's own key (the handshake of ``Experiment``)."""
    b = ctx.body
    denied = _authenticate(ctx, b["apiKey"])
    if denied is not None:
        return denied
    key = b["experimentKey"] or new_id()
    if not _KEY.match(key):
        raise bad("experimentKey", f"{key!r} is not 32 to 50 letters and digits")
    workspace = b["teamName"] or ctx.me.default_workspace
    if workspace not in ctx.me.workspaces:
        exists = ctx.tx.one("SELECT 1 FROM workspaces WHERE name=?", (workspace,))
        msg = f"teamName: no access to workspace {workspace!r}"
        return sdk_error(400 if not exists else 403, NON_EXISTING_TEAM, msg)
    row = ctx.tx.one("SELECT key FROM experiments WHERE key=?", (key,))
    if row is not None:
        try:
            exp = ctx.exp(key)
        except ApiError as exc:  # it lives in a workspace this key may not use
            return sdk_error(exc.code, EXPERIMENT_ALREADY_EXISTS, exc.msg)
        if not b["getOrCreateEnabled"]:
            return sdk_error(
                400, EXPERIMENT_ALREADY_EXISTS, f"experimentKey: {key!r} already exists"
            )
        return _handshake(ctx, exp, _new_run(ctx, key))
    project = get_or_create_project(ctx, workspace, b["projectName"] or "general")
    ctx.tx.execute(
        "INSERT INTO experiments (key, project_id, name, start_ms, last_beat_ms, created_at) "
        "VALUES (?,?,?,?,?,?)",
        (key, project["id"], None, ctx.now, ctx.now, ctx.now),
    )
    ctx.touch_project(project["id"])
    return _handshake(ctx, ctx.exp(key), _new_run(ctx, key))


@route(
    "POST",
    C + "logger/get/run",
    auth=False,
    body={"apiKey?": "s", "previousExperiment": "s", "local_timestamp?": "i", "libVersion?": "s"},
)
def get_run(ctx: Ctx) -> Any:
    """Continue an existing experiment (``ExistingExperiment``); output offsets carry on."""
    denied = _authenticate(ctx, ctx.body["apiKey"])
    if denied is not None:
        return denied
    key = ctx.body["previousExperiment"]
    try:
        exp = ctx.exp(key, "previousExperiment")
    except ApiError as exc:
        return sdk_error(400, NO_WRITE_ACCESS_TO_EXPERIMENT, exc.msg)
    return _handshake(ctx, exp, _new_run(ctx, key))


@route(
    "POST",
    C + "status-report/update",
    body={
        "apiKey?": "s",
        "experimentKey": "s",
        "runId?": "s",
        "projectId?": "s",
        "is_alive?": "b",
        "local_timestamp?": "i",
        "offline?": "b",
    },
)
def status_update(ctx: Ctx) -> dict[str, Any]:
    """Heartbeat (``is_alive: true``) and end of run (``is_alive: false``)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    if ctx.body["is_alive"] is False:
        ctx.tx.execute(
            "UPDATE experiments SET stopped=1, end_ms=?, last_beat_ms=? WHERE key=?",
            (ctx.now, ctx.now, exp["key"]),
        )
    else:  # alive again after an end: a continued run (ExistingExperiment)
        ctx.tx.execute(
            "UPDATE experiments SET last_beat_ms=?, stopped=0, "
            "end_ms=CASE WHEN stopped=1 THEN NULL ELSE end_ms END WHERE key=?",
            (ctx.now, exp["key"]),
        )
    return {
        # half the window after which a silent run counts as crashed: a late beat never flaps it
        "is_alive_beat_duration_millis": max(1000, ctx.limits.beat_interval_ms // 2),
        "gpu_monitor_interval_millis": ctx.limits.gpu_monitor_ms,
        "cpu_monitor_interval_millis": ctx.limits.cpu_monitor_ms,
        "parameter_update_interval_millis": 60_000,
        "pending_rpcs": False,
    }


@route(
    "POST",
    C + "status-report/offline-metadata",
    body={
        "apiKey?": "s",
        "experimentKey": "s",
        "runId?": "s",
        "startTimestamp?": "i",
        "endTimestamp?": "i",
    },
)
def offline_metadata(ctx: Ctx) -> dict[str, Any]:
    """Start and end time of an uploaded offline run (``comet upload``); it has ended."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    start = b["startTimestamp"] if b["startTimestamp"] is not None else exp["start_ms"]
    end = b["endTimestamp"] if b["endTimestamp"] is not None else ctx.now
    ctx.tx.execute(
        "UPDATE experiments SET start_ms=?, end_ms=?, stopped=1 WHERE key=?",
        (start, end, exp["key"]),
    )
    return {"msg": "OK"}


@route("GET", C + "health/ping", auth=False)
def health_ping(ctx: Ctx) -> dict[str, Any]:
    """Liveness probe of the SDK's fallback monitor; needs no key."""
    return {"msg": "OK"}


@route("POST", C + "asset/3d-limits", body={"apiKey?": "s", "experimentKey?": "s"})
def points_3d_limits(ctx: Ctx) -> dict[str, Any]:
    """Limits of ``log_points_3d`` (not enforced here: answered with the SDK's defaults)."""
    return dict(POINTS_3D_LIMITS)


@route(
    "POST",
    C + "tags/add-tags-to-experiment",
    body={"apiKey?": "s", "experimentKey": "s", "addedTags?": ["s"]},
)
def add_tags_clientlib(ctx: Ctx) -> dict[str, Any]:
    """Tags from ``Experiment.add_tag(s)``: stored as by ``write/experiment/tags``."""
    return add_tags(ctx)


@route("GET", C + "symlink/new", query={"experimentKey": "s", "projectName": "s"})
def symlink_new(ctx: Ctx) -> dict[str, Any]:
    """``Experiment.create_symlink``: link the experiment into another project."""
    exp = ctx.exp(ctx.query["experimentKey"])
    target = get_or_create_project(ctx, exp["workspace"], ctx.query["projectName"])
    if target["id"] != exp["project_id"]:
        ctx.tx.execute("INSERT OR IGNORE INTO symlinks VALUES (?,?)", (exp["key"], target["id"]))
    ctx.touch_project(target["id"])
    return {"link": ctx.link(exp["workspace"], target["name"], exp["key"])}


@route("POST", C + "notification/experiment")
def notification(ctx: Ctx) -> dict[str, Any]:
    """The end-of-run summary e-mail request: acknowledged, nothing is sent or stored."""
    return {"msg": "OK"}


@route("GET", C + "rpc/get-pending-rpcs", query={"experimentKey": "s"})
def pending_rpcs(ctx: Ctx) -> dict[str, Any]:
    """Remote procedure calls: this server never has any pending."""
    ctx.exp(ctx.query["experimentKey"])
    return {"remoteProcedureCalls": []}


@route("POST", C + "rpc/register-rpc")
def register_rpc(ctx: Ctx) -> dict[str, Any]:
    """An RPC definition: acknowledged, not stored (no RPC is ever sent)."""
    return {"msg": "OK"}


@route("POST", C + "rpc/save-rpc-result")
def save_rpc_result(ctx: Ctx) -> dict[str, Any]:
    """An RPC result: acknowledged, not stored."""
    return {"msg": "OK"}


# -- uploads ----------------------------------------------------------------------------------

UPLOAD_QUERY = {
    "experimentId": "s",
    "projectId?": "s",
    "runId?": "s",
    "assetId?": "s",
    "fileName?": "s",
    "extension?": "s",
    "overwrite?": "b",
    "type?": "s",
    "groupingName?": "s",
    "step?": "i",
    "epoch?": "i",
    "context?": "s",
    "isRemote?": "b",
    "artifactVersionId?": "s",
    "artifactId?": "s",
    # visualizations/upload (images)
    "figName?": "s",
    "figCounter?": "i",
    "imageId?": "s",
}


def _store_upload(ctx: Ctx, default_type: str) -> dict[str, Any]:
    """Store one multipart upload of the SDK's streamer as an asset (same table as #30)."""
    q = ctx.query
    exp = ctx.exp(q["experimentId"], "experimentId")
    remote = bool(q["isRemote"]) or ("link" in ctx.files and "file" not in ctx.files)
    if remote:
        link_part = ctx.files.get("link")
        link = (
            link_part[1].read(ctx.limits.max_json_bytes, "link").decode("utf-8", "replace")
            if link_part
            else ctx.form.get("link", "")
        )
        if not link:
            raise bad("link", "required multipart part for a remote asset")
        data: Any = None
        size = 0
    else:
        if "file" not in ctx.files:
            raise bad("file", "required multipart part")
        data = ctx.files["file"][1]  # streamed to a temporary file (uploads.Upload)
        size = data.size
        link = None
    atype = q["type"] or default_type
    name = q["fileName"] or q["figName"]
    if not name:
        raise bad("fileName", "required")
    name = safe_asset_name(name)  # a label: never a path out of a download folder
    grouping = q["groupingName"]
    if atype == "model-element" and not grouping:
        raise bad("groupingName", "required for type model-element")
    metadata = _parse_metadata(ctx.form.get("metadata"), "metadata", strict=False)
    if metadata is None and "metadata" in ctx.files:
        metadata = _parse_metadata(
            ctx.files["metadata"][1]
            .read(ctx.limits.max_json_bytes, "metadata")
            .decode("utf-8", "replace"),
            "metadata",
            strict=False,
        )
    if q["overwrite"]:
        drop_same_assets(ctx, exp["key"], name, atype)
    asset_id = q["assetId"] or q["imageId"]
    if not asset_id or ctx.tx.one("SELECT 1 FROM assets WHERE id=?", (asset_id,)):
        asset_id = new_id()  # the SDK's ids are unique; a clash (a retry) gets a fresh one
    model_id = _model_for(ctx, exp["key"], grouping) if atype == "model-element" else None
    insert_asset(
        ctx,
        exp["key"],
        asset_id=asset_id,
        name=name,
        atype=atype,
        extension=q["extension"],
        step=q["step"],
        epoch=q["epoch"],
        context=q["context"],
        size=size,
        metadata=metadata,
        remote=remote,
        link=link,
        storage=None if remote else ctx.tx.write_file(data),
        grouping=grouping,
        model_id=model_id,
        artifact_id=q["artifactId"],
        artifact_version_id=q["artifactVersionId"],
    )
    ctx.touch(exp)
    return {"msg": "Saved", "assetId": asset_id}


@route("POST", C + "asset/upload", multipart=True, query=UPLOAD_QUERY)
def asset_upload(ctx: Ctx) -> dict[str, Any]:
    """Assets, models (``type=model-element``), source code, text samples, curves."""
    return _store_upload(ctx, "asset")


@route("POST", C + "visualizations/upload", multipart=True, query=UPLOAD_QUERY)
def visualization_upload(ctx: Ctx) -> dict[str, Any]:
    """Images (``log_image``): stored as assets of type ``image``."""
    return _store_upload(ctx, "image")


@route("POST", C + "asset/asset-item", multipart=True, query=UPLOAD_QUERY)
def asset_item_upload(ctx: Ctx) -> dict[str, Any]:
    """Files of an artifact version: stored as assets linked to the artifact version."""
    return _store_upload(ctx, "asset")


@route(
    "POST",
    C + "git-patch/upload",
    multipart=True,
    query={"experimentId": "s", "projectId?": "s", "runId?": "s"},
)
def git_patch_upload(ctx: Ctx) -> dict[str, Any]:
    """The zipped working-tree diff: stored as by ``write/experiment/git/patch``."""
    exp = ctx.exp(ctx.query["experimentId"], "experimentId")
    if "file" not in ctx.files:
        raise bad("file", "required multipart part")
    ctx.set_value(
        exp["key"],
        "git_patch",
        _as_patch_zip(ctx.files["file"][1].read(ctx.limits.max_json_bytes, "file")),
    )
    return {"msg": "Saved"}


# -- model registry (the path the SDK takes when the version probe reports >= 3.5.42) ----------


@route(
    "POST",
    "write/registry-model/item/create",
    body={
        "experimentKey": "s",
        "experimentModelName": "s",
        "registryModelName?": "s",
        "registryModelDescription?": "s",
        "version?": "s",
        "versionComment?": "s",
        "tags?": ["s"],
        "status?": "s",
        "publicModel?": "b",
    },
)
def registry_item_create(ctx: Ctx) -> Any:
    """Register an experiment model: create the registry model if new, add the version.

    Without ``version`` the next patch version is used (first ``1.0.0``). ``tags`` and
    ``status`` are accepted but not stored (the registry here keeps stages only)."""
    from ..registry import next_version
    from .handlers_write import _add_version

    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    em = ctx.tx.one(
        "SELECT * FROM exp_models WHERE exp_key=? AND name=?",
        (exp["key"], b["experimentModelName"]),
    )
    if em is None:
        raise ApiError(
            404, f"experimentModelName: no model {b['experimentModelName']!r} in this experiment"
        )
    name = normalise_name(b["registryModelName"] or b["experimentModelName"])
    version = b["version"]
    if version is not None:
        try:
            check_semver(version)
        except ApiError as exc:
            return sdk_error(400, INVALID_VERSION_STRING, exc.msg)
    ws = exp["workspace"]
    model = ctx.tx.one("SELECT * FROM registry_models WHERE workspace=? AND name=?", (ws, name))
    if model is None:
        model_id = new_id()
        ctx.tx.execute(
            "INSERT INTO registry_models VALUES (?,?,?,?,?,?,?,?)",
            (
                model_id,
                ws,
                name,
                b["registryModelDescription"],
                int(bool(b["publicModel"])),
                None,
                ctx.now,
                ctx.now,
            ),
        )
        model = ctx.tx.row("SELECT * FROM registry_models WHERE id=?", (model_id,))
    assert model is not None
    if version is None:
        existing = [
            r["version"]
            for r in ctx.tx.all(
                "SELECT version FROM registry_items WHERE model_id=?", (model["id"],)
            )
        ]
        version = next_version(existing)
    item_id = _add_version(ctx, model, em["id"], version, b["versionComment"], None)
    return {"registryModelId": model["id"], "registryModelItemId": item_id, "version": version}


@route(
    "POST",
    "write/experiment/update-status",
    body={"experimentKey": "s", "isAlive?": "b", "error?": "s", "hasCrashed?": "b"},
)
def update_status(ctx: Ctx) -> dict[str, Any]:
    """An error the SDK reports during a run (``Experiment._report_experiment_error``): the last
    message is kept with the experiment (value ``sdk_error``); the run state is not changed."""
    exp = ctx.exp(ctx.body["experimentKey"])
    if ctx.body["error"] is not None:
        ctx.set_value(exp["key"], "sdk_error", ctx.body["error"])
    return {"msg": "OK"}


@route(
    "POST",
    C + "asset/log-remote-model",
    body={
        "apiKey?": "s",
        "experimentKey": "s",
        "modelName": "s",
        "remoteEntities": [
            {
                "remoteUrl?": "s",  # what the SDK sends (``to_remote_model_asset_json``)
                "link?": "s",
                "fileName?": "s",
                "assetId?": "s",
                "metadata?": "s",
                "step?": "i",
                "context?": "s",
            }
        ],
    },
)
def log_remote_model(ctx: Ctx) -> dict[str, Any]:
    """``Experiment.log_remote_model``: the model's files are links (remote ``model-element``
    assets grouped under ``modelName``), no bytes."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    if not b["modelName"].strip():
        raise bad("modelName", "must not be empty")
    model_id = _model_for(ctx, exp["key"], b["modelName"])
    for idx, item in enumerate(b["remoteEntities"]):
        link = item["remoteUrl"] or item["link"]
        if not link:
            raise bad(f"remoteEntities[{idx}].remoteUrl", "required")
        name = item["fileName"] or link.rstrip("/").rsplit("/", 1)[-1] or link
        metadata = _parse_metadata(
            item["metadata"], f"remoteEntities[{idx}].metadata", strict=False
        )
        asset_id = item["assetId"]
        if not asset_id or ctx.tx.one("SELECT 1 FROM assets WHERE id=?", (asset_id,)):
            asset_id = new_id()
        ctx.tx.execute(
            "INSERT INTO assets (id, exp_key, file_name, type, extension, step, epoch, context, "
            "size, created_at, metadata, remote, link, storage, grouping, model_id, seq) "
            "VALUES (?,?,?,'model-element',NULL,?,NULL,?,0,?,?,1,?,NULL,?,?,?)",
            (
                asset_id,
                exp["key"],
                safe_asset_name(name),
                item["step"],
                item["context"],
                ctx.now,
                metadata,
                link,
                b["modelName"],
                model_id,
                _next_seq(ctx, "assets"),
            ),
        )
    ctx.touch(exp)
    return {"msg": "OK"}
