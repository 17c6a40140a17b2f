"""A fault-injecting HTTP proxy for reliability tests and benchmarks.

It sits on loopback between a client and an upstream server (the local Comet server) and,
for each request, draws one outcome from a seeded ``random.Random`` in the configured
proportions:

* ``drop``             — close the connection without answering, before forwarding
                         (the write never reaches the server);
* ``delay``            — wait ``delay_s`` seconds, then forward normally;
* ``500`` ``502`` ``503`` — answer that status without forwarding;
* ``429``              — answer 429 with ``Retry-After: <retry_after>`` without forwarding;
* ``cut_after_commit`` — forward, let the server commit, read its answer, then close the
                         client's socket without sending it: the client cannot know that
                         the write landed, so it retries — the server must not store twice;
* ``html``             — answer 200 with an HTML page without forwarding (what a site that
                         does not serve an endpoint may answer);
* ``forward``          — everything else: forward the request and relay the answer.

Keep-alive is honoured on both sides (one upstream connection per client connection) and
bodies are read by ``Content-Length`` (multipart uploads included) or chunked encoding.
Faults can be limited to some requests with ``match(method, path) -> bool``; the others are
always forwarded. ``.stats`` counts every outcome.

>>> with FaultProxy(server.url, faults={"drop": 0.1, "429": 0.05}, seed=1) as proxy:  # doctest: +SKIP
...     requests.get(proxy.url + "/clientlib/isAlive/ver")
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["FaultProxy", "FAULT_KINDS"]

#: Every fault kind, in the order proportions are laid out on [0, 1).
FAULT_KINDS: tuple[str, ...] = (
    "drop",
    "delay",
    "500",
    "502",
    "503",
    "429",
    "cut_after_commit",
    "html",
)

#: Headers that describe one hop, not the message: never relayed as they are.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)


class FaultProxy:
    """A threaded loopback proxy to ``upstream_url`` that injects faults (see module doc)."""

    def __init__(
        self,
        upstream_url: str,
        faults: dict[str, float] | None = None,
        *,
        seed: int = 1,
        delay_s: float = 0.2,
        retry_after: float = 1,
        match: Callable[[str, str], bool] | None = None,
        host: str = "127.0.0.1",
        upstream_timeout: float = 30.0,
    ) -> None:
        faults = dict(faults or {})
        unknown = set(faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if any(p < 0 for p in faults.values()) or sum(faults.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault proportions must be >= 0 and sum to <= 1, got {faults}")
        up = urllib.parse.urlsplit(upstream_url)
        if up.scheme != "http" or not up.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self.upstream_host = up.hostname
        self.upstream_port = up.port or 80
        self.faults = faults
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.match = match
        self.upstream_timeout = upstream_timeout
        self.stats: collections.Counter[str] = collections.Counter()
        #: client connections accepted so far (keep-alive reuses one for many requests)
        self.connections = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._enabled = True
        self._server = _Server((host, 0), _Handler, self)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        """Root URL of the proxy (what ``COMET_URL_OVERRIDE`` takes)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Serve on a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fault-proxy",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close the listening socket and every open connection."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_all()
        self._server.server_close()

    def set_faults(self, faults: dict[str, float] | None) -> None:
        """Change the proportions while running (``None`` or ``{}``: forward everything)."""
        with self._lock:
            self.faults = dict(faults or {})

    def total(self) -> int:
        """Requests seen so far."""
        with self._lock:
            return sum(self.stats.values())

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultProxy({self.url} -> {self.upstream_host}:{self.upstream_port}, {self.faults})"

    # ------------------------------------------------------------------ decisions

    def _decide(self, method: str, path: str) -> str:
        if self.match is not None and not self.match(method, path):
            with self._lock:
                self.stats["forward"] += 1
            return "forward"
        with self._lock:
            r = self._rng.random()
            outcome = "forward"
            acc = 0.0
            for kind in FAULT_KINDS:
                acc += self.faults.get(kind, 0.0)
                if r < acc:
                    outcome = kind
                    break
            self.stats[outcome] += 1
        return outcome


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
            self.proxy.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            _hard_close(sock)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .stats
        return

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()
                self._upstream = None

    # every method goes through the same path
    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        """The whole request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length > 0 else b""
        if len(data) < length:
            raise ConnectionError("client sent a truncated body")
        return data

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy
        try:
            body = self._read_body()
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
            return
        outcome = proxy._decide(self.command, urllib.parse.urlsplit(self.path).path)
        if outcome == "drop":
            self._drop()
            return
        if outcome in ("500", "502", "503", "429"):
            headers = {"Retry-After": _fmt(proxy.retry_after)} if outcome == "429" else {}
            self._answer(int(outcome), {"msg": f"fault proxy: injected {outcome}"}, headers)
            return
        if outcome == "html":
            page = b"<!doctype html><html><body>Welcome</body></html>"
            self.send_response_only(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            self.wfile.flush()
            return
        if outcome == "delay":
            time.sleep(proxy.delay_s)
        try:
            status, reason, headers, data = self._forward(body)
        except (OSError, http.client.HTTPException):
            # the upstream is down or broke the connection: the client sees the same
            self._drop()
            return
        if outcome == "cut_after_commit":
            self._drop()
            return
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy: FaultProxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                resp = self._upstream.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a stale keep-alive connection to the upstream: reconnect once
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
                continue
            if resp.will_close:
                self._upstream.close()
                self._upstream = None
            return resp.status, resp.reason, resp.getheaders(), data
        raise AssertionError("unreachable")

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the client's connection at once, without a byte of answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        _hard_close(self.connection)


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
