"""Core costs of comet_callbacks: caller-thread cost, delivery throughput, end-of-run wait,
memory while logging a million points. Prints Markdown tables with the targets next to them.

Run: ``python -m benchmarks.bench_core [--quick]``.

* The local server runs in its own process (``python -m comet_callbacks.server``), so its
  CPU and memory are not counted against the client (on a 2-core box they still compete).
* Caller cost is timed per call with ``perf_counter_ns`` and reported as median / p99 and as
  a ratio to a plain ``deque.append`` of the same tuple timed the same way in the same run
  (the timer's own cost is in both).
* Memory is the RSS growth of a fresh subprocess, sampled every 10 ms by a thread (psutil).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

QUIET: dict[str, Any] = dict(
    auto_log_code=False,
    auto_log_git_metadata=False,
    auto_log_git_patch=False,
    auto_log_env_details=False,
    auto_log_env_cpu=False,
    auto_log_env_gpu=False,
    auto_log_output_logger=False,
)
API_KEY = "bench" + "0" * 27


# ---------------------------------------------------------------------- local server


class Server:
    """The local server in a subprocess on a free port."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-core-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "comet_callbacks.server", "--port", str(self.port)]
            + ["--api-key", API_KEY, "--data-dir", self.tmp.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("local server did not start") from None
                time.sleep(0.1)

    def env(self, offline_dir: str) -> dict[str, str]:
        return {
            "COMET_URL_OVERRIDE": self.url,
            "COMET_API_KEY": API_KEY,
            "COMET_OFFLINE_DIRECTORY": offline_dir,
        }

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.tmp.cleanup()


def _set_env(env: dict[str, str]) -> None:
    for name in list(os.environ):
        if name.startswith("COMET_"):
            del os.environ[name]
    os.environ.update(env)


# ---------------------------------------------------------------------- measurements


def _percentiles(ns: list[int]) -> tuple[float, float]:
    ns.sort()
    return statistics.median(ns) / 1000, ns[int(len(ns) * 0.99)] / 1000


def caller_cost(n: int) -> list[tuple[str, float, float, float]]:
    """(what, median µs, p99 µs, median ratio to deque.append) for each caller operation."""
    from comet_callbacks import Experiment

    pc = time.perf_counter_ns
    base: list[int] = []
    dq: collections.deque[Any] = collections.deque()
    for i in range(n):
        t0 = pc()
        dq.append(("loss", 0.5, i, None, None, 0.0))
        base.append(pc() - t0)
        if len(dq) > 10_000:
            dq.clear()
    b_med, b_p99 = _percentiles(base)
    rows = [("deque.append (baseline)", b_med, b_p99, 1.0)]
    exp = Experiment(**QUIET, mode="offline", timeout_cleaning=60)
    one: list[int] = []
    for i in range(n):
        t0 = pc()
        exp.log_metric("loss", 0.5, step=i)
        one.append(pc() - t0)
    med, p99 = _percentiles(one)
    rows.append(("log_metric", med, p99, med / b_med))
    ten: list[int] = []
    batch = {f"m{k}": 0.5 for k in range(10)}
    for i in range(n // 10):
        t0 = pc()
        exp.log_metrics(batch, step=i)
        ten.append(pc() - t0)
    med, p99 = _percentiles(ten)
    rows.append(("log_metrics (10 metrics)", med, p99, med / b_med))
    exp.end()
    return rows


def throughput(n: int) -> tuple[float, float]:
    """(metrics/s delivered to the local server, seconds) for ``n`` points logged at once."""
    from comet_callbacks import Experiment

    exp = Experiment(**QUIET, timeout_cleaning=600)
    t0 = time.perf_counter()
    for i in range(n):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    ok = exp.flush(600)
    dt = time.perf_counter() - t0
    exp.end()
    assert ok
    return n / dt, dt


def end_wait(n: int, mode: str, timeout: float) -> tuple[float, int]:
    """(seconds end() took, events left undelivered) with ``n`` points logged just before."""
    from comet_callbacks import Experiment

    exp = Experiment(**QUIET, mode=mode, timeout_cleaning=timeout)
    for i in range(n):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    sender = exp._sender
    t0 = time.perf_counter()
    exp.end()
    dt = time.perf_counter() - t0
    return dt, (sender.pending() if sender is not None and mode == "online" else 0)


def memory(n: int, mode: str) -> dict[str, float]:
    """Runs in a fresh subprocess: peak RSS growth while logging ``n`` points and ending."""
    import psutil

    from comet_callbacks import Experiment

    proc = psutil.Process()
    exp = Experiment(**QUIET, mode=mode, timeout_cleaning=5)
    base = proc.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    for i in range(n):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    log_s = time.perf_counter() - t0
    exp.end()
    stop.set()
    th.join()
    return {"growth_mb": (peak - base) / 1e6, "log_s": log_s, "total_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--memory-child", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory(int(args.memory_child[0]), args.memory_child[1])))
        return 0
    q = args.quick
    server = Server()
    offline = tempfile.TemporaryDirectory(prefix="bench-core-offline-")
    env = server.env(offline.name)
    _set_env(env)
    try:
        print("## Caller-thread cost (offline mode; per call, perf_counter_ns)\n")
        print("| call | median µs | p99 µs | median / deque.append | target |")
        print("|---|---:|---:|---:|---|")
        for what, med, p99, ratio in caller_cost(20_000 if q else 200_000):
            target = "median < 2 µs" if what == "log_metric" else ""
            print(f"| {what} | {med:.2f} | {p99:.2f} | {ratio:.1f}× | {target} |")

        n = 500 if q else 3000
        rate, dt = throughput(n)
        print("\n## Delivery to the local server (separate process, one request per point)\n")
        print("| points | seconds | metrics/s |")
        print("|---:|---:|---:|")
        print(f"| {n} | {dt:.1f} | {rate:.0f} |")

        print("\n## Time end() waits right after logging N points\n")
        print("| mode | N | timeout_cleaning s | end() s | left on disk | target |")
        print("|---|---:|---:|---:|---:|---|")
        cases = [("online", 1000 if q else 10_000, 120, "< 1 s for 10,000 online")]
        cases += [("online", 10_000 if q else 100_000, 30, "")]
        cases += [("offline", 10_000 if q else 100_000, 30, "")]
        for mode, n, timeout, target in cases:
            dt, left = end_wait(n, mode, timeout)
            print(f"| {mode} | {n:,} | {timeout:g} | {dt:.2f} | {left:,} | {target} |")

        print("\n## Peak RSS growth while logging N points, then end() (fresh process)\n")
        print("| mode | N | logging s | total s | RSS growth MB | target |")
        print("|---|---:|---:|---:|---:|---|")
        n = 100_000 if q else 1_000_000
        for mode in ("offline", "online"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_core", "--memory-child", str(n), mode],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {mode} | {n:,} | {r['log_s']:.1f} | {r['total_s']:.1f} | "
                f"{r['growth_mb']:.1f} | < 50 MB for 1,000,000 |"
            )
    finally:
        server.close()
        offline.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
