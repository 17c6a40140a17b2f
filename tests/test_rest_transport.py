"""Transport behaviour against real local HTTP servers: retries, 429, typed errors, timeouts, secrets."""

from __future__ import annotations

import http.server
import json
import logging
import pickle
import socket
import threading
import time

import pytest
from werkzeug.wrappers import Response

from comet_callbacks.rest import (
    BadRequestError,
    CometAPIError,
    CometConnectionError,
    CometTimeoutError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RestClient,
    ServerError,
    UnauthorizedError,
    is_retryable,
)

KEY = "transportSecretKey42*eyJiYXNlVXJsIjoiaHR0cDovL3guaW52YWxpZCJ9"
RAW = KEY.split("*")[0]
EK = "0123456789abcdef0123456789abcdef"
METRIC = "/api/rest/v2/write/experiment/metric"
STOP = "/api/rest/v2/write/experiment/stop"


def _err(status: int, msg: str, headers: dict | None = None) -> Response:
    body = json.dumps({"msg": msg, "code": status})
    return Response(body, status=status, headers=headers or {}, content_type="application/json")


@pytest.fixture
def client(httpserver):
    c = RestClient(
        httpserver.url_for("/").rstrip("/"), KEY, retries=3, backoff_factor=0.01, timeout=5
    )
    yield c
    c.close()


def _count(httpserver, path: str) -> int:
    return sum(1 for req, _ in httpserver.log if req.path == path)


# --------------------------------------------------------------------------- retries


def test_get_retried_on_503_then_succeeds(client, httpserver):
    for _ in range(2):
        httpserver.expect_ordered_request(STOP, method="GET").respond_with_response(
            _err(503, "busy")
        )
    httpserver.expect_ordered_request(STOP, method="GET").respond_with_json(
        {"msg": "Stop Requested"}
    )
    assert client.stop_experiment(EK) == {"msg": "Stop Requested"}
    httpserver.check_assertions()
    assert _count(httpserver, STOP) == 3


def test_retries_say_so_in_one_project_line_not_urllib3_warnings(client, httpserver, caplog):
    """WIRE §6: urllib3 does not retry (no 'Retrying (Retry(...))' WARNING per attempt); the
    transport's own retries log one status line, then stay quiet until a success."""
    for _ in range(3):
        httpserver.expect_ordered_request(STOP, method="GET").respond_with_response(
            _err(503, "busy")
        )
    httpserver.expect_ordered_request(STOP, method="GET").respond_with_json({"msg": "ok"})
    with caplog.at_level(logging.DEBUG):
        assert client.stop_experiment(EK) == {"msg": "ok"}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["comet_callbacks.rest"], warnings
    assert (
        "server error (503) on GET write/experiment/stop, retrying in" in warnings[0].getMessage()
    )
    assert not any(
        "Retrying" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3")
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_retried_on_5xx(client, httpserver, status):
    """The SDK's policy: POST is retried too (WIRE §6), and the body is re-sent intact."""
    httpserver.expect_ordered_request(METRIC, method="POST").respond_with_response(
        _err(status, "oops")
    )
    httpserver.expect_ordered_request(METRIC, method="POST").respond_with_json({"msg": "Saved"})
    assert client.log_metric(EK, "loss", 1.5, step=2) == {"msg": "Saved"}
    httpserver.check_assertions()
    bodies = [json.loads(req.get_data()) for req, _ in httpserver.log]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[1]["metricValue"] == 1.5


def test_multipart_upload_retried_with_full_body(client, httpserver, tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"0123456789" * 1000)
    upload = "/api/rest/v2/write/experiment/upload-asset"
    httpserver.expect_ordered_request(upload, method="POST").respond_with_response(
        _err(503, "busy")
    )
    httpserver.expect_ordered_request(upload, method="POST").respond_with_json(
        {"msg": "Saved", "assetId": "a"}
    )
    from comet_callbacks.rest import FilePart

    assert client.upload_asset(EK, FilePart("w.bin", path=str(path)))["assetId"] == "a"
    first, second = (req.get_data() for req, _ in httpserver.log)
    assert len(second) == int(httpserver.log[1][0].headers["Content-Length"])
    assert b"0123456789" * 1000 in second
    assert len(first) == len(second)


def test_429_waits_retry_after_then_succeeds(client, httpserver):
    httpserver.expect_ordered_request(METRIC, method="POST").respond_with_response(
        _err(429, "slow down", {"Retry-After": "1"})
    )
    httpserver.expect_ordered_request(METRIC, method="POST").respond_with_json({"msg": "Saved"})
    t0 = time.monotonic()
    assert client.log_metric(EK, "loss", 1.0) == {"msg": "Saved"}
    elapsed = time.monotonic() - t0
    httpserver.check_assertions()
    assert _count(httpserver, METRIC) == 2
    assert elapsed >= 0.9


def test_429_forever_raises_rate_limited(httpserver):
    httpserver.expect_request(METRIC, method="POST").respond_with_response(
        _err(429, "too many", {"Retry-After": "7"})
    )
    # max_retry_after caps the wait so the test stays fast; the error keeps the server's value.
    with RestClient(
        httpserver.url_for("/").rstrip("/"),
        KEY,
        retries=2,
        backoff_factor=0.01,
        max_retry_after=0.05,
    ) as c:
        with pytest.raises(RateLimitedError) as info:
            c.log_metric(EK, "loss", 1.0)
    exc = info.value
    assert exc.status == 429
    assert exc.retry_after == 7.0
    assert is_retryable(exc)
    assert _count(httpserver, METRIC) == 3  # 1 + 2 retries
    assert "write/experiment/metric" in str(exc) and "too many" in str(exc)


def test_500_after_retries_raises_server_error(client, httpserver):
    httpserver.expect_request(METRIC, method="POST").respond_with_response(_err(500, "kaboom"))
    with pytest.raises(ServerError) as info:
        client.log_metric(EK, "loss", 1.0)
    assert _count(httpserver, METRIC) == 4  # 1 + 3 retries
    assert info.value.status == 500
    assert "kaboom" in str(info.value) and "write/experiment/metric" in str(info.value)
    assert is_retryable(info.value)


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
    ],
)
@pytest.mark.parametrize("http", ["GET", "POST"])
def test_4xx_maps_to_error_class_without_retry(client, httpserver, status, cls, http):
    path = STOP if http == "GET" else METRIC
    httpserver.expect_request(path, method=http).respond_with_response(
        _err(status, f"step: server says {status}")
    )
    with pytest.raises(cls) as info:
        if http == "GET":
            client.stop_experiment(EK)
        else:
            client.log_metric(EK, "loss", 1.0)
    exc = info.value
    assert type(exc) is cls
    assert exc.status == status
    assert _count(httpserver, path) == 1, "4xx must not be retried"
    assert exc.endpoint == path.removeprefix("/api/rest/v2/")
    assert exc.server_message == f"step: server says {status}"
    text = str(exc)
    assert exc.endpoint in text and f"server says {status}" in text and str(status) in text
    assert not is_retryable(exc)


