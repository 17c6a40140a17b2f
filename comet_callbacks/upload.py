"""Replay offline runs and the leftovers of interrupted online runs: ``comet-callbacks upload``.

Events are sent in their recorded order through the same :class:`~.rest.client.RestClient`
with the same bodies and timestamps (WIRE.md §5 "Offline replay"). Each delivered event is
recorded in the run's ``acks.log`` right away, so re-running an interrupted upload sends
nothing twice. An offline run gets its experiment created once; the server's key is kept in
``meta.json`` so a re-run continues it.

The one request whose answer was lost when the process or the server died (or, for the
leftovers of a killed online run, the few that were in flight) may have been stored without
an ack. When continuing an existing experiment, metric points are therefore matched against
what the server already has (name, step, epoch, context and the recorded timestamp) and not
sent again. Parameters, others and tags are idempotent (last value wins / set semantics).

The log is sent while it is read (an upload to a new experiment never holds the whole run in
memory), and the metric lines the client wrote are turned into batch items without parsing
them (the named fast path ``FastMetricEncoder.item_of_line``, pinned by a test; anything else
is parsed). Metric and parameter events go in batches of up to 1000 (BATCH.md), several
metric batches in flight at once; other events keep their recorded order (every batch before an event is
delivered before it is sent). Transient failures (no answer, 408, 429, 5xx) are retried per
WIRE.md §6 until ``timeout`` (default: no limit while the server answers at all), with the
progress line saying what it waits for; a re-run is only needed after a permanent problem.

The run store's meta writer and ack format, the request ids (``<run id>.<experiment key>.
<first>-<last>`` or ``.<seq>``, unique per target experiment, so a retried batch is stored
once and an id is never reused for another experiment), the calls that close a run and the
experiment link are the live path's own functions, so replay cannot drift from it.

A run still being written by a live process (its ``.lock`` is held) is skipped.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .config import Settings
from .offline import (
    MetricLine,
    RunLock,
    ack_lines,
    count_lines,
    iter_events_checked,
    list_runs,
    read_acks,
    read_events_checked,
    read_meta,
    write_meta,
)
from .rest import retry as policy
from .rest.call import Call
from .rest.client import RestClient
from .rest.delivery import BATCH_MAX_ITEMS, Abandoned, Deliverer, request_id
from .rest.endpoints import (
    FastMetricEncoder,
    calls,
    closing_calls,
    experiment_link,
    metric_item_of_body,
    parameter_item_of_body,
)
from .rest.errors import CometAPIError

#: Metric batches in flight at once during an upload.
UPLOAD_IN_FLIGHT = 4
#: Seconds without any answer from the server (refused, timed out) before upload stops.
UNREACHABLE_LIMIT = 60.0
#: At most this many error messages are kept per run (the counts are complete).
MAX_ERRORS = 50

__all__ = ["UploadResult", "upload_run", "upload_paths"]

log = logging.getLogger("comet_callbacks.upload")


@dataclass
class UploadResult:
    """What one run's upload did."""

    path: str
    experiment_key: str | None = None
    link: str | None = None
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    complete: bool = False
    #: damaged event-log lines that were skipped: (line number, why)
    damaged: list[tuple[int, str]] = field(default_factory=list)

    def damaged_summary(self, limit: int = 20) -> str:
        """``"3 damaged lines skipped (line 4: not a JSON object; lines 7, 9: call has no
        path)"``, or ``""`` when none; at most ``limit`` line numbers are listed."""
        if not self.damaged:
            return ""
        by_reason: dict[str, list[int]] = {}
        for number, why in self.damaged[:limit]:
            by_reason.setdefault(why, []).append(number)
        parts = [
            ("line " if len(nums) == 1 else "lines ") + ", ".join(map(str, nums)) + f": {why}"
            for why, nums in by_reason.items()
        ]
        more = len(self.damaged) - limit
        tail = f"; and {more} more" if more > 0 else ""
        return f"{len(self.damaged)} damaged lines skipped ({'; '.join(parts)}{tail})"


