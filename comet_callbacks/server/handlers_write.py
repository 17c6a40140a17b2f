"""Write endpoints of WIRE.md §2 (#1–#59), one handler per row.

Each handler runs inside the request's transaction (see :mod:`.routes`); raising
:class:`~.validate.ApiError` rolls everything back.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import sqlite3
import zipfile
from typing import Any

from .names import safe_asset_name
from .routes import Ctx, route
from .store import new_id, series_ids
from .validate import ApiError, bad, check, stored_text, text_of

SAVED = {"msg": "Saved"}
OK = {"msg": "OK"}
EK = {"experimentKey": "s"}
T = {"context?": "s", "step?": "i", "epoch?": "i", "timestamp?": "i"}
QEK = {"experimentKey": "s"}

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def normalise_name(name: str, field_name: str = "registryModelName") -> str:
    """Registry name normalisation (WIRE §5 step 4)."""
    out = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not out:
        raise bad(field_name, "empty after normalisation")
    return out


def check_semver(version: str) -> str:
    if not SEMVER.match(version):
        raise bad("version", f"{version!r} is not SemVer 2.0.0")
    return version


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- workspaces and experiments --------------------------------------------------------------


@route("POST", "write/workspace/new", body={"name": "s", "plan?": "s"})
def workspace_new(ctx: Ctx) -> dict[str, Any]:
    """#1 Create a workspace owned by the caller (409 if the name exists)."""
    name = ctx.body["name"]
    if not name.strip():
        raise bad("name", "must not be empty")
    if ctx.tx.one("SELECT 1 FROM workspaces WHERE name=?", (name,)):
        raise ApiError(409, f"name: workspace {name!r} already exists")
    owner = ctx.me.user_id
    if ctx.me.is_service:
        owner = ctx.tx.row("SELECT created_by FROM users WHERE id=?", (owner,))["created_by"]
    ws_id = ctx.tx.add_workspace(name, owner, ctx.body["plan"])
    return {"msg": "saved", "workspace_name": name, "workspace_id": ws_id, "code": 200}


def get_or_create_project(ctx: Ctx, workspace: str, name: str) -> sqlite3.Row:
    ctx.ws(workspace)
    if not name.strip():
        raise bad("projectName", "must not be empty")
    row = ctx.tx.one(
        "SELECT * FROM projects WHERE workspace=? AND name=? AND deleted=0", (workspace, name)
    )
    if row is None:
        pid = new_id()
        ctx.tx.execute(
            "INSERT INTO projects (id, workspace, name, description, is_public, owner, notes, "
            "created_at, last_updated) VALUES (?,?,?,?,?,?,?,?,?)",
            (pid, workspace, name, None, 0, ctx.me.name, None, ctx.now, ctx.now),
        )
        row = ctx.tx.row("SELECT * FROM projects WHERE id=?", (pid,))
    return row


@route(
    "POST",
    "write/experiment/create",
    body={"workspaceName": "s", "projectName": "s", "experimentName?": "s"},
)
def experiment_create(ctx: Ctx) -> dict[str, Any]:
    """#2 Create an experiment (and its project if missing); it starts running now."""
    ws, pname = ctx.body["workspaceName"], ctx.body["projectName"]
    project = get_or_create_project(ctx, ws, pname)
    key = new_id()
    ctx.tx.execute(
        "INSERT INTO experiments (key, project_id, name, start_ms, last_beat_ms, created_at) "
        "VALUES (?,?,?,?,?,?)",
        (key, project["id"], ctx.body["experimentName"], ctx.now, ctx.now, ctx.now),
    )
    if ctx.body["experimentName"] is not None:  # the SDK reads the name back as other "Name"
        ctx.tx.execute(
            "INSERT INTO others (exp_key, name, value, ts) VALUES (?,?,?,?)",
            (key, "Name", dumps(ctx.body["experimentName"]), ctx.now),
        )
    ctx.touch_project(project["id"])
    return {
        "experimentKey": key,
        "workspaceName": ws,
        "projectName": pname,
        "link": ctx.link(ws, pname, key),
    }


@route("GET", "write/experiment/stop", query=QEK)
def experiment_stop(ctx: Ctx) -> dict[str, Any]:
    """#3 Stop: not running any more; end time set to now if unset."""
    exp = ctx.exp(ctx.query["experimentKey"])
    ctx.tx.execute(
        "UPDATE experiments SET stopped=1, end_ms=COALESCE(end_ms, ?) WHERE key=?",
        (ctx.now, exp["key"]),
    )
    return {"msg": "Stop Requested"}


@route("GET", "write/experiment/archive", query=QEK)
def experiment_archive(ctx: Ctx) -> dict[str, Any]:
    """#4 Archive."""
    exp = ctx.exp(ctx.query["experimentKey"])
    ctx.tx.execute("UPDATE experiments SET archived=1 WHERE key=?", (exp["key"],))
    return {"msg": "Archived"}


@route("GET", "write/experiment/restore", query=QEK)
def experiment_restore(ctx: Ctx) -> dict[str, Any]:
    """#8 Restore an archived experiment."""
    exp = ctx.exp(ctx.query["experimentKey"])
    ctx.tx.execute("UPDATE experiments SET archived=0 WHERE key=?", (exp["key"],))
    return {"msg": "Restore"}


@route("GET", "write/experiment/delete", query=QEK)
def experiment_delete(ctx: Ctx) -> dict[str, Any]:
    """#7 Delete: the experiment answers 404 afterwards."""
    exp = ctx.exp(ctx.query["experimentKey"])
    ctx.tx.execute("UPDATE experiments SET deleted=1 WHERE key=?", (exp["key"],))
    ctx.touch(exp)
    return {"msg": "Deleted"}


@route(
    "POST",
    "write/experiment/move",
    body={
        "targetWorkspaceName": "s",
        "targetProjectName": "s",
        "experimentKeys": ["s"],
        "symlink": "b",
    },
)
def experiment_move(ctx: Ctx) -> dict[str, Any]:
    """#5 Move (``symlink:false``) or link (``true``) experiments into a project."""
    target = get_or_create_project(
        ctx, ctx.body["targetWorkspaceName"], ctx.body["targetProjectName"]
    )
    for idx, key in enumerate(ctx.body["experimentKeys"]):
        exp = ctx.exp(key, f"experimentKeys[{idx}]")
        if ctx.body["symlink"]:
            if exp["project_id"] != target["id"]:
                ctx.tx.execute("INSERT OR IGNORE INTO symlinks VALUES (?,?)", (key, target["id"]))
        else:
            ctx.tx.execute("UPDATE experiments SET project_id=? WHERE key=?", (target["id"], key))
            ctx.tx.execute(
                "DELETE FROM symlinks WHERE exp_key=? AND project_id=?", (key, target["id"])
            )
            ctx.touch(exp)
    ctx.touch_project(target["id"])
    return OK


@route(
    "GET",
    "write/project/symlink",
    query={"experimentKey?": "s", "exerimentKey?": "s", "projectName": "s"},
)
def project_symlink(ctx: Ctx) -> dict[str, Any]:
    """#6 Link an experiment into another project of its workspace (created if missing)."""
    key = ctx.query["experimentKey"] or ctx.query["exerimentKey"]
    if not key:
        raise bad("experimentKey", "required")
    exp = ctx.exp(key)
    target = get_or_create_project(ctx, exp["workspace"], ctx.query["projectName"])
    if target["id"] != exp["project_id"]:
        ctx.tx.execute("INSERT OR IGNORE INTO symlinks VALUES (?,?)", (key, target["id"]))
    ctx.touch_project(target["id"])
    return {"link": ctx.link(exp["workspace"], target["name"], key)}


