"""The ``comet-callbacks`` command: ``upload`` offline runs, run a local ``server``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__

__all__ = ["main"]


_UPLOAD_DESCRIPTION = """\
Send offline runs, and the events online runs could not deliver, to a Comet server.
Each run is sent exactly once: an interrupted upload can simply be re-run.

Where it uploads (read from the environment, else the config files COMET_CONFIG,
./.comet.config, ~/.comet.config, like the official SDK):
  COMET_URL_OVERRIDE   the server, e.g. http://127.0.0.1:8080 for `comet-callbacks server`
                       (default: https://www.comet.com)
  COMET_API_KEY        the key it accepts (required by comet.com and the local server)
  COMET_WORKSPACE      workspace of the new experiments (default: the run's, else the key's)
  COMET_PROJECT_NAME   project for runs that did not record one (default: general)
  COMET_OFFLINE_DIRECTORY  where runs are looked for without PATHS (default: .cometcallbacks)
  COMET_TIMEOUT_API, COMET_TIMEOUT_UPLOAD  seconds per request / per file upload

Exit status: 0 all delivered; 1 something is left (re-run) or was refused; 2 no server
configured or a bad setting.
"""


def _cmd_upload(args: argparse.Namespace) -> int:
    from .config import ConfigError, Settings
    from .log import short_reason
    from .upload import upload_paths

    try:
        settings = Settings.resolve()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.api_key and not settings.url_override:
        print(
            "error: no server configured: set COMET_API_KEY (for comet.com), or "
            "COMET_URL_OVERRIDE and COMET_API_KEY (for a self-hosted Comet or the local "
            "`comet-callbacks server`, which prints both). Nothing was sent.",
            file=sys.stderr,
        )
        return 2
    paths = args.paths or [settings.offline_directory]
    results = upload_paths(paths, settings, progress=not args.quiet, timeout=args.timeout)
    if args.remove:
        import shutil

        for r in results:
            if r.complete:
                shutil.rmtree(r.path, ignore_errors=True)
    if not results:
        print(f"nothing to upload under {', '.join(paths)}")
        return 0
    rc = 0
    for r in results:
        state = "complete" if r.complete else "INCOMPLETE (re-run to continue)"
        damaged = r.damaged_summary()
        print(
            f"{r.path}: {r.sent} events sent, {r.failed} failed, {r.skipped} already sent — {state}"
            + (f"; {damaged}" if damaged else "")
        )
        if r.link:
            print(f"  experiment: {r.link}")
        for e in r.errors[:5]:
            if "(no response)" in e:  # urllib3's nested retry text says less than this
                e = f"cannot reach {settings.root} ({short_reason(Exception(e))}); is COMET_URL_OVERRIDE right?"
            print(f"  error: {e}")
        if not r.complete or r.failed:
            rc = 1
    return rc


def _cmd_server(argv: list[str]) -> int:
    try:
        from .server.__main__ import cli_main as server_main
    except ImportError as exc:
        print(
            f"error: the local server needs the 'server' extra: pip install -e '.[server]' in a clone of the repository ({exc})",
            file=sys.stderr,
        )
        return 2
    return int(server_main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``comet-callbacks`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="comet-callbacks",
        description="Comet ML experiment tracking over the REST API: upload offline runs, run a local server.",
        epilog="Settings come from COMET_* environment variables or .comet.config files, like "
        "the official SDK's (see the README's Configuration table). "
        "Help on a command: comet-callbacks upload --help, comet-callbacks server --help.",
    )
    parser.add_argument("--version", action="version", version=f"comet-callbacks {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    up = sub.add_parser(
        "upload",
        help="send offline runs / undelivered events to the configured server",
        description=_UPLOAD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "paths", nargs="*", help="run folders or folders of runs (default: COMET_OFFLINE_DIRECTORY)"
    )
    up.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    up.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop waiting out a busy or failing server after this long (default: no limit)",
    )
    up.add_argument(
        "--remove",
        action="store_true",
        help="delete each run folder once it is completely uploaded",
    )
    sub.add_parser(
        "server",
        help="run the local Comet-compatible server (see: comet-callbacks server --help)",
        add_help=False,
    )
    if argv and argv[0] == "server":
        return _cmd_server(argv[1:])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.command == "upload":
        # urllib3's own warnings (e.g. a full connection pool) say less than our summary;
        # quieted for this command only, so an in-process caller's logging is left as it was
        urllib3_log = logging.getLogger("urllib3")
        level = urllib3_log.level
        if not args.verbose:
            urllib3_log.setLevel(logging.ERROR)
        try:
            return _cmd_upload(args)
        finally:
            urllib3_log.setLevel(level)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
