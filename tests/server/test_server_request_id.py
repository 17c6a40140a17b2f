"""`X-Comet-Request-Id`: a write repeated with the same id is performed once (idempotent
retries and replays), per user; reads and writes without the header are unaffected."""

from __future__ import annotations

import requests

from comet_callbacks.rest import FilePart, RestClient, calls


def _client(server, key=None) -> RestClient:
    return RestClient(server.url, key or server.api_key, retries=0)


def test_repeated_request_id_is_stored_once_and_answered_the_same(comet_server, reader) -> None:
    c = _client(comet_server)
    key = c.create_experiment("local", "rid")["experimentKey"]
    first = c.send(
        calls.upload_asset(key, FilePart("a.txt", data=b"x"), file_name="a.txt"),
        request_id="run1-7",
    )
    again = c.send(
        calls.upload_asset(key, FilePart("a.txt", data=b"x"), file_name="a.txt"),
        request_id="run1-7",
    )
    assert again == first  # the first answer, assetId included
    assert [a["fileName"] for a in reader.assets(key)] == ["a.txt"]
    for _ in range(3):
        c.send(calls.log_html(key, "<p>once</p>"), request_id="run1-8")
    assert reader.html(key) == "<p>once</p>"
    # without an id, or with another id, the write happens again
    c.send(calls.log_html(key, "<p>twice</p>"), request_id="run1-9")
    c.log_html(key, "<p>thrice</p>")
    assert reader.html(key) == "<p>once</p><p>twice</p><p>thrice</p>"


def test_request_ids_are_scoped_per_user(comet_server, reader) -> None:
    owner = _client(comet_server)
    other_key = comet_server.create_user("bob")
    other = _client(comet_server, other_key)
    k1 = owner.create_experiment("local", "rid")["experimentKey"]
    k2 = other.create_experiment("bob", "rid")["experimentKey"]
    owner.send(calls.add_tags(k1, ["a"]), request_id="same")
    other.send(calls.add_tags(k2, ["b"]), request_id="same")
    assert reader.tags(k1) == ["a"]
    assert requests.get(
        comet_server.url + "/api/rest/v2/experiment/tags",
        params={"experimentKey": k2},
        headers={"Authorization": other_key},
        timeout=10,
    ).json()["tags"] == ["b"]


def test_overlong_request_id_is_a_400_naming_the_header(comet_server) -> None:
    r = requests.post(
        comet_server.url + "/api/rest/v2/write/experiment/tags",
        json={"experimentKey": "0" * 32, "addedTags": ["x"]},
        headers={"Authorization": comet_server.api_key, "X-Comet-Request-Id": "x" * 500},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["msg"].startswith("x-comet-request-id")
