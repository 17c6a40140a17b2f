"""The local server's web UI: pages at Comet's URL scheme, read-only, served by the package.

Pages (``GET``; ``HEAD`` too):

- ``/`` workspaces and projects, ``/<workspace>`` one workspace;
- ``/<workspace>/<project>`` the experiments table;
- ``/<workspace>/<project>/<experimentKey>`` one experiment (the link every run prints);
- ``/<workspace>/<project>/compare?experiments=K1,K2`` several experiments side by side;
- ``/<workspace>/model-registry`` and ``/<workspace>/model-registry/<model>``.

Chart data and live updates come from ``/ui-api/...`` (JSON), scripts and styles from
``/ui-static/...``. Every page and data request authenticates with the API's own
``authenticate`` (an ``Authorization: <key>`` header, or the session cookie set by
``/login``), and reads through the API's read handlers, so a key sees exactly what it may
read through the REST API. Only ``POST /login`` and ``POST /logout`` change anything (the
in-memory sessions). Nothing refers to another origin (a Content-Security-Policy of
``'self'`` enforces it), so the UI works air-gapped.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..routes import Ctx
from ..validate import ApiError
from . import data, pages

STATIC_DIR = Path(__file__).parent / "static"
#: Session cookie (an opaque random id; the key it stands for stays in server memory).
COOKIE = "comet_ui_session"
#: First path segments that belong to the API, the docs or the UI's own plumbing.
RESERVED = {
    "api",
    "clientlib",
    "ui-api",
    "ui-static",
    "login",
    "logout",
    "openapi.json",
    "docs",
    "redoc",
}
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_MAX_FORM = 64 * 1024


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    out.update(extra or {})
    return out


class UI:
    """ASGI layer in front of the API: answers the UI's paths, passes everything else on."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self._lock = threading.Lock()
        self._sessions: dict[str, str] = {}  # session id -> API key (memory only)
        self._tokens: dict[str, str] = {}  # one-time login token -> API key
        self._static: dict[str, bytes] = {}
        self.series_reader = data.SeriesReader(state["store"].db_path)

    # -- login links and sessions --------------------------------------------------------

    def login_path(self, api_key: str, next_path: str | None = None) -> str:
        """A one-time ``/login?token=...`` path that signs the browser in as ``api_key``'s
        user, then opens ``next_path`` (default: the workspaces page)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = api_key
        tail = "&next=" + quote(next_path, safe="/") if next_path else ""
        return "/login?token=" + token + tail

    def _session_key(self, request: Request) -> str | None:
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        response: Response | None = None
        if method in ("GET", "HEAD"):
            if path.startswith("/ui-static/"):
                response = self._static_file(path[len("/ui-static/") :])
            elif path == "/login":
                response = pages.login(Request(scope), error=None)
            elif path.startswith("/ui-api/") or self._is_page(path):
                request = Request(scope, receive)
                response = await run_in_threadpool(self._serve, request)
        elif method == "POST" and path in ("/login", "/logout"):
            request = Request(scope, receive)
            response = await (self._login(request) if path == "/login" else self._logout(request))
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    @staticmethod
    def _is_page(path: str) -> bool:
        parts = path.strip("/").split("/")
        if path == "/":
            return True
        if not all(parts) or parts[0] in RESERVED or parts[0].startswith("."):
            return False
        return len(parts) <= 3

    def _static_file(self, name: str) -> Response:
        if not name or ".." in name or name.startswith("/"):
            return JSONResponse({"msg": "path: Not Found", "code": 404}, status_code=404)
        data_ = self._static.get(name)
        if data_ is None:
            file = STATIC_DIR / name
            if not file.is_file():
                return JSONResponse({"msg": "path: Not Found", "code": 404}, status_code=404)
            data_ = self._static[name] = file.read_bytes()
        ctype = _TYPES.get(file_suffix(name), "text/plain; charset=utf-8")
        return Response(
            data_,
            media_type=ctype,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    # -- pages and data ------------------------------------------------------------------

    def _serve(self, request: Request) -> Response:
        """Authenticate, then render the page or answer the data request (worker thread)."""
        from ..app import authenticate

        is_api = request.url.path.startswith("/ui-api/")
        header = request.headers.get("authorization")
        key = header if header else self._session_key(request)
        store = self.state["store"]
        try:
            with store.tx() as tx:
                try:
                    principal = authenticate(tx, key)
                except ApiError as exc:
                    if is_api or header:
                        raise
                    nxt = request.url.path + ("?" + request.url.query if request.url.query else "")
                    return (
                        RedirectResponse(
                            "/login?next=" + quote(nxt, safe=""), 303, headers=_headers()
                        )
                        if exc.code == 401
                        else pages.error_page(exc.code, exc.msg)
                    )
                ctx = Ctx(
                    tx=tx,
                    store=store,
                    limits=self.state["limits"],
                    root=f"{request.url.scheme}://{request.url.netloc}",
                    principal=principal,
                )
                answer = self._data(ctx, request) if is_api else self._page(ctx, request)
            return answer() if callable(answer) and not isinstance(answer, Response) else answer
        except ApiError as exc:
            if is_api:
                return JSONResponse(
                    {"msg": exc.msg, "code": exc.code}, status_code=exc.code, headers=_headers()
                )
            return pages.error_page(exc.code, exc.msg)

    def _page(self, ctx: Ctx, request: Request) -> Response:
        parts = [p for p in request.url.path.strip("/").split("/") if p]
        q = request.query_params
        if not parts:
            return pages.home(ctx, data.home(ctx))
        ws = parts[0]
        ctx.ws(ws)
        if len(parts) == 1:
            return pages.home(ctx, [w for w in data.home(ctx) if w["name"] == ws], workspace=ws)
        if parts[1] == "model-registry":
            if len(parts) == 2:
                return pages.registry(ctx, ws, data.registry(ctx, ws))
            return pages.registry_model(ctx, ws, data.registry_model(ctx, ws, parts[2]))
        project = parts[1]
        if len(parts) == 2:
            chosen = {
                kind: [n for n in q.get(kind, "").split(",") if n] if kind in q else None
                for kind in ("metrics", "params")
            }
            return pages.project(ctx, ws, project, data.experiments(ctx, ws, project), **chosen)
        if parts[2] == "compare":
            keys = [k for k in (q.get("experiments") or "").split(",") if k][:20]
            if not keys:
                raise ApiError(400, "experiments: choose at least one experiment to compare")
            return pages.compare(ctx, ws, project, data.compare(ctx, keys))
        info = data.experiment(ctx, parts[2])
        exp = info["exp"]
        if exp["workspaceName"] != ws or exp["projectName"] != project:
            # the key decides; a link with another project's name still opens the run
            return RedirectResponse(
                f"/{quote(exp['workspaceName'])}/{quote(exp['projectName'])}/{exp['experimentKey']}",
                303,
                headers=_headers(),
            )
        return pages.experiment(ctx, info)

    def _data(self, ctx: Ctx, request: Request) -> Any:
        """A JSON answer, or a function making it once the transaction is over."""
        what = request.url.path[len("/ui-api/") :]
        q = request.query_params
        key = q.get("experimentKey") or ""
        if what == "series":
            data.with_query(ctx, experimentKey=key)
            from .. import handlers_read as api

            api.metadata(ctx)  # access check (404/403), inside the transaction
            args = (
                self.series_reader,
                key,
                q.get("metricName") or "",
                q.get("x") or "step",
                _number(q, "min"),
                _number(q, "max"),
                int(_number(q, "points") or data.TARGET_POINTS),
            )
            # the points are read after the transaction, on a read-only connection
            return lambda: JSONResponse(data.series(*args), headers=_headers())
        elif what == "live":
            result = data.live(ctx, key)
        elif what == "asset":
            from .. import handlers_read as api

            body = api.get_asset(data.with_query(ctx, experimentKey=key, assetId=q.get("assetId")))
            row = ctx.tx.one("SELECT file_name FROM assets WHERE id=?", (q.get("assetId"),))
            name = (row["file_name"] if row else "asset").replace('"', "")
            return Response(
                body,
                media_type="application/octet-stream",
                headers=_headers(
                    {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
                ),
            )
        elif what == "git-patch":
            data.with_query(ctx, experimentKey=key)
            from .. import handlers_read as api

            patch = api.git_patch(ctx)
            if not isinstance(patch, bytes):
                raise ApiError(404, "experimentKey: no git patch stored")
            return Response(
                patch,
                media_type="application/zip",
                headers=_headers({"Content-Disposition": 'attachment; filename="git-patch.zip"'}),
            )
        else:
            raise ApiError(404, f"path: unknown UI data request {what!r}")
        return JSONResponse(result, headers=_headers())

    # -- login / logout ------------------------------------------------------------------

    async def _form(self, request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                raise ApiError(413, f"body: login form larger than {_MAX_FORM} bytes")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host")

    async def _login(self, request: Request) -> Response:
        from ..app import authenticate

        if not self._same_origin(request):
            return pages.error_page(403, "Origin: login form posted from another site")
        try:
            form = await self._form(request)
        except ApiError as exc:
            return pages.error_page(exc.code, exc.msg)
        nxt = form.get("next") or "/"
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"
        token = form.get("token", "").strip()
        if token:
            with self._lock:
                key = self._tokens.pop(token, None)
            if key is None:
                return pages.login(
                    request, "This login link was already used or is not from this server run.", 401
                )
        else:
            key = form.get("api_key", "").strip()
        try:
            with self.state["store"].tx() as tx:
                authenticate(tx, key)
        except ApiError:
            return pages.login(request, "That API key is not known to this server.", 401)
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = key  # type: ignore[assignment]
        response = RedirectResponse(nxt, 303, headers=_headers())
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return response

    async def _logout(self, request: Request) -> Response:
        if not self._same_origin(request):
            return pages.error_page(403, "Origin: logout posted from another site")
        sid = request.cookies.get(COOKIE)
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)
        response = RedirectResponse("/login", 303, headers=_headers())
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response


def file_suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _number(q: Any, name: str) -> float | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name}: expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ApiError(400, f"{name}: expected a finite number, got {raw!r}")
    return value


def html_response(body: str, status: int = 200) -> HTMLResponse:
    """An HTML page with the UI's security headers."""
    return HTMLResponse(body, status_code=status, headers=_headers())