class _Progress:
    """tqdm when installed, else a plain counter line on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = None
        self.n = 0
        self.total = total
        self.enabled = enabled
        self.desc = desc
        self._last = 0.0
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="ev", file=sys.stderr)
            except ImportError:
                pass

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self._last > 0.5:
            self._last = time.monotonic()
            print(f"\r{self.desc}: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def status(self, text: str) -> None:
        """Say what the upload waits for (``server busy (429), retrying in 4 s``); "" clears."""
        if not self.enabled or text == getattr(self, "_status", ""):
            return
        self._status = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        elif text:
            print(f"\r{self.desc}: {self.n}/{self.total} — {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(f"\r{self.desc}: {self.n}/{self.total}", file=sys.stderr)


def upload_run(
    path: str,
    settings: Settings | None = None,
    *,
    progress: bool = False,
    client: RestClient | None = None,
    timeout: float | None = None,
    unreachable: float = UNREACHABLE_LIMIT,
) -> UploadResult:
    """Upload one run folder. Safe to re-run: delivered events are never sent again.

    Transient server trouble is waited out (up to ``timeout`` seconds, default no limit) as
    long as the server answers at all; after ``unreachable`` seconds without any answer the
    upload stops (re-run it later).
    Never raises for server or file problems: they end up in ``result.errors``;
    ``complete`` is True only when every event was stored or refused for good.
    """
    settings = settings or Settings.resolve()
    result = UploadResult(path=path)
    lock = RunLock(path)
    if not lock.acquire():
        result.errors.append("the run is still being written or uploaded by another process")
        return result
    own_client = client is None
    try:
        client = client or RestClient.from_settings(settings)
        deadline = None if timeout is None else time.monotonic() + timeout
        return _upload_locked(path, settings, progress, client, result, deadline, unreachable)
    except Abandoned as exc:
        why = str(exc) if "no answer" in str(exc) else f"gave up after --timeout {timeout} s"
        result.errors.append(f"{why}; re-run to continue")
        log.debug("upload of %s stopped: %s (re-run the command to continue)", path, why)
        return result
    except (CometAPIError, OSError, ValueError, KeyError) as exc:
        result.errors.append(str(exc))
        log.debug("upload of %s stopped: %s (re-run the command to continue)", path, exc)
        return result
    finally:
        if own_client and client is not None:
            client.close()
        lock.release()


def _metric_key(body: dict[str, Any]) -> tuple[Any, ...]:
    values = (
        body.get("metricName"),
        body.get("step"),
        body.get("epoch"),
        body.get("context") or body.get("runContext"),
        body.get("timestamp"),
    )
    # a damaged event may carry a list or an object here: keep the key hashable
    return tuple(
        v if v is None or isinstance(v, (str, int, float)) else json.dumps(v, sort_keys=True)
        for v in values
    )


def _already_stored(
    deliver: Deliverer, key: str, events: list[Any], done: set[int]
) -> collections.Counter[tuple[Any, ...]]:
    """Metric points of unacknowledged events that the server already has (to skip).

    For each metric name with unacknowledged points: the server's count of each point key,
    minus the acknowledged events with that key.
    """
    events = [e.event() if type(e) is MetricLine else e for e in events]  # parsed: rare path
    names = set()
    for ev in events:
        body = (ev.get("call") or {}).get("json")
        if ev.get("seq") not in done and isinstance(body, dict) and "metricName" in body:
            names.add(body["metricName"])
    stored: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for name in sorted(names):
        ans = deliver.send(
            Call(
                "GET",
                "experiment/metrics/get-metric",
                query={"experimentKey": key, "metricName": name},
            ),
            None,
        )
        for m in (ans or {}).get("metrics", []):
            stored[_metric_key(m)] += 1
    for ev in events:
        body = (ev.get("call") or {}).get("json")
        if ev.get("seq") in done and isinstance(body, dict) and body.get("metricName") in names:
            k = _metric_key(body)
            if stored[k] > 0:
                stored[k] -= 1
    return +stored


def _upload_locked(
    path: str,
    settings: Settings,
    progress: bool,
    client: RestClient,
    result: UploadResult,
    deadline: float | None = None,
    unreachable: float | None = None,
) -> UploadResult:
    meta = read_meta(path)
    done = read_acks(path)
    recorded_key = meta.get("experimentKey")
    run_id = meta.get("runId") or os.path.basename(os.path.normpath(path))
    key = meta.get("uploadedKey")
    workspace = meta.get("uploadedWorkspace") or meta.get("workspace")
    project = meta.get("project") or settings.project_name or "general"
    bar = _Progress(0, f"uploading {os.path.basename(path)}", False)  # until the count is known
    stop = threading.Event()

    def waiting(call: Call, exc: CometAPIError, wait: float) -> None:
        text = f"{policy.describe(exc)}, retrying in {wait:.0f} s"
        if bar.total:
            bar.status(text)
        elif progress:  # before the events are counted (creating the experiment...)
            print(f"uploading {os.path.basename(path)}: {text}", file=sys.stderr, flush=True)

    deliver = Deliverer(
        client,
        stop=stop,
        deadline=deadline,
        on_transient=waiting,
        on_success=lambda: bar.status(""),
        unreachable=unreachable,
    )
    if key is None and (meta.get("online") or meta.get("continued")) and recorded_key:
        # leftovers of an online run: the experiment exists on the server
        deliver.send(calls.get_experiment_metadata(recorded_key), None)
        key = recorded_key
    created = key is None  # a new experiment: the server has none of this run's points yet
    if key is None:
        workspace = (
            settings.workspace
            or workspace
            or deliver.send(calls.get_account_details(), None)["defaultWorkspaceName"]
        )
        res = deliver.send(
            calls.create_experiment(workspace, project, meta.get("experimentName")), None
        )
        key = res["experimentKey"]
        result.link = res.get("link")
        meta.update(uploadedKey=key, uploadedWorkspace=workspace)
        write_meta(path, meta)
    if workspace is None:
        workspace = deliver.send(calls.get_experiment_metadata(key), None).get("workspaceName")
    result.experiment_key = key
    result.link = result.link or experiment_link(client.root, workspace, project, key)
    continuing = not created and (bool(done) or meta.get("online") or meta.get("uploadedKey"))
    events: Iterable[Any]
    if continuing:  # the server may hold some unacknowledged points: read everything first
        events, result.damaged = read_events_checked(path, metric_lines=True)
        stored = _already_stored(deliver, key, events, done)  # type: ignore[arg-type]
        total = len(events)  # type: ignore[arg-type]
    else:  # a new experiment: send while reading (the server works while the log is read)
        events = iter_events_checked(path, result.damaged, metric_lines=True)
        stored = None
        total = count_lines(path)
    name = os.path.basename(os.path.normpath(path))
    bar = _Progress(max(0, total - len(done)), f"uploading {name}", progress)
    seen = 0  # events read
    has_stop = False
    last_ms = 0  # the latest timestamp, for closing a run that died
    lock = threading.Lock()
    auth_error: list[CometAPIError] = []
    # what acks.log holds: read at the start, since then written by this upload alone (it holds
    # the run's lock); kept here so the final count need not read a million lines back
    acked = set(done)
    with open(os.path.join(path, "acks.log"), "a", encoding="utf-8") as acks:

        def record(seq: int, exc: BaseException | None, call: Call | None = None) -> None:
            """One event's fate: acknowledged (stored / refused for good) or, for an auth
            error, left for a later run."""
            with lock:
                if exc is not None and getattr(exc, "status", None) in (401, 403):
                    if not auth_error:
                        auth_error.append(exc)  # type: ignore[arg-type]
                        result.errors.append(str(exc))
                    stop.set()
                    return
                acks.write(ack_lines((seq,), exc is None))
                acked.add(seq)
                if exc is None:
                    result.sent += 1
                else:
                    result.failed += 1
                    if len(result.errors) < MAX_ERRORS:
                        result.errors.append(str(exc))
                bar.update()

        def stored_batch(seqs: list[int]) -> None:
            """Every event of a stored batch at once (one ack write, one progress update)."""
            with lock:
                acks.write(ack_lines(seqs))
                acked.update(seqs)
                result.sent += len(seqs)
                bar.update(len(seqs))

        def rid(tag: str) -> str:
            return request_id(run_id, key, tag)

        def to_call(raw: dict[str, Any] | MetricLine) -> Call:
            if type(raw) is MetricLine:
                raw = raw.event()["call"]
            call = Call.from_json(raw)  # type: ignore[arg-type]  # a dict by now
            if call.experiment_key and call.experiment_key != key:
                call = call.with_experiment_key(key)
            return call

        fast = FastMetricEncoder(key)

        def encode_metrics(part: Any) -> Call:
            """The batch of ``part`` through the named fast path: a fast-read line's item text
            as it is, any other metric event's item encoded."""
            return fast.batch_call(
                [e.item if type(e) is MetricLine else _metric_item(e) for _, e in part]
            )

        def send_batch(kind: str, entries: list[tuple[int, Any]]) -> None:
            to_item = _metric_item if kind == "metric" else _parameter_item
            deliver.send_batch(
                kind,
                key,
                entries,
                to_item,
                to_call,
                rid,
                record,
                encode_metrics if kind == "metric" else None,
                stored=stored_batch,
            )
            with lock:
                acks.flush()

        pool = ThreadPoolExecutor(UPLOAD_IN_FLIGHT, thread_name_prefix="comet-upload")
        inflight: list[Future[None]] = []
        runs: dict[str, list[tuple[int, Any]]] = {"metric": [], "parameter": []}
        batching = settings.batch is not False

        def ship_metrics() -> None:
            """Send the metric batch collected (in the pool: several in flight)."""
            inflight.append(pool.submit(send_batch, "metric", runs["metric"]))
            runs["metric"] = []
            while len(inflight) > UPLOAD_IN_FLIGHT:
                inflight.pop(0).result()

        def collect(kind: str, seq: int, raw: Any) -> None:
            """Add an event to the batch being collected; ship the batch once it is full."""
            runs[kind].append((seq, raw))
            if kind == "metric" and len(runs[kind]) >= BATCH_MAX_ITEMS:
                ship_metrics()
            elif kind == "parameter" and len(runs[kind]) >= BATCH_MAX_ITEMS:
                send_batch(kind, runs[kind])
                runs[kind] = []

        def drain() -> None:
            """Send what is collected and wait for every batch in flight (order barrier)."""
            if runs["metric"]:
                inflight.append(pool.submit(send_batch, "metric", runs["metric"]))
                runs["metric"] = []
            if runs["parameter"]:
                send_batch("parameter", runs["parameter"])
                runs["parameter"] = []
            while inflight:
                inflight.pop(0).result()

        # the common case: a metric line read by the fast path goes into the batch as read, not
        # even parsed; the loop does as little per event as it can (upload reads millions)
        fast_lines = batching and not stored
        try:
            for ev in events:
                if type(ev) is MetricLine:
                    if not fast_lines and stop.is_set():
                        break
                    seen += 1
                    if ev.timestamp > last_ms:
                        last_ms = ev.timestamp
                    if ev.seq in done:
                        result.skipped += 1
                        continue
                    if fast_lines:
                        run = runs["metric"]
                        run.append((ev.seq, ev))
                        if len(run) >= BATCH_MAX_ITEMS:
                            if stop.is_set():  # looked at once a batch here: nothing is sent
                                break  # before that, and drain() below gives up when stopped
                            ship_metrics()
                        continue
                    ev = ev.event()
                else:
                    if stop.is_set():
                        break
                    seen += 1
                    b = (ev.get("call") or {}).get("json")
                    if isinstance(b, dict) and type(b.get("timestamp")) in (int, float):
                        last_ms = max(last_ms, b["timestamp"])
                    if (ev.get("call") or {}).get("path") == "write/experiment/stop":
                        has_stop = True
                    if ev.get("seq") in done:
                        result.skipped += 1
                        continue
                seq: Any = ev.get("seq")  # an int, as RunStore.append writes it
                body = (ev.get("call") or {}).get("json")
                if stored and isinstance(body, dict) and "metricName" in body:
                    k = _metric_key(body)
                    if stored[k] > 0:  # stored before the ack was written: do not send twice
                        stored[k] -= 1
                        with lock:
                            acks.write(ack_lines((seq,)))
                            acked.add(seq)
                            result.skipped += 1
                            bar.update()
                        continue
                call = None
                raw = ev.get("call")
                if raw is not None:
                    kind = _KINDS.get(raw.get("path")) if batching else None
                    if kind is not None and isinstance(raw.get("json"), dict):
                        # the raw event: its batch item is read straight from the JSON body,
                        # a Call is only made if it has to go per point
                        collect(kind, seq, raw)
                        continue
                    call = Call.from_json(raw)
                    if call.experiment_key and call.experiment_key != key:
                        call = call.with_experiment_key(key)
                drain()
                try:
                    if call is not None:
                        if (
                            call.file is not None
                            and call.file.path
                            and not os.path.exists(call.file.path)
                        ):
                            raise FileNotFoundError(
                                f"file {call.file.path!r} of {call.file.filename!r} no longer exists"
                            )
                        deliver.send(call, rid(str(seq)))
                    elif ev.get("op") == "register_model":
                        args = dict(ev.get("args") or {})
                        args.pop("workspace", None)
                        registry.register(client, workspace, key, **args)
                    record(seq, None)
                except CometAPIError as exc:
                    record(seq, exc)
                except (registry.RegistryError, FileNotFoundError, OSError) as exc:
                    record(seq, exc)
                with lock:
                    acks.flush()
            drain()
        except Abandoned:
            stop.set()
            for f in inflight:
                f.exception()
            if not auth_error:
                raise
        finally:
            pool.shutdown(wait=True)
            with lock:
                acks.flush()
    bar.close()
    if result.damaged:
        log.debug("%s: %s", path, result.damaged_summary())  # the CLI prints it in its summary
    if auth_error:
        log.debug("upload stopped: %s (re-run the command to continue)", auth_error[0])
        return result
    left = seen - len(acked)
    if left:
        result.errors.append(f"{left} events were not stored; re-run to continue")
        return result
    if not has_stop and not meta.get("secondary"):
        # the run died before ending: close it on the server, marked as crashed
        end_ms = int(last_ms or meta.get("startTimeMillis") or time.time() * 1000)
        start = meta.get("startTimeMillis") if not meta.get("online") else None
        for call in closing_calls(key, "crashed", end_ms, start):  # as Experiment.end() does
            deliver.send(call, None)
    meta = read_meta(path)
    meta["uploaded"] = True
    write_meta(path, meta)
    result.complete = True
    return result


