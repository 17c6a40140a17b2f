"""Replay offline runs and the leftovers of interrupted online runs: ``comet-callbacks upload``.

Events are sent in their recorded order through the same :class:`~.rest.client.RestClient`
with the same bodies and timestamps (WIRE.md §5 "Offline replay"). Each delivered event is
recorded in the run's ``acks.log`` right away, so re-running an interrupted upload sends
nothing twice. An offline run gets its experiment created once; the server's key is kept in
``meta.json`` so a re-run continues it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .config import Settings
from .offline import list_runs, read_acks, read_events, read_meta
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
    """Upload one run folder. Safe to re-run: delivered events are never sent again."""
    settings = settings or Settings.resolve()
    own_client = client is None
    client = client or RestClient.from_settings(settings)
    result = UploadResult(path=path)
    try:
        meta = read_meta(path)
        done = read_acks(path)
        recorded_key = meta.get("experimentKey")
        key = meta.get("uploadedKey")
        workspace = meta.get("uploadedWorkspace") or meta.get("workspace")
        project = meta.get("project") or settings.project_name or "general"
        if key is None and meta.get("online") and recorded_key:
            # leftovers of an online run: the experiment exists on the server
            client.get_experiment_metadata(recorded_key)
            key = recorded_key
        if key is None:
            workspace = (
                settings.workspace
                or workspace
                or client.get_account_details()["defaultWorkspaceName"]
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
        events = list(read_events(path))
        todo = [e for e in events if e.get("seq") not in done]
        result.skipped = len(events) - len(todo)
        has_stop = any(e.get("call", {}).get("path") == "write/experiment/stop" for e in events)
        bar = _Progress(len(todo), f"uploading {os.path.basename(path)}", progress)
        with open(os.path.join(path, "acks.log"), "a", encoding="utf-8") as acks:
            for ev in todo:
                seq = ev.get("seq")
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
                        client.send(call)
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
            last = (
                max((e.get("call", {}).get("json") or {}).get("timestamp", 0) or 0 for e in events)
                if events
                else 0
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
    finally:
        if own_client:
            client.close()


def upload_paths(
    paths: list[str], settings: Settings | None = None, *, progress: bool = True
) -> list[UploadResult]:
    """Upload every run found under ``paths`` (run folders or folders of runs)."""
    settings = settings or Settings.resolve()
    results = []
    with RestClient.from_settings(settings) as client:
        for p in paths:
            for run in list_runs(p):
                meta = read_meta(run)
                if meta.get("uploaded"):
                    continue
                results.append(upload_run(run, settings, progress=progress, client=client))
    return results