def test_non_json_error_body_is_kept(client, httpserver):
    httpserver.expect_request(STOP).respond_with_data("<html>bad gateway-ish</html>", status=418)
    with pytest.raises(CometAPIError) as info:
        client.stop_experiment(EK)
    assert info.value.status == 418
    assert "bad gateway-ish" in str(info.value)


# --------------------------------------------------------------------------- transport failures


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_raises_connection_error():
    with RestClient(
        f"http://127.0.0.1:{_closed_port()}", KEY, retries=2, backoff_factor=0.01, timeout=2
    ) as c:
        t0 = time.monotonic()
        with pytest.raises(CometConnectionError) as info:
            c.stop_experiment(EK)
        assert time.monotonic() - t0 < 5
    exc = info.value
    assert not isinstance(exc, CometTimeoutError)
    assert exc.status is None
    assert "write/experiment/stop" in str(exc)
    assert is_retryable(exc)
    assert KEY not in str(exc) and RAW not in str(exc)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    delay = 1.0
    hits: list[float] = []

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).hits.append(time.monotonic())
        time.sleep(self.delay)
        body = b'{"msg":"late"}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def slow_server():
    _SlowHandler.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_slow_server_raises_timeout(slow_server):
    with RestClient(slow_server, KEY, retries=1, backoff_factor=0.01, timeout=0.2) as c:
        t0 = time.monotonic()
        with pytest.raises(CometTimeoutError) as info:
            c.stop_experiment(EK)
        elapsed = time.monotonic() - t0
    assert isinstance(info.value, CometConnectionError)
    assert len(_SlowHandler.hits) == 2  # read timeouts are retried too
    assert elapsed < 0.95 * _SlowHandler.delay * 2
    assert "write/experiment/stop" in str(info.value)


def test_per_call_timeout_overrides_default(slow_server):
    from comet_callbacks.rest import Call

    with RestClient(slow_server, KEY, retries=0, timeout=30) as c:
        t0 = time.monotonic()
        with pytest.raises(CometTimeoutError):
            c.send(Call("GET", "write/experiment/stop", {"experimentKey": EK}), timeout=0.2)
        assert time.monotonic() - t0 < 0.9


# --------------------------------------------------------------------------- errors & secrets