# -- projects ---------------------------------------------------------------------------------


@route(
    "POST",
    "write/project/create",
    body={"workspaceName": "s", "projectName": "s", "projectDescription?": "s", "isPublic?": "b"},
)
def project_create(ctx: Ctx) -> dict[str, Any]:
    """#9 Create a project (409 if the name exists in the workspace)."""
    ws, name = ctx.body["workspaceName"], ctx.body["projectName"]
    ctx.ws(ws)
    if not name.strip():
        raise bad("projectName", "must not be empty")
    if ctx.tx.one("SELECT 1 FROM projects WHERE workspace=? AND name=? AND deleted=0", (ws, name)):
        raise ApiError(409, f"projectName: project {name!r} already exists")
    pid = new_id()
    ctx.tx.execute(
        "INSERT INTO projects (id, workspace, name, description, is_public, owner, notes, "
        "created_at, last_updated) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            pid,
            ws,
            name,
            ctx.body["projectDescription"],
            int(bool(ctx.body["isPublic"])),
            ctx.me.name,
            None,
            ctx.now,
            ctx.now,
        ),
    )
    return {"projectId": pid}


def _project_ref(ctx: Ctx, pid: str | None, ws: str | None, name: str | None) -> sqlite3.Row:
    if pid is not None and (ws is not None or name is not None):
        raise bad("projectId", "give either projectId or workspaceName+projectName, not both")
    if pid is not None:
        return ctx.project_by_id(pid)
    if ws is None:
        raise bad("workspaceName", "required (or projectId)")
    if name is None:
        raise bad("projectName", "required (or projectId)")
    return ctx.project_by_name(ws, name)


@route(
    "POST",
    "write/project/delete",
    body={
        "projectId?": "s",
        "workspaceName?": "s",
        "projectName?": "s",
        "deleteAllExperiments?": "b",
    },
)
def project_delete(ctx: Ctx) -> dict[str, Any]:
    """#10 Delete a project, and its experiments when ``deleteAllExperiments``."""
    b = ctx.body
    project = _project_ref(ctx, b["projectId"], b["workspaceName"], b["projectName"])
    ctx.tx.execute("UPDATE projects SET deleted=1 WHERE id=?", (project["id"],))
    if b["deleteAllExperiments"]:
        ctx.tx.execute("UPDATE experiments SET deleted=1 WHERE project_id=?", (project["id"],))
    ctx.tx.execute("DELETE FROM symlinks WHERE project_id=?", (project["id"],))
    return {"msg": "Deleted"}


@route(
    "POST",
    "write/project/update",
    body={
        "projectId?": "s",
        "workspaceName?": "s",
        "projectName?": "s",
        "newProjectName?": "s",
        "newProjectDescription?": "s",
        "isPublic?": "b",
    },
)
def project_update(ctx: Ctx) -> dict[str, Any]:
    """#11 Update a project; ids may come in the body or the query (the body wins)."""
    b, q = ctx.body, ctx.raw_query
    if b["projectId"] is None and b["workspaceName"] is None and b["projectName"] is None:
        pid, ws, name = q.get("projectId"), q.get("workspaceName"), q.get("projectName")
    else:
        pid, ws, name = b["projectId"], b["workspaceName"], b["projectName"]
    project = _project_ref(ctx, pid, ws, name)
    new_name = b["newProjectName"]
    if new_name is not None and new_name != project["name"]:
        if not new_name.strip():
            raise bad("newProjectName", "must not be empty")
        if ctx.tx.one(
            "SELECT 1 FROM projects WHERE workspace=? AND name=? AND deleted=0",
            (project["workspace"], new_name),
        ):
            raise ApiError(409, f"newProjectName: project {new_name!r} already exists")
        ctx.tx.execute("UPDATE projects SET name=? WHERE id=?", (new_name, project["id"]))
    if b["newProjectDescription"] is not None:
        ctx.tx.execute(
            "UPDATE projects SET description=? WHERE id=?",
            (b["newProjectDescription"], project["id"]),
        )
    if b["isPublic"] is not None:
        ctx.tx.execute(
            "UPDATE projects SET is_public=? WHERE id=?", (int(b["isPublic"]), project["id"])
        )
    ctx.touch_project(project["id"])
    return {"msg": "Updated"}


@route("POST", "write/project/notes", body={"projectId": "s", "notes": "s"})
def project_notes(ctx: Ctx) -> dict[str, Any]:
    """#12 Set a project's notes."""
    project = ctx.project_by_id(ctx.body["projectId"])
    ctx.tx.execute("UPDATE projects SET notes=? WHERE id=?", (ctx.body["notes"], project["id"]))
    return SAVED


@route("GET", "write/project/add-share-link", query={"projectId": "s"})
def project_share(ctx: Ctx) -> dict[str, Any]:
    """#13 Create a share code."""
    project = ctx.project_by_id(ctx.query["projectId"])
    code = new_id()
    ctx.tx.execute("INSERT INTO share_links VALUES (?,?)", (project["id"], code))
    return {"shareCode": code}


@route("GET", "write/project/delete-project-share-link", query={"projectId": "s", "shareCode": "s"})
def project_unshare(ctx: Ctx) -> dict[str, Any]:
    """#14 Delete a share code (404 if unknown)."""
    project = ctx.project_by_id(ctx.query["projectId"])
    cur = ctx.tx.execute(
        "DELETE FROM share_links WHERE project_id=? AND code=?",
        (project["id"], ctx.query["shareCode"]),
    )
    if cur.rowcount == 0:
        raise ApiError(404, "shareCode: unknown share code")
    return OK


# -- model registry ---------------------------------------------------------------------------


def _exp_model(ctx: Ctx, model_id: str) -> tuple[sqlite3.Row, sqlite3.Row]:
    row = ctx.tx.one("SELECT * FROM exp_models WHERE id=?", (model_id,))
    if row is None:
        raise ApiError(404, f"experimentModelId: unknown experiment model {model_id!r}")
    exp = ctx.exp(row["exp_key"], "experimentModelId")
    return row, exp


def _reg_item(
    ctx: Ctx, item_id: str, field_name: str = "modelItemId"
) -> tuple[sqlite3.Row, sqlite3.Row]:
    item = ctx.tx.one("SELECT * FROM registry_items WHERE id=?", (item_id,))
    if item is None:
        raise ApiError(404, f"{field_name}: unknown registry model version {item_id!r}")
    model = ctx.tx.row("SELECT * FROM registry_models WHERE id=?", (item["model_id"],))
    if model["workspace"] not in ctx.me.workspaces:
        raise ApiError(403, f"{field_name}: no access to this model's workspace")
    return item, model


def _stages(value: list[str] | None) -> list[str]:
    out: list[str] = []
    for stage in value or []:
        if stage not in out:
            out.append(stage)
    return out


def _notify_stages(
    ctx: Ctx, model: sqlite3.Row, item_id: str, version: str, before: list[str], after: list[str]
) -> None:
    """Queue webhook notifications (after commit) when a version's stages changed."""
    if before == after:
        return
    rows = ctx.tx.all(
        "SELECT url, headers FROM webhooks WHERE workspace=? AND model_name IN ('', ?)",
        (model["workspace"], model["name"]),
    )
    targets = [(r["url"], json.loads(r["headers"] or "{}")) for r in rows]
    if not targets or ctx.notify is None:
        return
    payload = {
        "event": "registry-model-version-stages-changed",
        "workspaceName": model["workspace"],
        "modelName": model["name"],
        "registryModelId": model["id"],
        "registryModelItemId": item_id,
        "version": version,
        "stages": after,
        "previousStages": before,
        "addedStages": [s for s in after if s not in before],
        "removedStages": [s for s in before if s not in after],
        "timestamp": ctx.now,
    }
    notify = ctx.notify
    ctx.tx.after_commit.append(lambda: notify(targets, payload))


