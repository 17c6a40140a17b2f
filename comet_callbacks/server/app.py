"""The ASGI application: dispatch, authentication, body parsing and error mapping.

Every route of :data:`.routes.ROUTES` becomes a FastAPI route (so ``/openapi.json``
documents it, with request schemas made from the same specs that validate bodies).
The dispatcher reads the body within the size limit, inflates gzip, parses JSON or
multipart, then runs the handler in a worker thread inside one transaction. Every
failure becomes ``{"msg", "code"}``; nothing is stored when a request fails.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import re
import time
import zlib
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from . import (  # noqa: F401  (register the routes)
    clientlib,
    handlers_batch,
    handlers_read,
    handlers_write,
)
from .routes import ROUTES, Ctx, Limits, Principal, Route
from .store import Store, Tx, now_ms
from .uploads import Upload, read_multipart
from .validate import ApiError, json_schema, parse_query, validate
from .webhooks import Notifier

#: Header naming a write uniquely; a repeated id is answered without writing again.
REQUEST_ID_HEADER = "x-comet-request-id"

log = logging.getLogger("comet_callbacks.server")

#: 3.5.42 and above: the official SDK registers models through `item/create` (served here);
#: below, through the legacy `registry-model[/item]` endpoints (also served; our client uses them).
SERVER_VERSION = "3.5.42"
REST = "/api/rest/v2/"
ALIAS = "/clientlib/rest/v2/"
#: A ``\uD800``-``\uDFFF`` escape: JSON may carry a lone surrogate, which SQLite cannot store.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

try:  # the server extra's fast JSON parser, for the batch bodies (thousands of items each)
    import orjson as _orjson
except ImportError:  # pragma: no cover - the server extra installs it
    _orjson = None  # type: ignore[assignment]


_LONG_DIGITS = handlers_batch.LONG_DIGITS


def _loads_batch(data: bytes, path: str = "") -> Any:
    """A batch body parsed with orjson, about 3x cheaper than ``json``; whatever orjson refuses
    (NaN literals, lone surrogates...) or would read differently (integers beyond 64 bits) is
    left to ``json.loads``, so the server reads exactly what it did without it.

    A metric batch skips the scan for long integers (it cost about a third of the parse):
    its checker reads again with ``json`` when an item is anything but plain
    (:func:`handlers_batch.check_body`), and a plain item cannot hold one."""
    if _orjson is not None and (
        path == handlers_batch.METRIC_PATH or _LONG_DIGITS.search(data) is None
    ):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(data)


class CometJSON(JSONResponse):
    """``application/json`` (no charset), compact, finite-only JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def error(code: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    """The contract's error body."""
    return CometJSON({"msg": msg, "code": code}, status_code=code, headers=headers)


class AliasMiddleware:
    """Serve ``/clientlib/rest/v2/...`` as ``/api/rest/v2/...`` (WIRE §3 #10), and dispatch
    every known ``(method, path)`` straight to its endpoint: one dict lookup instead of
    FastAPI's linear scan of some 250 routes on every request. Anything else (the OpenAPI
    description, 404s, 405s, HEAD) goes through FastAPI as usual."""

    def __init__(self, app: Any, routes: dict[tuple[str, str], Any] | None = None) -> None:
        self.app = app
        self.routes = routes or {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith(ALIAS):
                scope = dict(scope)
                scope["path"] = REST + scope["path"][len(ALIAS) :]
                scope["raw_path"] = scope["path"].encode()
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def authenticate(tx: Tx, header: str | None) -> Principal:
    """Resolve the ``Authorization`` header (the part before the first ``*``)."""
    raw = (header or "").strip()
    if raw.lower().startswith("bearer "):
        raw = raw[7:].strip()
    key = raw.split("*", 1)[0].strip()
    if not key:
        raise ApiError(401, "Authorization: missing API key")
    user_id = tx.key_user(key)
    user = None if user_id is None else tx.one("SELECT * FROM users WHERE id=?", (user_id,))
    if user is None:
        raise ApiError(401, "Authorization: unknown API key")
    if user["is_service"]:
        owner = user["created_by"]
        spaces = {r[0] for r in tx.all("SELECT workspace FROM members WHERE user_id=?", (owner,))}
        if user["authorized_workspaces"] is not None:
            spaces &= set(json.loads(user["authorized_workspaces"]))
    else:
        spaces = {
            r[0] for r in tx.all("SELECT workspace FROM members WHERE user_id=?", (user["id"],))
        }
    return Principal(
        user["id"], user["name"], bool(user["is_service"]), spaces, user["default_workspace"]
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, inflated if gzip, at most ``limit`` bytes (413 otherwise)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body: payload larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body: payload larger than {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip") and data:
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = inflater.decompress(data, limit + 1)
            if len(out) > limit or inflater.unconsumed_tail:
                raise ApiError(413, f"body: payload larger than {limit} bytes")
        except (zlib.error, gzip.BadGzipFile, EOFError):
            raise ApiError(400, "body: invalid gzip data") from None
        data = out
    elif encoding not in ("", "identity", "gzip", "x-gzip"):
        raise ApiError(400, f"Content-Encoding: unsupported {encoding!r}")
    return data


def _check_unicode(parsed: Any) -> None:
    """400 when a JSON string holds a lone surrogate (valid JSON, but not storable text)."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "body: invalid unicode (lone surrogate escape)") from None


def _response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    return CometJSON(result)


def make_endpoint(app_state: dict[str, Any], rt: Route) -> Any:
    """Build the async FastAPI endpoint for one route."""

    async def endpoint(request: Request) -> Response:
        store: Store = app_state["store"]
        limits: Limits = app_state["limits"]
        if is_batch and not limits.batch_endpoints:
            return error(404, f"path: {rt.path} is not served (batch endpoints switched off)")
        if is_write and limits.throttle_until and time.time() < limits.throttle_until:
            wait = limits.throttle_retry_after
            return error(
                429,
                f"throttled: retry in {wait:g} s",
                {"Retry-After": str(math.ceil(wait)), "Retry-After-Custom": f"{wait:g}"},
            )
        parts = None
        try:
            raw_query = dict(request.query_params)
            query = parse_query(rt.query, raw_query) if rt.query else {}
            body: dict[str, Any] = {}
            files: dict[str, tuple[str | None, Upload]] = {}
            form_fields: dict[str, str] = {}
            root = f"{request.url.scheme}://{request.url.netloc}"
            header = request.headers.get("authorization")
            principal = None
            if rt.auth:  # from the headers, before a byte of the body is read
                with store.read() as tx:
                    principal = authenticate(tx, header)
            if rt.multipart:
                files_in, form_fields, parts = await read_multipart(
                    request, store.assets_dir, limits.max_upload_bytes, limits.max_json_bytes
                )
                files = {name: (up.filename, up) for name, up in files_in.items()}
                # the boundary differs between two sends of the same upload: digest the parts
                digest = hashlib.sha256()
                for name in sorted(files_in):
                    up = files_in[name]
                    digest.update(f"{name}\0{up.filename}\0".encode())
                    digest.update(up.sha256.digest())
                for name in sorted(form_fields):
                    digest.update(f"{name}\0{form_fields[name]}\0".encode())
                body_digest = digest.hexdigest()
            elif rt.body is not None:
                data = await _read_body(request, limits.max_json_bytes)
                body_digest = hashlib.sha256(data).hexdigest()
                if not data.strip():
                    parsed: Any = {}
                else:
                    try:
                        parsed = _loads_batch(data, rt.path) if is_batch else json.loads(data)
                    except (ValueError, UnicodeDecodeError):
                        raise ApiError(400, "body: malformed JSON") from None
                    except RecursionError:
                        raise ApiError(400, "body: malformed JSON (nested too deeply)") from None
                    if _SURROGATE_ESCAPE.search(data):
                        _check_unicode(parsed)
                if is_batch:  # thousands of items: a checker made for them
                    body = handlers_batch.check_body(rt.path, parsed, data)
                else:
                    body = validate(rt.body, parsed)
            else:
                data = await _read_body(request, limits.max_json_bytes)
                body_digest = hashlib.sha256(data).hexdigest()
            request_id = request.headers.get(REQUEST_ID_HEADER)
            if request_id is not None and (len(request_id) > 200 or not request_id.isprintable()):
                raise ApiError(
                    400, f"{REQUEST_ID_HEADER}: expected at most 200 printable characters"
                )
            fingerprint = None
            if request_id is not None:
                q = "&".join(f"{k}={v}" for k, v in sorted(raw_query.items()))
                fingerprint = f"{request.method} {rt.path}?{q}#{body_digest}"
            return _response(
                await _call(
                    rt.multipart,
                    _run,
                    store,
                    limits,
                    rt,
                    header,
                    root,
                    query,
                    raw_query,
                    body,
                    files,
                    form_fields,
                    app_state["notifier"],
                    request_id,
                    fingerprint,
                    principal,
                )
            )
        except ApiError as exc:
            return error(exc.code, exc.msg, exc.headers)
        except ClientDisconnect:  # the body was cut short: nothing stored, nobody to answer
            log.debug("client disconnected during %s %s", request.method, request.url.path)
            return error(400, "body: client disconnected before sending the whole body")
        except Exception:  # never a bare 500 page: log it and answer JSON
            log.exception("unexpected error serving %s %s", request.method, request.url.path)
            return error(500, "server: internal error")
        finally:
            if parts is not None:  # received files not moved into the store
                parts.close()

    is_batch = rt.path in handlers_batch.BATCH_PATHS
    is_write = is_batch or rt.path.startswith("write/")
    endpoint.__name__ = (
        "ep_" + rt.path.replace("/", "_").replace("-", "_") + "_" + "_".join(rt.methods)
    )
    endpoint.__doc__ = (rt.handler.__doc__ or "").strip()
    return endpoint


async def _call(in_thread: bool, fn: Any, *args: Any) -> Any:
    """Run a handler. Small requests run right here on the event loop: the store serialises
    every transaction behind one lock anyway, and a thread hop costs more than the handler
    (about 150 µs of SQLite). Uploads, which write files, go to the thread pool."""
    if in_thread:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


def _run(
    store: Store,
    limits: Limits,
    rt: Route,
    header: str | None,
    root: str,
    query: dict[str, Any],
    raw_query: dict[str, str],
    body: dict[str, Any],
    files: dict[str, tuple[str | None, Upload]],
    form: dict[str, str],
    notifier: Notifier,
    request_id: str | None = None,
    fingerprint: str | None = None,
    principal: Principal | None = None,
) -> Any:
    """Authenticate and run the handler in one transaction (worker thread).

    A write carrying ``X-Comet-Request-Id`` that was already performed for this user is not
    performed again: the first answer is returned (idempotent retries, exactly-once replay).
    That holds only for the same request — same method, path, query and body digest, which
    covers the experiment — (the ``path`` column keeps that fingerprint); the same id on a
    different request is a 409 naming the header, never a cached success for a write that
    was not performed.
    """
    with store.tx() as tx:
        if rt.auth and principal is None:
            principal = authenticate(tx, header)
        idempotent = (
            request_id is not None
            and principal is not None
            and (
                rt.path.startswith(("write/", "webhooks/")) or rt.path in handlers_batch.BATCH_PATHS
            )
        )
        if idempotent:
            assert principal is not None
            row = tx.one(
                "SELECT response, path FROM request_ids WHERE user_id=? AND request_id=?",
                (principal.user_id, request_id),
            )
            if row is not None:
                stored = row[1]
                # rows written before fingerprints were kept hold the bare path
                same = stored == fingerprint if "#" in stored else stored == rt.path
                if not same:
                    raise ApiError(
                        409,
                        f"{REQUEST_ID_HEADER}: {request_id!r} was already used for a different "
                        "request (another path, body or experiment); use a new id",
                    )
                return json.loads(row[0])
        ctx = Ctx(
            tx=tx,
            store=store,
            limits=limits,
            root=root,
            principal=principal,
            query=query,
            body=body,
            raw_query=raw_query,
            files=files,
            form=form,
            notify=notifier.notify,
            auth_header=header,
        )
        result = rt.handler(ctx)
        if idempotent and (result is None or isinstance(result, dict)):
            assert principal is not None
            tx.execute(
                "INSERT OR REPLACE INTO request_ids VALUES (?,?,?,?,?)",
                (
                    principal.user_id,
                    request_id,
                    fingerprint or rt.path,
                    json.dumps(result),
                    now_ms(),
                ),
            )
        return result


def build_app(store: Store, limits: Limits | None = None) -> FastAPI:
    """Create the FastAPI application serving ``store``."""
    limits = limits or Limits()
    notifier = Notifier(limits)
    # no /docs or /redoc: they load their scripts from a CDN, blank on an air-gapped machine
    app = FastAPI(
        title="comet-callbacks local Comet server",
        version=SERVER_VERSION,
        docs_url=None,
        redoc_url=None,
    )
    state: dict[str, Any] = {"store": store, "limits": limits, "notifier": notifier}
    app.state.comet = state

    @app.get("/clientlib/isAlive/ver", include_in_schema=True)
    async def version() -> Response:
        """Version probe; needs no key."""
        return CometJSON({"version": SERVER_VERSION})

    fast_routes: dict[tuple[str, str], Any] = {}
    app.state.fast_routes = fast_routes
    for rt in ROUTES:
        extra: dict[str, Any] = {}
        if rt.body is not None:
            extra["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": json_schema(rt.body)}},
            }
        if rt.multipart:
            extra["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "metadata": {"type": "string"},
                            },
                            "required": ["file"],
                        }
                    }
                },
            }
        if rt.query:
            extra["parameters"] = [
                {
                    "name": k.rstrip("?"),
                    "in": "query",
                    "required": not k.endswith("?"),
                    "schema": json_schema(v),
                }
                for k, v in rt.query.items()
            ]
        endpoint = make_endpoint(state, rt)
        full = rt.path if rt.path.startswith("/") else REST + rt.path
        for method in rt.methods:
            fast_routes[(method, full)] = endpoint
            app.add_api_route(
                full,
                endpoint,
                methods=[method],
                openapi_extra=extra or None,
                response_model=None,
                operation_id=f"{method.lower()}_{rt.path}".replace("/", "_").replace("-", "_"),
            )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(exc.status_code, f"path: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        where = ".".join(str(p) for p in errs[0]["loc"][1:]) if errs else "body"
        return error(400, f"{where or 'body'}: {errs[0]['msg'] if errs else 'invalid'}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error serving %s", request.url.path, exc_info=exc)
        return error(500, "server: internal error")

    return app


def wrap(app: FastAPI) -> Any:
    """The ASGI callable to serve: the web UI's pages, then the app behind the clientlib alias."""
    from .ui import UI

    return UI(AliasMiddleware(app, getattr(app.state, "fast_routes", None)), app.state.comet)
