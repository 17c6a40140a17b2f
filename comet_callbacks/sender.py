"""The background pipeline: caller queue → dispatcher (event log) → lanes → RestClient.

* The caller only appends to a ``deque`` (thread-safe, no lock, no wake-up): a metric is a
  plain tuple, anything else a prepared :class:`~.rest.call.Call`.
* The dispatcher thread numbers each event, appends it to the run's event log (the crash-safe
  spool, flushed twice a second) and routes it to a lane.
* Lanes are worker threads over one pooled session, so several requests are in flight while
  order is kept where it matters: the lane is chosen by the event's ordering key (a metric's
  name, a parameter's name, all output in one lane), so a parameter's last value wins and
  output arrives by offset. File uploads have their own lane so a big model never stalls
  metrics.
* Metric and parameter events are sent in batches (BATCH.md): consecutive events of one kind
  are collected and shipped to a lane when 1000 are waiting (or about 1 MiB), about 1 s after
  the first one, on :meth:`Sender.flush` and at the end. The event log still holds one event
  per value, and a delivered batch acknowledges each of its events. Fallbacks (a server
  without batch endpoints, a bad value, a batch too large) are in :mod:`.rest.delivery`.
* Transient failures (no answer, 408, 429, 5xx) are retried by each lane on its own with
  full-jitter backoff (WIRE.md §6), so one failing request never stalls the other lanes;
  nothing is lost because every event is in the event log until it is acknowledged. Past
  ``max_pending`` events in the lanes, new events are kept on disk only and read back from
  the log as the lanes drain (bounded memory).
* Memory: a metric waits in a lane as its small tuple (the :class:`Call` is built when it is
  sent), and the caller queue is capped at :data:`CALLER_QUEUE_LIMIT` (the caller then waits
  for the dispatcher, which only writes to disk: tens of µs per event).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .offline import PendingSnapshot, RunStore
from .rest import retry as policy
from .rest.call import Call
from .rest.delivery import (
    BATCH_MAX_BYTES,
    BATCH_MAX_ITEMS,
    Abandoned,
    Deliverer,
    batch_supported,
    request_id,
)
from .rest.endpoints import (
    FastMetricEncoder,
    calls,
    metric_item,
    metric_item_of_body,
    parameter_item_of_body,
)
from .rest.errors import CometAPIError

if TYPE_CHECKING:  # requests is imported only when a client is built
    from .rest.client import RestClient

__all__ = ["Sender", "Op", "DeliveryStats"]

log = logging.getLogger("comet_callbacks.sender")

#: Above this many events waiting in the caller queue, the caller waits briefly (backpressure),
#: so memory stays bounded even when logging far faster than events can be written out.
CALLER_QUEUE_LIMIT = 50_000

#: The dispatcher handles at most this many events between two looks at the clock (to flush
#: the event log and refill the lanes), so a caller logging non-stop cannot starve either.
DISPATCH_BATCH = 1000
#: how long an idle sending lane sleeps before it looks again by itself (it is woken when work
#: arrives and at close: this is a safety net; 0.2 s cost ~0.6 ms CPU per second per lane)
LANE_IDLE_WAIT = 30.0

#: A batch is shipped this long after its first event at the latest (BATCH.md §3).
BATCH_WAIT = 1.0
#: the longest the dispatcher sleeps with nothing due (a new event waits at most this long)
IDLE_WAIT = 0.25
#: a caller queue this long wakes the dispatcher at once (a burst is not left to pile up)
WAKE_AT = 1000

_METRIC_PATH = "write/experiment/metric"
_PARAMETER_PATH = "write/experiment/parameter"


class _Batch:
    """Consecutive metric or parameter events shipped to a lane as one request."""

    __slots__ = ("kind", "entries", "finished")

    def __init__(self, kind: str, entries: list[tuple[int, Any]]) -> None:
        self.kind = kind
        self.entries = entries
        self.finished: set[int] = set()  # seqs whose fate is recorded


class _Barrier:
    """Put in the caller queue by :meth:`Sender.flush`; set once the dispatcher reaches it."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


