"""Bad input to the server: schemathesis fuzzing of ``/openapi.json`` plus hand-made malformed
requests. No 500s, errors are ``{"msg", "code"}`` with the right 4xx, nothing half-stored,
no unhandled exception in the server log."""

from __future__ import annotations

import gzip
import json
import logging
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from comet_callbacks.server.embedded import ServerHandle, start_server
from comet_callbacks.server.reader import Reader

REST = "/api/rest/v2/"
EXAMPLES = 3  # per operation and generation mode: ~85 operations x 2 modes x 3 ≈ 500 calls


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Server-side log records at WARNING and above (uvicorn's included)."""
    caplog.set_level(logging.WARNING)
    return caplog


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("comet_callbacks.server", "uvicorn"))
    ]


def check_answer(resp: Any, what: str) -> None:
    """Never a 5xx; every error is the contract's JSON ``{"msg", "code"}``.

    ``resp`` is a ``requests`` response or a schemathesis one (headers as lists)."""
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400:
        ctype = resp.headers.get("content-type")
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype == "application/json", (what, ctype)
        body = resp.json()
        assert body["code"] == resp.status_code and isinstance(body["msg"], str), (what, body)


def assert_reads_still_work(server: ServerHandle) -> int:
    """Every stored experiment reads back (no garbage that breaks a read); metric values parse."""
    rd = Reader(server.url, server.api_key)
    n = 0
    try:
        for project in rd.projects("local"):
            for exp in rd.experiments("local", project["projectName"]):
                key = exp["experimentKey"]
                for path in (
                    "experiment/metadata",
                    "experiment/parameters",
                    "experiment/log-other",
                    "experiment/metrics/summary",
                    "experiment/asset/list",
                    "experiment/output",
                    "experiment/system-details",
                    "experiment/tags",
                    "experiment/model",
                ):
                    resp = rd.raw(path, experimentKey=key)
                    check_answer(resp, path)
                    assert resp.status_code in (200, 404), (path, resp.text)
                for m in rd.metric_summary(key):
                    for p in rd.metrics(key, m["name"]):
                        float(p["metricValue"])  # "NaN"/"Infinity" parse too
                n += 1
    finally:
        rd.close()
    return n


# ------------------------------------------------------------------ schemathesis


def _aim(case: Any, key: str) -> None:
    """Point half of the generated cases at a real experiment/workspace, to reach the handlers."""
    if "webhook" in case.path:  # never let the fuzzer configure real outgoing webhooks
        return
    if any(w in case.path for w in ("delete", "archive", "move", "symlink")):
        return  # keep the target experiment in place, so its fuzzed data can be read back
    for container in (case.query, case.body):
        if isinstance(container, dict):
            if "experimentKey" in container:
                container["experimentKey"] = key
            if "workspaceName" in container:
                container["workspaceName"] = "local"


@pytest.mark.slow
def test_schemathesis_fuzz_no_500_no_garbage(
    comet_server: ServerHandle, server_log: pytest.LogCaptureFixture
) -> None:
    raw = requests.get(comet_server.url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) > 60  # the whole API is described
    h = {"Authorization": comet_server.api_key}
    key = requests.post(
        comet_server.url + REST + "write/experiment/create",
        json={"workspaceName": "local", "projectName": "fuzz"},
        headers=h,
        timeout=10,
    ).json()["experimentKey"]
    statuses: dict[int, int] = {}
    skipped = 0
    session = requests.Session()
    t0 = time.monotonic()
    for op in ops:
        if op.path.endswith("write/api/rotate"):
            continue  # would rotate the admin key away from the rest of the fuzzing
        for mode in schemathesis.GenerationMode:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                if hash(repr(case.query) + repr(case.body)) % 2:
                    _aim(case, key)
                resp = case.call(base_url=comet_server.url, headers=h, session=session, timeout=10)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                check_answer(resp, f"{case.method} {case.path} {case.query} {str(case.body)[:200]}")

            try:
                fuzz()
            except Unsatisfiable:  # no invalid input exists (e.g. a GET without parameters)
                skipped += 1
    session.close()
    elapsed = time.monotonic() - t0
    assert sum(statuses.values()) > 300, (statuses, skipped)
    assert statuses.get(200, 0) > 20, statuses  # the fuzzer reached real handlers too
    assert not server_errors(server_log), server_errors(server_log)[:5]
    assert assert_reads_still_work(comet_server) >= 1
    assert elapsed < 120, f"fuzzing took {elapsed:.0f}s"


