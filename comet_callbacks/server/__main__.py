"""Command line: ``python -m comet_callbacks.server`` / ``comet-callbacks server``.

Serves the local Comet-compatible server in the foreground until SIGINT/SIGTERM
(both shut down cleanly and close the database). ``--show-key`` and ``--new-admin-key``
work on the data folder and exit without serving.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from .routes import Limits


def build_parser(prog: str = "comet-callbacks server") -> argparse.ArgumentParser:
    """The argument parser (shared by both entry points)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local Comet-compatible REST server (foreground; Ctrl-C or SIGTERM "
        "stops it cleanly). API keys are stored hashed: the admin key is printed once, at "
        "first start; --new-admin-key issues a new one.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 = any free)")
    parser.add_argument(
        "--data-dir",
        default="comet-server-data",
        help="data folder for --db/--assets defaults (default: ./comet-server-data)",
    )
    parser.add_argument("--db", default=None, help="SQLite file (default: DATA_DIR/comet.sqlite)")
    parser.add_argument("--assets", default=None, help="asset folder (default: DATA_DIR/assets)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="admin API key to accept (default: env COMET_SERVER_API_KEY, else generated)",
    )
    parser.add_argument(
        "--show-key",
        action="store_true",
        help="print the client settings for this data (URL, and the key only when given with "
        "--api-key / COMET_SERVER_API_KEY: stored keys are hashed and cannot be shown again) "
        "and exit without starting a server",
    )
    parser.add_argument(
        "--new-admin-key",
        action="store_true",
        help="issue a new admin key for this data, print it once and exit without starting a "
        "server (earlier admin keys stop working; a running server accepts the new one at once)",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int,
        default=Limits.max_upload_bytes,
        help=f"largest accepted file upload (default: {Limits.max_upload_bytes})",
    )
    parser.add_argument(
        "--max-json-bytes",
        type=int,
        default=Limits.max_json_bytes,
        help=f"largest accepted JSON body (default: {Limits.max_json_bytes})",
    )
    parser.add_argument(
        "--no-batch",
        action="store_true",
        help="answer 404 on the clientlib batch endpoints (to try a client's per-point fallback)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (default: warning)",
    )
    return parser


class _Terminated(Exception):
    """SIGTERM arrived before the server started: leave through the ``finally`` that closes the
    store."""


class _SigTerm:
    """SIGTERM, from the first line printed until the server has shut down: before the server
    runs it raises :class:`_Terminated`; once :meth:`serving` it asks uvicorn to shut down
    (``should_exit``), as uvicorn's own handler does. Raising there instead could land inside
    an asyncio callback, where the event loop logs and swallows the exception and the server
    keeps running (seen: a SIGTERM during start-up left the server up)."""

    def __init__(self) -> None:
        self.server: Any = None

    def serving(self, server: Any) -> None:
        self.server = server

    def __call__(self, signum: int, frame: object) -> None:
        if self.server is None:
            raise _Terminated
        self.server.should_exit = True


def _url(host: str, port: int | str) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _new_key_hint(args: argparse.Namespace, prog: str) -> str:
    where = f"--db {args.db}" if args.db else f"--data-dir {args.data_dir}"
    return f"{prog} --new-admin-key {where}"