def _add_version(
    ctx: Ctx,
    model: sqlite3.Row,
    exp_model_id: str,
    version: str,
    comment: str | None,
    stages: list[str] | None,
) -> str:
    check_semver(version)
    if ctx.tx.one(
        "SELECT 1 FROM registry_items WHERE model_id=? AND version=?", (model["id"], version)
    ):
        raise ApiError(409, f"version: {version} already exists for {model['name']!r}")
    item_id = new_id()
    st = _stages(stages)
    ctx.tx.execute(
        "INSERT INTO registry_items VALUES (?,?,?,?,?,?,?)",
        (item_id, model["id"], version, comment, dumps(st), exp_model_id, ctx.now),
    )
    ctx.tx.execute("UPDATE registry_models SET last_updated=? WHERE id=?", (ctx.now, model["id"]))
    _notify_stages(ctx, model, item_id, version, [], st)
    return item_id


@route(
    "POST",
    "write/registry-model",
    body={
        "experimentModelId": "s",
        "registryModelName": "s",
        "version": "s",
        "description?": "s",
        "isPublic?": "b",
        "comment?": "s",
        "stages?": ["s"],
    },
)
def registry_create(ctx: Ctx) -> dict[str, Any]:
    """#15 Register a new model with its first version (409 if the name exists)."""
    b = ctx.body
    em, exp = _exp_model(ctx, b["experimentModelId"])
    name = normalise_name(b["registryModelName"])
    check_semver(b["version"])
    ws = exp["workspace"]
    if ctx.tx.one("SELECT 1 FROM registry_models WHERE workspace=? AND name=?", (ws, name)):
        raise ApiError(409, f"registryModelName: {name!r} already exists")
    model_id = new_id()
    ctx.tx.execute(
        "INSERT INTO registry_models VALUES (?,?,?,?,?,?,?,?)",
        (model_id, ws, name, b["description"], int(bool(b["isPublic"])), None, ctx.now, ctx.now),
    )
    model = ctx.tx.row("SELECT * FROM registry_models WHERE id=?", (model_id,))
    item_id = _add_version(ctx, model, em["id"], b["version"], b["comment"], b["stages"])
    return {"registryModelId": model_id, "registryModelItemId": item_id}


@route(
    "POST",
    "write/registry-model/item",
    body={
        "experimentModelId": "s",
        "registryModelName": "s",
        "version": "s",
        "comment?": "s",
        "stages?": ["s"],
    },
)
def registry_item(ctx: Ctx) -> dict[str, Any]:
    """#16 Add a version to a registered model (404 unknown name, 409 duplicate version)."""
    b = ctx.body
    em, exp = _exp_model(ctx, b["experimentModelId"])
    name = normalise_name(b["registryModelName"])
    check_semver(b["version"])
    model = ctx.tx.one(
        "SELECT * FROM registry_models WHERE workspace=? AND name=?", (exp["workspace"], name)
    )
    if model is None:
        raise ApiError(404, f"registryModelName: unknown registry model {name!r}")
    item_id = _add_version(ctx, model, em["id"], b["version"], b["comment"], b["stages"])
    return {"registryModelId": model["id"], "registryModelItemId": item_id}


@route(
    "POST",
    "write/registry-model/item/update",
    body={"registryModelItemId": "s", "comment?": "s", "stages?": ["s"]},
)
def registry_item_update(ctx: Ctx) -> dict[str, Any]:
    """#17 Update a version's comment and/or stages."""
    item, model = _reg_item(ctx, ctx.body["registryModelItemId"], "registryModelItemId")
    if ctx.body["comment"] is not None:
        ctx.tx.execute(
            "UPDATE registry_items SET comment=? WHERE id=?", (ctx.body["comment"], item["id"])
        )
    if ctx.body["stages"] is not None:
        before = json.loads(item["stages"])
        after = _stages(ctx.body["stages"])
        ctx.tx.execute("UPDATE registry_items SET stages=? WHERE id=?", (dumps(after), item["id"]))
        _notify_stages(ctx, model, item["id"], item["version"], before, after)
    ctx.tx.execute("UPDATE registry_models SET last_updated=? WHERE id=?", (ctx.now, model["id"]))
    return OK


@route("GET", "write/registry-model/item/delete", query={"modelItemId": "s"})
def registry_item_delete(ctx: Ctx) -> dict[str, Any]:
    """#18 Delete a version."""
    item, model = _reg_item(ctx, ctx.query["modelItemId"])
    ctx.tx.execute("DELETE FROM registry_items WHERE id=?", (item["id"],))
    ctx.tx.execute("UPDATE registry_models SET last_updated=? WHERE id=?", (ctx.now, model["id"]))
    return OK


def _reg_model(ctx: Ctx, model_id: str) -> sqlite3.Row:
    model = ctx.tx.one("SELECT * FROM registry_models WHERE id=?", (model_id,))
    if model is None:
        raise ApiError(404, f"registryModelId: unknown registry model {model_id!r}")
    if model["workspace"] not in ctx.me.workspaces:
        raise ApiError(403, "registryModelId: no access to this model's workspace")
    return model


def _reg_model_by_name(ctx: Ctx, ws: str, name: str, field_name: str) -> sqlite3.Row:
    ctx.ws(ws)
    model = ctx.tx.one(
        "SELECT * FROM registry_models WHERE workspace=? AND name=?",
        (ws, normalise_name(name, field_name)),
    )
    if model is None:
        raise ApiError(404, f"{field_name}: unknown registry model {name!r}")
    return model


@route(
    "POST",
    "write/registry-model/update",
    body={"registryModelId": "s", "registryModelName?": "s", "description?": "s", "isPublic?": "b"},
)
def registry_update(ctx: Ctx) -> dict[str, Any]:
    """#19 Rename / describe / publish a registered model."""
    b = ctx.body
    model = _reg_model(ctx, b["registryModelId"])
    if b["registryModelName"] is not None:
        name = normalise_name(b["registryModelName"])
        if name != model["name"]:
            if ctx.tx.one(
                "SELECT 1 FROM registry_models WHERE workspace=? AND name=?",
                (model["workspace"], name),
            ):
                raise ApiError(409, f"registryModelName: {name!r} already exists")
            ctx.tx.execute("UPDATE registry_models SET name=? WHERE id=?", (name, model["id"]))
    if b["description"] is not None:
        ctx.tx.execute(
            "UPDATE registry_models SET description=? WHERE id=?", (b["description"], model["id"])
        )
    if b["isPublic"] is not None:
        ctx.tx.execute(
            "UPDATE registry_models SET is_public=? WHERE id=?", (int(b["isPublic"]), model["id"])
        )
    ctx.tx.execute("UPDATE registry_models SET last_updated=? WHERE id=?", (ctx.now, model["id"]))
    return OK


@route(
    "POST",
    "write/registry-model/notes",
    body={"workspaceName": "s", "registryModelName": "s", "notes": "s"},
)
def registry_notes(ctx: Ctx) -> dict[str, Any]:
    """#20 Set a registered model's notes."""
    model = _reg_model_by_name(
        ctx, ctx.body["workspaceName"], ctx.body["registryModelName"], "registryModelName"
    )
    ctx.tx.execute(
        "UPDATE registry_models SET notes=? WHERE id=?", (ctx.body["notes"], model["id"])
    )
    return OK


