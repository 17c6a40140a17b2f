"""CPU cost of SystemMonitor, as % of one core, next to an idle baseline thread.

Run: ``python benchmarks/bench_monitor.py [--seconds 20]``. The monitor runs once at a 0.1 s
interval (a stress setting, ~680x the default sampling rate) and once at its defaults (68 s
CPU / 60 s GPU); each thread's CPU time (user + system) is read from the OS per thread id via
psutil, so nothing is added to the code being measured. The baseline is a thread that wakes
on the same Event-wait schedule as the stress run but does no work. ``emit`` is a list append,
like the real one (which only enqueues). Target: the default setting well under 1 % of a core.
Linux reports thread CPU time in 10 ms ticks, so the resolution is 1 % / seconds-per-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from comet_callbacks.capture.monitor import SystemMonitor  # noqa: E402


def thread_cpu_seconds(native_id: int | None) -> float:
    """User + system CPU seconds of one OS thread of this process."""
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def measure(
    name: str, start: Callable[[], threading.Thread], stop: Callable[[], None], seconds: float
) -> tuple[str, float, float]:
    thread = start()
    time.sleep(0.05)  # let it reach its loop
    c0, w0 = thread_cpu_seconds(thread.native_id), time.monotonic()
    time.sleep(seconds)
    c1, w1 = thread_cpu_seconds(thread.native_id), time.monotonic()
    stop()
    return name, (c1 - c0) / (w1 - w0) * 100.0, w1 - w0


def run_monitor(interval: float | None, seconds: float) -> tuple[str, float, float, int]:
    events: list[Any] = []
    kwargs = {} if interval is None else {"cpu_interval": interval, "gpu_interval": interval}
    mon = SystemMonitor(lambda kind, payload: events.append(kind), **kwargs)

    def start() -> threading.Thread:
        mon.start()
        assert mon.thread is not None
        return mon.thread

    label = "monitor, defaults (68 s / 60 s)" if interval is None else f"monitor, {interval} s"
    name, pct, wall = measure(label, start, mon.stop, seconds)
    return name, pct, wall, len(events)


def run_idle(interval: float, seconds: float) -> tuple[str, float, float, int]:
    stop_evt = threading.Event()
    wakeups = [0]

    def loop() -> None:
        while not stop_evt.wait(interval):
            wakeups[0] += 1

    thread = threading.Thread(target=loop, daemon=True)

    def start() -> threading.Thread:
        thread.start()
        return thread

    def stop() -> None:
        stop_evt.set()
        thread.join()

    name, pct, wall = measure(f"baseline idle thread, {interval} s wake-ups", start, stop, seconds)
    return name, pct, wall, wakeups[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    args = parser.parse_args()
    rows = [
        run_idle(0.1, args.seconds),
        run_monitor(0.1, args.seconds),
        run_monitor(None, args.seconds),
    ]
    print(
        f"CPUs: {psutil.cpu_count()}, Python {sys.version.split()[0]}, {args.seconds:g} s per run"
    )
    print()
    print("| run | CPU % of one core | wall s | emits / wake-ups |")
    print("|---|---:|---:|---:|")
    for name, pct, wall, n in rows:
        print(f"| {name} | {pct:.3f} | {wall:.1f} | {n} |")


if __name__ == "__main__":
    main()