def _show_key(args: argparse.Namespace, db: Path, assets: Path, prog: str) -> int:
    """``--show-key``: say how to reach this data's server; never binds a port."""
    if not db.exists():
        print(
            f"error: no server data at {db} yet. Start the server once (without --show-key): "
            "it prints the admin key.",
            file=sys.stderr,
        )
        return 1
    port = "<PORT>" if args.port == 0 else str(args.port)
    print(f"Local Comet server data: database {db}, assets {assets}")
    print("Point a client at the server (once it runs) with:")
    print(f"  export COMET_URL_OVERRIDE={_url(args.host, port)}")
    api_key = args.api_key or os.environ.get("COMET_SERVER_API_KEY") or None
    if api_key:
        from .store import Store

        store = Store(db, assets)
        try:
            valid = store.key_user(api_key) is not None
        finally:
            store.close()
        if valid:
            print(f"  export COMET_API_KEY={api_key}")
            return 0
        print(
            "error: the key given with --api-key / COMET_SERVER_API_KEY is not a key of this "
            f"server. To issue a new admin key: {_new_key_hint(args, prog)}",
            file=sys.stderr,
        )
        return 1
    print(
        "The admin key cannot be shown: API keys are stored only as salted hashes. It was "
        "printed at first start. To issue a new admin key (the old one stops working):\n"
        f"  {_new_key_hint(args, prog)}",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None, prog: str = "python -m comet_callbacks.server") -> int:
    """Run the server in the foreground; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        import uvicorn

        from .app import build_app, wrap
        from .store import Store
    except ImportError as exc:  # the server extra is missing
        print(f"error: {exc}. Install with: pip install 'comet-callbacks[server]'", file=sys.stderr)
        return 2
    data = Path(args.data_dir)
    db = Path(args.db) if args.db else data / "comet.sqlite"
    assets = (
        Path(args.assets) if args.assets else (db.parent / "assets" if args.db else data / "assets")
    )
    if args.show_key:
        return _show_key(args, db, assets, prog)
    store = Store(db, assets)
    if args.new_admin_key:
        try:
            key: str | None = store.new_admin_key()
        finally:
            store.close()
        print(f"New admin key (user 'local') for {db}; earlier admin keys stop working now.")
        print("It is shown only this once:")
        print(f"  export COMET_API_KEY={key}")
        return 0
    api_key = args.api_key or os.environ.get("COMET_SERVER_API_KEY") or None
    key, created = store.ensure_admin(api_key)
    limits = Limits(max_upload_bytes=args.max_upload_bytes, max_json_bytes=args.max_json_bytes)
    limits.batch_endpoints = not args.no_batch
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY by asyncio
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        store.close()
        return 1
    sock.listen(2048)  # connections made as soon as the URL is printed wait, not fail
    port = sock.getsockname()[1]
    url = _url(args.host, port)
    # uvicorn shuts down cleanly on SIGINT and SIGTERM, then re-raises the signal: SIGINT
    # becomes KeyboardInterrupt, SIGTERM would kill the process before the store is closed
    # (leaving -wal/-shm behind); this handler turns it into an exception like SIGINT, from
    # here on (a SIGTERM while starting up closes the store too).
    app = wrap(build_app(store, limits))
    # built before the handler below: uvicorn's logging set-up (dictConfig) would turn a
    # SIGTERM arriving inside it into a ValueError
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="off")
    session_key: str | None = None
    on_sigterm = _SigTerm()
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        print(f"Local Comet server at {url}  (database {db}, assets {assets})")
        print("Point a client at it with:")
        print(f"  export COMET_URL_OVERRIDE={url}")
        if created and key and not api_key:
            print(f"  export COMET_API_KEY={key}")
            print(
                "(admin user 'local', workspace 'local'; this key is shown only now: it is stored "
                "hashed. If it is lost: " + _new_key_hint(args, prog) + ")"
            )
        elif api_key:
            print("  export COMET_API_KEY=<the key given with --api-key / COMET_SERVER_API_KEY>")
        else:
            print(
                "  export COMET_API_KEY=<the admin key printed at first start; "
                f"lost? {_new_key_hint(args, prog)}>"
            )
        # The stored admin key is hashed: on later starts the login link gets an admin key of its
        # own, valid while this server runs (revoked at shutdown).
        link_key = key
        if link_key is None:
            link_key = session_key = store.add_admin_key()
        print("Web UI (one-time login link; later sign in with the API key):")
        print(f"  {url}{app.login_path(link_key)}")
        sys.stdout.flush()
        server = uvicorn.Server(config)
        on_sigterm.serving(server)
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if session_key is not None:
            store.drop_key(session_key)
        store.close()
    return 0


def cli_main(argv: list[str]) -> int:
    """Entry for ``comet-callbacks server ARGS...`` (called from ``comet_callbacks.cli``)."""
    return main(argv, prog="comet-callbacks server")


if __name__ == "__main__":
    raise SystemExit(main())