class Op:
    """A non-REST operation recorded in the event log (e.g. a model registration to replay)."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        self.name = name
        self.args = args


class DeliveryStats:
    """Counts of delivered events, of events refused for good (``failed``) and of transient
    failures that were retried later (``retried``), per endpoint and status."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        #: events neither delivered nor kept: memory full while the disk could not be written
        self.dropped = 0
        self.failed: collections.Counter[tuple[str, str]] = collections.Counter()
        self.retried: collections.Counter[tuple[str, str]] = collections.Counter()
        self.first_errors: dict[tuple[str, str], str] = {}

    def record_failure(self, path: str, exc: BaseException, retried: bool = False) -> bool:
        """Count a failure; True the first time this (endpoint, status) is seen."""
        status = str(getattr(exc, "status", None) or exc.__class__.__name__)
        key = (path, status)
        with self.lock:
            (self.retried if retried else self.failed)[key] += 1
            first = key not in self.first_errors
            if first:
                self.first_errors[key] = str(exc)
        return first

    def summary(self) -> str:
        """One line: delivered, failed per endpoint and status, transient failures retried."""
        with self.lock:
            out = f"{self.sent} events delivered"
            if self.failed:
                parts = [f"{p} ({st}): {n}" for (p, st), n in sorted(self.failed.items())]
                out += "; failed for good: " + ", ".join(parts)
            else:
                out += ", none failed"
            if self.retried:
                parts = [f"{p} ({st}): {n}" for (p, st), n in sorted(self.retried.items())]
                out += "; transient errors (retried): " + ", ".join(parts)
            if self.dropped:
                out += f"; {self.dropped} events dropped (memory full, disk not writable)"
            return out


class _Lane:
    __slots__ = ("items", "cond", "busy", "thread")

    def __init__(self) -> None:
        # (seq, Call) or (seq, metric tuple): a metric's Call is built when it is sent
        self.items: collections.deque[tuple[int, Any]] = collections.deque()
        self.cond = threading.Condition()
        self.busy = False
        self.thread: threading.Thread | None = None


