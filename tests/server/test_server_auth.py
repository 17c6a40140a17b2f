"""Authorization matrix: owner, member, restricted service account, rotated key, no key."""

from __future__ import annotations

import pytest
import requests


def _setup(comet_server, make_api):
    admin = make_api()
    other_key = comet_server.create_user("bob")  # owns workspace "bob"
    bob = make_api(other_key)
    key_local = admin.create("p")
    key_bob = bob.create("q", workspace="bob")
    return admin, bob, key_local, key_bob


def test_no_key_and_unknown_key(comet_server, make_api) -> None:
    for key in ("", "nope"):
        resp = make_api(key).get("workspaces")
        assert resp.status_code == 401
        assert resp.json()["code"] == 401 and resp.json()["msg"].startswith("Authorization")


def test_key_payload_after_star_is_ignored(comet_server, make_api) -> None:
    api = make_api(comet_server.api_key + "*eyJiYXNlVXJsIjoieCJ9")
    assert api.ok(api.get("workspaces"))["workspaceNames"] == ["local"]


def test_other_workspace_is_forbidden_directly_and_indirectly(comet_server, make_api) -> None:
    admin, bob, key_local, key_bob = _setup(comet_server, make_api)
    assert (
        admin.post(
            "write/experiment/create", {"workspaceName": "bob", "projectName": "x"}
        ).status_code
        == 403
    )
    assert admin.get("experiment/metadata", experimentKey=key_bob).status_code == 403
    assert (
        admin.post(
            "write/experiment/metric",
            {"experimentKey": key_bob, "metricName": "m", "metricValue": 1},
        ).status_code
        == 403
    )
    assert bob.get("projects", workspaceName="local").status_code == 403
    pid = admin.ok(admin.get("experiment/metadata", experimentKey=key_local))["projectId"]
    assert bob.post("write/project/notes", {"projectId": pid, "notes": "x"}).status_code == 403
    aid = admin.ok(
        admin.upload("write/experiment/upload-asset", b"x", "x", experimentKey=key_local)
    )["assetId"]
    assert (
        bob.get("experiment/asset/get-asset", experimentKey=key_bob, assetId=aid).status_code == 403
    )
    assert (
        bob.get("experiment/asset/get-asset", experimentKey=key_local, assetId=aid).status_code
        == 403
    )
    mid = admin.model(key_local)
    item = admin.ok(
        admin.post(
            "write/registry-model",
            {"experimentModelId": mid, "registryModelName": "m", "version": "1.0.0"},
        )
    )["registryModelItemId"]
    assert (
        bob.get("write/registry-model/item/stage", modelItemId=item, stage="x").status_code == 403
    )
    assert (
        bob.post(
            "write/registry-model/item",
            {"experimentModelId": mid, "registryModelName": "m", "version": "2.0.0"},
        ).status_code
        == 403
    )
    # nothing was stored by the refused requests
    assert bob.ok(bob.get("experiment/metrics/summary", experimentKey=key_bob))["values"] == []


def test_member_gets_access(comet_server, make_api) -> None:
    admin, bob, key_local, _ = _setup(comet_server, make_api)
    assert (
        bob.post(
            "write/add-workspace-member",
            {"userName": "local", "workspaceName": "local", "admin": False},
        ).status_code
        == 403
    )
    assert admin.ok(
        admin.post(
            "write/add-workspace-member",
            {"userName": "bob", "workspaceName": "local", "admin": False},
        )
    ) == {"msg": "added"}
    assert (
        bob.ok(bob.get("experiment/metadata", experimentKey=key_local))["experimentKey"]
        == key_local
    )
    assert set(bob.ok(bob.get("workspaces"))["workspaceNames"]) == {"bob", "local"}
    assert (
        admin.post(
            "write/add-workspace-member",
            {"userName": "ghost", "workspaceName": "local", "admin": False},
        ).status_code
        == 404
    )


def test_service_accounts_and_rotation(comet_server, make_api) -> None:
    admin, bob, key_local, key_bob = _setup(comet_server, make_api)
    admin.ok(admin.post("write/workspace/new", {"name": "second"}))
    sa = admin.ok(
        admin.post(
            "write/service-account",
            {
                "name": "ci",
                "teamName": "local",
                "organizationName": "org",
                "authorizedWorkspaces": ["local"],
            },
        )
    )
    assert sa["hasGlobalAccess"] is False and sa["authorizedWorkspaces"] == ["local"]
    assert set(sa) == {
        "apiKey",
        "authorizedWorkspaces",
        "createdAt",
        "createdBy",
        "defaultWorkspaceName",
        "deleted",
        "hasGlobalAccess",
        "lastActivityAt",
        "name",
        "organizationId",
    }
    ci = make_api(sa["apiKey"])
    assert (
        ci.ok(ci.get("experiment/metadata", experimentKey=key_local))["experimentKey"] == key_local
    )
    assert (
        ci.post(
            "write/experiment/create", {"workspaceName": "second", "projectName": "x"}
        ).status_code
        == 403
    )
    assert ci.get("experiment/metadata", experimentKey=key_bob).status_code == 403
    glob = admin.ok(
        admin.post(
            "write/service-account", {"name": "g", "teamName": "local", "organizationName": "org"}
        )
    )
    assert glob["hasGlobalAccess"] is True and glob["authorizedWorkspaces"] is None
    g = make_api(glob["apiKey"])
    g.ok(g.post("write/experiment/create", {"workspaceName": "second", "projectName": "x"}))
    assert (
        admin.post(
            "write/service-account", {"name": "g", "teamName": "local", "organizationName": "org"}
        ).status_code
        == 409
    )
    # rotation: the old key stops working at once
    assert bob.get("write/api/rotate", userName="ci").status_code == 403
    new = admin.ok(admin.get("write/api/rotate", userName="ci"))["apiKey"]
    assert ci.get("workspaces").status_code == 401
    assert make_api(new).ok(make_api(new).get("workspaces"))["workspaceNames"] == ["local"]
    mine = bob.ok(bob.get("write/api/rotate", userName="bob"))["apiKey"]
    assert bob.get("workspaces").status_code == 401
    assert make_api(mine).get("workspaces").status_code == 200


@pytest.mark.parametrize("path", ["experiment/metadata", "workspaces", "write/experiment/stop"])
def test_every_route_needs_a_key(comet_server, path: str) -> None:
    resp = requests.get(
        comet_server.url + "/api/rest/v2/" + path, params={"experimentKey": "x"}, timeout=5
    )
    assert resp.status_code == 401
