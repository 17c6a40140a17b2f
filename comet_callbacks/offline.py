"""The on-disk event log of a run: append-only, crash-safe, replayable.

Layout of one run, ``<COMET_OFFLINE_DIRECTORY>/<run id>/``:

* ``meta.json``   — workspace, project, name, experiment key (if the server gave one), mode,
  start/end times. Never the API key.
* ``events.jsonl`` — one JSON object per line: ``{"seq": n, "call": <Call>}`` or
  ``{"seq": n, "op": "register_model", ...}`` — the same :class:`~.rest.call.Call` the
  sender sends (DESIGN.md "One representation").
* ``acks.log``   — one line per delivered (``a <seq>``) or permanently refused (``f <seq>``)
  event, so a replay never sends an event twice.
* ``files/``     — snapshots of logged model files (and offline, of every file) and scratch
  folders for files made only to be logged; online, each goes once its upload is acknowledged.
* ``.lock``      — held (``flock``) while a process writes or uploads the run; the OS
  releases it when that process dies, even by SIGKILL, so ``upload`` never replays a run
  that is still being written.

The event log is flushed to the OS at least every :data:`FLUSH_INTERVAL` and at the end, so a
SIGKILL loses at most about a second of events. Acknowledgements are written through at
once: an event the server stored is (but for the instant of the kill) never replayed.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .rest.call import INLINE_LIMIT, Call, FilePart
from .rest.endpoints import FastMetricEncoder

__all__ = [
    "RunStore",
    "read_events",
    "read_events_checked",
    "iter_events_checked",
    "MetricLine",
    "check_event",
    "read_acks",
    "ack_lines",
    "event_line",
    "write_meta",
    "list_runs",
    "is_run_dir",
    "RunLock",
    "PendingSnapshot",
]

log = logging.getLogger("comet_callbacks.offline")

FLUSH_INTERVAL = 0.5
#: A logged file still in place is copied up to this size; a larger one keeps only its hard
#: link (no second copy of a huge file; it shares a later in-place rewrite).
SNAPSHOT_LIMIT = 2 * 1024**3


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<run>/.lock`` (no-op where flock is missing).

    The kernel drops it when the holder dies, so a stale lock never blocks a later upload.
    """

    def __init__(self, run_path: str) -> None:
        self.path = os.path.join(run_path, ".lock")
        self._fh: Any = None

    def acquire(self) -> bool:
        """True if acquired (or locking is unsupported); False if another process holds it."""
        if sys.platform == "win32":
            return True
        import fcntl

        fh = open(self.path, "a+")  # noqa: SIM115
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()  # closing releases the flock
            finally:
                self._fh = None