# ------------------------------------------------------------------ hand-made malformed requests


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[ServerHandle, str]]:
    """A server with small limits (1 KB JSON, 4 KB uploads) and one experiment."""
    srv = start_server(db_path=tmp_path / "db.sqlite", max_json_bytes=1000, max_upload_bytes=4000)
    key = requests.post(
        srv.url + REST + "write/experiment/create",
        json={"workspaceName": "local", "projectName": "p"},
        headers={"Authorization": srv.api_key},
        timeout=10,
    ).json()["experimentKey"]
    try:
        yield srv, key
    finally:
        srv.close()


def _bad_requests(key: str) -> list[tuple[str, str, str, dict[str, Any], int]]:
    """(name, method, path, requests kwargs, expected status)."""
    j = {"Content-Type": "application/json"}
    mp = {"Content-Type": "multipart/form-data; boundary=zz"}
    metric = "write/experiment/metric"
    asset = "write/experiment/upload-asset"
    q = {"experimentKey": key}

    def body(**kw: Any) -> bytes:
        return json.dumps(
            {"experimentKey": key, "metricName": "m", "metricValue": 1, **kw}
        ).encode()

    return [
        ("not json", "POST", metric, {"data": b"{nope", "headers": j}, 400),
        ("json array", "POST", metric, {"data": b"[1,2]", "headers": j}, 400),
        (
            "deeply nested json",
            "POST",
            metric,
            {"data": b"[" * 400 + b"]" * 400, "headers": j},
            400,
        ),
        ("invalid utf-8", "POST", metric, {"data": b'{"experimentKey":"\xff"}', "headers": j}, 400),
        (
            "lone surrogate",
            "POST",
            metric,
            {"data": body(metricName="a").replace(b'"a"', b'"\\ud800"'), "headers": j},
            400,
        ),
        ("huge integer", "POST", metric, {"data": body(step=10**30), "headers": j}, 400),
        (
            "gzip declared, not gzip",
            "POST",
            metric,
            {"data": body(), "headers": {**j, "Content-Encoding": "gzip"}},
            400,
        ),
        (
            "unknown encoding",
            "POST",
            metric,
            {"data": body(), "headers": {**j, "Content-Encoding": "br"}},
            400,
        ),
        (
            "truncated gzip",
            "POST",
            metric,
            {"data": gzip.compress(body())[:-12], "headers": {**j, "Content-Encoding": "gzip"}},
            400,
        ),
        ("multipart to a JSON endpoint", "POST", metric, {"files": {"file": ("x", b"y")}}, 400),
        ("JSON to the upload endpoint", "POST", asset, {"params": q, "json": {"a": 1}}, 400),
        (
            "multipart without boundary",
            "POST",
            asset,
            {"params": q, "data": b"xx", "headers": {"Content-Type": "multipart/form-data"}},
            400,
        ),
        (
            "multipart garbage",
            "POST",
            asset,
            {"params": q, "data": b"--zz\r\ngarbage", "headers": mp},
            400,
        ),
        (
            "multipart unterminated",
            "POST",
            asset,
            {
                "params": q,
                "data": b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
                "headers": mp,
            },
            400,
        ),
        (
            "multipart without file part",
            "POST",
            asset,
            {
                "params": q,
                "data": b'--zz\r\nContent-Disposition: form-data; name="other"\r\n\r\nabc\r\n--zz--\r\n',
                "headers": mp,
            },
            400,
        ),
        (
            "oversized JSON (declared)",
            "POST",
            "write/experiment/code",
            {"json": {"experimentKey": key, "code": "x" * 5000}},
            413,
        ),
        (
            "oversized JSON (chunked)",
            "POST",
            "write/experiment/code",
            {"data": iter([b'{"code":"', b"x" * 3000, b'"}']), "headers": j},
            413,
        ),
        (
            "oversized upload",
            "POST",
            asset,
            {"params": q, "files": {"file": ("big", b"x" * 9000)}},
            413,
        ),
        (
            "oversized upload (chunked)",
            "POST",
            asset,
            {"params": q, "data": iter([b"x" * 3000] * 3), "headers": mp},
            413,
        ),
        (
            "gzip bomb",
            "POST",
            "write/experiment/code",
            {
                "data": gzip.compress(body(code="x" * 100_000)),
                "headers": {**j, "Content-Encoding": "gzip"},
            },
            413,
        ),
        (
            "bad query int",
            "POST",
            asset,
            {"params": {**q, "step": "1e999"}, "files": {"file": ("a", b"y")}},
            400,
        ),
        (
            "bad query bool",
            "GET",
            "experiments",
            {"params": {"workspaceName": "local", "projectName": "p", "archived": "2"}},
            400,
        ),
    ]