@route("GET", "write/registry-model/delete", query={"workspaceName": "s", "modelName": "s"})
def registry_delete(ctx: Ctx) -> dict[str, Any]:
    """#21 Delete a registered model and all its versions."""
    model = _reg_model_by_name(ctx, ctx.query["workspaceName"], ctx.query["modelName"], "modelName")
    ctx.tx.execute("DELETE FROM registry_items WHERE model_id=?", (model["id"],))
    ctx.tx.execute("DELETE FROM registry_models WHERE id=?", (model["id"],))
    return OK


def _change_stage(ctx: Ctx, add: bool) -> dict[str, Any]:
    item, model = _reg_item(ctx, ctx.query["modelItemId"])
    stage = ctx.query["stage"]
    if not stage.strip():
        raise bad("stage", "must not be empty")
    before = json.loads(item["stages"])
    after = _stages(before + [stage]) if add else [s for s in before if s != stage]
    ctx.tx.execute("UPDATE registry_items SET stages=? WHERE id=?", (dumps(after), item["id"]))
    ctx.tx.execute("UPDATE registry_models SET last_updated=? WHERE id=?", (ctx.now, model["id"]))
    _notify_stages(ctx, model, item["id"], item["version"], before, after)
    return OK


@route("GET", "write/registry-model/item/stage", query={"modelItemId": "s", "stage": "s"})
def registry_stage_add(ctx: Ctx) -> dict[str, Any]:
    """#22 Add a stage to a version."""
    return _change_stage(ctx, True)


@route("GET", "write/registry-model/item/stage/delete", query={"modelItemId": "s", "stage": "s"})
def registry_stage_delete(ctx: Ctx) -> dict[str, Any]:
    """#23 Remove a stage from a version."""
    return _change_stage(ctx, False)


# -- experiment state and simple values ---------------------------------------------------------


@route("GET", "write/experiment/set-status", query=QEK)
def set_status(ctx: Ctx) -> dict[str, Any]:
    """#24 Keep-alive beat: the experiment counts as running until a beat interval lapses."""
    exp = ctx.exp(ctx.query["experimentKey"])
    ctx.tx.execute(
        "UPDATE experiments SET last_beat_ms=?, stopped=0 WHERE key=?", (ctx.now, exp["key"])
    )
    return {
        "isAliveBeatDurationMillis": ctx.limits.beat_interval_ms,
        "gpuMonitorIntervalMillis": ctx.limits.gpu_monitor_ms,
        "cpuMonitorIntervalMillis": ctx.limits.cpu_monitor_ms,
    }


@route(
    "POST",
    "write/experiment/set-start-end-time",
    body={**EK, "startTimeMillis?": "i", "endTimeMillis?": "i"},
)
def set_start_end(ctx: Ctx) -> dict[str, Any]:
    """#25 Set start and/or end time; absent or null leaves a time unchanged."""
    exp = ctx.exp(ctx.body["experimentKey"])
    if ctx.body["startTimeMillis"] is not None:
        ctx.tx.execute(
            "UPDATE experiments SET start_ms=? WHERE key=?",
            (ctx.body["startTimeMillis"], exp["key"]),
        )
    if ctx.body["endTimeMillis"] is not None:
        ctx.tx.execute(
            "UPDATE experiments SET end_ms=? WHERE key=?", (ctx.body["endTimeMillis"], exp["key"])
        )
    return SAVED


@route(
    "POST", "write/experiment/log-other", body={**EK, "key": "s", "value": "v", "timestamp?": "i"}
)
def log_other(ctx: Ctx) -> dict[str, Any]:
    """#26 Log an "other" value; the key ``Name`` renames the experiment."""
    exp = ctx.exp(ctx.body["experimentKey"])
    key, value = ctx.body["key"], ctx.body["value"]
    ts = ctx.body["timestamp"] if ctx.body["timestamp"] is not None else ctx.now
    ctx.tx.execute(
        "INSERT INTO others (exp_key, name, value, ts) VALUES (?,?,?,?)",
        (exp["key"], key, dumps(value), ts),
    )
    if key == "Name":
        ctx.tx.execute("UPDATE experiments SET name=? WHERE key=?", (text_of(value), exp["key"]))
    ctx.touch(exp)
    return SAVED


@route(
    "POST",
    "write/experiment/parameter",
    body={**EK, "parameterName": "s", "parameterValue": "j", "step?": "i", "timestamp?": "i"},
)
def log_parameter(ctx: Ctx) -> dict[str, Any]:
    """#27 Log a parameter value (history kept by step; the latest wins)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    b = ctx.body
    try:
        value = json.dumps(b["parameterValue"], separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        raise bad("parameterValue", "not serialisable") from None
    ts = b["timestamp"] if b["timestamp"] is not None else ctx.now
    ctx.tx.execute(
        "INSERT INTO params (exp_key, name, value, ts, step) VALUES (?,?,?,?,?)",
        (exp["key"], b["parameterName"], value, ts, b["step"]),
    )
    ctx.touch(exp)
    return SAVED


def add_metric(
    ctx: Ctx,
    exp_key: str,
    name: str,
    value: float,
    ts: int | None,
    step: int | None,
    epoch: int | None,
    context: str | None,
    system: bool = False,
) -> None:
    """Store one metric point. A retried write is not stored twice: the client names each
    write with ``X-Comet-Request-Id`` and a repeat of the same request is answered from the
    request-id cache (see :mod:`.app`), so no per-point duplicate scan is needed."""
    ts = ts if ts is not None else ctx.now
    number = _finite(value)
    text = stored_text(number, value)
    series = series_ids(ctx.tx.conn, exp_key, (name,))[name]
    ctx.tx.execute(
        "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, system, "
        "series) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (exp_key, name, number, text, ts, step, epoch, context, int(system), series),
    )


def _finite(value: float) -> float | None:
    """The numeric column of a metric: NaN and infinities are kept only as text."""
    return value if value == value and value not in (float("inf"), float("-inf")) else None


@route("POST", "write/experiment/metric", body={**EK, "metricName": "s", "metricValue": "m", **T})
def log_metric(ctx: Ctx) -> dict[str, Any]:
    """#28 Log one metric point (NaN and infinities kept)."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    if not b["metricName"]:
        raise bad("metricName", "must not be empty")
    add_metric(
        ctx,
        exp["key"],
        b["metricName"],
        b["metricValue"],
        b["timestamp"],
        b["step"],
        b["epoch"],
        b["context"],
    )
    return SAVED


@route(
    "POST", "write/experiment/html", body={**EK, "html": "s", "override?": "b", "timestamp?": "i"}
)
def log_html(ctx: Ctx) -> dict[str, Any]:
    """#29 Append (default) or replace the experiment's HTML."""
    exp = ctx.exp(ctx.body["experimentKey"])
    old = ctx.get_value(exp["key"], "html")
    new = ctx.body["html"] if ctx.body["override"] or old is None else old + ctx.body["html"]
    ctx.set_value(exp["key"], "html", new)
    return SAVED


# -- assets -------------------------------------------------------------------------------------


