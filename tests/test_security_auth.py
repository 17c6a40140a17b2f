"""Authorization matrix over every endpoint family (extends ``tests/server/test_server_auth.py``).

Principals that must be refused: no key, an unknown key, a rotated (old) key, another
workspace's user, and a service account restricted to another workspace. For every endpoint
family — experiment writes, metrics/parameters, assets (upload/list/get/delete/tag), projects,
registry, webhooks, account administration, reads — each request is refused with 401/403, the
answer carries no data (only ``{"msg", "code"}``), and nothing changed: the whole database is
compared after each refused write, the owner reads the experiment back after each family of
writes, and the asset files on disk are compared at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

REST = "/api/rest/v2/"


@dataclass
class World:
    """The owner's data every refused request aims at."""

    server: ServerHandle
    key: str  # experiment in workspace "local"
    project_id: str
    asset_id: str
    model_id: str  # experiment model id
    item_id: str  # registry item id
    registry_id: str
    keys: dict[str, str | None]  # principal -> Authorization value


def call(
    srv: ServerHandle, auth: str | None, method: str, path: str, **kw: Any
) -> requests.Response:
    headers = {"Authorization": auth} if auth is not None else {}
    return requests.request(method, srv.url + REST + path, headers=headers, timeout=10, **kw)


def ok(resp: requests.Response) -> Any:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return resp.json()


@pytest.fixture
def world(comet_server: ServerHandle) -> World:
    srv, admin = comet_server, comet_server.api_key

    def post(path: str, body: Any) -> Any:
        return ok(call(srv, admin, "POST", path, json=body))

    key = post("write/experiment/create", {"workspaceName": "local", "projectName": "owned"})[
        "experimentKey"
    ]
    project_id = ok(call(srv, admin, "GET", "experiment/metadata", params={"experimentKey": key}))[
        "projectId"
    ]
    post("write/experiment/metric", {"experimentKey": key, "metricName": "m", "metricValue": 1})
    post(
        "write/experiment/parameter",
        {"experimentKey": key, "parameterName": "p", "parameterValue": "v"},
    )
    post("write/experiment/log-other", {"experimentKey": key, "key": "o", "value": "x"})
    post("write/experiment/code", {"experimentKey": key, "code": "print(1)"})
    asset_id = ok(
        call(
            srv,
            admin,
            "POST",
            "write/experiment/upload-asset",
            params={"experimentKey": key},
            files={"file": ("a.txt", b"owner data")},
        )
    )["assetId"]
    ok(
        call(
            srv,
            admin,
            "POST",
            "write/experiment/upload-asset",
            params={"experimentKey": key, "type": "model-element", "groupingName": "net"},
            files={"file": ("w.bin", b"weights")},
        )
    )
    model_id = ok(call(srv, admin, "GET", "experiment/model", params={"experimentKey": key}))[
        "models"
    ][0]["experimentModelId"]
    reg = post(
        "write/registry-model",
        {"experimentModelId": model_id, "registryModelName": "net", "version": "1.0.0"},
    )
    item_id = reg["registryModelItemId"]
    details = ok(
        call(
            srv,
            admin,
            "GET",
            "registry-model/details",
            params={"workspaceName": "local", "modelName": "net"},
        )
    )
    registry_id = details["registryModelId"]
    # principals
    post("write/workspace/new", {"name": "second"})
    restricted = post(
        "write/service-account",
        {
            "name": "ci-second",
            "teamName": "local",
            "organizationName": "org",
            "authorizedWorkspaces": ["second"],
        },
    )["apiKey"]
    old = post(
        "write/service-account",
        {
            "name": "ci-rotated",
            "teamName": "local",
            "organizationName": "org",
            "authorizedWorkspaces": ["local"],
        },
    )["apiKey"]
    assert call(srv, old, "GET", "experiment/metadata", params={"experimentKey": key}).ok
    ok(call(srv, admin, "GET", "write/api/rotate", params={"userName": "ci-rotated"}))
    other = srv.create_user("mallory")
    keys: dict[str, str | None] = {
        "no key": None,
        "empty key": "",
        "unknown key": "not-a-key-" + "x" * 20,
        "rotated key": old,
        "other workspace": other,
        "restricted service account": restricted,
    }
    return World(srv, key, project_id, asset_id, model_id, item_id, registry_id, keys)


