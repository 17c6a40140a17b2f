"""The fault proxy itself: each fault kind is observable with plain ``requests``."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from faultproxy import FAULT_KINDS, FaultProxy

from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

REST = "/api/rest/v2/"


def _create(url: str, key: str) -> str:
    resp = requests.post(
        url + REST + "write/experiment/create",
        json={"workspaceName": "local", "projectName": "proxy"},
        headers={"Authorization": key},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["experimentKey"]


def _metric(url: str, key: str, exp: str, step: int, session: Any = requests) -> requests.Response:
    return session.post(
        url + REST + "write/experiment/metric",
        json={"experimentKey": exp, "metricName": "m", "metricValue": step, "step": step},
        headers={"Authorization": key},
        timeout=10,
    )


def _only(kind: str, server: ServerHandle, **kw: Any) -> FaultProxy:
    return FaultProxy(server.url, faults={kind: 1.0}, **kw)


def test_forward_keeps_connections_alive(comet_server: ServerHandle, reader: Reader) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with FaultProxy(comet_server.url) as proxy, requests.Session() as s:
        for i in range(20):
            assert _metric(proxy.url, comet_server.api_key, exp, i, s).status_code == 200
        assert proxy.connections == 1  # one keep-alive connection carried all 20 requests
        assert proxy.stats == {"forward": 20}
    assert sorted(p["step"] for p in reader.metrics(exp, "m")) == list(range(20))


def test_multipart_and_chunked_bodies_are_relayed_byte_exact(
    comet_server: ServerHandle, reader: Reader
) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    payload = bytes(range(256)) * 4000  # ~1 MB, every byte value
    h = {"Authorization": comet_server.api_key}
    with FaultProxy(comet_server.url) as proxy, requests.Session() as s:
        resp = s.post(
            proxy.url + REST + "write/experiment/upload-asset",
            params={"experimentKey": exp},
            files={"file": ("blob.bin", payload)},
            data={"metadata": '{"a": 1}'},
            headers=h,
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        chunks = iter([b'{"experimentKey": "', exp.encode(), b'", "code": "print(1)"}'])
        resp = s.post(
            proxy.url + REST + "write/experiment/code",
            data=chunks,  # a generator: requests sends Transfer-Encoding: chunked
            headers={**h, "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        assert proxy.connections == 1
    (asset,) = reader.assets(exp)
    assert reader.get_asset(exp, asset["assetId"]) == payload
    assert reader.code(exp) == "print(1)"


def test_drop_closes_without_forwarding(comet_server: ServerHandle, reader: Reader) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with _only("drop", comet_server) as proxy:
        with pytest.raises(requests.ConnectionError):
            _metric(proxy.url, comet_server.api_key, exp, 1)
        assert proxy.stats["drop"] == 1
    assert reader.metrics(exp, "m") == []  # never reached the server


def test_cut_after_commit_stores_but_never_answers(
    comet_server: ServerHandle, reader: Reader
) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with _only("cut_after_commit", comet_server) as proxy:
        with pytest.raises(requests.ConnectionError):
            _metric(proxy.url, comet_server.api_key, exp, 7)
        assert proxy.stats["cut_after_commit"] == 1
    assert [p["step"] for p in reader.metrics(exp, "m")] == [7]  # the write landed


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_statuses_are_answered_without_forwarding(
    comet_server: ServerHandle, reader: Reader, status: int
) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with _only(str(status), comet_server) as proxy, requests.Session() as s:
        for i in range(3):
            resp = _metric(proxy.url, comet_server.api_key, exp, i, s)
            assert resp.status_code == status
            assert "injected" in resp.json()["msg"]
        assert proxy.connections == 1  # error answers keep the connection open
    assert reader.metrics(exp, "m") == []


def test_429_carries_retry_after(comet_server: ServerHandle, reader: Reader) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with _only("429", comet_server, retry_after=7) as proxy:
        resp = _metric(proxy.url, comet_server.api_key, exp, 1)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert reader.metrics(exp, "m") == []


def test_delay_then_forward(comet_server: ServerHandle, reader: Reader) -> None:
    exp = _create(comet_server.url, comet_server.api_key)
    with _only("delay", comet_server, delay_s=0.3) as proxy:
        t0 = time.monotonic()
        assert _metric(proxy.url, comet_server.api_key, exp, 1).status_code == 200
        assert time.monotonic() - t0 >= 0.3
    assert len(reader.metrics(exp, "m")) == 1


def test_match_limits_faults_and_set_faults_switches_them(comet_server: ServerHandle) -> None:
    url = comet_server.url + "/clientlib/isAlive/ver"
    with FaultProxy(
        comet_server.url, faults={"500": 1.0}, match=lambda m, p: "metric" in p
    ) as proxy:
        assert requests.get(proxy.url + "/clientlib/isAlive/ver", timeout=5).status_code == 200
        proxy.set_faults({})
        assert requests.get(url, timeout=5).status_code == 200
        assert proxy.stats == {"forward": 1}


def test_proportions_follow_the_seed(comet_server: ServerHandle) -> None:
    faults = {k: 0.1 for k in FAULT_KINDS}
    a = FaultProxy(comet_server.url, faults=faults, seed=3)
    b = FaultProxy(comet_server.url, faults=faults, seed=3)
    try:
        seq_a = [a._decide("POST", "/x") for _ in range(2000)]
        seq_b = [b._decide("POST", "/x") for _ in range(2000)]
    finally:
        a.stop()
        b.stop()
    assert seq_a == seq_b  # same seed, same outcomes
    for kind in (*FAULT_KINDS, "forward"):
        share = seq_a.count(kind) / len(seq_a)
        expected = 0.1 if kind != "forward" else 1 - 0.1 * len(FAULT_KINDS)
        assert abs(share - expected) < 0.04, (kind, share)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultProxy(comet_server.url, faults={"explode": 0.1})
    with pytest.raises(ValueError, match="sum to"):
        FaultProxy(comet_server.url, faults={"drop": 0.7, "500": 0.7})


def test_upstream_down_looks_like_a_dropped_connection(comet_server: ServerHandle) -> None:
    with FaultProxy(comet_server.url) as proxy:
        comet_server.stop()
        try:
            with pytest.raises(requests.ConnectionError):
                requests.get(proxy.url + "/clientlib/isAlive/ver", timeout=5)
        finally:
            comet_server.start()
        assert requests.get(proxy.url + "/clientlib/isAlive/ver", timeout=5).status_code == 200


def test_html_is_a_200_page_without_forwarding(comet_server: ServerHandle) -> None:
    with FaultProxy(comet_server.url, faults={"html": 1.0}) as proxy:
        r = requests.get(proxy.url + "/clientlib/isAlive/ver", timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.text.startswith("<!doctype html>")
        assert proxy.stats["html"] == 1
