"""The retry policy (WIRE.md §6): what is transient, how long to wait, how to say it.

* **Transient** = no answer (connection error, timeout), 408, 429, 500, 502, 503, 504. A
  transient failure never drops data: the caller keeps the request and tries again.
* **Wait** = full jitter: a uniform draw in ``[0, min(cap, base · 2^attempt)]`` with base
  0.25 s and cap 10 s; ``attempt`` goes back to 0 after any success. A server-given wait
  (``Retry-After-Custom``, else ``Retry-After``; capped at 300 s) replaces the computed one.
* **Permanent** = any other 4xx: reported once with the server's message, never retried.

The SDK's policy (3 retries sleeping 0, 4 and 8 s, then the data is dropped) was measured to
collapse delivery under a flaky server; this one keeps every lane busy with short waits.
"""

from __future__ import annotations

import random
from typing import Any

from .errors import CometAPIError, CometConnectionError, CometTimeoutError

__all__ = [
    "TRANSIENT_STATUSES",
    "BASE",
    "CAP",
    "MAX_SERVER_WAIT",
    "is_transient",
    "server_wait",
    "backoff",
    "next_wait",
    "describe",
    "data_type",
]

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BASE = 0.25
CAP = 10.0
MAX_SERVER_WAIT = 300.0

_rng = random.Random()


def is_transient(exc: BaseException) -> bool:
    """True when trying the same request again later may succeed."""
    if isinstance(exc, CometConnectionError):
        return True
    return isinstance(exc, CometAPIError) and exc.status in TRANSIENT_STATUSES


def server_wait(exc: BaseException, cap: float = MAX_SERVER_WAIT) -> float | None:
    """The wait the server asked for (``Retry-After-Custom`` / ``Retry-After``), capped."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        return None
    return max(0.0, min(float(value), cap))


def backoff(attempt: int, base: float = BASE, cap: float = CAP) -> float:
    """Full-jitter wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    return _rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


def next_wait(
    exc: BaseException,
    attempt: int,
    base: float = BASE,
    cap: float = CAP,
    max_server_wait: float = MAX_SERVER_WAIT,
) -> float:
    """The wait after a transient failure: the server's if it gave one, else the backoff."""
    given = server_wait(exc, max_server_wait)
    return given if given is not None else backoff(attempt, base, cap)


def describe(exc: BaseException) -> str:
    """A few words for a status line: ``server busy (429)``, ``server error (503)``..."""
    status = getattr(exc, "status", None)
    if isinstance(exc, CometTimeoutError):
        return "no answer in time"
    if isinstance(exc, CometConnectionError) or status is None:
        return "server unreachable"
    if status == 429:
        return "server busy (429)"
    if status == 408:
        return "request timeout (408)"
    return f"server error ({status})"


def data_type(path: str, body: Any = None) -> str:
    """The data type a request counts against in the service's rate limits (WIRE.md §6)."""
    if path.endswith("metric") or path.endswith("-metrics"):
        return "metric"
    if path.endswith("parameter"):
        return "parameter"
    if path.endswith("output"):
        return "output"
    return "other"
