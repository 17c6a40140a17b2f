"""Tee of ``sys.stdout``/``sys.stderr`` into ``outputLines`` items (WIRE #35, §5 Output capture).

What the user prints is written through to the original stream at once; a copy is split into
lines under a lock and handed to ``emit`` in batches by a background flusher thread, so a slow
``emit`` never blocks ``print``. Design points:

* **Lines stay intact per thread.** ``print`` issues two writes (text, then ``"\\n"``), so two
  threads printing at once interleave on the terminal. Partial lines are therefore buffered per
  (thread, stream) and each thread's line is captured whole.
* **Progress bars.** Text rewritten with ``\\r`` keeps only its last non-empty state; the
  partial buffer is collapsed on every write, so memory stays bounded and a bar redrawn a
  thousand times yields one item.
* **Partial lines** (no newline yet) become items at stop, or at a periodic flush once they have
  not changed for a whole ``flush_interval`` (a prompt, ``print(..., end="")`` before a long
  computation) - not while a bar is still being redrawn.
* **No recursion.** Writes made by the flusher thread, or while ``emit`` runs on any thread,
  bypass the capture, so the sender logging to stderr cannot feed itself.
  ``exclude_current_thread()`` lets e.g. a sender thread opt out entirely.
* Only Python-level writes are seen: output written to ``sys.stdout.buffer``, to file
  descriptor 1/2 directly, or by subprocesses is passed through but not captured.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

logger = logging.getLogger("comet_callbacks.capture")

EmitLines = Callable[[list[dict[str, Any]]], None]


def _last_state(text: str) -> str:
    """The final state of a ``\\r``-rewritten line: its last non-empty ``\\r`` segment."""
    if "\r" not in text:
        return text
    for segment in reversed(text.split("\r")):
        if segment:
            return segment
    return ""


def _collapse(partial: str) -> str:
    """Reduce a partial line to its current state, keeping a trailing ``\\r`` as a marker.

    ``"a\\rb\\r"`` becomes ``"b\\r"``: the next write starts a new state (so ``"b\\r" + "c"``
    later collapses to ``"c"``), while the line's final state is still ``"b"`` if it ends here.
    """
    if "\r" not in partial:
        return partial
    state = _last_state(partial)
    return state + "\r" if partial.endswith("\r") and state else state


class _Tee:
    """A stand-in for ``sys.stdout``/``sys.stderr``: writes through, then captures a copy.

    Everything except ``write``/``writelines`` is delegated to the original stream
    (``isatty``, ``fileno``, ``encoding``, ``buffer``, ``flush``...), so libraries that inspect
    the stream behave as before. Once deactivated it is a pure pass-through forever, which
    keeps any handler that grabbed it (e.g. ``logging.StreamHandler``) working after stop.
    """

    def __init__(self, original: TextIO, capture: OutputCapture, stderr: bool) -> None:
        self._original = original
        self._capture = capture
        self._stderr = stderr
        self._active = True

    def write(self, text: str) -> int:
        result = self._original.write(text)
        if self._active and isinstance(text, str) and text:
            self._capture._feed(text, self._stderr)
        return result

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    def __repr__(self) -> str:
        return f"<comet_callbacks tee of {self._original!r}>"


class OutputCapture:
    """Captures ``sys.stdout``/``sys.stderr`` between ``start()`` and ``stop()``.

    ``emit`` receives lists (at most ``max_batch`` long) of
    ``{"output", "stderr", "localTimestamp", "offset"}`` items, ``offset`` strictly increasing
    from ``start_offset`` across both streams. It is called on the flusher thread every
    ``flush_interval`` s, sooner once ``max_batch`` lines are pending, and at ``stop()``
    on the calling thread. Exceptions from ``emit`` are swallowed (one debug log).
    """

    def __init__(
        self,
        emit: EmitLines,
        flush_interval: float = 5.0,
        max_batch: int = 500,
        max_line: int = 5_000_000,
        start_offset: int = 0,
        max_pending: int = 100_000,
    ) -> None:
        self._emit = emit
        self._flush_interval = max(float(flush_interval), 0.01)
        self._max_batch = max(int(max_batch), 1)
        self._max_line = max(int(max_line), 1)
        self._max_pending = max(int(max_pending), self._max_batch)
        self._offset = int(start_offset)
        self._lock = threading.Lock()  # guards everything below up to the flusher fields
        self._pending: list[dict[str, Any]] = []
        # (thread ident, is_stderr) -> [partial text, monotonic time of last change]
        self._partials: dict[tuple[int, bool], list[Any]] = {}
        self._dropped = 0
        self._emit_lock = threading.Lock()  # one emit at a time keeps batches in offset order
        self._guard = threading.local()  # .emitting is True while this thread runs emit
        self._excluded: set[int] = set()  # thread idents never captured
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._tees: list[tuple[str, _Tee]] = []
        self._emit_failed = False

    # --- public API ------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """The offset the next captured item will get (for resuming a run)."""
        with self._lock:
            return self._offset

    def start(self) -> None:
        """Install the tees on ``sys.stdout``/``sys.stderr`` and start the flusher thread."""
        if self._tees:
            return
        self._stopping.clear()
        for name, is_err in (("stdout", False), ("stderr", True)):
            original = getattr(sys, name)
            if original is None:  # pythonw / detached process: nothing to tee
                continue
            tee = _Tee(original, self, is_err)
            setattr(sys, name, tee)
            self._tees.append((name, tee))
        self._thread = threading.Thread(
            target=self._run, name="comet-callbacks-output-flusher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Restore the streams and emit everything left, partial lines included.

        A stream is put back only if ``sys.stdout``/``sys.stderr`` is still our tee; if
        someone wrapped it later, our tee stays in their chain as a pure pass-through.
        """
        if not self._tees:
            return
        for name, tee in self._tees:
            tee._active = False
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._original)
        self._tees = []
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        # Waits for an emit still running on the flusher (keeps batches in order), but never
        # past ``timeout``: a hung emit must not hang the end of the run.
        if not self._flush(final=True, lock_timeout=max(deadline - time.monotonic(), 0.0)):
            logger.debug("output capture: emit still busy after %.1fs; last lines dropped", timeout)

    def forget_after_fork(self) -> None:
        """In a forked child: stop capturing without taking any lock (one held by another
        thread at fork time is never released) and put the original streams back."""
        for name, tee in self._tees:
            tee._active = False
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._original)
        self._tees = []
        self._thread = None
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()

    def flush(self) -> None:
        """Emit the complete lines captured so far, on the calling thread."""
        self._flush(final=False)

    def exclude_current_thread(self) -> None:
        """Never capture writes made by the calling thread (e.g. a sender's own logging)."""
        self._excluded.add(threading.get_ident())

    # --- capture ---------------------------------------------------------------------------

    def _new_item(self, text: str, is_err: bool, now_ms: int) -> None:
        """Queue one item (split at ``max_line``); caller holds ``self._lock``."""
        for i in range(0, len(text), self._max_line):
            if len(self._pending) >= self._max_pending:  # emit is stuck: bound memory
                if self._dropped == 0:
                    logger.debug("output capture: %d lines pending; dropping", self._max_pending)
                self._dropped += 1
                continue
            self._pending.append(
                {
                    "output": text[i : i + self._max_line],
                    "stderr": is_err,
                    "localTimestamp": now_ms,
                    "offset": self._offset,
                }
            )
            self._offset += 1

    def _feed(self, text: str, is_err: bool) -> None:
        """Take a copy of text written to a stream. Never raises into the user's print."""
        ident = threading.get_ident()
        if getattr(self._guard, "emitting", False) or ident in self._excluded:
            return
        try:
            now_ms = int(time.time() * 1000)
            with self._lock:
                key = (ident, is_err)
                entry = self._partials.get(key)
                buf = entry[0] + text if entry else text
                if "\n" in buf:
                    *lines, buf = buf.split("\n")
                    for line in lines:
                        self._new_item(_last_state(line) + "\n", is_err, now_ms)
                buf = _collapse(buf)
                while len(buf) > self._max_line:  # a huge line without newline
                    self._new_item(buf[: self._max_line], is_err, now_ms)
                    buf = buf[self._max_line :]
                if buf:
                    self._partials[key] = [buf, time.monotonic()]
                elif entry:
                    del self._partials[key]
                full = len(self._pending) >= self._max_batch
            if full:
                self._wake.set()
        except Exception as exc:  # never break printing
            logger.debug("output capture: dropped a write: %r", exc)

    # --- flushing --------------------------------------------------------------------------

    def _flush(self, final: bool, lock_timeout: float = -1) -> bool:
        """Emit pending items; partial lines too when ``final`` or unchanged for an interval.

        Returns False when another emit did not finish within ``lock_timeout`` seconds.
        """
        if not self._emit_lock.acquire(timeout=lock_timeout):
            return False
        try:
            with self._lock:
                now_mono = time.monotonic()
                now_ms = int(time.time() * 1000)
                for key, (partial, changed) in list(self._partials.items()):
                    if final or now_mono - changed >= self._flush_interval:
                        state = _last_state(partial)
                        if state:
                            self._new_item(state, key[1], now_ms)
                        del self._partials[key]
                items, self._pending = self._pending, []
            for i in range(0, len(items), self._max_batch):
                self._call_emit(items[i : i + self._max_batch])
        finally:
            self._emit_lock.release()
        return True

    def _call_emit(self, batch: list[dict[str, Any]]) -> None:
        self._guard.emitting = True
        try:
            self._emit(batch)
        except Exception as exc:
            if not self._emit_failed:
                self._emit_failed = True
                logger.debug("output capture: emit failed (logged once): %r", exc)
        finally:
            self._guard.emitting = False

    def _run(self) -> None:
        self.exclude_current_thread()
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping.is_set():
                break  # stop() does the final flush after restoring the streams
            try:
                self._flush(final=False)
            except Exception as exc:
                logger.debug("output capture: flush failed: %r", exc)