def test_malformed_requests_get_the_right_4xx_and_store_nothing(
    small: tuple[ServerHandle, str], server_log: pytest.LogCaptureFixture
) -> None:
    srv, key = small
    h = {"Authorization": srv.api_key}
    wrong = []
    for name, method, path, kw, expected in _bad_requests(key):
        kw = dict(kw)
        kw["headers"] = {**h, **kw.get("headers", {})}
        resp = requests.request(method, srv.url + REST + path, timeout=10, **kw)
        check_answer(resp, name)
        if resp.status_code != expected:
            wrong.append(f"{name}: {resp.status_code} (expected {expected}) {resp.text[:120]}")
    assert not wrong, "\n".join(wrong)
    rd = Reader(srv.url, srv.api_key)
    try:
        assert rd.metric_summary(key) == [] and rd.assets(key) == [] and rd.code(key) is None
    finally:
        rd.close()
    assert not server_errors(server_log), server_errors(server_log)


def _raw(srv: ServerHandle, head: bytes, body: bytes) -> bytes:
    """Send a request with a body shorter than its Content-Length, then half-close."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(head + b"\r\n\r\n" + body)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_truncated_bodies_store_nothing_and_log_no_error(
    small: tuple[ServerHandle, str], server_log: pytest.LogCaptureFixture
) -> None:
    srv, key = small
    auth = b"Authorization: " + srv.api_key.encode()
    metric = json.dumps({"experimentKey": key, "metricName": "cut", "metricValue": 1}).encode()
    _raw(
        srv,
        b"POST /api/rest/v2/write/experiment/metric HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"\r\nContent-Type: application/json\r\nContent-Length: 900",
        metric,
    )
    part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="t.bin"\r\n\r\nabc'
    _raw(
        srv,
        b"POST /api/rest/v2/write/experiment/upload-asset?experimentKey="
        + key.encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 3000",
        part,
    )
    # garbage that is not HTTP at all
    _raw(srv, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"")
    time.sleep(0.3)
    rd = Reader(srv.url, srv.api_key)
    try:
        assert rd.metric_summary(key) == [] and rd.assets(key) == []
        # and the server still serves
        assert rd.metadata(key)["experimentKey"] == key
    finally:
        rd.close()
    assert not server_errors(server_log), server_errors(server_log)


def test_extreme_but_valid_values_round_trip(small: tuple[ServerHandle, str]) -> None:
    """Values at the edges of the encodings are stored exactly, not mangled."""
    srv, key = small
    h = {"Authorization": srv.api_key}
    cases = {
        "nul\x00name": 1,
        "max": 1.7976931348623157e308,
        "tiny": 5e-324,
        "neg0": -0.0,
        "int64": 2**62,
        "nan": "NaN",
        "ninf": "-Infinity",
        "emoji🚀": 2,
    }
    for name, v in cases.items():
        resp = requests.post(
            srv.url + REST + "write/experiment/metric",
            json={"experimentKey": key, "metricName": name, "metricValue": v, "step": 2**62},
            headers=h,
            timeout=10,
        )
        assert resp.status_code == 200, (name, resp.text)
    rd = Reader(srv.url, srv.api_key)
    try:
        for name, v in cases.items():
            (p,) = rd.metrics(key, name)
            got = float(p["metricValue"])
            want = float(v)
            assert (math.isnan(got) and math.isnan(want)) or got == want, (name, p)
            assert p["step"] == 2**62
    finally:
        rd.close()