class RunStore:
    """Writer for one run's event log. Thread-safe; writes are buffered and flushed by time.

    ``memory_only=True`` (the offline directory cannot be written, for an online run) keeps
    nothing on disk: every write is a no-op, ``on_disk`` is False and the sender keeps the
    events in memory only (bounded; see :class:`~.sender.Sender`).

    Raises ``OSError`` when the run folder cannot be created or written (and then leaves no
    half-made folder behind). A write that fails later (the disk is full: ``ENOSPC``) never
    raises: the store goes memory-only at once (:meth:`_disk_failed`), keeps what is already
    on disk, records how far the log got (``disk_last_seq``) and how many accepted lines did
    not make it (``lost_lines``), and calls ``on_disk_error`` once.
    """

    def __init__(
        self,
        root: str,
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
        *,
        memory_only: bool = False,
    ) -> None:
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        self.root = os.path.abspath(root)
        self.path = os.path.join(self.root, self.run_id)
        # a root folder we create is removed again when it ends up empty (remove())
        self._made_root = not memory_only and not os.path.isdir(self.root)
        self._lock = threading.Lock()
        self._meta: dict[str, Any] = dict(meta or {})
        self._meta.setdefault("runId", self.run_id)
        self._meta.setdefault("created", int(time.time() * 1000))
        self._last_flush = time.monotonic()
        self._dirty = False
        self.closed = False
        self.on_disk = not memory_only
        self.lock = RunLock(self.path)
        self._events: Any = None
        self._acks: Any = None
        #: set when a write failed during the run (e.g. ENOSPC); the store is memory-only since
        self.disk_error: OSError | None = None
        #: the seq of the last event line complete on disk when the disk failed (0: none)
        self.disk_last_seq = 0
        #: event lines accepted but never written because the disk failed
        self.lost_lines = 0
        #: called once (with the error) when the disk fails during the run
        self.on_disk_error: Callable[[OSError], None] | None = None
        self._lines = 0  # event lines accepted while on disk
        self._flushed_lines = 0  # ... of which flushed at the last successful flush
        self._flushed_size = 0  # the size of events.jsonl then
        #: seq -> snapshot file in files/, removed when the event is acknowledged (online runs)
        self._snapshots: dict[int, str] = {}
        self._online = bool(self._meta.get("online"))
        self._temp_dirs: list[str] = []  # scratch folders outside the run (memory only)
        if memory_only:
            return
        try:
            os.makedirs(os.path.join(self.path, "files"), exist_ok=True)
            self.write_meta()
            self._events = open(os.path.join(self.path, "events.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
            self._acks = open(os.path.join(self.path, "acks.log"), "a", encoding="utf-8")  # noqa: SIM115
            self._flushed_size = os.fstat(self._events.fileno()).st_size
            self.lock.acquire()
        except OSError:
            for fh in (self._events, self._acks):
                if fh is not None:
                    try:
                        fh.close()
                    except OSError:
                        pass
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ meta

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    def update_meta(self, **values: Any) -> None:
        with self._lock:
            self._meta.update(values)
            if self.on_disk:
                try:
                    self.write_meta()
                except OSError as exc:
                    self._disk_failed(exc)

    def write_meta(self) -> None:
        """Atomically replace meta.json (temp file + rename)."""
        write_meta(self.path, self._meta)

    # ------------------------------------------------------------------ events

    def keep_file(self, part: FilePart) -> FilePart:
        """A FilePart safe to store: large in-memory data goes to ``files/``; paths stay paths."""
        if part.data is not None and len(part.data) > INLINE_LIMIT and self.on_disk:
            dest = os.path.join(self.path, "files", uuid.uuid4().hex)
            try:
                with open(dest, "wb") as fh:
                    fh.write(part.data)
            except OSError as exc:  # the disk is full: the data stays in memory
                _remove_quietly(dest)
                if exc.errno in _DISK_ERRNOS:
                    with self._lock:
                        self._disk_failed(exc)
                return part
            return FilePart(part.filename, path=dest, content_type=part.content_type)
        return part

    def snapshot(self, call: Call) -> Call | PendingSnapshot:
        """Start the snapshot of a logged file (caller's thread: one ``link``, no data copied).

        The upload must send the content the file had when it was logged, also after the
        framework rewrites or deletes it (Lightning's ``last.ckpt``, the Hugging Face Trainer's
        checkpoint rotation, Keras' ``ModelCheckpoint``), and an offline run must not depend on
        the original. A hard link into ``files/`` is taken at once: it keeps the content of a
        file that is later deleted or replaced by rename (Lightning's checkpoint IO and our own
        final-model saves write a new file). The rest is done by :meth:`PendingSnapshot.finish`
        on the sender's thread, never on the training thread: where the original still is the
        linked file (a writer may rewrite it in place: Keras, ``torch.save``), it is copied
        then (up to :data:`SNAPSHOT_LIMIT`) and the link dropped; where linking was impossible
        (another file system), it is copied then. Limit: a file rewritten in place in the
        moment between the log call and that copy is uploaded with its newer content. Files
        already in ``files/`` (:meth:`scratch_dir`, :meth:`keep_file`) are used as they are.
        Online, each snapshot is removed once its upload is acknowledged.
        """
        part = call.file
        if part is None or part.path is None or not self.on_disk or self._owned(part.path):
            return call
        dest = os.path.join(self.path, "files", uuid.uuid4().hex)
        try:
            os.link(part.path, dest)
        except OSError:
            dest = ""  # copied from the original on the sender's thread
        try:
            return PendingSnapshot(self, call, dest)
        except OSError:  # the file went away: it is reported when its upload fails
            return call

    def _owned(self, path: str) -> bool:
        return path.startswith(os.path.join(self.path, "files", ""))

    def scratch_dir(self) -> str:
        """A new empty folder for files made only to be logged (a final model): inside the
        run's ``files/``, so they need no snapshot and go with the run; removed after their
        upload is acknowledged or with the run. Without a run folder (memory only): a
        temporary folder removed when the run is closed."""
        if self.on_disk:
            try:
                return tempfile.mkdtemp(prefix="scratch-", dir=os.path.join(self.path, "files"))
            except OSError:
                pass
        path = tempfile.mkdtemp(prefix="comet-run-")
        self._temp_dirs.append(path)
        return path

    def _drop_snapshot(self, seq: int) -> None:
        """An event's file was delivered (or refused for good): its snapshot is not needed."""
        path = self._snapshots.pop(seq, None)
        if path is not None:
            _remove_quietly(path)

    def _write(self, line: str, lines: int = 1) -> bool:
        """Write one event line, or ``lines`` of them joined by newlines (the caller holds the
        lock); False when it was not written (closed, or the disk failed: then the run goes on
        from memory)."""
        if self.closed or not self.on_disk:
            return False
        self._lines += lines
        try:
            self._events.write(line + "\n")
        except OSError as exc:
            self._disk_failed(exc)
            return False
        self._dirty = True
        return True

    def append(self, seq: int, call: Call) -> None:
        """Append one event (buffered; flushed within FLUSH_INTERVAL by :meth:`maybe_flush`)."""
        line = event_line(seq, call)
        with self._lock:
            if not self._write(line):
                return
            part = call.file
            if part is not None and part.path is not None and self._online:
                if self._owned(part.path):  # removed once the upload is acknowledged
                    self._snapshots[seq] = part.path

    def append_lines(self, lines: list[str]) -> None:
        """Append already-encoded event lines (the sender's metric fast path: one write for
        the points it took from its queue in a row)."""
        with self._lock:
            self._write("\n".join(lines), len(lines))

    def append_op(self, seq: int, op: str, **args: Any) -> None:
        """Append a non-REST operation (e.g. ``register_model``) performed at replay time."""
        line = json.dumps({"seq": seq, "op": op, "args": args}, separators=(",", ":"), default=str)
        with self._lock:
            self._write(line)

    def ack(self, seq: int, ok: bool = True) -> None:
        """Record that event ``seq`` was delivered (or refused for good: it is not replayed).

        Written through to the OS at once (one small ``write``, no fsync): the answer of an
        HTTP request costs a thousand times more, and a SIGKILL then cannot lose an ack and
        make ``upload`` send the event again. A late ack (a request that finished after
        :meth:`close`) is still appended, unless the run folder was removed.
        """
        self.ack_many((seq,), ok)

    def ack_many(self, seqs: Iterable[int], ok: bool = True) -> None:
        """:meth:`ack` of several events in one write (every event of a stored batch)."""
        if not self.on_disk:
            return
        seqs = seqs if isinstance(seqs, (list, tuple)) else list(seqs)
        line = ack_lines(seqs, ok)
        with self._lock:
            if not self.on_disk:
                return
            if not self.closed:
                try:
                    self._acks.write(line)
                    self._acks.flush()
                except OSError as exc:
                    self._disk_failed(exc)
                    return
                if self._snapshots:
                    for seq in seqs:
                        self._drop_snapshot(seq)
                return
        try:
            if os.path.isdir(self.path):
                with open(os.path.join(self.path, "acks.log"), "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError:
            pass

    def maybe_flush(self) -> None:
        if self._dirty and time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def flush_due(self) -> float | None:
        """When (``time.monotonic()``) :meth:`maybe_flush` will next write; None when clean."""
        return self._last_flush + FLUSH_INTERVAL if self._dirty else None

    def flush(self) -> None:
        with self._lock:
            if self.closed or not self.on_disk:
                return
            try:
                self._events.flush()
                self._acks.flush()
                self._flushed_size = os.fstat(self._events.fileno()).st_size
            except OSError as exc:
                self._disk_failed(exc)
                return
            self._flushed_lines = self._lines
            self._dirty = False
            self._last_flush = time.monotonic()

    def _disk_failed(self, exc: OSError) -> None:
        """A write failed (caller holds ``self._lock``): go memory-only, once.

        Closes the log files without retrying the failed writes, then reads how far the event
        log got: complete lines written since the last flush are counted, so ``lost_lines``
        (accepted, not on disk) and ``disk_last_seq`` (the last complete event) are exact.
        """
        if not self.on_disk:
            return
        self.on_disk = False
        self.disk_error = exc
        for fh in (self._events, self._acks):
            if fh is not None:
                try:
                    fh.close()  # flushes once more (fails again), then closes the descriptor
                except OSError:
                    pass
        persisted, last = self._flushed_lines, 0
        try:
            with open(os.path.join(self.path, "events.jsonl"), "rb") as fh:
                start = max(0, self._flushed_size - (1 << 20))
                fh.seek(start)
                tail = fh.read()
            persisted += tail.count(b"\n", self._flushed_size - start)
            end = tail.rfind(b"\n")
            if end >= 0:
                line = tail[tail.rfind(b"\n", 0, end) + 1 : end]
                last = int(json.loads(line)["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.disk_last_seq = last
        self.lost_lines = max(0, self._lines - persisted)
        if self.on_disk_error is not None:
            try:
                self.on_disk_error(exc)
            except Exception as cb_exc:  # never let the report break the pipeline
                log.debug("on_disk_error failed: %r", cb_exc)
        else:
            log.warning(
                "comet_callbacks: cannot write to %s (%s); keeping events in memory", self.path, exc
            )

    def close(self) -> None:
        for path in self._temp_dirs:  # nothing outside the run folder outlives it
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs = []
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for fh in (self._events, self._acks):
                if fh is None or fh.closed:
                    continue
                try:
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError:
                    pass
                try:
                    fh.close()
                except OSError:
                    pass
            self.lock.release()

    def forget_after_fork(self) -> None:
        """In a forked child: drop this store without touching the parent's files.

        The child's copies of the log and ack file descriptors (and of the ``.lock`` one, which
        shares the parent's ``flock``) are pointed at ``/dev/null``, so buffered lines copied at
        fork time are never written a second time, and the lock is released only by the parent.
        Nothing here takes a lock: one held by another thread at fork time is never released.
        """
        self._lock = threading.Lock()
        self.closed = True
        fds = [fh.fileno() for fh in (self._events, self._acks) if fh is not None and not fh.closed]
        if self.lock._fh is not None:
            fds.append(self.lock._fh.fileno())
        try:
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            for fd in fds:
                try:
                    os.dup2(null, fd)
                except OSError:
                    pass
        finally:
            os.close(null)
        self.lock._fh = None

    def remove(self) -> None:
        """Delete the run folder (after everything was delivered)."""
        self.close()
        if os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
        if self._made_root:  # leave no empty folder of ours behind (another run's stays)
            try:
                os.rmdir(self.root)
            except OSError:
                pass


class PendingSnapshot:
    """A logged file's event whose snapshot :meth:`finish` completes on the sender's thread
    (see :meth:`RunStore.snapshot`); the event is recorded only once the snapshot exists."""

    __slots__ = ("call", "link", "store", "stamp")

    def __init__(self, store: RunStore, call: Call, link: str) -> None:
        self.store, self.call, self.link = store, call, link
        assert call.file is not None and call.file.path is not None
        self.stamp = _stamp(call.file.path)

    def finish(self) -> Call:
        """The event with its file's snapshot: the link when the original was since replaced
        or deleted, else a copy (the original may be rewritten in place). Where no snapshot
        can be made, the event keeps the original path (logged at debug level)."""
        part = self.call.file
        assert part is not None and part.path is not None
        src, link = part.path, self.link
        try:
            now = _stamp(src)
            if now[2:] != self.stamp[2:]:
                log.debug("%s changed between its log call and its snapshot", src)
            if link and now[:2] == _stamp(link)[:2] and now[2] <= SNAPSHOT_LIMIT:
                # still the same file, which may be rewritten in place: copy it now
                dest = os.path.join(self.store.path, "files", uuid.uuid4().hex)
                shutil.copyfile(link, dest)
                os.remove(link)
                link = dest
            elif not link:
                link = os.path.join(self.store.path, "files", uuid.uuid4().hex)
                shutil.copyfile(src, link)
        except FileNotFoundError:
            pass  # the original is gone: the link (when there is one) is the snapshot
        except OSError as exc:
            log.debug("snapshot of %s failed (%r); uploading from the original", src, exc)
            if exc.errno in _DISK_ERRNOS:
                with self.store._lock:
                    self.store._disk_failed(exc)
            if link and link != self.link:
                _remove_quietly(link)
            link = self.link
        if not link or not os.path.exists(link):
            return self.call
        new = FilePart(part.filename, path=link, content_type=part.content_type)
        return dataclasses.replace(self.call, file=new)


def _stamp(path: str) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime) of a file."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


#: errno values meaning our own disk cannot take more (as opposed to a bad source file)
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ---------------------------------------------------------------------- reading


def is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "meta.json")) and os.path.isfile(
        os.path.join(path, "events.jsonl")
    )


def list_runs(root: str) -> list[str]:
    """Run folders under ``root`` (or ``root`` itself if it is one), oldest first."""
    if is_run_dir(root):
        return [root]
    if not os.path.isdir(root):
        return []
    runs = [os.path.join(root, d) for d in sorted(os.listdir(root))]
    return [r for r in runs if is_run_dir(r)]


def read_meta(path: str) -> dict[str, Any]:
    """The run's ``meta.json``; ``ValueError`` when it is not JSON or not a JSON object."""
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json is not a JSON object ({type(meta).__name__})")
    return meta


def read_events(path: str) -> Iterator[dict[str, Any]]:
    """Events in order. A torn last line (the process died mid-write) is skipped."""
    with open(os.path.join(path, "events.jsonl"), encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                log.debug("skipping a torn last line in %s", path)
                break
            try:
                yield json.loads(line)
            except ValueError:
                log.warning("skipping a corrupt event line in %s", path)


#: Operations an event log may record besides REST calls (performed at replay time).
KNOWN_OPS = frozenset({"register_model"})


#: Body fields a metric or parameter event needs to be sent (alone or in a batch).
_BODY_NEEDS = {
    "write/experiment/metric": ("metricName", "metricValue"),
    "write/experiment/parameter": ("parameterName",),
}


def check_event(obj: Any) -> str | None:
    """Why a parsed event-log line cannot be replayed, or None when it can.

    An event is ``{"seq": <int >= 0>, "call": {"method": str, "path": str, ...}}`` or
    ``{"seq": <int>, "op": <known op>, "args": {...}}``.
    """
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    seq = obj.get("seq")
    if type(seq) is not int or seq < 0:
        return "no valid seq"
    if "call" in obj:
        call = obj["call"]
        if not isinstance(call, dict):
            return f"call is not a JSON object ({type(call).__name__})"
        path = call.get("path")
        if not isinstance(path, str) or not path:
            return "call has no path"
        if not isinstance(call.get("method"), str) or not call["method"]:
            return "call has no method"
        if not isinstance(call.get("query") or {}, dict):
            return "call query is not a JSON object"
        f = call.get("file")
        if f is not None and (
            not isinstance(f, dict)
            or not isinstance(f.get("filename"), str)
            or not isinstance(f.get("data") if f.get("data") is not None else f.get("path"), str)
        ):
            return "call file is not a file part"
        if f is not None:  # without a file part, the checks above are all Call.from_json needs
            try:
                Call.from_json(call)
            except (KeyError, TypeError, ValueError) as exc:
                return f"call cannot be read ({type(exc).__name__})"
        body = call.get("json")
        needs = _BODY_NEEDS.get(path)
        if needs is not None:
            if not isinstance(body, dict):
                return f"{path} without a JSON object body"
            if not isinstance(body.get(needs[0]), str) or any(k not in body for k in needs[1:]):
                return f"{path} without {' or '.join(needs)}"
        return None
    if "op" in obj:
        if obj["op"] not in KNOWN_OPS:
            return f"unknown operation {str(obj['op'])[:40]!r}"
        if not isinstance(obj.get("args", {}), dict):
            return "operation args are not a JSON object"
        return None
    return "neither a call nor an operation"


class MetricLine:
    """A metric event read by the fast path (:meth:`FastMetricEncoder.item_of_line`): its
    ``seq``, its batch item's JSON text and its timestamp; :meth:`event` parses the line."""

    __slots__ = ("seq", "item", "timestamp", "line")

    def __init__(self, seq: int, item: str, timestamp: int, line: str) -> None:
        self.seq = seq
        self.item = item
        self.timestamp = timestamp
        self.line = line

    def event(self) -> dict[str, Any]:
        """The event as :func:`read_events_checked` would return it without the fast path."""
        return json.loads(self.line)  # type: ignore[no-any-return]


def read_events_checked(
    path: str, *, metric_lines: bool = False
) -> tuple[list[Any], list[tuple[int, str]]]:
    """Events that can be replayed, in order, and the damaged lines as ``(line number, why)``.

    A damaged line (not JSON, JSON that is not an event, a repeated ``seq``) is skipped, never
    fatal: the rest of the run is still replayed. A torn last line (the writer died in the
    middle of it) is expected after a kill and is not reported.

    ``metric_lines=True``: metric events written by the sender's fast path come back as
    :class:`MetricLine` (not parsed: a few times cheaper, and far less memory); every other
    event is a dict as usual.
    """
    bad: list[tuple[int, str]] = []
    return list(iter_events_checked(path, bad, metric_lines=metric_lines)), bad


def iter_events_checked(
    path: str, bad: list[tuple[int, str]], *, metric_lines: bool = False
) -> Iterator[Any]:
    """:func:`read_events_checked` as a stream (``upload`` sends while it reads): yields the
    events, appends the damaged lines to ``bad`` as it meets them."""
    item_of_line = FastMetricEncoder.item_of_line if metric_lines else None
    seen: set[int] = set()
    seen_add = seen.add  # the per-line work is kept to a minimum: upload reads millions
    with open(os.path.join(path, "events.jsonl"), encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if line[-1:] != "\n":
                log.debug("skipping a torn last line in %s", path)
                break
            if item_of_line is not None:
                fast = item_of_line(line)
                if fast is not None:
                    seq, item, timestamp = fast
                    if seq in seen:
                        bad.append((number, f"repeats seq {seq}"))
                        continue
                    seen_add(seq)
                    yield MetricLine(seq, item, timestamp, line)
                    continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad.append((number, "not valid JSON"))
                continue
            why = check_event(obj)
            if why is None and obj["seq"] in seen:
                why = f"repeats seq {obj['seq']}"
            if why is not None:
                bad.append((number, why))
                continue
            seen.add(obj["seq"])
            yield obj


def count_lines(path: str) -> int:
    """How many lines ``<path>/events.jsonl`` has (cheap: bytes counted, nothing parsed)."""
    n = 0
    with open(os.path.join(path, "events.jsonl"), "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def event_line(seq: int, call: Call) -> str:
    """The ``events.jsonl`` line (without its newline) of ``call`` numbered ``seq``."""
    return json.dumps(
        {"seq": seq, "call": call.to_json()},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def ack_lines(seqs: Iterable[int], ok: bool = True) -> str:
    """The ``acks.log`` lines of these events: ``a <seq>`` (stored) or ``f <seq>`` (refused
    for good), one per line. :func:`read_acks` reads them back."""
    mark = "a " if ok else "f "
    text = ("\n" + mark).join(map(str, seqs))  # one join: a stored batch acks 1000 at once
    return mark + text + "\n" if text else ""


def write_meta(path: str, meta: dict[str, Any]) -> None:
    """Atomically replace ``<path>/meta.json`` (temp file, fsync, rename), so a crash leaves
    the old or the new file, never half of one."""
    tmp = os.path.join(path, f".meta.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(path, "meta.json"))


def read_acks(path: str) -> set[int]:
    """Sequence numbers already delivered (or refused for good)."""
    done: set[int] = set()
    try:
        with open(os.path.join(path, "acks.log"), encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and line.endswith("\n"):
                    try:
                        done.add(int(parts[1]))
                    except ValueError:
                        continue
    except FileNotFoundError:
        pass
    return done
