"""Output capture: real writes through real (in-process or subprocess) standard streams."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comet_callbacks.capture.output import OutputCapture


class Terminal:
    """A minimal text stream standing in for a terminal (records what reaches the user)."""

    encoding = "fake-8"

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.lock = threading.Lock()
        self.flushed = 0

    def write(self, text: str) -> int:
        with self.lock:
            self.chunks.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushed += 1

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 4242

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class Collector:
    """An ``emit`` that records batches (thread-safe)."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.batches.append(list(batch))

    @property
    def items(self) -> list[dict[str, Any]]:
        with self.lock:
            return [item for batch in self.batches for item in batch]


Streams = Callable[[], tuple["Terminal", "Terminal"]]


@pytest.fixture
def terms(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[Terminal, Terminal]]:
    """Installs our own stdout/stderr when called from the test body.

    (pytest re-installs its capture streams between setup and call, so a fixture cannot
    set them up front; monkeypatch puts pytest's back afterwards.)
    """

    def install() -> tuple[Terminal, Terminal]:
        out, err = Terminal(), Terminal()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        return out, err

    return install


def test_lines_order_streams_offsets(terms: Streams) -> None:
    out, err = terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60)
    cap.start()
    assert sys.stdout is not out and sys.stderr is not err
    print("one")
    print("two", file=sys.stderr)
    sys.stdout.write("thr")
    sys.stdout.write("ee\nfour\n")
    assert sink.items == []  # nothing is emitted from inside print
    cap.stop()
    assert sys.stdout is out and sys.stderr is err
    assert [(i["output"], i["stderr"]) for i in sink.items] == [
        ("one\n", False),
        ("two\n", True),
        ("three\n", False),
        ("four\n", False),
    ]
    assert [i["offset"] for i in sink.items] == [0, 1, 2, 3]
    now = time.time() * 1000
    assert all(
        isinstance(i["localTimestamp"], int) and abs(now - i["localTimestamp"]) < 60_000
        for i in sink.items
    )
    # the user saw everything, unchanged
    assert out.text == "one\nthree\nfour\n" and err.text == "two\n"
    # after stop nothing more is captured
    print("after")
    assert len(sink.items) == 4


def test_start_offset_and_delegation(terms: Streams) -> None:
    out, _ = terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60, start_offset=100)
    cap.start()
    try:
        assert sys.stdout.isatty() is True
        assert sys.stdout.fileno() == 4242
        assert sys.stdout.encoding == "fake-8"
        sys.stdout.flush()
        assert out.flushed == 1
        sys.stdout.writelines(["a\n", "b\n"])
    finally:
        cap.stop()
    assert [i["offset"] for i in sink.items] == [100, 101]
    assert cap.next_offset == 102


def test_carriage_return_progress_keeps_final_state(terms: Streams) -> None:
    _, err = terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60)
    cap.start()
    try:
        for pct in range(0, 101, 10):
            sys.stderr.write(f"\r{pct:3d}%|{'#' * (pct // 10):10s}|")
        sys.stderr.write("\n")
        sys.stdout.write("step 1\rstep 2\r\n")  # trailing \r before newline
        sys.stdout.write("windows line\r\n")
    finally:
        cap.stop()
    assert [(i["output"], i["stderr"]) for i in sink.items] == [
        ("100%|##########|\n", True),
        ("step 2\n", False),
        ("windows line\n", False),
    ]
    assert err.text.count("\r") == 11  # the terminal still got every redraw


def test_redrawn_partial_not_emitted_until_stable(terms: Streams) -> None:
    terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=0.3)
    cap.start()
    try:
        deadline = time.monotonic() + 1.2
        n = 0
        while time.monotonic() < deadline:  # a bar redrawn every 50 ms for 1.2 s
            n += 1
            sys.stderr.write(f"\rprogress {n}")
            time.sleep(0.05)
        assert sink.items == []  # 4 flush intervals passed, but the bar was still moving
        sys.stderr.write("\n")
        sys.stdout.write("prompt> ")  # a partial line that then stays put
        time.sleep(1.0)
        items = sink.items
        assert [i["output"] for i in items] == [f"progress {n}\n", "prompt> "]
    finally:
        cap.stop()


def test_partial_line_flushed_at_stop(terms: Streams) -> None:
    terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60)
    cap.start()
    print("full")
    sys.stdout.write("no newline")
    cap.stop()
    assert [i["output"] for i in sink.items] == ["full\n", "no newline"]


def test_threads_keep_lines_intact(terms: Streams) -> None:
    terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=0.05, max_batch=37)
    cap.start()
    n_threads, n_lines = 6, 300

    def worker(t: int) -> None:
        for j in range(n_lines):
            print(f"thread-{t}-line-{j}", file=sys.stderr if t % 2 else sys.stdout)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    cap.stop()
    items = sink.items
    assert len(items) == n_threads * n_lines
    assert [i["offset"] for i in items] == list(range(len(items)))
    assert all(len(b) <= 37 for b in sink.batches)
    for t in range(n_threads):
        mine = [i for i in items if i["output"].startswith(f"thread-{t}-")]
        assert [i["output"] for i in mine] == [f"thread-{t}-line-{j}\n" for j in range(n_lines)]
        assert all(i["stderr"] is bool(t % 2) for i in mine)


