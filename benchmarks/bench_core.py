"""Old import path of the benchmarks' local-server launcher, kept for modules written against
it: use :mod:`benchmarks.server` (``LocalServer``, ``set_env``). What this module measured
(caller cost, end-of-run wait, memory) is measured by ``python -m benchmarks``."""

from __future__ import annotations

from benchmarks.server import API_KEY, LocalServer, set_env

Server = LocalServer
_set_env = set_env

__all__ = ["API_KEY", "Server", "_set_env"]