class Sender:
    """Delivers events for one experiment. ``client=None`` means offline: log only."""

    def __init__(
        self,
        store: RunStore,
        experiment_key: str,
        client: RestClient | None,
        *,
        workers: int = 4,
        max_pending: int = 100_000,
        on_first_failure: Callable[[str], None] | None = None,
        batch: bool = True,
    ) -> None:
        self.store = store
        self.key = experiment_key
        self.client = client
        self.queue: collections.deque[Any] = collections.deque()
        self.stats = DeliveryStats()
        self.max_pending = max(100, max_pending)
        self._on_first_failure = on_first_failure
        self._seq = 0
        self._pending = 0  # events routed to lanes, not yet finished
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dispatching = False
        self._outage = False
        self._warned_at = -1e9
        self._auth_failed = False
        self._abandon = threading.Event()
        self._batch = batch and client is not None
        self._root = client.root if client is not None else ""
        # events collected for the next batch, per kind; and when the first one came
        self._acc: dict[str, list[tuple[int, Any]]] = {"metric": [], "parameter": []}
        self._acc_bytes = {"metric": 0, "parameter": 0}
        self._acc_since = {"metric": 0.0, "parameter": 0.0}
        self._run_id = store.run_id
        self._deliver = (
            Deliverer(
                client,
                stop=self._abandon,
                on_transient=self._on_transient,
                on_success=self._on_success,
            )
            if client is not None
            else None
        )
        self._rr = 0
        self._fast = FastMetricEncoder(experiment_key)  # the metric fast path (named, pinned)
        # events beyond max_pending stay on disk; _spill_from is the first seq not routed
        self._spill_from: int | None = None
        self._spill_last = 0  # the last seq kept on disk only
        self._wal_reader: Any = None
        n = max(1, workers)
        self._lanes = [_Lane() for _ in range(n + 1)]  # the last lane is for file uploads
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="comet-dispatch", daemon=True
        )
        self._dispatcher.start()
        if client is not None:
            for i, lane in enumerate(self._lanes):
                lane.thread = threading.Thread(
                    target=self._lane_loop, args=(lane,), name=f"comet-send-{i}", daemon=True
                )
                lane.thread.start()

    # ------------------------------------------------------------------ caller side

    def put(self, item: Any) -> None:
        """Enqueue a metric tuple, a Call or an Op (never blocks unless far behind)."""
        q = self.queue
        q.append(item)
        if len(q) >= WAKE_AT:
            self._busy()

    def put_many(self, items: list[Any]) -> None:
        """Enqueue several items at once (one back-pressure check for all)."""
        q = self.queue
        q.extend(items)
        if len(q) >= WAKE_AT:
            self._busy()

    def wake(self) -> None:
        """Have the dispatcher take the queue now, not at its next due time (a logged file's
        snapshot is waiting: the sooner it is copied, the smaller the window for an in-place
        rewrite)."""
        self._wake.set()

    def _busy(self) -> None:
        """The caller queue is long: wake the dispatcher now instead of at its next due time,
        and past :data:`CALLER_QUEUE_LIMIT` wait for it."""
        if not self._wake.is_set():
            self._wake.set()
        if len(self.queue) > CALLER_QUEUE_LIMIT:
            self._backpressure()

    def _backpressure(self) -> None:
        """Wait (1 ms sleeps) until the dispatcher has halved the caller queue."""
        self._wake.set()
        while len(self.queue) > CALLER_QUEUE_LIMIT // 2 and self._dispatcher.is_alive():
            time.sleep(0.001)

    # ------------------------------------------------------------------ dispatcher

    def _build(self, item: Any) -> Call | Op:
        if type(item) is tuple:  # a metric: (name, value, step, epoch, context, time.time())
            name, value, step, epoch, context, t = item
            return calls.log_metric(self.key, name, value, step, epoch, context, int(t * 1000))
        if type(item) is PendingSnapshot:  # a logged file: its snapshot is made here
            return item.finish()
        return item

    def _dispatch_loop(self) -> None:
        q = self.queue
        store = self.store
        online = self.client is not None
        event_line = self._fast.event_line
        lines: list[str] = []  # metric lines taken in a row: written together, in order
        routes: list[tuple[int, Any]] = []  # and (online) routed together
        while True:
            worked = False
            n = 0
            while q and n < DISPATCH_BATCH:
                item = q.popleft()
                worked = True
                n += 1
                if type(item) is tuple:  # a metric: the hot path
                    self._seq += 1
                    seq = self._seq
                    if store.on_disk:
                        try:
                            lines.append(event_line(seq, item))
                        except Exception as exc:  # never let one bad event stop the pipeline
                            if self.stats.record_failure("<encode>", exc):
                                log.warning("comet_callbacks: could not record an event: %s", exc)
                            continue
                    elif not online:
                        self.stats.dropped += 1  # offline on a full disk: not kept
                        continue
                    if online:
                        routes.append((seq, item))
                    continue
                if lines or routes:  # what came before this event goes first
                    self._write_and_route(lines, routes)
                if type(item) is _Barrier:
                    self._ship_all()
                    item.event.set()
                    continue
                try:
                    ev = self._build(item)
                    self._seq += 1
                    seq = self._seq
                    if not store.on_disk and (not online or type(ev) is Op):
                        self.stats.dropped += 1  # nowhere to keep it (an Op is never sent)
                        continue
                    if type(ev) is Op:
                        store.append_op(seq, ev.name, **ev.args)
                        continue
                    store.append(seq, ev)  # type: ignore[arg-type]  # not an Op: a Call
                    if online:
                        self._route(seq, ev)
                except Exception as exc:  # never let one bad event stop the pipeline
                    if self.stats.record_failure("<encode>", exc):
                        log.warning("comet_callbacks: could not record an event: %s", exc)
            if lines or routes:
                self._write_and_route(lines, routes)
            if self._spill_from is not None:
                try:
                    self._refill()
                except Exception as exc:  # e.g. the log became unreadable: retry next round
                    log.debug("sender: refill failed: %r", exc)
            if self._batch:
                self._ship_due()
            store.maybe_flush()
            if self._stop.is_set() and not q:
                self._ship_all()
                store.flush()
                return
            if not worked:
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _idle_wait(self) -> float:
        """How long the dispatcher sleeps when it found nothing to do: until the next write
        of the event log or batch is due, at most :data:`IDLE_WAIT`. Callers never wake it
        (an append to the queue is all a log call costs); ``flush()``/``end()``/back-pressure
        do. Fewer wake-ups is CPU a training loop gets back: polling every 50 ms cost about
        2 ms of CPU per second of training."""
        if self._spill_from is not None:
            return 0.05  # refilling from disk: keep the lanes fed
        now = time.monotonic()
        due = now + IDLE_WAIT
        flush_at = self.store.flush_due()
        if flush_at is not None:
            due = min(due, flush_at)
        for kind, acc in self._acc.items():
            if acc:
                due = min(due, self._acc_since[kind] + BATCH_WAIT)
        return min(IDLE_WAIT, max(0.01, due - now))

    def _write_and_route(self, lines: list[str], routes: list[tuple[int, Any]]) -> None:
        """Write the metric lines the dispatcher took in a row (one ``write``) and route their
        points (online); empties both lists."""
        if lines:
            self.store.append_lines(lines)
            lines.clear()
        if routes:
            try:
                self._route_metrics(routes)
            except Exception as exc:  # never let one bad event stop the pipeline
                if self.stats.record_failure("<route>", exc):
                    log.warning("comet_callbacks: could not queue events for sending: %s", exc)
            routes.clear()

    def _route_metrics(self, entries: list[tuple[int, Any]]) -> None:
        """:meth:`_route` for metric points taken from the queue in a row: one lock and one
        capability check for all of them when they all go into the metric batch (the usual
        case); otherwise (no batching, nearly max_pending, spilling) one by one."""
        n = len(entries)
        if self._batch and not self._abandon.is_set() and batch_supported(self._root, "metric"):
            with self._pending_lock:
                fits = self._spill_from is None and self._pending + n <= self.max_pending
                if fits:
                    self._pending += n
            if fits:
                acc = self._acc["metric"]
                size = self._acc_bytes["metric"]
                now = time.monotonic()
                for entry in entries:
                    if not acc:
                        self._acc_since["metric"] = now
                    acc.append(entry)
                    size += _size_of(entry[1])
                    if len(acc) >= BATCH_MAX_ITEMS or size >= BATCH_MAX_BYTES:
                        self._acc_bytes["metric"] = size
                        self._ship("metric")
                        acc = self._acc["metric"]
                        size = 0
                self._acc_bytes["metric"] = size
                return
        for seq, item in entries:
            self._route(seq, item)

    def _route(self, seq: int, item: Any) -> None:
        if self._abandon.is_set():
            return  # closing with the server down: the event stays in the log for upload
        with self._pending_lock:
            if not self.store.on_disk and self._pending >= self.max_pending:
                # no event log to spill to: past max_pending new events are dropped, counted
                self.stats.dropped += 1
                return
            if self.store.on_disk and (
                self._spill_from is not None or self._pending >= self.max_pending
            ):
                self._spill_last = seq
                spill_starts = self._spill_from is None
                if spill_starts:
                    self._spill_from = seq
                    log.debug("sender: %d events pending; keeping new ones on disk", self._pending)
            else:
                spill_starts = None
                self._pending += 1
        if spill_starts is not None:
            if spill_starts:
                self._ship_all()  # the lanes are what drains the backlog now
            return
        kind = self._batch_kind(item) if self._batch else None
        if kind is not None:
            acc = self._acc[kind]
            if not acc:
                self._acc_since[kind] = time.monotonic()
            acc.append((seq, item))
            size = self._acc_bytes[kind] + _size_of(item)
            self._acc_bytes[kind] = size
            if len(acc) >= BATCH_MAX_ITEMS or size >= BATCH_MAX_BYTES:
                self._ship(kind)
            return
        self._push(self._lane_for(item), seq, item)

    def _push(self, lane: _Lane, seq: int, item: Any) -> None:
        lane.items.append((seq, item))
        with lane.cond:
            lane.cond.notify()

    def _batch_kind(self, item: Any) -> str | None:
        """``metric`` / ``parameter`` when this event goes in a batch, else None."""
        if type(item) is tuple:
            kind = "metric"
        elif type(item) is Call and item.path == _METRIC_PATH:
            kind = "metric"
        elif type(item) is Call and item.path == _PARAMETER_PATH:
            kind = "parameter"
        else:
            return None
        return kind if batch_supported(self._root, kind) else None

    def _ship(self, kind: str) -> None:
        """Hand the collected events of ``kind`` to a lane as one batch."""
        entries = self._acc[kind]
        if not entries:
            return
        self._acc[kind] = []
        self._acc_bytes[kind] = 0
        n = len(self._lanes) - 1
        if kind == "metric":  # metric points carry their own step and time: any lane
            self._rr = (self._rr + 1) % n
            lane = self._lanes[self._rr]
        else:  # parameters keep their order (the last value wins): always the same lane
            lane = self._lanes[hash("<parameters>") % n]
        self._push(lane, entries[0][0], _Batch(kind, entries))

    def _ship_all(self) -> None:
        for kind in self._acc:
            self._ship(kind)

    def _ship_due(self) -> None:
        now = time.monotonic()
        for kind, acc in self._acc.items():
            if acc and now - self._acc_since[kind] >= BATCH_WAIT:
                self._ship(kind)

    def _lane_for(self, item: Any) -> _Lane:
        n = len(self._lanes) - 1
        if type(item) is tuple:
            # metric points carry their own step and timestamp: spread them over all lanes
            self._rr = (self._rr + 1) % n
            return self._lanes[self._rr]
        call: Call = item
        if call.file is not None:
            return self._lanes[-1]
        body = call.json
        k = None
        if isinstance(body, dict):
            if "metricName" in body:
                self._rr = (self._rr + 1) % n
                return self._lanes[self._rr]
            # same parameter / other in the same lane: the last value wins; output by offset
            k = body.get("parameterName") or body.get("key")
            if k is None and "outputLines" in body:
                k = "<output>"
        return self._lanes[hash(k or call.path) % n]

    def _refill(self) -> None:
        """Route events kept on disk while the lanes were full, once they have room.

        Reads ``events.jsonl`` forward from where it stopped; lines before the first spilled
        event are skipped by their ``{"seq":N`` prefix without parsing them.
        """
        with self._pending_lock:
            room = self.max_pending // 2 - self._pending
        if room <= 0 or self._abandon.is_set():
            return
        final = not self.store.on_disk  # the disk failed before: the log will not grow again
        self.store.flush()
        if self._wal_reader is None:
            self._wal_reader = open(os.path.join(self.store.path, "events.jsonl"), encoding="utf-8")  # noqa: SIM115
        reader = self._wal_reader
        start = self._spill_from or 0
        routed = 0
        while routed < room:
            pos = reader.tell()
            line = reader.readline()
            if not line.endswith("\n"):
                reader.seek(pos)
                break
            seq = _line_seq(line)
            if seq is None or seq < start:
                continue
            self._spill_from = start = seq + 1
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "call" not in obj:
                continue  # an Op: performed at replay time, never routed
            call = Call.from_json(obj["call"])
            with self._pending_lock:
                self._pending += 1
            kind = self._batch_kind(call) if self._batch else None
            if kind is not None:
                acc = self._acc[kind]
                if not acc:
                    self._acc_since[kind] = time.monotonic()
                acc.append((seq, call))
                if len(acc) >= BATCH_MAX_ITEMS:
                    self._ship(kind)
            else:
                self._push(self._lane_for(call), seq, call)
            routed += 1
        if routed:
            self._ship_all()  # events read back from disk are old: send them now
        if (
            self._spill_from is not None
            and final
            and routed < room
            and self._spill_from <= self._spill_last
        ):
            # the disk failed while events were kept there only: those that did not make it
            # into the log are gone; count them
            lost = self._spill_last - self._spill_from + 1
            self.stats.dropped += lost
            log.debug("sender: %d spilled events were lost with the disk", lost)
            self._spill_from = self._spill_last + 1
        if self._spill_from is not None and self._spill_from > self._spill_last:
            with self._pending_lock:
                self._spill_from = None
            reader.close()
            self._wal_reader = None

    # ------------------------------------------------------------------ lanes

    def _lane_loop(self, lane: _Lane) -> None:
        deliver = self._deliver
        assert deliver is not None
        while True:
            with lane.cond:
                while not lane.items and not self._stop.is_set():
                    # woken by _push and by close(); the timeout is only a safety net (every
                    # timed wake-up of an idle lane costs CPU a training loop would rather have)
                    lane.cond.wait(LANE_IDLE_WAIT)
                if not lane.items and self._stop.is_set():
                    return
            if self._abandon.is_set():
                return
            seq, item = lane.items[0]
            lane.busy = True
            try:
                if type(item) is _Batch:
                    self._send_batch(item)
                    self._pop(lane, seq)
                    continue
                call: Call = item if type(item) is not tuple else self._build(item)  # type: ignore[assignment]
                deliver.send(call, request_id(self._run_id, self.key, seq))
            except Abandoned:
                return  # closing: what is left stays in the event log
            except CometAPIError as exc:  # permanent: reported once, not retried
                self._pop(lane, seq)
                self._done(seq, exc, call)
                continue
            except Exception as exc:  # a bug or an unreadable file: do not retry forever
                self._pop(lane, seq)
                if type(item) is _Batch:
                    for s, _ in item.entries:
                        if s not in item.finished:
                            self._done(s, exc, None)
                else:
                    self._done(seq, exc, None)
                continue
            self._pop(lane, seq)
            self._done(seq, None, call)

    def _send_batch(self, batch: _Batch) -> None:
        deliver = self._deliver
        assert deliver is not None

        def done(seq: int, exc: BaseException | None, call: Call | None) -> None:
            batch.finished.add(seq)
            self._done(seq, exc, call)

        def stored(seqs: list[int]) -> None:
            batch.finished.update(seqs)
            self._stored(seqs)

        deliver.send_batch(
            batch.kind,
            self.key,
            batch.entries,
            _batch_item,
            self._build,  # type: ignore[arg-type]
            lambda tag: request_id(self._run_id, self.key, tag),
            done,
            self._encode_metrics if batch.kind == "metric" else None,
            stored=stored,
        )

    def _encode_metrics(self, part: Any) -> Call:
        """The metric batch call of ``part`` through the named fast path (tuples formatted
        directly; events read back from disk as their batch items)."""
        return self._fast.batch_call(
            [item if type(item) is tuple else metric_item_of_body(item.json) for _, item in part]
        )

    @staticmethod
    def _pop(lane: _Lane, seq: int) -> None:
        if lane.items and lane.items[0][0] == seq:
            lane.items.popleft()
        lane.busy = False

    def _on_transient(self, call: Call, exc: CometAPIError, wait: float) -> None:
        self.stats.record_failure(call.path, exc, retried=True)
        if not self._outage:  # one status line per outage (at most one a minute)
            self._outage = True
            now = time.monotonic()
            if now - self._warned_at < 60.0:
                return
            self._warned_at = now
            log.warning(
                "comet_callbacks: delivery is failing (%s: %s); retrying in the background, "
                "events are kept %s",
                policy.describe(exc),
                exc,
                "on disk" if self.store.on_disk else "in memory",
            )

    def _on_success(self) -> None:
        if self._outage:
            self._outage = False
            log.info("comet_callbacks: delivery resumed")

    def _done(self, seq: int, exc: BaseException | None, call: Call | None) -> None:
        """Record the fate of event ``seq``: stored (``exc`` None) or refused for good."""
        if exc is None:
            self.store.ack(seq, True)
            with self.stats.lock:
                self.stats.sent += 1
        else:
            status = getattr(exc, "status", None)
            # 401/403: the key or workspace is wrong; keep the event for a later upload.
            if status not in (401, 403):
                self.store.ack(seq, False)
            else:
                self._auth_failed = True
            path = call.path if call is not None else "<send>"
            if self.stats.record_failure(path, exc):
                msg = f"comet_callbacks: {exc}"
                log.warning(msg)
                if self._on_first_failure is not None:
                    self._on_first_failure(msg)
        with self._idle:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()
        if self._spill_from is not None:
            self._wake.set()

    def _stored(self, seqs: list[int]) -> None:
        """:meth:`_done` of every event of a stored batch at once (one write to ``acks.log``)."""
        self.store.ack_many(seqs, True)
        n = len(seqs)
        with self.stats.lock:
            self.stats.sent += n
        with self._idle:
            self._pending -= n
            if self._pending <= 0:
                self._idle.notify_all()
        if self._spill_from is not None:
            self._wake.set()

    # ------------------------------------------------------------------ control

    @property
    def seq(self) -> int:
        return self._seq

    def pending(self) -> int:
        """Events not yet delivered (queued, routed or kept on disk for later)."""
        spilled = 0 if self._spill_from is None else max(0, self._spill_last - self._spill_from + 1)
        return len(self.queue) + self._pending + spilled

    def undelivered_after(self, seq: int) -> int:
        """Events newer than ``seq`` not delivered yet (still queued, in a lane or waiting for
        a batch). After the disk failed at ``seq`` these exist in memory only. Call it after
        :meth:`close` (the threads are stopped, nothing moves any more)."""
        n = sum(1 for item in self.queue if type(item) is not _Barrier)
        if self._spill_from is not None:  # kept on disk only: those past ``seq`` never made it
            n += max(0, self._spill_last - max(self._spill_from, seq + 1) + 1)
        for entries in self._acc.values():
            n += sum(1 for s, _ in entries if s > seq)
        for lane in self._lanes:
            for s, item in list(lane.items):
                if type(item) is _Batch:
                    n += sum(1 for b, _ in item.entries if b > seq and b not in item.finished)
                elif s > seq:
                    n += 1
        return n

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything enqueued so far is written (offline) or delivered (online).

        Returns False if the timeout passed first; what is left stays in the event log (or,
        not yet written, in the queue: :meth:`close` writes it out).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        barrier = _Barrier()
        self.queue.append(barrier)
        self._wake.set()
        # the dispatcher has numbered, written and routed everything before the barrier
        while not barrier.event.wait(0.05):
            if time.monotonic() >= deadline or not self._dispatcher.is_alive():
                return False
        self.store.flush()
        if self.client is None:
            return True
        with self._idle:
            while self._pending > 0 or self._spill_from is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._spill_from is not None:
                    self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> bool:
        """Flush with a bounded wait, then stop every thread. Returns True if all was delivered.

        Whatever could not be delivered in ``timeout`` stays in the event log: the caller
        queue is always written out to disk (that takes tens of µs per event, and is only
        abandoned when the dispatcher makes no progress for 5 s).
        """
        done = self.flush(timeout)
        if not done:
            # lanes may be waiting on a dead server: abandon them, the events stay on disk
            self._abandon.set()
        self._stop.set()
        self._wake.set()
        last, still = (-1, -1), time.monotonic()
        while self._dispatcher.is_alive():
            self._dispatcher.join(timeout=0.1)
            progress = (len(self.queue), self._seq)
            if progress != last:
                last, still = progress, time.monotonic()
            elif time.monotonic() - still > 5.0:
                log.warning("comet_callbacks: the event log writer is stuck; giving up")
                break
        for lane in self._lanes:
            with lane.cond:
                lane.cond.notify_all()
            if lane.thread is not None:
                lane.thread.join(timeout=2 if done else 0.5)
        self.store.flush()
        return done and self.pending() == 0


def _batch_item(item: Any) -> dict[str, Any]:
    """The batch item of a metric tuple or of a per-point metric / parameter Call."""
    if type(item) is tuple:
        name, value, step, epoch, context, t = item
        return metric_item(name, value, step, epoch, context, int(t * 1000))
    body = item.json
    if "metricName" in body:
        return metric_item_of_body(body)
    return parameter_item_of_body(body, item.source)


def _size_of(item: Any) -> int:
    """About how many bytes an event adds to a batch body (for the ~1 MiB cap)."""
    if type(item) is tuple:
        return 90 + len(item[0]) + (len(item[4]) if item[4] else 0)
    body = item.json if isinstance(item.json, dict) else {}
    value = body.get("parameterValue", body.get("metricValue"))
    return 100 + len(str(body.get("parameterName", body.get("metricName", "")))) + len(str(value))


def _line_seq(line: str) -> int | None:
    """The ``seq`` of an event-log line (``{"seq":N,...``) without parsing the JSON."""
    if not line.startswith('{"seq":'):
        return None
    end = line.find(",", 7)
    try:
        return int(line[7:end])
    except ValueError:
        return None
