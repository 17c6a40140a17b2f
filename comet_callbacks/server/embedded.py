"""Run the local server in-process: real HTTP via uvicorn on a background thread.

Used by the test fixtures and as the embedded default server::

    with start_server() as srv:
        os.environ["COMET_URL_OVERRIDE"] = srv.url
        os.environ["COMET_API_KEY"] = srv.api_key

``stop()`` then ``start()`` restarts on the same port with the same files, which is
what outage tests need.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .routes import Limits
from .store import Store


class ServerHandle:
    """A running (or stopped) local server; see :func:`start_server`."""

    def __init__(
        self,
        db_path: Path,
        assets_dir: Path,
        host: str,
        port: int,
        api_key: str | None,
        limits: Limits,
        tmpdir: tempfile.TemporaryDirectory[str] | None,
    ):
        self.db_path = db_path
        self.assets_dir = assets_dir
        self.host = host
        self.port = port
        self.workspace = "local"
        self.limits = limits
        self._requested_key = api_key
        self._tmpdir = tmpdir
        self._store: Store | None = None
        self._server: Any = None
        self._notifier: Any = None
        self._ui: Any = None
        self._thread: threading.Thread | None = None
        self.api_key = ""
        self.admin_created = False
        self._session_key: str | None = None

    @property
    def url(self) -> str:
        """The root URL (``http://host:port``), what ``COMET_URL_OVERRIDE`` takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def store(self) -> Store:
        """The open store (only while running)."""
        assert self._store is not None, "server is not running"
        return self._store

    def start(self) -> ServerHandle:
        """Open the files and serve on ``self.port`` (chosen on the first start if 0)."""
        import uvicorn

        from .app import build_app, wrap

        if self.running:
            return self
        self._store = Store(self.db_path, self.assets_dir)
        key, self.admin_created = self._store.ensure_admin(self._requested_key)
        if key is None and self.api_key and self._store.key_user(self.api_key) is not None:
            key = self.api_key  # a restart of this handle: the key it showed still works
        if key is None:
            # keys are stored hashed: an existing store's admin key cannot be read back, so
            # this process gets its own admin key, revoked again by stop()
            key = self._session_key = self._store.add_admin_key()
        self.api_key = key
        fastapi_app = build_app(self._store, self.limits)
        self._notifier = fastapi_app.state.comet["notifier"]
        app = wrap(fastapi_app)
        self._ui = app
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(
            family, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )  # TCP_NODELAY by asyncio
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="comet-local-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("local Comet server failed to start")
            time.sleep(0.005)
        return self

    def login_url(self, api_key: str | None = None, next_path: str | None = None) -> str:
        """A one-time link that signs a browser in to the web UI (as the admin by default)
        and opens ``next_path`` (a page path such as ``/local/demo/<key>``)."""
        assert self._ui is not None, "server is not running"
        return self.url + self._ui.login_path(api_key or self.api_key, next_path)

    def stop(self) -> None:
        """Stop serving and close the database (files stay for a later :meth:`start`)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._server = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        if self._store is not None:
            if self._session_key is not None:
                self._store.drop_key(self._session_key)
                self._session_key = None
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Stop, and remove the temporary folder if this handle made one."""
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def throttle(self, seconds: float, retry_after: float = 5.0) -> None:
        """Answer every write with 429 (``Retry-After`` and ``Retry-After-Custom`` =
        ``retry_after``) for the next ``seconds``, as a throttling Comet server does."""
        self.limits.throttle_retry_after = retry_after
        self.limits.throttle_until = time.time() + seconds

    def create_user(self, name: str, workspace: str | None = None) -> str:
        """Create a user owning workspace ``workspace`` (default: ``name``); return its key."""
        if self._store is not None:
            return self._store.create_user(name, workspace)
        store = Store(self.db_path, self.assets_dir)
        try:
            return store.create_user(name, workspace)
        finally:
            store.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url!r}, db_path={str(self.db_path)!r})"


def start_server(
    db_path: str | Path | None = None,
    assets_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    **limits: Any,
) -> ServerHandle:
    """Start a local server on a background thread and return its handle.

    Without ``db_path`` the data goes to a temporary folder removed by ``close()``.
    ``limits`` are fields of :class:`~.routes.Limits` (``max_json_bytes``,
    ``max_upload_bytes``, ``beat_interval_ms``, ...).
    """
    tmpdir = None
    if db_path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="comet-server-")
        db_path = Path(tmpdir.name) / "comet.sqlite"
    db_path = Path(db_path)
    assets = Path(assets_dir) if assets_dir is not None else db_path.parent / "assets"
    handle = ServerHandle(db_path, assets, host, port, api_key, Limits(**limits), tmpdir)
    return handle.start()
