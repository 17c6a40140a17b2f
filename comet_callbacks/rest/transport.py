"""HTTP transport: one pooled ``requests.Session``, the WIRE.md §6 retry policy.

urllib3 never retries by itself (its per-retry WARNING lines are gone): :meth:`Transport.send`
retries transient failures (connection errors, timeouts, 408, 429, 5xx; POST included) up to
``retries`` times with full-jitter backoff, honouring ``Retry-After-Custom`` / ``Retry-After``,
and says so in one status line. The sender and ``upload`` pass ``retries=0`` and retry on
their own schedule, without a limit until their deadline (:mod:`.retry`). Other 4xx are never
retried. Failures become the typed errors of :mod:`.errors`.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .. import __version__
from ..config import register_secret, scrub
from . import retry as policy
from .call import Call, MultipartStream
from .errors import CometAPIError, CometConnectionError, CometTimeoutError, error_for_status

__all__ = [
    "Transport",
    "USER_AGENT",
    "RETRY_STATUSES",
    "REQUEST_ID_HEADER",
    "clientlib_base",
]

log = logging.getLogger("comet_callbacks.rest")
USER_AGENT = f"comet-callbacks/{__version__}"
RETRY_STATUSES = tuple(sorted(policy.TRANSIENT_STATUSES))
REQUEST_ID_HEADER = "X-Comet-Request-Id"
#: Call paths under this prefix go to the clientlib base (BATCH.md §2), not the root.
CLIENTLIB_PREFIX = "/clientlib/"
#: urllib3 performs each request once; retries are ours.
_NO_RETRY = Retry(
    total=0, connect=0, read=0, status=0, other=0, redirect=0,
    raise_on_status=False, raise_on_redirect=False,
)  # fmt: skip


def clientlib_base(root: str, url_override: str | None = None) -> str:
    """The clientlib base ``C`` of BATCH.md §2: an override's own path when it has one
    (``https://h/comet/clientlib`` → ``https://h/comet/clientlib/``), else ``root/clientlib/``."""
    if url_override:
        parts = urlsplit(url_override.strip())
        if parts.path.strip("/") and parts.scheme in ("http", "https"):
            return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
    return root.rstrip("/") + CLIENTLIB_PREFIX


class Transport:
    """Sends :class:`Call` objects to ``<root>/api/rest/v2/`` and parses the answers."""

    def __init__(
        self,
        root: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        upload_timeout: float = 900.0,
        retries: int = 3,
        backoff_factor: float = policy.BASE,
        backoff_max: float = policy.CAP,
        max_retry_after: float = policy.MAX_SERVER_WAIT,
        pool_size: int = 16,
        clientlib: str | None = None,
    ) -> None:
        if not isinstance(root, str) or not root.startswith(("http://", "https://")):
            raise ValueError(f"root must be an http(s) URL, got {root!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.root = root.rstrip("/")
        self.base = self.root + "/api/rest/v2/"
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self._api_key = api_key
        register_secret(api_key)
        self.retries = retries
        self.backoff_base = backoff_factor
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.clientlib = clientlib or self.root + CLIENTLIB_PREFIX
        self.retry = _NO_RETRY
        self._failing = False  # one status line per run of failures
        self._failing_lock = threading.Lock()
        self.session = requests.Session()
        adapter = HTTPAdapter(
            pool_connections=pool_size, pool_maxsize=pool_size, max_retries=_NO_RETRY
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._adapter = adapter
        self.session.headers.update({"User-Agent": USER_AGENT})
        if api_key:
            self.session.headers["Authorization"] = api_key

    def __repr__(self) -> str:
        return f"Transport(root={self.root!r}, api_key=<redacted>)"

    def url_for(self, call: Call) -> str:
        """Absolute URL of a call: under the REST base, or, for a path starting with ``/``,
        under the root (``/clientlib/...`` under the clientlib base)."""
        path = call.path
        if path.startswith(CLIENTLIB_PREFIX):
            return self.clientlib + path[len(CLIENTLIB_PREFIX) :]
        return self.root + path if path.startswith("/") else self.base + path

    def send(
        self,
        call: Call,
        timeout: float | None = None,
        request_id: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """Perform ``call``; return the parsed JSON (or bytes, or None for 204). Raises CometAPIError.

        Transient failures are retried up to ``retries`` times (default: the transport's) per
        WIRE.md §6; ``retries=0`` sends once and leaves retrying to the caller. ``request_id``
        names this write uniquely (``X-Comet-Request-Id``): a server that knows the header
        performs a repeated id only once, so retries and replays stay exactly-once; others
        ignore it (WIRE.md §1: unknown headers are ignored).
        """
        limit = self.retries if retries is None else retries
        attempt = 0
        boundary = uuid.uuid4().hex  # a retried upload sends the very same bytes
        while True:
            try:
                answer = self._send_once(call, timeout, request_id, boundary)
            except CometAPIError as exc:
                if attempt >= limit or not policy.is_transient(exc):
                    raise
                wait = policy.next_wait(
                    exc, attempt, self.backoff_base, self.backoff_max, self.max_retry_after
                )
                self._status(call, exc, wait)
                time.sleep(wait)
                attempt += 1
                continue
            if self._failing:
                with self._failing_lock:
                    self._failing = False
            return answer

    def _status(self, call: Call, exc: CometAPIError, wait: float) -> None:
        """One WARNING line when requests start failing, DEBUG for each further retry."""
        with self._failing_lock:
            first, self._failing = not self._failing, True
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "comet_callbacks: %s on %s %s, retrying in %.1f s",
            policy.describe(exc),
            call.method,
            call.path,
            wait,
        )

    def _send_once(
        self, call: Call, timeout: float | None, request_id: str | None, boundary: str
    ) -> Any:
        extra = {REQUEST_ID_HEADER: request_id} if request_id else {}
        if call.file is None:
            return self._send_small(call, timeout or self.timeout, extra)
        url = self.url_for(call)
        kwargs: dict[str, Any] = {"params": call.query or None}
        stream = None
        if call.file is not None:
            stream = MultipartStream(call.file, call.metadata, boundary)
            kwargs["data"] = stream
            kwargs["headers"] = {
                "Content-Type": stream.content_type,
                "Content-Length": str(stream.length),
                **extra,
            }
            t = timeout or self.timeout
            kwargs["timeout"] = (t, max(self.upload_timeout, t))
        else:
            if call.json is not None:
                kwargs["data"] = call.body_text().encode("utf-8")  # type: ignore[union-attr]
                kwargs["headers"] = {"Content-Type": "application/json", **extra}
            elif extra:
                kwargs["headers"] = extra
            kwargs["timeout"] = timeout or self.timeout
        try:
            resp = self.session.request(call.method, url, **kwargs)
        except requests.Timeout as exc:
            raise CometTimeoutError(call.path, _short(exc), method=call.method) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            # After retries, requests reports a read timeout as ConnectionError(MaxRetryError).
            if _is_timeout(exc):
                raise CometTimeoutError(call.path, _short(exc), method=call.method) from None
            raise CometConnectionError(call.path, _short(exc), method=call.method) from None
        except requests.RequestException as exc:
            raise CometConnectionError(call.path, _short(exc), method=call.method) from None
        finally:
            if stream is not None:
                stream.close()
        return self._parse(call, resp)

    def _send_small(self, call: Call, timeout: float, extra: dict[str, str]) -> Any:
        """A request without a file (every metric, parameter, output...): sent straight
        through the session's own urllib3 pool with the same ``Retry``, skipping requests'
        per-request machinery (about 3x less client CPU per request, measured in
        ``benchmarks``). Same bytes on the wire; the wire tests pin them."""
        url = self.url_for(call)
        target = urlsplit(url).path  # origin-form request target, as requests sends it
        if call.query:
            target += "?" + urlencode(call.query)
        headers = dict(self.session.headers)
        headers.update(extra)
        body = None
        if call.json is not None:
            body = call.body_text().encode("utf-8")  # type: ignore[union-attr]
            if call.gzip:  # BATCH.md §2; mtime=0: the same batch is the same bytes
                body = gzip.compress(body, compresslevel=1, mtime=0)
                headers["Content-Type"] = "application/json;charset=utf-8"
                headers["Content-Encoding"] = "gzip"
            else:
                headers["Content-Type"] = "application/json"
        try:
            pool = self._adapter.poolmanager.connection_from_url(url)
            resp = pool.urlopen(
                call.method,
                target,
                body=body,
                headers=headers,
                retries=self.retry,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=True,
                decode_content=True,
            )
        except urllib3.exceptions.MaxRetryError as exc:
            if _is_timeout(exc):
                raise CometTimeoutError(call.path, _short(exc), method=call.method) from None
            raise CometConnectionError(call.path, _short(exc), method=call.method) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            raise CometTimeoutError(call.path, _short(exc), method=call.method) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CometConnectionError(call.path, _short(exc), method=call.method) from None
        return self._parse_parts(call, resp.status, resp.headers, resp.data)

    @staticmethod
    def _parse(call: Call, resp: requests.Response) -> Any:
        return Transport._parse_parts(call, resp.status_code, resp.headers, resp.content)

    @staticmethod
    def _parse_parts(call: Call, status: int, headers: Any, content: bytes) -> Any:
        ctype = headers.get("Content-Type", "")
        if 200 <= status < 300:
            if status == 204 or not content:
                return None
            if "json" in ctype:
                try:
                    return json.loads(content)
                except ValueError:
                    raise CometAPIError(
                        call.path, "invalid JSON in the answer", status, method=call.method
                    ) from None
            return content
        message = ""
        try:
            body = json.loads(content)
            if isinstance(body, dict):
                message = str(body.get("msg") or body.get("message") or body.get("error") or "")
        except ValueError:
            message = content[:300].decode("utf-8", "replace")
        retry_after = None
        for name in ("Retry-After-Custom", "Retry-After"):  # seconds (an HTTP date is ignored)
            try:
                retry_after = float(headers.get(name, ""))
                break
            except ValueError:
                continue
        exc = error_for_status(
            status, call.path, message, method=call.method, retry_after=retry_after
        )
        exc.retry_after = retry_after
        raise exc

    def close(self) -> None:
        self.session.close()


def _is_timeout(exc: BaseException) -> bool:
    """True when a requests error was caused by a (connect or read) timeout."""
    seen = 0
    cur: Any = exc
    while cur is not None and seen < 8:
        if isinstance(cur, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
            return False
        if isinstance(cur, (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout)):
            return True
        nxt = getattr(cur, "reason", None)
        if nxt is None and getattr(cur, "args", None):
            nxt = cur.args[0] if isinstance(cur.args[0], BaseException) else None
        cur, seen = nxt, seen + 1
    return False


def _short(exc: BaseException) -> str:
    text = f"{exc.__class__.__name__}: {exc}"
    return scrub(text[:300])