def _parse_metadata(text: str | None, field_name: str, strict: bool) -> str | None:
    """Metadata as compact JSON text: plain JSON or base64 JSON; ``None`` if absent/ignored."""
    if text is None or text == "":
        return None
    candidates = [text]
    try:
        candidates.append(base64.b64decode(text + "=" * (-len(text) % 4), validate=False).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    try:
        candidates.append(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    for cand in candidates:
        try:
            value = json.loads(cand)
        except ValueError:
            continue
        if isinstance(value, dict):
            return dumps(value)
    if strict:
        raise bad(field_name, "expected a JSON object")
    return None


def _delete_asset(ctx: Ctx, row: sqlite3.Row) -> None:
    ctx.tx.execute("DELETE FROM assets WHERE id=?", (row["id"],))
    ctx.tx.execute("DELETE FROM asset_tags WHERE asset_id=?", (row["id"],))
    ctx.tx.drop_file(row["storage"])


def _next_seq(ctx: Ctx, table: str) -> int:
    return ctx.tx.row(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}")[0]


def _model_for(ctx: Ctx, exp_key: str, grouping: str) -> str:
    row = ctx.tx.one("SELECT id FROM exp_models WHERE exp_key=? AND name=?", (exp_key, grouping))
    if row:
        return row["id"]
    model_id = new_id()
    ctx.tx.execute(
        "INSERT INTO exp_models VALUES (?,?,?,?)", (model_id, exp_key, grouping, ctx.now)
    )
    return model_id


@route(
    "POST",
    "write/experiment/upload-asset",
    multipart=True,
    query={
        "experimentKey": "s",
        "fileName?": "s",
        "extension?": "s",
        "step?": "i",
        "epoch?": "i",
        "context?": "s",
        "type?": "s",
        "overwrite?": "b",
        "groupingName?": "s",
        "metadata?": "s",
    },
)
def upload_asset(ctx: Ctx) -> dict[str, Any]:
    """#30 Store an uploaded file; ``fileName`` is only a label, the file name is ours."""
    q = ctx.query
    exp = ctx.exp(q["experimentKey"])
    if "file" not in ctx.files:
        raise bad("file", "required multipart part")
    filename, data = ctx.files["file"]
    size = data.size
    name = q["fileName"] or filename
    if not name:
        raise bad("fileName", "required (no multipart filename either)")
    name = safe_asset_name(name)  # a label: never a path out of a download folder
    atype = q["type"] or "asset"
    grouping = q["groupingName"]
    if atype == "model-element" and not grouping:
        raise bad("groupingName", "required for type model-element")
    if "metadata" in ctx.form:
        metadata = _parse_metadata(ctx.form["metadata"], "metadata", strict=True)
    else:
        metadata = _parse_metadata(q["metadata"], "metadata", strict=False)
    if q["overwrite"]:
        drop_same_assets(ctx, exp["key"], name, atype)
    model_id = (
        _model_for(ctx, exp["key"], grouping) if atype == "model-element" and grouping else None
    )
    asset_id = insert_asset(
        ctx,
        exp["key"],
        name=name,
        atype=atype,
        extension=q["extension"],
        step=q["step"],
        epoch=q["epoch"],
        context=q["context"],
        size=size,
        metadata=metadata,
        storage=ctx.tx.write_file(data),
        grouping=grouping,
        model_id=model_id,
    )
    ctx.touch(exp)
    return {"msg": "Saved", "assetId": asset_id}


def drop_same_assets(ctx: Ctx, exp_key: str, name: str, atype: str) -> None:
    """The overwrite rule: an upload replaces the assets with the same name and type."""
    for old in ctx.tx.all(
        "SELECT * FROM assets WHERE exp_key=? AND file_name=? AND type=?", (exp_key, name, atype)
    ):
        _delete_asset(ctx, old)


def insert_asset(
    ctx: Ctx,
    exp_key: str,
    *,
    name: str,
    atype: str,
    extension: str | None,
    size: int,
    storage: str | None,
    asset_id: str | None = None,
    step: int | None = None,
    epoch: int | None = None,
    context: str | None = None,
    metadata: str | None = None,
    remote: bool = False,
    link: str | None = None,
    grouping: str | None = None,
    model_id: str | None = None,
    artifact_id: str | None = None,
    artifact_version_id: str | None = None,
) -> str:
    """One row of the assets table (every upload path stores through here); returns its id.

    ``extension`` is the client's (a leading dot dropped), else taken from ``name``.
    """
    if extension is None:
        base = name.rsplit("/", 1)[-1]
        extension = base.rsplit(".", 1)[1] if "." in base.strip(".") else None
    elif extension.startswith("."):
        extension = extension[1:]
    asset_id = asset_id or new_id()
    ctx.tx.execute(
        "INSERT INTO assets (id, exp_key, file_name, type, extension, step, epoch, context, size, "
        "created_at, metadata, remote, link, storage, grouping, model_id, artifact_id, "
        "artifact_version_id, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            asset_id,
            exp_key,
            name,
            atype,
            extension,
            step,
            epoch,
            context,
            size,
            ctx.now,
            metadata,
            int(remote),
            link,
            storage,
            grouping,
            model_id,
            artifact_id,
            artifact_version_id,
            _next_seq(ctx, "assets"),
        ),
    )
    return asset_id


@route(
    "POST",
    "write/experiment/assets/remote/batch",
    query={"experimentKey": "s"},
    body={
        "remoteAssets": [
            {
                "link": "s",
                "fileName": "s",
                "type?": "s",
                "assetId?": "s",
                "metadata?": "s",
                "artifactId?": "s",
                "artifactVersionId?": "s",
                "step?": "i",
                "context?": "s",
            }
        ]
    },
)
def remote_assets(ctx: Ctx) -> dict[str, Any]:
    """#48 Record remote assets (links, no bytes)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    for idx, item in enumerate(ctx.body["remoteAssets"]):
        metadata = _parse_metadata(item["metadata"], f"remoteAssets[{idx}].metadata", strict=True)
        asset_id = item["assetId"] or new_id()
        old = ctx.tx.one("SELECT * FROM assets WHERE id=?", (asset_id,))
        if old is not None:
            if old["exp_key"] != exp["key"]:
                raise ApiError(409, f"remoteAssets[{idx}].assetId: already used")
            _delete_asset(ctx, old)
        ctx.tx.execute(
            "INSERT INTO assets (id, exp_key, file_name, type, extension, step, epoch, context, size, "
            "created_at, metadata, remote, link, storage, grouping, model_id, artifact_id, "
            "artifact_version_id, seq) VALUES (?,?,?,?,NULL,?,NULL,?,0,?,?,1,?,NULL,NULL,NULL,?,?,?)",
            (
                asset_id,
                exp["key"],
                safe_asset_name(item["fileName"]),
                item["type"] or "asset",
                item["step"],
                item["context"],
                ctx.now,
                metadata,
                item["link"],
                item["artifactId"],
                item["artifactVersionId"],
                _next_seq(ctx, "assets"),
            ),
        )
    return OK


def _asset(ctx: Ctx, exp_key: str, asset_id: str) -> sqlite3.Row:
    exp = ctx.exp(exp_key)
    row = ctx.tx.one("SELECT * FROM assets WHERE id=? AND exp_key=?", (asset_id, exp["key"]))
    if row is None:
        other = ctx.tx.one("SELECT exp_key FROM assets WHERE id=?", (asset_id,))
        if other is not None:
            ctx.exp(other["exp_key"], "assetId")  # 403 if the asset lives in another workspace
        raise ApiError(404, f"assetId: unknown asset {asset_id!r}")
    return row


@route(
    ["GET", "POST"], "write/experiment/asset/delete", query={"experimentKey": "s", "assetId": "s"}
)
def asset_delete(ctx: Ctx) -> dict[str, Any]:
    """#49 Delete an asset (GET, as the SDK sends it, or POST)."""
    row = _asset(ctx, ctx.query["experimentKey"], ctx.query["assetId"])
    _delete_asset(ctx, row)
    return OK


@route("POST", "write/experiment/asset/tag", body={**EK, "assetId": "s", "tags": ["s"]})
def asset_tag(ctx: Ctx) -> dict[str, Any]:
    """#50 Add tags to an asset."""
    row = _asset(ctx, ctx.body["experimentKey"], ctx.body["assetId"])
    for tag in ctx.body["tags"]:
        ctx.tx.execute("INSERT OR IGNORE INTO asset_tags VALUES (?,?)", (row["id"], tag))
    return OK


@route(
    "GET",
    "write/experiment/asset/tag/delete",
    query={"experimentKey": "s", "assetId": "s", "tag": "s"},
)
def asset_tag_delete(ctx: Ctx) -> dict[str, Any]:
    """#51 Remove a tag from an asset."""
    row = _asset(ctx, ctx.query["experimentKey"], ctx.query["assetId"])
    ctx.tx.execute(
        "DELETE FROM asset_tags WHERE asset_id=? AND tag=?", (row["id"], ctx.query["tag"])
    )
    return OK


@route(
    "POST",
    "write/experiment/upload-text-sample",
    body={**EK, "content": "s", "step?": "i", "context?": "s", "metadata?": "j"},
)
def text_sample(ctx: Ctx) -> dict[str, Any]:
    """#31 Store a text sample."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    meta = b["metadata"]
    if isinstance(meta, dict):
        metadata: str | None = dumps(meta)
    elif isinstance(meta, str):
        metadata = _parse_metadata(meta, "metadata", strict=True)
    elif meta is None:
        metadata = None
    else:
        raise bad("metadata", "expected base64 JSON, JSON text or object")
    ctx.tx.execute(
        "INSERT INTO text_samples (exp_key, content, step, context, metadata, ts) "
        "VALUES (?,?,?,?,?,?)",
        (exp["key"], b["content"], b["step"], b["context"], metadata, ctx.now),
    )
    return SAVED


# -- git, code, output, system ----------------------------------------------------------------


def _as_patch_zip(data: bytes) -> bytes:
    """Keep a zip as sent; wrap a plain-text patch into the zip the SDK reads."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                zf.namelist()
            return data
        except zipfile.BadZipFile:
            pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("file", "expected a zip or a UTF-8 text patch") from None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("git_diff.patch", data)
    return buf.getvalue()


@route("POST", "write/experiment/git/patch", multipart=True, query=QEK)
def git_patch(ctx: Ctx) -> dict[str, Any]:
    """#32 Store the git patch (a zip, or plain text stored as that zip)."""
    exp = ctx.exp(ctx.query["experimentKey"])
    if "file" not in ctx.files:
        raise bad("file", "required multipart part")
    ctx.set_value(
        exp["key"],
        "git_patch",
        _as_patch_zip(ctx.files["file"][1].read(ctx.limits.max_json_bytes, "file")),
    )
    return SAVED


SYSTEM_KEYS: dict[str, Any] = {
    "user?": "s",
    "pythonVersion?": "s",
    "pythonVersionVerbose?": "s",
    "pid?": "i",
    "osType?": "s",
    "os?": "s",
    "ip?": "s",
    "hostname?": "s",
    "command?": ["s"],
    "executable?": "s",
    "networkInterfaceIps?": ["s"],
    "osPackages?": ["s"],
    "installedPackages?": ["s"],
    "gpuStaticInfoList?": ["o"],
    "logAdditionalSystemInfoList?": [{"key": "s", "value?": "j"}],
    "osRelease?": "s",
    "machine?": "s",
    "processor?": "s",
    "env?": "o",
}

_GPU_STATIC = (
    ("gpuIndex", "gpu_index", "i"),
    ("name", "name", "s"),
    ("uuid", "uuid", "s"),
    ("totalMemory", "total_memory", "i"),
    ("powerLimit", "power_limit", "i"),
)


def _gpu_static(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for idx, item in enumerate(items):
        norm: dict[str, Any] = {}
        for camel, snake, code in _GPU_STATIC:
            value = item.get(camel, item.get(snake))
            norm[camel] = (
                None if value is None else check(f"gpuStaticInfoList[{idx}].{camel}", code, value)
            )
        out.append(norm)
    return out


@route("POST", "write/experiment/system-details", body={**EK, **SYSTEM_KEYS})
def system_details(ctx: Ctx) -> dict[str, Any]:
    """#33 Partial update: given keys replace, extra-info items merge by ``key``."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    raw = ctx.get_value(exp["key"], "system_details")
    stored: dict[str, Any] = json.loads(raw) if raw else {}
    for key in SYSTEM_KEYS:
        name = key.rstrip("?")
        value = b[name]
        if value is None:
            continue
        if name == "gpuStaticInfoList":
            value = _gpu_static(value)
        if name == "logAdditionalSystemInfoList":
            merged = {item["key"]: item for item in stored.get(name, [])}
            for item in value:
                merged[item["key"]] = {"key": item["key"], "value": item["value"]}
            value = list(merged.values())
        stored[name] = value
    ctx.set_value(exp["key"], "system_details", dumps(stored))
    return SAVED


@route(
    "POST",
    "write/experiment/git/metadata",
    body={**EK, "user?": "s", "root?": "s", "branch?": "s", "parent?": "s", "origin?": "s"},
)
def git_metadata(ctx: Ctx) -> dict[str, Any]:
    """#34 Store git metadata."""
    exp = ctx.exp(ctx.body["experimentKey"])
    meta = {k: ctx.body[k] for k in ("user", "root", "branch", "parent", "origin")}
    ctx.set_value(exp["key"], "git_metadata", dumps(meta))
    return SAVED


@route(
    "POST",
    "write/experiment/output",
    body={
        **EK,
        "context?": "s",
        "runContext?": "s",
        "outputLines": [{"output": "s", "stderr?": "b", "localTimestamp?": "i", "offset": "i"}],
    },
)
def log_output(ctx: Ctx) -> dict[str, Any]:
    """#35 Store output lines. Lines of different requests may share an offset (the official
    SDK's ``log_output`` numbers each call from 0): all are kept. Only a true retry, a line with
    the same offset, stream, text and timestamp, is stored once. ``runContext`` wins over
    ``context`` (WIRE §3 #7)."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    context = b["runContext"] if b["runContext"] is not None else b["context"]
    for line in sorted(b["outputLines"], key=lambda item: item["offset"]):
        stderr = int(bool(line["stderr"]))
        args = (exp["key"], line["offset"], line["output"], stderr, line["localTimestamp"])
        if ctx.tx.one(
            "SELECT 1 FROM output WHERE exp_key=? AND offset=? AND text=? AND stderr=? AND ts IS ?",
            args,
        ):
            continue
        ctx.tx.execute(
            "INSERT INTO output (exp_key, offset, text, stderr, ts, context) VALUES (?,?,?,?,?,?)",
            (*args, context),
        )
    return SAVED


@route("POST", "write/experiment/graph", body={**EK, "graph": "s"})
def log_graph(ctx: Ctx) -> dict[str, Any]:
    """#36 Store the model graph."""
    exp = ctx.exp(ctx.body["experimentKey"])
    ctx.set_value(exp["key"], "graph", ctx.body["graph"])
    return SAVED


@route("POST", "write/experiment/code", body={**EK, "code": "s"})
def log_code(ctx: Ctx) -> dict[str, Any]:
    """#37 Store the source code."""
    exp = ctx.exp(ctx.body["experimentKey"])
    ctx.set_value(exp["key"], "code", ctx.body["code"])
    return SAVED


@route("POST", "write/experiment/tags", body={**EK, "addedTags?": ["s"]})
def add_tags(ctx: Ctx) -> dict[str, Any]:
    """#38 Add tags (set semantics, first-added order)."""
    exp = ctx.exp(ctx.body["experimentKey"])
    for tag in ctx.body["addedTags"] or []:
        if not ctx.tx.one("SELECT 1 FROM tags WHERE exp_key=? AND tag=?", (exp["key"], tag)):
            ctx.tx.execute(
                "INSERT INTO tags VALUES (?,?,?)", (exp["key"], tag, _next_seq(ctx, "tags"))
            )
    ctx.touch(exp)
    return SAVED


@route("POST", "write/experiment/cloud-details", body={**EK, "provider": "s", "metadata": "o"})
def cloud_details(ctx: Ctx) -> dict[str, Any]:
    """#39 Store cloud details."""
    exp = ctx.exp(ctx.body["experimentKey"])
    ctx.set_value(
        exp["key"],
        "cloud_details",
        dumps({"provider": ctx.body["provider"], "metadata": ctx.body["metadata"]}),
    )
    return OK


@route("POST", "write/experiment/file-path", body={**EK, "filePath": "s"})
def file_path(ctx: Ctx) -> dict[str, Any]:
    """#40 Store the script path."""
    exp = ctx.exp(ctx.body["experimentKey"])
    ctx.tx.execute(
        "UPDATE experiments SET file_path=? WHERE key=?", (ctx.body["filePath"], exp["key"])
    )
    return OK


# -- system metrics (stored as metrics under the SDK's names) ----------------------------------


def _sys(ctx: Ctx, exp_key: str, name: str, value: float) -> None:
    b = ctx.body
    add_metric(
        ctx,
        exp_key,
        name,
        float(value),
        b["timestamp"],
        b["step"],
        b["epoch"],
        b["context"],
        system=True,
    )


@route(
    "POST",
    "write/experiment/gpu-metrics",
    body={
        **EK,
        "gpus": [
            {
                "gpuId": "i",
                "freeMemory": "i",
                "usedMemory": "i",
                "gpuUtilization": "i",
                "totalMemory": "i",
            }
        ],
        **T,
    },
)
def gpu_metrics(ctx: Ctx) -> dict[str, Any]:
    """#41 GPU samples → ``sys.gpu.<id>.*`` metrics."""
    exp = ctx.exp(ctx.body["experimentKey"])
    for gpu in ctx.body["gpus"]:
        prefix = f"sys.gpu.{gpu['gpuId']}."
        _sys(ctx, exp["key"], prefix + "free_memory", gpu["freeMemory"])
        _sys(ctx, exp["key"], prefix + "used_memory", gpu["usedMemory"])
        _sys(ctx, exp["key"], prefix + "gpu_utilization", gpu["gpuUtilization"])
        _sys(ctx, exp["key"], prefix + "total_memory", gpu["totalMemory"])
    return SAVED


@route("POST", "write/experiment/ram-metrics", body={**EK, "totalRam": "i", "usedRam": "i", **T})
def ram_metrics(ctx: Ctx) -> dict[str, Any]:
    """#42 RAM sample → ``sys.ram.total`` and ``sys.ram.used``."""
    exp = ctx.exp(ctx.body["experimentKey"])
    _sys(ctx, exp["key"], "sys.ram.total", ctx.body["totalRam"])
    _sys(ctx, exp["key"], "sys.ram.used", ctx.body["usedRam"])
    return SAVED


@route("POST", "write/experiment/cpu-metrics", body={**EK, "cpuPercentUtilization": ["n"], **T})
def cpu_metrics(ctx: Ctx) -> dict[str, Any]:
    """#43 CPU sample → ``sys.cpu.percent.avg`` plus ``sys.cpu.percent.NN`` per CPU."""
    exp = ctx.exp(ctx.body["experimentKey"])
    values = ctx.body["cpuPercentUtilization"]
    if not values:
        raise bad("cpuPercentUtilization", "must not be empty")
    _sys(ctx, exp["key"], "sys.cpu.percent.avg", sum(values) / len(values))
    for idx, value in enumerate(values):
        _sys(ctx, exp["key"], f"sys.cpu.percent.{idx + 1:02d}", value)
    return SAVED


@route("POST", "write/experiment/load-metrics", body={**EK, "loadAverage": "n", **T})
def load_metrics(ctx: Ctx) -> dict[str, Any]:
    """#44 Load average → ``sys.load.avg``."""
    exp = ctx.exp(ctx.body["experimentKey"])
    _sys(ctx, exp["key"], "sys.load.avg", ctx.body["loadAverage"])
    return SAVED


# -- artifacts, viz, templates ----------------------------------------------------------------


@route(
    "POST",
    "write/artifacts/upsert",
    body={
        "artifactName": "s",
        **EK,
        "artifactType": "s",
        "version?": "s",
        "isPublic?": "b",
        "versionMetadata?": "s",
        "alias?": ["s"],
        "versionTags?": ["s"],
    },
)
def artifact_upsert(ctx: Ctx) -> dict[str, Any]:
    """#45 Create an artifact version (next major version unless one is given)."""
    b = ctx.body
    exp = ctx.exp(b["experimentKey"])
    ws = exp["workspace"]
    art = ctx.tx.one(
        "SELECT * FROM artifacts WHERE workspace=? AND name=?", (ws, b["artifactName"])
    )
    if art is None:
        art_id = new_id()
        ctx.tx.execute(
            "INSERT INTO artifacts VALUES (?,?,?,?,?)",
            (art_id, ws, b["artifactName"], b["artifactType"], int(bool(b["isPublic"]))),
        )
    else:
        art_id = art["id"]
    versions = [
        r["version"]
        for r in ctx.tx.all(
            "SELECT version FROM artifact_versions WHERE artifact_id=? ORDER BY created_at, rowid",
            (art_id,),
        )
    ]
    previous = versions[-1] if versions else None
    if b["version"] is not None:
        version = check_semver(b["version"])
        if version in versions:
            raise ApiError(
                409, f"version: {version} already exists for artifact {b['artifactName']!r}"
            )
    else:
        majors = [int(v.split(".")[0]) for v in versions if SEMVER.match(v)]
        version = f"{max(majors, default=0) + 1}.0.0"
    metadata = _parse_metadata(b["versionMetadata"], "versionMetadata", strict=True)
    vid = new_id()
    ctx.tx.execute(
        "INSERT INTO artifact_versions VALUES (?,?,?,?,?,?,?,?,?)",
        (
            vid,
            art_id,
            version,
            exp["key"],
            "OPEN",
            metadata,
            dumps(b["alias"] or []),
            dumps(b["versionTags"] or []),
            ctx.now,
        ),
    )
    return {
        "artifactId": art_id,
        "artifactVersionId": vid,
        "currentVersion": version,
        "previousVersion": previous,
    }


@route(
    "POST",
    "write/artifacts/state",
    body={**EK, "artifactVersionId": "s", "state": "s", "isPublic?": "b"},
)
def artifact_state(ctx: Ctx) -> dict[str, Any]:
    """#46 Close (or fail) an artifact version."""
    b = ctx.body
    ctx.exp(b["experimentKey"])
    if b["state"] not in ("CLOSED", "ERROR"):
        raise bad("state", "expected CLOSED or ERROR")
    row = ctx.tx.one(
        "SELECT v.id, a.workspace FROM artifact_versions v JOIN artifacts a "
        "ON a.id = v.artifact_id WHERE v.id=?",
        (b["artifactVersionId"],),
    )
    if row is None:
        raise ApiError(404, "artifactVersionId: unknown artifact version")
    ctx.ws(row["workspace"])
    ctx.tx.execute("UPDATE artifact_versions SET state=? WHERE id=?", (b["state"], row["id"]))
    return OK


@route(
    "POST",
    "write/viz-instance/store/save",
    body={"instanceId": "s", "projectId": "s", "store": "s"},
)
def viz_store(ctx: Ctx) -> dict[str, Any]:
    """#47 Store a visualization instance's state."""
    project = ctx.project_by_id(ctx.body["projectId"])
    ctx.tx.execute(
        "INSERT OR REPLACE INTO viz_store VALUES (?,?,?)",
        (ctx.body["instanceId"], project["id"], ctx.body["store"]),
    )
    return {"msg": "Stored"}


@route("POST", "write/template/upload")
def template_upload(ctx: Ctx) -> dict[str, Any]:
    """#52 Body undefined by the document: accepted and acknowledged."""
    return OK


@route("POST", "write/experiment/rpc/send")
def rpc_send(ctx: Ctx) -> dict[str, Any]:
    """#53 Body undefined by the document: accepted and acknowledged."""
    return OK


# -- webhooks, service accounts, keys, members ----------------------------------------------


WEBHOOK_BODY = {
    "webhookConfigs": [
        {"workspaceName": "s", "modelName?": "s", "webhookUrls": [{"url": "s", "header?": "o"}]}
    ]
}


def _webhooks(ctx: Ctx, replace: bool) -> None:
    configs = ctx.body["webhookConfigs"]
    for idx, cfg in enumerate(configs):
        if cfg["workspaceName"] not in ctx.me.workspaces:
            raise ApiError(403, f"webhookConfigs[{idx}].workspaceName: no access")
        for jdx, item in enumerate(cfg["webhookUrls"]):
            if not item["url"].lower().startswith(("http://", "https://")):
                raise bad(f"webhookConfigs[{idx}].webhookUrls[{jdx}].url", "expected http(s) URL")
    if replace:
        for ws in {cfg["workspaceName"] for cfg in configs}:
            ctx.tx.execute("DELETE FROM webhooks WHERE workspace=?", (ws,))
    for cfg in configs:
        model = normalise_name(cfg["modelName"], "modelName") if cfg["modelName"] else ""
        for item in cfg["webhookUrls"]:
            headers = {str(k): str(v) for k, v in (item["header"] or {}).items()}
            ctx.tx.execute(
                "INSERT OR REPLACE INTO webhooks VALUES (?,?,?,?)",
                (cfg["workspaceName"], model, item["url"], dumps(headers)),
            )


@route("POST", "webhooks/config", body=WEBHOOK_BODY)
def webhooks_merge(ctx: Ctx) -> None:
    """#54 Merge webhook configurations (204)."""
    _webhooks(ctx, replace=False)


@route("PUT", "webhooks/config", body=WEBHOOK_BODY)
def webhooks_replace(ctx: Ctx) -> None:
    """#55 Replace the configuration of the workspaces given (204)."""
    _webhooks(ctx, replace=True)


def _no_service_key(ctx: Ctx, what: str) -> None:
    """403 for a service account's key: key management belongs to the owning user."""
    if ctx.me.is_service:
        raise ApiError(403, f"Authorization: a service account {what}; its owning user's key can")


def _human_owner(ctx: Ctx) -> str:
    if ctx.me.is_service:
        return ctx.tx.row("SELECT created_by FROM users WHERE id=?", (ctx.me.user_id,))[
            "created_by"
        ]
    return ctx.me.user_id


@route(
    "POST",
    "write/service-account",
    body={"name": "s", "teamName": "s", "organizationName": "s", "authorizedWorkspaces?": ["s"]},
)
def service_account(ctx: Ctx) -> dict[str, Any]:
    """#56/#57 Create a service account; ``authorizedWorkspaces`` limits it.

    Only a user creates service accounts (never a service account: a key cannot mint a
    key), and only with rights within their own: every authorized workspace, and the
    team, must be one of the caller's.
    """
    b = ctx.body
    _no_service_key(ctx, "may not create service accounts")
    ctx.ws(b["teamName"])
    authorized = b["authorizedWorkspaces"]
    for idx, ws in enumerate(authorized or []):
        if ws not in ctx.me.workspaces:
            raise ApiError(403, f"authorizedWorkspaces[{idx}]: no access to workspace {ws!r}")
    if ctx.tx.one("SELECT 1 FROM users WHERE name=?", (b["name"],)):
        raise ApiError(409, f"name: {b['name']!r} already exists")
    user_id = ctx.tx.add_user(
        b["name"],
        b["teamName"],
        is_service=True,
        created_by=_human_owner(ctx),
        authorized=None if authorized is None else dumps(authorized),
        organization=b["organizationName"],
    )
    key = ctx.tx.add_key(user_id)
    return {
        "apiKey": key,
        "authorizedWorkspaces": authorized,
        "createdAt": ctx.now,
        "createdBy": ctx.me.name,
        "defaultWorkspaceName": b["teamName"],
        "deleted": False,
        "hasGlobalAccess": authorized is None,
        "lastActivityAt": ctx.now,
        "name": b["name"],
        "organizationId": b["organizationName"],
    }


@route("GET", "write/api/rotate", query={"userName": "s"})
def rotate_key(ctx: Ctx) -> dict[str, Any]:
    """#58 Rotate a user's own key, or the key of a service account that user owns; the
    old key dies now. Service accounts' keys rotate nothing (not even their own): a
    restricted key must never obtain another key."""
    _no_service_key(ctx, "may not rotate keys")
    user = ctx.tx.one("SELECT * FROM users WHERE name=?", (ctx.query["userName"],))
    if user is None:
        raise ApiError(404, f"userName: unknown user {ctx.query['userName']!r}")
    if user["id"] != ctx.me.user_id and not (
        user["is_service"] and user["created_by"] == ctx.me.user_id
    ):
        raise ApiError(403, "userName: may not rotate this user's key")
    ctx.tx.drop_keys(user["id"])
    return {"apiKey": ctx.tx.add_key(user["id"])}


@route(
    "POST",
    "write/add-workspace-member",
    body={"userName": "s", "workspaceName": "s", "admin?": "b"},
)
def add_member(ctx: Ctx) -> dict[str, Any]:
    """#59 Add a user to a workspace (the caller must be an admin of it)."""
    ws = ctx.body["workspaceName"]
    ctx.ws(ws)
    me = ctx.tx.one(
        "SELECT admin FROM members WHERE workspace=? AND user_id=?", (ws, _human_owner(ctx))
    )
    if me is None or not me["admin"]:
        raise ApiError(403, "workspaceName: only workspace admins may add members")
    user = ctx.tx.one("SELECT id FROM users WHERE name=?", (ctx.body["userName"],))
    if user is None:
        raise ApiError(404, f"userName: unknown user {ctx.body['userName']!r}")
    ctx.tx.execute(
        "INSERT OR REPLACE INTO members VALUES (?,?,?)",
        (ws, user["id"], int(bool(ctx.body["admin"]))),
    )
    return {"msg": "added"}