# (family, method, path, request kwargs built from the world) — every one targets owner data
Req = tuple[str, str, str, Callable[[World], dict[str, Any]]]


def _ek(w: World, **extra: Any) -> dict[str, Any]:
    return {"json": {"experimentKey": w.key, **extra}}


def _q(**extra: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: {
        "params": {
            k: (getattr(w, v[1:]) if isinstance(v, str) and v.startswith("@") else v)
            for k, v in extra.items()
        }
    }


WRITES: list[Req] = [
    (
        "experiment",
        "POST",
        "write/experiment/create",
        lambda w: {"json": {"workspaceName": "local", "projectName": "owned"}},
    ),
    ("experiment", "GET", "write/experiment/stop", _q(experimentKey="@key")),
    ("experiment", "GET", "write/experiment/archive", _q(experimentKey="@key")),
    ("experiment", "GET", "write/experiment/delete", _q(experimentKey="@key")),
    ("experiment", "GET", "write/experiment/set-status", _q(experimentKey="@key")),
    (
        "experiment",
        "POST",
        "write/experiment/set-start-end-time",
        lambda w: _ek(w, endTimeMillis=1),
    ),
    ("experiment", "POST", "write/experiment/log-other", lambda w: _ek(w, key="o", value="evil")),
    ("experiment", "POST", "write/experiment/tags", lambda w: _ek(w, addedTags=["evil"])),
    ("experiment", "POST", "write/experiment/html", lambda w: _ek(w, html="<b>evil</b>")),
    (
        "experiment",
        "POST",
        "write/experiment/output",
        lambda w: _ek(w, outputLines=[{"output": "evil\n", "offset": 99}]),
    ),
    ("experiment", "POST", "write/experiment/code", lambda w: _ek(w, code="evil")),
    ("experiment", "POST", "write/experiment/graph", lambda w: _ek(w, graph="evil")),
    ("experiment", "POST", "write/experiment/system-details", lambda w: _ek(w, hostname="evil")),
    ("experiment", "POST", "write/experiment/git/metadata", lambda w: _ek(w, branch="evil")),
    ("experiment", "POST", "write/experiment/file-path", lambda w: _ek(w, filePath="/evil.py")),
    (
        "experiment",
        "POST",
        "write/experiment/move",
        lambda w: {
            "json": {
                "targetWorkspaceName": "local",
                "targetProjectName": "elsewhere",
                "experimentKeys": [w.key],
                "symlink": False,
            }
        },
    ),
    (
        "metrics",
        "POST",
        "write/experiment/metric",
        lambda w: _ek(w, metricName="m", metricValue=666),
    ),
    (
        "metrics",
        "POST",
        "write/experiment/parameter",
        lambda w: _ek(w, parameterName="p", parameterValue="evil"),
    ),
    (
        "metrics",
        "POST",
        "write/experiment/cpu-metrics",
        lambda w: _ek(w, cpuPercentUtilization=[1.0]),
    ),
    ("metrics", "POST", "write/experiment/upload-text-sample", lambda w: _ek(w, content="evil")),
    (
        "assets",
        "POST",
        "write/experiment/upload-asset",
        lambda w: {"params": {"experimentKey": w.key}, "files": {"file": ("evil.txt", b"evil")}},
    ),
    (
        "assets",
        "POST",
        "write/experiment/upload-asset",
        lambda w: {
            "params": {"experimentKey": w.key, "fileName": "a.txt", "overwrite": "true"},
            "files": {"file": ("a.txt", b"evil")},
        },
    ),
    (
        "assets",
        "POST",
        "write/experiment/assets/remote/batch",
        lambda w: {
            "params": {"experimentKey": w.key},
            "json": {"remoteAssets": [{"link": "s3://evil", "fileName": "evil"}]},
        },
    ),
    (
        "assets",
        "GET",
        "write/experiment/asset/delete",
        _q(experimentKey="@key", assetId="@asset_id"),
    ),
    (
        "assets",
        "POST",
        "write/experiment/asset/tag",
        lambda w: _ek(w, assetId=w.asset_id, tags=["evil"]),
    ),
    (
        "projects",
        "POST",
        "write/project/create",
        lambda w: {"json": {"workspaceName": "local", "projectName": "evil"}},
    ),
    (
        "projects",
        "POST",
        "write/project/update",
        lambda w: {"json": {"projectId": w.project_id, "newProjectName": "evil"}},
    ),
    (
        "projects",
        "POST",
        "write/project/notes",
        lambda w: {"json": {"projectId": w.project_id, "notes": "evil"}},
    ),
    ("projects", "GET", "write/project/add-share-link", _q(projectId="@project_id")),
    (
        "projects",
        "POST",
        "write/project/delete",
        lambda w: {"json": {"projectId": w.project_id, "deleteAllExperiments": True}},
    ),
    (
        "registry",
        "POST",
        "write/registry-model",
        lambda w: {
            "json": {
                "experimentModelId": w.model_id,
                "registryModelName": "evil",
                "version": "1.0.0",
            }
        },
    ),
    (
        "registry",
        "POST",
        "write/registry-model/item",
        lambda w: {
            "json": {
                "experimentModelId": w.model_id,
                "registryModelName": "net",
                "version": "9.9.9",
            }
        },
    ),
    (
        "registry",
        "POST",
        "write/registry-model/item/update",
        lambda w: {"json": {"registryModelItemId": w.item_id, "comment": "evil"}},
    ),
    (
        "registry",
        "GET",
        "write/registry-model/item/stage",
        _q(modelItemId="@item_id", stage="evil"),
    ),
    ("registry", "GET", "write/registry-model/item/delete", _q(modelItemId="@item_id")),
    (
        "registry",
        "POST",
        "write/registry-model/update",
        lambda w: {"json": {"registryModelId": w.registry_id, "description": "evil"}},
    ),
    (
        "registry",
        "POST",
        "write/registry-model/notes",
        lambda w: {"json": {"workspaceName": "local", "registryModelName": "net", "notes": "evil"}},
    ),
    ("registry", "GET", "write/registry-model/delete", _q(workspaceName="local", modelName="net")),
    (
        "webhooks",
        "POST",
        "webhooks/config",
        lambda w: {
            "json": {
                "webhookConfigs": [
                    {"workspaceName": "local", "webhookUrls": [{"url": "http://127.0.0.1:9/evil"}]}
                ]
            }
        },
    ),
    (
        "webhooks",
        "PUT",
        "webhooks/config",
        lambda w: {"json": {"webhookConfigs": [{"workspaceName": "local", "webhookUrls": []}]}},
    ),
    (
        "admin",
        "POST",
        "write/service-account",
        lambda w: {
            "json": {
                "name": "evil",
                "teamName": "local",
                "organizationName": "org",
                "authorizedWorkspaces": ["local"],
            }
        },
    ),
    (
        "admin",
        "POST",
        "write/add-workspace-member",
        lambda w: {"json": {"userName": "mallory", "workspaceName": "local", "admin": True}},
    ),
    ("admin", "GET", "write/api/rotate", _q(userName="local")),
]

READS: list[Req] = [
    ("reads", "GET", "experiment/metadata", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/metrics/get-metric", _q(experimentKey="@key", metricName="m")),
    ("reads", "GET", "experiment/metrics/summary", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/parameters", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/log-other", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/tags", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/code", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/output", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/system-details", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/git/metadata", _q(experimentKey="@key")),
    ("reads", "GET", "experiment/model", _q(experimentKey="@key")),
    ("assets", "GET", "experiment/asset/list", _q(experimentKey="@key")),
    ("assets", "GET", "experiment/asset/get-asset", _q(experimentKey="@key", assetId="@asset_id")),
    ("projects", "GET", "projects", _q(workspaceName="local")),
    ("projects", "GET", "project", _q(projectId="@project_id")),
    ("projects", "GET", "experiments", _q(workspaceName="local", projectName="owned")),
    ("registry", "GET", "registry-model", _q(workspaceName="local")),
    ("registry", "GET", "registry-model/details", _q(workspaceName="local", modelName="net")),
    ("registry", "GET", "registry-model/notes", _q(workspaceName="local", modelName="net")),
]


def db_snapshot(srv: ServerHandle) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (read through a second connection: WAL allows it)."""
    conn = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}
    finally:
        conn.close()


def owner_view(reader: Reader, w: World) -> dict[str, Any]:
    """What the owner reads back about the experiment (time-dependent fields dropped)."""
    meta = reader.metadata(w.key)
    for volatile in ("durationMillis", "running", "hasCrashed"):
        meta.pop(volatile, None)
    return {
        "meta": meta,
        "metrics": reader.metrics(w.key, "m"),
        "params": reader.parameters(w.key),
        "others": reader.others(w.key),
        "tags": reader.tags(w.key),
        "assets": reader.assets(w.key),
        "asset": reader.get_asset(w.key, w.asset_id),
        "code": reader.code(w.key),
        "registry": reader.registry_details("local", "net"),
    }


@pytest.mark.parametrize(
    "who",
    [
        "no key",
        "empty key",
        "unknown key",
        "rotated key",
        "other workspace",
        "restricted service account",
    ],
)
def test_refused_everywhere_and_nothing_changes(who: str, world: World) -> None:
    srv = world.server
    auth = world.keys[who]
    expected = 401 if who in ("no key", "empty key", "unknown key", "rotated key") else 403
    reader = Reader(srv.url, srv.api_key)
    try:
        before_db = db_snapshot(srv)
        before_view = owner_view(reader, world)
        before_files = sorted(p.name for p in srv.assets_dir.rglob("*"))
        wrong: list[str] = []
        last_family = ""
        for family, method, path, build in WRITES + READS:
            resp = call(srv, auth, method, path, **build(world))
            label = f"[{family}] {method} {path}"
            if resp.status_code != expected:
                wrong.append(f"{label}: {resp.status_code} {resp.text[:150]}")
                continue
            body = resp.json()
            if set(body) != {"msg", "code"}:  # an error answer carries no data
                wrong.append(f"{label}: answer carries data {body}")
            if (family, method, path, build) in WRITES:
                if db_snapshot(srv) != before_db:
                    wrong.append(f"{label}: the database changed")
                    before_db = db_snapshot(srv)
                if family != last_family and owner_view(reader, world) != before_view:
                    wrong.append(f"[{last_family}]: the owner sees a change")
                last_family = family
        if owner_view(reader, world) != before_view:
            wrong.append("the owner sees a change at the end")
        if sorted(p.name for p in srv.assets_dir.rglob("*")) != before_files:
            wrong.append("asset files changed on disk")
        assert not wrong, "\n".join(wrong)
    finally:
        reader.close()


def test_allowed_principals_still_work(world: World) -> None:
    """The matrix is not vacuous: the owner and a service account for ``local`` get through."""
    srv = world.server
    sa = ok(
        call(
            srv,
            srv.api_key,
            "POST",
            "write/service-account",
            json={
                "name": "ci-local",
                "teamName": "local",
                "organizationName": "org",
                "authorizedWorkspaces": ["local"],
            },
        )
    )["apiKey"]
    for auth in (srv.api_key, sa, srv.api_key + "*eyJ4IjoxfQ"):
        for _, method, path, build in READS:
            resp = call(srv, auth, method, path, **build(world))
            assert resp.status_code == 200, (path, resp.status_code, resp.text)
    resp = call(
        srv,
        sa,
        "POST",
        "write/experiment/metric",
        json={"experimentKey": world.key, "metricName": "m", "metricValue": 2},
    )
    assert resp.status_code == 200
    # the rotated service account's NEW key works where the old one is refused
    new = ok(call(srv, srv.api_key, "GET", "write/api/rotate", params={"userName": "ci-rotated"}))
    assert (
        call(
            srv, new["apiKey"], "GET", "experiment/metadata", params={"experimentKey": world.key}
        ).status_code
        == 200
    )


# -- key management: no key obtains more rights than it has -----------------------------------

#: (action, method, path, request kwargs): every endpoint that creates or replaces a key.
KEY_ACTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "create global SA",
        "POST",
        "write/service-account",
        {"json": {"name": "new-global", "teamName": "local", "organizationName": "o"}},
    ),
    (
        "create SA for local",
        "POST",
        "write/service-account",
        {
            "json": {
                "name": "new-local",
                "teamName": "local",
                "organizationName": "o",
                "authorizedWorkspaces": ["local"],
            }
        },
    ),
    (
        "create SA for second",
        "POST",
        "write/service-account",
        {
            "json": {
                "name": "new-second",
                "teamName": "second",
                "organizationName": "o",
                "authorizedWorkspaces": ["second"],
            }
        },
    ),
    ("rotate sibling SA", "GET", "write/api/rotate", {"params": {"userName": "sibling"}}),
    ("rotate admin", "GET", "write/api/rotate", {"params": {"userName": "local"}}),
    ("rotate other user", "GET", "write/api/rotate", {"params": {"userName": "bob"}}),
]

#: Who may do what: only a user manages keys, and only within their own rights and their
#: own service accounts. Any other cell is a refusal (403).
KEY_ALLOWED = {
    ("owner", "create global SA"),
    ("owner", "create SA for local"),
    ("owner", "create SA for second"),
    ("owner", "rotate sibling SA"),
    ("owner", "rotate admin"),  # its own key
    ("other user", "rotate other user"),  # its own key
}


@pytest.mark.parametrize(
    "who", ["owner", "restricted SA", "global SA", "sibling SA", "other user", "other user's SA"]
)
def test_key_management_matrix(who: str, comet_server: ServerHandle) -> None:
    """A service account restricted to one workspace used to create a global service
    account and rotate its sibling's key (receiving a key with global access). Now only the
    owning user creates or rotates service-account keys, within that user's rights; a
    refused request changes nothing and the victims' keys keep working."""
    srv, admin = comet_server, comet_server.api_key
    ok(call(srv, admin, "POST", "write/workspace/new", json={"name": "second"}))

    def service_account(auth: str, name: str, authorized: list[str] | None) -> str:
        body: dict[str, Any] = {"name": name, "teamName": "local", "organizationName": "o"}
        if authorized is not None:
            body["authorizedWorkspaces"] = authorized
        return ok(call(srv, auth, "POST", "write/service-account", json=body))["apiKey"]

    bob = srv.create_user("bob")
    keys = {
        "owner": admin,
        "restricted SA": service_account(admin, "restricted", ["second"]),
        "global SA": service_account(admin, "global", None),
        "sibling SA": service_account(admin, "sibling", ["local"]),
        "other user": bob,
    }
    keys["other user's SA"] = ok(
        call(
            srv,
            bob,
            "POST",
            "write/service-account",
            json={"name": "bobs", "teamName": "bob", "organizationName": "o"},
        )
    )["apiKey"]
    wrong: list[str] = []
    for action, method, path, kw in KEY_ACTIONS:
        # fresh principals' keys for every action (an allowed rotation replaces one)
        live = {
            name: key
            for name, key in keys.items()
            if call(srv, key, "GET", "workspaces").status_code == 200
        }
        if set(live) != set(keys):
            wrong.append(f"before {action}: keys stopped working: {sorted(set(keys) - set(live))}")
            break
        before = db_snapshot(srv)
        resp = call(srv, keys[who], method, path, **kw)
        allowed = (who, action) in KEY_ALLOWED
        if allowed:
            if resp.status_code != 200 or "apiKey" not in resp.json():
                wrong.append(
                    f"{action}: expected 200 with a key, got {resp.status_code} {resp.text}"
                )
                continue
            new_key = resp.json()["apiKey"]
            if action.startswith("rotate"):
                name = {"rotate sibling SA": "sibling SA", "rotate admin": "owner"}.get(
                    action, "other user"
                )
                assert call(srv, keys[name], "GET", "workspaces").status_code == 401
                keys[name] = new_key
                if name == "owner":
                    admin = new_key
            else:  # undo the creation so later actions start from the same state
                with sqlite3.connect(srv.db_path) as conn:
                    uid = conn.execute(
                        "SELECT id FROM users WHERE name=?", (kw["json"]["name"],)
                    ).fetchone()[0]
                    conn.execute("DELETE FROM api_keys WHERE user_id=?", (uid,))
                    conn.execute("DELETE FROM users WHERE id=?", (uid,))
                conn.close()
        else:
            if resp.status_code != 403:
                wrong.append(f"{action}: expected 403, got {resp.status_code} {resp.text[:200]}")
            elif set(resp.json()) != {"msg", "code"}:
                wrong.append(f"{action}: refusal carries data {resp.json()}")
            if db_snapshot(srv) != before:
                wrong.append(f"{action}: refused, but the database changed")
    assert not wrong, f"{who}:\n" + "\n".join(wrong)