@pytest.mark.parametrize(
    "exc",
    [
        BadRequestError("write/experiment/metric", "step: expected integer", method="POST"),
        NotFoundError("experiment/metadata", "no such experiment", method="GET"),
        ServerError("write/experiment/metric", "boom", 503, method="POST"),
        RateLimitedError("write/experiment/metric", "slow", method="POST", retry_after=3.0),
        CometConnectionError("write/experiment/stop", "ConnectionError: refused", method="GET"),
        CometTimeoutError("write/experiment/stop", "ReadTimeout", method="GET"),
        CometAPIError("x", "teapot", 418, method="GET"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_are_picklable(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert (back.status, back.endpoint, back.server_message, back.method) == (
        exc.status,
        exc.endpoint,
        exc.server_message,
        exc.method,
    )
    assert getattr(back, "retry_after", None) == getattr(exc, "retry_after", None)


def test_api_key_never_leaks(httpserver, caplog):
    """The key is only ever in the Authorization header: not in errors, reprs or logs."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "comet_callbacks"):
        caplog.set_level(logging.DEBUG, logger=name)
    # A hostile server echoes the key back in its error message.
    httpserver.expect_request(METRIC).respond_with_response(_err(401, f"unknown key {KEY} ({RAW})"))
    httpserver.expect_request(STOP).respond_with_response(_err(503, f"busy for {RAW}"))
    with RestClient(httpserver.url_for("/").rstrip("/"), KEY, retries=1, backoff_factor=0.01) as c:
        texts = [repr(c), str(c), repr(c.transport)]
        with pytest.raises(UnauthorizedError) as e1:
            c.log_metric(EK, "loss", 1.0)
        with pytest.raises(ServerError) as e2:
            c.stop_experiment(EK)
    with RestClient(f"http://127.0.0.1:{_closed_port()}", KEY, retries=0) as c:
        with pytest.raises(CometConnectionError) as e3:
            c.stop_experiment(EK)
    for e in (e1.value, e2.value, e3.value):
        texts += [str(e), repr(e), e.server_message, repr(e.args)]
        texts.append(str(pickle.loads(pickle.dumps(e))))
    assert "unknown key" in str(e1.value)  # the message is kept, only the key is removed
    assert caplog.records, "urllib3 should have logged at DEBUG"
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    for t in texts:
        assert KEY not in t
        assert RAW not in t


def test_client_and_transport_repr_redact_key(httpserver):
    with RestClient(httpserver.url_for("/").rstrip("/"), KEY) as c:
        assert "<redacted>" in repr(c)
        assert c.root in repr(c)
        assert RAW not in repr(c) and RAW not in repr(c.transport)


def test_no_key_sends_no_authorization(httpserver):
    httpserver.expect_request("/clientlib/isAlive/ver").respond_with_json({"version": "3.5.42"})
    with RestClient(httpserver.url_for("/").rstrip("/"), None, retries=0) as c:
        assert c.get_server_version() == {"version": "3.5.42"}
    req = httpserver.log[0][0]
    assert "Authorization" not in req.headers


def test_binary_and_empty_answers(client, httpserver):
    from comet_callbacks.rest import Call

    httpserver.expect_request("/api/rest/v2/experiment/asset/get-asset").respond_with_data(
        b"\x00\x01bytes", content_type="application/octet-stream"
    )
    httpserver.expect_request("/api/rest/v2/webhooks/config", method="PUT").respond_with_data(
        b"", status=204
    )
    got = client.send(
        Call("GET", "experiment/asset/get-asset", {"experimentKey": EK, "assetId": "a"})
    )
    assert got == b"\x00\x01bytes"
    assert client.replace_webhooks([]) is None


def test_invalid_root_rejected():
    with pytest.raises(ValueError):
        RestClient("ftp://x", KEY)
    with pytest.raises(ValueError):
        RestClient("127.0.0.1:8080", KEY)


def test_connection_pool_is_reused(client, httpserver):
    """One pooled session: many calls reuse connections (no per-call session)."""
    httpserver.expect_request(METRIC).respond_with_json({"msg": "Saved"})
    for i in range(20):
        client.log_metric(EK, "m", i)
    assert _count(httpserver, METRIC) == 20
    assert client.transport.session.adapters["http://"].poolmanager is not None


@pytest.mark.parametrize("status", [413, 400])
def test_4xx_with_retry_after_is_still_not_retried(client, httpserver, status):
    """urllib3 would retry a 413 carrying Retry-After; WIRE §6 retries only 429 and 5xx."""
    httpserver.expect_request(METRIC).respond_with_response(
        _err(status, "no", {"Retry-After": "0"})
    )
    with pytest.raises(CometAPIError) as info:
        client.log_metric(EK, "m", 1.0)
    assert info.value.status == status
    assert _count(httpserver, METRIC) == 1


def test_503_retry_after_cap_survives_retries(httpserver):
    """The Retry-After cap applies on every retry, not only the first (urllib3 rebuilds Retry)."""
    httpserver.expect_request(STOP).respond_with_response(_err(503, "busy", {"Retry-After": "30"}))
    with RestClient(
        httpserver.url_for("/").rstrip("/"),
        KEY,
        retries=3,
        backoff_factor=0.01,
        max_retry_after=0.05,
    ) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerError):
            c.stop_experiment(EK)
        assert time.monotonic() - t0 < 3
    assert _count(httpserver, STOP) == 4
