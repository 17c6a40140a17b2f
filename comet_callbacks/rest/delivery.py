"""Delivery with the WIRE.md §6 retry policy and the BATCH.md §4 batch fallbacks.

:class:`Deliverer` is shared by the background sender and ``comet-callbacks upload``:

* :meth:`Deliverer.send` sends one call and retries transient failures (full jitter 0.25 s →
  10 s, reset by any success, the server's ``Retry-After-Custom`` / ``Retry-After`` instead
  when given) until the caller stops it or its deadline passes — then :class:`Abandoned` is
  raised and the caller keeps the data for later. A server-given wait holds back every
  request of that data type (metric, parameter, output, other); other types keep going.
* :meth:`Deliverer.send_batch` sends consecutive metric or parameter events as one batch and
  handles the answers of BATCH.md §4: success acknowledges every event; "not served"
  (404/405/410/501, a redirect, a 2xx HTML page) marks batches unsupported for that server
  root and kind and re-sends the same events per point; 400 re-sends that batch per point
  (three in a row switch batching off); 413 splits the batch in halves; 429 and transient
  failures re-send the same batch with the same request id. Each event is reported exactly
  once to ``done(seq, error)`` as soon as its fate is known, so a fallback neither loses nor
  duplicates a point and an abandoned delivery keeps what was already acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import retry as policy
from .call import Call
from .endpoints import calls
from .errors import CometAPIError

if TYPE_CHECKING:  # requests is imported only when a client is built
    from .client import RestClient

__all__ = [
    "Abandoned",
    "Deliverer",
    "batch_supported",
    "request_id",
    "send_waiting",
    "set_batch_supported",
    "BATCH_MAX_ITEMS",
    "BATCH_MAX_BYTES",
]

#: At most this many items, and about this many bytes of JSON, per batch (BATCH.md §3).
BATCH_MAX_ITEMS = 1000
BATCH_MAX_BYTES = 1 << 20
#: Statuses meaning "this server does not serve the batch endpoints" (BATCH.md §4).
_UNSUPPORTED = frozenset({404, 405, 410, 501})
#: This many 400s in a row on batches whose points then succeed one by one switch batching off.
_BAD_BATCHES_OFF = 3

log = logging.getLogger("comet_callbacks.rest")

# Per server root and kind: True supported, False unsupported, absent unknown (try).
_support: dict[tuple[str, str], bool] = {}
_support_lock = threading.Lock()


def batch_supported(root: str, kind: str) -> bool:
    """Whether batches of ``kind`` (``metric`` / ``parameter``) are worth trying on ``root``."""
    return _support.get((root, kind), True)


def set_batch_supported(root: str, kind: str, value: bool | None) -> None:
    """Record (or, with ``None``, forget) what ``root`` answered to a batch of ``kind``."""
    with _support_lock:
        if value is None:
            _support.pop((root, kind), None)
        else:
            _support[(root, kind)] = value


def send_waiting(client: RestClient, call: Call, deadline: float) -> Any:
    """Send a synchronous call (creating the experiment, reading it back) and wait out the
    server's transient answers per WIRE.md §6 — 408, 429, 5xx: ``Retry-After-Custom`` /
    ``Retry-After`` honoured, full jitter otherwise — until ``deadline`` (``time.monotonic()``),
    then raise the last error. No answer at all (refused, timed out) is retried only the
    transport's few times, so the caller soon learns the server is unreachable (and can go on
    offline). One status line says what it waits for."""
    attempt = 0
    while True:
        try:
            return client.send(call, retries=0)
        except CometAPIError as exc:
            if not policy.is_transient(exc):
                raise
            if exc.status is None and attempt >= client.transport.retries:
                raise
            given = policy.server_wait(exc)
            wait = given if given is not None else policy.backoff(attempt)
            if time.monotonic() + wait > deadline:
                raise
            log.log(
                logging.WARNING if attempt == 0 else logging.DEBUG,
                "comet_callbacks: %s on %s %s, retrying in %.1f s",
                policy.describe(exc),
                call.method,
                call.path,
                wait,
            )
            time.sleep(wait)
            attempt += 1


def request_id(run_id: str, experiment_key: str, tag: int | str) -> str:
    """The ``X-Comet-Request-Id`` of an event (``tag`` its seq) or a batch (``tag``
    ``"<first>-<last>"``): ``<run id>.<experiment key>.<tag>``. The live sender and
    ``upload`` use it alike, so a retry carries the same id and an upload to a new experiment
    never reuses an id of an earlier one."""
    return f"{run_id}.{experiment_key}.{tag}"


class Abandoned(Exception):
    """Delivery stopped (the caller's stop event or deadline) before this request succeeded."""


Done = Callable[[int, "BaseException | None", "Call | None"], None]


class Deliverer:
    """Sends calls and batches for one experiment; thread-safe (one per sender / upload).

    ``stop``: an event that abandons waiting deliveries; ``deadline``: a ``time.monotonic()``
    after which a transient failure is not retried any more (``None``: no limit).
    ``unreachable``: give up (:class:`Abandoned`) once the server has not answered at all
    (connection refused, timeouts) for this many seconds — a server that answers, even with
    429 or 5xx, is waited for until the deadline. ``on_transient(call, exc, wait)`` is told of
    each transient failure and the wait before the retry; ``on_success()`` of each success.
    """

    def __init__(
        self,
        client: RestClient,
        *,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        on_transient: Callable[[Call, CometAPIError, float], None] | None = None,
        on_success: Callable[[], None] | None = None,
        unreachable: float | None = None,
    ) -> None:
        self.client = client
        self.unreachable = unreachable
        self._last_answer = time.monotonic()
        self.root = client.root
        self.stop = stop or threading.Event()
        self.deadline = deadline
        self._on_transient = on_transient
        self._on_success = on_success
        self._successes = 0
        self._type_until: dict[str, float] = {}
        self._bad_batches: dict[str, int] = {}

    # ------------------------------------------------------------------ one call

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopped or past the deadline (then raise Abandoned)."""
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Abandoned("deadline passed")
            seconds = min(seconds, left)
        if self.stop.wait(max(0.0, seconds)):
            raise Abandoned("stopped")

    def send(self, call: Call, request_id: str | None) -> Any:
        """Send ``call``; retry transient failures until stopped. Raises the permanent
        :class:`CometAPIError` (any other 4xx) or :class:`Abandoned`."""
        dtype = policy.data_type(call.path)
        attempt = 0
        seen = self._successes
        while True:
            until = self._type_until.get(dtype, 0.0)
            now = time.monotonic()
            if until > now:  # the server asked this data type to wait
                self._sleep(until - now)
                continue
            if self.stop.is_set():
                raise Abandoned("stopped")
            try:
                answer = self.client.send(call, request_id=request_id, retries=0)
            except CometAPIError as exc:
                if exc.status is not None:
                    self._last_answer = time.monotonic()
                if not policy.is_transient(exc):
                    raise
                if (
                    exc.status is None
                    and self.unreachable is not None
                    and time.monotonic() - self._last_answer > self.unreachable
                ):
                    raise Abandoned(
                        f"no answer from the server for {self.unreachable:g} s ({exc})"
                    ) from None
                if self._successes != seen:  # any success resets the backoff
                    attempt, seen = 0, self._successes
                given = policy.server_wait(exc)
                wait = given if given is not None else policy.backoff(attempt)
                if given is not None:
                    self._type_until[dtype] = max(
                        self._type_until.get(dtype, 0.0), time.monotonic() + given
                    )
                if self._on_transient is not None:
                    self._on_transient(call, exc, wait)
                self._sleep(wait)
                attempt += 1
                continue
            self._successes += 1
            self._last_answer = time.monotonic()
            if self._on_success is not None:
                self._on_success()
            return answer

    # ------------------------------------------------------------------ batches

    def send_batch(
        self,
        kind: str,
        experiment_key: str,
        entries: Sequence[tuple[int, Any]],
        to_item: Callable[[Any], dict[str, Any]],
        to_call: Callable[[Any], Call],
        rid: Callable[[str], str],
        done: Done,
        encode: Callable[[Sequence[tuple[int, Any]]], Call] | None = None,
        *,
        stored: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Deliver ``entries`` (``(seq, event)`` in logging order) as ``kind`` batches.

        ``to_item`` makes an event's batch item, ``to_call`` its per-point call; ``rid(tag)``
        the request id for a tag (``"<first>-<last>"`` for a batch, ``"<seq>"`` per point).
        ``done(seq, error, call)`` is called once per event (``error`` None when stored).
        ``encode(part)``, if given, builds a part's batch call directly (the same request).
        ``stored(seqs)``, if given, is called instead of ``done`` for the events of a stored
        batch, all at once (one ack write per batch instead of one per event).
        """
        build = calls.log_metric_batch if kind == "metric" else calls.log_parameter_batch
        work: list[Sequence[tuple[int, Any]]] = [entries]
        while work:
            part = work.pop(0)
            if not part:
                continue
            if not batch_supported(self.root, kind):
                self._per_point(part, to_call, rid, done)
                continue
            if encode is not None:
                call = encode(part)
            else:
                call = build(experiment_key, [to_item(ev) for _, ev in part])
            try:
                answer = self.send(call, rid(f"{part[0][0]}-{part[-1][0]}"))
            except CometAPIError as exc:
                status = exc.status or 0
                if status in (401, 403):  # the key or workspace: no fallback
                    for seq, _ in part:
                        done(seq, exc, call)
                elif status == 413:
                    if len(part) == 1:
                        self._per_point(part, to_call, rid, done)
                    else:
                        half = len(part) // 2
                        work[:0] = [part[:half], part[half:]]
                elif (status in _UNSUPPORTED or 300 <= status < 400) and not _names_data(exc):
                    set_batch_supported(self.root, kind, False)
                    self._per_point(part, to_call, rid, done)
                else:  # 400 (or a 404 naming the experiment...): one bad value fails alone
                    failed = self._per_point(part, to_call, rid, done)
                    if status == 400 and not failed:  # the batch itself was the problem
                        bad = self._bad_batches.get(kind, 0) + 1
                        self._bad_batches[kind] = bad
                        if bad >= _BAD_BATCHES_OFF:
                            set_batch_supported(self.root, kind, False)
                    else:
                        self._bad_batches[kind] = 0
                continue
            if isinstance(answer, bytes):  # 2xx but not JSON (an HTML page): not served
                set_batch_supported(self.root, kind, False)
                self._per_point(part, to_call, rid, done)
                continue
            set_batch_supported(self.root, kind, True)
            self._bad_batches[kind] = 0
            if stored is not None:
                stored([seq for seq, _ in part])
                continue
            for seq, _ in part:
                done(seq, None, call)

    def _per_point(
        self,
        part: Sequence[tuple[int, Any]],
        to_call: Callable[[Any], Call],
        rid: Callable[[str], str],
        done: Done,
    ) -> int:
        """Send each event alone; return how many were refused for good."""
        failed = 0
        for seq, ev in part:
            call = to_call(ev)
            try:
                self.send(call, rid(str(seq)))
            except CometAPIError as exc:
                failed += 1
                done(seq, exc, call)
                continue
            done(seq, None, call)
        return failed


def _names_data(exc: CometAPIError) -> bool:
    """A 404 that names the experiment (``experimentKey: unknown ...``) is about the data,
    not a server without batch endpoints."""
    return exc.status == 404 and (exc.server_message or "").startswith("experimentKey")