_KINDS = {"write/experiment/metric": "metric", "write/experiment/parameter": "parameter"}


def _metric_item(raw: dict[str, Any] | MetricLine) -> dict[str, Any]:
    """The batch item of a recorded metric event (its JSON form, as in ``events.jsonl``)."""
    if type(raw) is MetricLine:
        return json.loads(raw.item)  # type: ignore[no-any-return]
    return metric_item_of_body(raw["json"])  # type: ignore[index]


def _parameter_item(raw: dict[str, Any]) -> dict[str, Any]:
    """The batch item of a recorded parameter event, with the source the event recorded."""
    return parameter_item_of_body(raw["json"], raw.get("source"))


def upload_paths(
    paths: list[str],
    settings: Settings | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
) -> list[UploadResult]:
    """Upload every run found under ``paths`` (run folders or folders of runs)."""
    settings = settings or Settings.resolve()
    results = []
    with RestClient.from_settings(settings) as client:
        for p in paths:
            for run in list_runs(p):
                try:
                    meta = read_meta(run)
                except (OSError, ValueError) as exc:
                    results.append(UploadResult(path=run, errors=[f"unreadable meta.json: {exc}"]))
                    continue
                if meta.get("uploaded"):
                    continue
                try:
                    results.append(
                        upload_run(run, settings, progress=progress, client=client, timeout=timeout)
                    )
                except Exception as exc:  # one broken run never stops the others
                    log.error("upload of %s failed: %r", run, exc)
                    results.append(UploadResult(path=run, errors=[f"unexpected error: {exc!r}"]))
    return results
