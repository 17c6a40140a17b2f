"""Command line: ``python -m comet_callbacks.server`` / ``comet-callbacks server``.

Serves the local Comet-compatible server in the foreground until SIGINT/SIGTERM
(uvicorn handles both and shuts down cleanly), then closes the database.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from .routes import Limits


def build_parser(prog: str = "comet-callbacks server") -> argparse.ArgumentParser:
    """The argument parser (shared by both entry points)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run a local Comet-compatible REST server."
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
    parser.add_argument("--show-key", action="store_true", help="print the stored admin key again")
    parser.add_argument("--max-upload-bytes", type=int, default=Limits.max_upload_bytes)
    parser.add_argument("--max-json-bytes", type=int, default=Limits.max_json_bytes)
    parser.add_argument(
        "--no-batch",
        action="store_true",
        help="answer 404 on the clientlib batch endpoints (to try a client's per-point fallback)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


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
    store = Store(db, assets)
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
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    print(f"Local Comet server at {url}  (database {db}, assets {assets})")
    print("Point a client at it with:")
    print(f"  export COMET_URL_OVERRIDE={url}")
    if created or args.show_key:
        print(f"  export COMET_API_KEY={key}")
        if created and not api_key:
            print(
                "(admin user 'local', workspace 'local'; this key is shown only now, "
                "or again with --show-key)"
            )
    elif api_key:
        print("  export COMET_API_KEY=<the key given with --api-key / COMET_SERVER_API_KEY>")
    else:
        print("  export COMET_API_KEY=<the admin key printed at first start; see --show-key>")
    sys.stdout.flush()
    try:
        config = uvicorn.Config(
            wrap(build_app(store, limits)),
            log_level=args.log_level,
            access_log=False,
            lifespan="off",
        )
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the signal after its clean shutdown
        pass
    finally:
        store.close()
    return 0


def cli_main(argv: list[str]) -> int:
    """Entry for ``comet-callbacks server ARGS...`` (called from ``comet_callbacks.cli``)."""
    return main(argv, prog="comet-callbacks server")


if __name__ == "__main__":
    raise SystemExit(main())
