"""Local Comet-compatible server (REST v2 subset of WIRE.md) backed by SQLite.

Needs the ``server`` extra (FastAPI, uvicorn, python-multipart). Public entry points:

* :func:`comet_callbacks.server.embedded.start_server` → :class:`ServerHandle`;
* :class:`comet_callbacks.server.reader.Reader` (only needs ``requests``);
* :func:`comet_callbacks.server.__main__.cli_main` (``comet-callbacks server ...``).

Imports are lazy so that ``Reader`` works without the server extra installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["start_server", "ServerHandle", "Reader", "ReadError"]


def __getattr__(name: str) -> Any:
    if name in ("start_server", "ServerHandle"):
        from . import embedded

        return getattr(embedded, name)
    if name in ("Reader", "ReadError"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(name)
