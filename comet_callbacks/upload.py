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

A run still being written by a live process (its ``.lock`` is held) is skipped.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .config import Settings
from .offline import RunLock, list_runs, read_acks, read_events_checked, read_meta
from .rest.call import Call
from .rest.client import RestClient
from .rest.endpoints import calls
from .rest.errors import CometAPIError, is_retryable

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


def _write_meta(path: str, meta: dict[str, Any]) -> None:
    tmp = os.path.join(path, ".meta.upload.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(path, "meta.json"))


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
) -> UploadResult:
    """Upload one run folder. Safe to re-run: delivered events are never sent again.

    Never raises for server or file problems: they end up in ``result.errors`` with
    ``complete=False`` (re-run to continue).
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
        return _upload_locked(path, settings, progress, client, result)
    except (CometAPIError, OSError, ValueError, KeyError) as exc:
        result.errors.append(str(exc))
        log.error("upload of %s stopped: %s (re-run the command to continue)", path, exc)
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
    client: RestClient, key: str, events: list[dict[str, Any]], done: set[int]
) -> collections.Counter[tuple[Any, ...]]:
    """Metric points of unacknowledged events that the server already has (to skip).

    For each metric name with unacknowledged points: the server's count of each point key,
    minus the acknowledged events with that key.
    """
    names = set()
    for ev in events:
        body = (ev.get("call") or {}).get("json")
        if ev.get("seq") not in done and isinstance(body, dict) and "metricName" in body:
            names.add(body["metricName"])
    stored: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for name in sorted(names):
        ans = client.send(
            Call(
                "GET",
                "experiment/metrics/get-metric",
                query={"experimentKey": key, "metricName": name},
            )
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
    path: str, settings: Settings, progress: bool, client: RestClient, result: UploadResult
) -> UploadResult:
    meta = read_meta(path)
    done = read_acks(path)
    recorded_key = meta.get("experimentKey")
    run_id = meta.get("runId") or os.path.basename(os.path.normpath(path))
    key = meta.get("uploadedKey")
    workspace = meta.get("uploadedWorkspace") or meta.get("workspace")
    project = meta.get("project") or settings.project_name or "general"
    if key is None and (meta.get("online") or meta.get("continued")) and recorded_key:
        # leftovers of an online run: the experiment exists on the server
        client.get_experiment_metadata(recorded_key)
        key = recorded_key
    if key is None:
        workspace = (
            settings.workspace or workspace or client.get_account_details()["defaultWorkspaceName"]
        )
        res = client.create_experiment(workspace, project, meta.get("experimentName"))
        key = res["experimentKey"]
        result.link = res.get("link")
        meta.update(uploadedKey=key, uploadedWorkspace=workspace)
        _write_meta(path, meta)
    if workspace is None:
        workspace = client.get_experiment_metadata(key).get("workspaceName")
    result.experiment_key = key
    result.link = result.link or f"{client.root}/{workspace}/{project}/{key}"
    events, result.damaged = read_events_checked(path)
    if result.damaged:
        log.debug("%s: %s", path, result.damaged_summary())  # the CLI prints it in its summary
    continuing = bool(done) or meta.get("online") or meta.get("uploadedKey")
    stored = _already_stored(client, key, events, done) if continuing else None
    todo = [e for e in events if e.get("seq") not in done]
    result.skipped = len(events) - len(todo)
    has_stop = any(e.get("call", {}).get("path") == "write/experiment/stop" for e in events)
    bar = _Progress(len(todo), f"uploading {os.path.basename(path)}", progress)
    with open(os.path.join(path, "acks.log"), "a", encoding="utf-8") as acks:
        for ev in todo:
            seq = ev.get("seq")
            body = (ev.get("call") or {}).get("json")
            if stored and isinstance(body, dict) and "metricName" in body:
                k = _metric_key(body)
                if stored[k] > 0:  # stored before the ack was written: do not send twice
                    stored[k] -= 1
                    acks.write(f"a {seq}\n")
                    acks.flush()
                    result.skipped += 1
                    bar.update()
                    continue
            try:
                if "call" in ev:
                    call = Call.from_json(ev["call"])
                    if call.experiment_key and call.experiment_key != key:
                        call = call.with_experiment_key(key)
                    if (
                        call.file is not None
                        and call.file.path
                        and not os.path.exists(call.file.path)
                    ):
                        raise FileNotFoundError(
                            f"file {call.file.path!r} of {call.file.filename!r} no longer exists"
                        )
                    client.send(call, request_id=f"{run_id}-{seq}")
                elif ev.get("op") == "register_model":
                    args = dict(ev.get("args") or {})
                    args.pop("workspace", None)
                    registry.register(client, workspace, key, **args)
                ok = True
            except CometAPIError as exc:
                if is_retryable(exc) or exc.status in (401, 403):
                    result.errors.append(str(exc))
                    result.failed += 1
                    bar.close()
                    log.error("upload stopped: %s (re-run the command to continue)", exc)
                    return result
                ok = False
                result.errors.append(str(exc))
            except (registry.RegistryError, FileNotFoundError, OSError) as exc:
                ok = False
                result.errors.append(str(exc))
            acks.write(("a " if ok else "f ") + str(seq) + "\n")
            acks.flush()
            if ok:
                result.sent += 1
            else:
                result.failed += 1
            bar.update()
    bar.close()
    if not has_stop and not meta.get("secondary"):
        # the run died before ending: close it on the server, marked as crashed
        stamps = [(e.get("call") or {}).get("json") for e in events]
        last = max(
            (
                b["timestamp"]
                for b in stamps
                if isinstance(b, dict) and type(b.get("timestamp")) in (int, float)
            ),
            default=0,
        )
        end_ms = int(last or meta.get("startTimeMillis") or time.time() * 1000)
        client.send(calls.log_other(key, "status", "crashed", timestamp=end_ms))
        client.send(calls.log_other(key, "hasCrashed", True, timestamp=end_ms))
        client.send(
            calls.set_start_end_time(
                key, meta.get("startTimeMillis") if not meta.get("online") else None, end_ms
            )
        )
        client.send(calls.stop_experiment(key))
    meta = read_meta(path)
    meta["uploaded"] = True
    _write_meta(path, meta)
    result.complete = True
    return result


def upload_paths(
    paths: list[str], settings: Settings | None = None, *, progress: bool = True
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
                    results.append(upload_run(run, settings, progress=progress, client=client))
                except Exception as exc:  # one broken run never stops the others
                    log.error("upload of %s failed: %r", run, exc)
                    results.append(UploadResult(path=run, errors=[f"unexpected error: {exc!r}"]))
    return results