def test_emit_printing_is_not_recaptured(terms: Streams) -> None:
    _, err = terms()
    sink = Collector()

    def noisy_emit(batch: list[dict[str, Any]]) -> None:
        print(f"sender: sending {len(batch)} lines", file=sys.stderr)
        sink(batch)

    cap = OutputCapture(noisy_emit, flush_interval=0.05)
    cap.start()
    print("hello")
    time.sleep(0.5)  # periodic flushes from the flusher thread
    print("bye")
    cap.stop()  # final flush on this thread
    assert [i["output"] for i in sink.items] == ["hello\n", "bye\n"]
    assert err.text.count("sender: sending 1 lines") == 2  # passed straight through


def test_slow_emit_never_blocks_print(terms: Streams) -> None:
    terms()
    sink = Collector()

    def slow_emit(batch: list[dict[str, Any]]) -> None:
        time.sleep(0.8)
        sink(batch)

    cap = OutputCapture(slow_emit, flush_interval=60, max_batch=100)
    cap.start()
    t0 = time.monotonic()
    for j in range(300):  # several max_batch wake-ups while emit sleeps
        print(f"line {j}")
    elapsed = time.monotonic() - t0
    cap.stop()
    assert elapsed < 0.6  # while emit sleeps 0.8 s per batch
    assert [i["output"] for i in sink.items] == [f"line {j}\n" for j in range(300)]


def test_max_batch_flushes_early(terms: Streams) -> None:
    terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60, max_batch=10)
    cap.start()
    try:
        for j in range(25):
            print(j)
        deadline = time.monotonic() + 5
        while len(sink.items) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sink.items) >= 20  # well before the 60 s interval
        assert all(len(b) <= 10 for b in sink.batches)
    finally:
        cap.stop()
    assert len(sink.items) == 25


def test_long_lines_are_split(terms: Streams) -> None:
    terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60, max_line=10)
    cap.start()
    print("a" * 25)
    sys.stdout.write("b" * 23)  # without newline: split as it grows
    cap.stop()
    assert [i["output"] for i in sink.items] == [
        "a" * 10,
        "a" * 10,
        "aaaaa\n",
        "b" * 10,
        "b" * 10,
        "bbb",
    ]
    assert "".join(i["output"] for i in sink.items) == "a" * 25 + "\n" + "b" * 23


def test_emit_exception_is_swallowed(terms: Streams) -> None:
    terms()
    calls: list[int] = []

    def flaky(batch: list[dict[str, Any]]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("server down")

    cap = OutputCapture(flaky, flush_interval=0.05)
    cap.start()
    print("lost")
    time.sleep(0.4)
    print("kept")
    cap.stop()  # must not raise
    assert calls == [1, 1]


def test_stop_when_stream_was_replaced_later(terms: Streams) -> None:
    out, _ = terms()
    sink = Collector()
    cap = OutputCapture(sink, flush_interval=60)
    cap.start()
    our_tee = sys.stdout

    class Wrapper:  # e.g. another library teeing stdout on top of ours
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def write(self, text: str) -> int:
            return self.inner.write(text)

        def flush(self) -> None:
            self.inner.flush()

    wrapper = Wrapper(our_tee)
    sys.stdout = wrapper
    print("captured")
    cap.stop()
    assert sys.stdout is wrapper  # theirs is left alone
    print("passes through")  # our tee is now a pass-through
    assert [i["output"] for i in sink.items] == ["captured\n"]
    assert out.text == "captured\npasses through\n"
    sys.stdout = out


SCRIPT = r"""
import json, sys, threading
from comet_callbacks.capture.output import OutputCapture

items = []
cap = OutputCapture(items.extend, flush_interval=0.05)
cap.start()
info = {"tty": sys.stdout.isatty(), "fileno": sys.stdout.fileno(), "enc": sys.stdout.encoding}
print("hello stdout")
print("hello stderr", file=sys.stderr)
sys.stdout.write("tail")
cap.stop()
restored = sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__
sys.__stdout__.write("\nRESULT " + json.dumps({"items": items, "restored": restored, **info}))
"""


def test_real_process_streams(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.startswith("hello stdout\ntail")
    assert proc.stderr == "hello stderr\n"
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["restored"] is True
    assert result["tty"] is False and result["fileno"] == 1 and result["enc"]
    assert [(i["output"], i["stderr"], i["offset"]) for i in result["items"]] == [
        ("hello stdout\n", False, 0),
        ("hello stderr\n", True, 1),
        ("tail", False, 2),
    ]


def test_stop_honours_timeout_when_emit_hangs(terms: Streams) -> None:
    terms()
    release = threading.Event()
    got: list[str] = []

    def hung_emit(batch: list[dict[str, Any]]) -> None:
        release.wait(10)
        got.extend(i["output"] for i in batch)

    cap = OutputCapture(hung_emit, flush_interval=0.05)
    cap.start()
    print("first")
    time.sleep(0.3)  # the flusher is now stuck inside emit
    print("second")
    t0 = time.monotonic()
    cap.stop(timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    release.set()
    assert sys.stdout is not None and "comet_callbacks tee" not in repr(sys.stdout)
    time.sleep(0.2)
    assert got == ["first\n"]  # "second" was given up on, not emitted out of order
