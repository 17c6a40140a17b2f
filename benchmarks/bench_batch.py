"""The batch path and the retry policy, measured side by side in one run (ratios printed).

Run: ``python -m benchmarks.bench_batch [--quick]``. Prints a Markdown table. Every figure
comes from this run on this machine (a shared, noisy box gives noisy figures; the ratios
are what to compare):

Each figure is printed next to the same measurement with ``COMET_BATCH=false`` (one request per
value, the path before batches) where that makes sense, so the gain is a ratio from one run.

* client CPU per metric point, online (batches to the local server) ÷ offline (log only);
* local-server CPU per point (the server subprocess's CPU time) ÷ offline client CPU;
* the wait in ``end()`` after logging 10,000 points online;
* ``upload`` throughput of a spooled offline run (1,000,000 points; 100,000 with ``--quick``);
* through a fault mix (10 % 503, 5 % 429 with ``Retry-After: 0``, 5 % connection cut after
  the server committed, 10 % answers delayed 125 ms), 3,000 points with
  ``COMET_TIMEOUT_CLEANING=30``: the share stored by the end of ``end()``, and duplicates;
* ``upload`` of a spooled run through the same faults: runs needed, duplicates;
* 20 s of 429 with ``Retry-After: 5`` (6 s / 2 s with ``--quick``), online and ``upload``:
  whether both finish by themselves, and how long they took;
* the Lightning benchmark (tiny model, defaults) online to the local server and offline, each
  against the same fit without a tracker: online slowdown minus offline slowdown, in
  percentage points, of the wall clock and of the client's CPU time (the harness's ``train``
  scenario, one fresh process per mode; ``--only lightning`` runs just this).

The server is the one :mod:`benchmarks.server` launches (a subprocess, CPU measured with
psutil); faults come from ``tests/faultproxy.py``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.server import API_KEY
from benchmarks.server import LocalServer as Server
from benchmarks.server import set_env as _set_env

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from faultproxy import FaultProxy  # noqa: E402

QUIET = {
    "auto_log_code": False,
    "auto_log_git_metadata": False,
    "auto_log_git_patch": False,
    "auto_log_env_details": False,
    "auto_log_env_cpu": False,
    "auto_log_env_gpu": False,
    "auto_log_output_logger": False,
}
#: Points for the per-point comparisons (one request per value is slow: keep them short).
SINGLE_POINTS = 1000
FAULT_MIX = {"503": 0.10, "429": 0.05, "cut_after_commit": 0.05, "delay": 0.10}


def _not_create(method: str, path: str) -> bool:
    return not path.endswith("write/experiment/create")


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _log_points(n: int, mode: str, before: Any = None, **settings: Any) -> tuple[Any, float]:
    """Log ``n`` points and end the run; return (experiment, seconds spent in end()).
    ``before()`` runs once the experiment exists, before the first point."""
    from comet_callbacks import Experiment

    exp = Experiment(project_name="bench-batch", mode=mode, **QUIET, **settings)
    if before is not None:
        before()
    for i in range(n):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    t0 = time.perf_counter()
    exp.end()
    return exp, time.perf_counter() - t0


def _stored(server: Server, key: str) -> collections.Counter[int]:
    from comet_callbacks.server.reader import Reader

    with_reader = Reader(server.url, API_KEY)
    try:
        return collections.Counter(p["step"] for p in with_reader.metrics(key, "loss"))
    finally:
        with_reader.close()


def cpu_per_point(server: Server, work: str, n: int, n_single: int) -> dict[str, float]:
    """Client CPU per point offline, online and online per point; server CPU per point (µs)."""
    sproc = psutil.Process(server.proc.pid)
    out: dict[str, float] = {}
    for label, mode, count, extra in (
        ("offline", "offline", n, {}),
        ("online", "online", n, {}),
        ("single", "online", n_single, {"COMET_BATCH": "false"}),
    ):
        _set_env({**server.env(os.path.join(work, label)), **extra})
        _log_points(200, mode)  # warm-up: imports, connections
        c0, s0 = time.process_time(), _cpu(sproc)
        _log_points(count, mode)
        out[f"client_{label}_us"] = (time.process_time() - c0) / count * 1e6
        if mode == "online":
            out[f"server_{label}_us"] = (_cpu(sproc) - s0) / count * 1e6
    return out


def end_wait(server: Server, work: str, n: int = 10_000, batch: bool = True) -> float:
    extra = {} if batch else {"COMET_BATCH": "false"}
    _set_env({**server.env(os.path.join(work, "endwait")), **extra})
    _, waited = _log_points(n, "online")
    return waited


def upload_rate(
    server: Server, work: str, n: int, batch: bool = True, cpu: dict[str, float] | None = None
) -> tuple[float, bool]:
    """Points per second uploaded from a spooled offline run of ``n`` points; ``cpu`` (when
    given) receives the server's and the uploading client's CPU per point (µs)."""
    from comet_callbacks.config import Settings
    from comet_callbacks.upload import upload_run

    _set_env(server.env(os.path.join(work, "spool")))
    exp, _ = _log_points(n, "offline")
    if not batch:
        os.environ["COMET_BATCH"] = "false"
    sproc = psutil.Process(server.proc.pid)
    t0, c0, s0 = time.perf_counter(), time.process_time(), _cpu(sproc)
    res = upload_run(exp.offline_path, Settings.resolve())
    took = time.perf_counter() - t0
    if cpu is not None:
        cpu["server_us"] = (_cpu(sproc) - s0) / n * 1e6
        cpu["client_us"] = (time.process_time() - c0) / n * 1e6
    return n / took, res.complete


def fault_mix_online(server: Server, work: str, n: int = 3000) -> tuple[float, int, float]:
    """(share stored by end(), duplicates, seconds in end()) through the fault mix."""
    with FaultProxy(
        server.url, faults=FAULT_MIX, retry_after=0, delay_s=0.125, match=_not_create, seed=3
    ) as proxy:
        _set_env({**server.env(os.path.join(work, "mix")), "COMET_URL_OVERRIDE": proxy.url})
        exp, waited = _log_points(n, "online", timeout_cleaning=30)
    stored = _stored(server, exp.key)
    dups = sum(c - 1 for c in stored.values() if c > 1)
    return len(stored) / n, dups, waited


def fault_mix_upload(server: Server, work: str, n: int = 3000) -> tuple[int, int, float]:
    """(upload runs needed, duplicates, seconds) for a spooled run through the fault mix."""
    from comet_callbacks.config import Settings
    from comet_callbacks.upload import upload_run

    _set_env(server.env(os.path.join(work, "mixup")))
    exp, _ = _log_points(n, "offline")
    with FaultProxy(
        server.url, faults=FAULT_MIX, retry_after=0, delay_s=0.125, match=_not_create, seed=4
    ) as proxy:
        _set_env({**server.env(os.path.join(work, "mixup")), "COMET_URL_OVERRIDE": proxy.url})
        t0 = time.perf_counter()
        runs = 0
        while runs < 10:
            runs += 1
            res = upload_run(exp.offline_path, Settings.resolve())
            if res.complete:
                break
        took = time.perf_counter() - t0
    stored = _stored(server, res.experiment_key or "")
    return runs, sum(c - 1 for c in stored.values() if c > 1) + (n - len(stored)), took


def throttle_window(
    server: Server, work: str, window: float, retry_after: float, n: int = 3000
) -> dict[str, Any]:
    """Every write answered 429 (``Retry-After``) for ``window`` s: online run and upload."""
    from comet_callbacks.config import Settings
    from comet_callbacks.upload import upload_run

    out: dict[str, Any] = {}
    with FaultProxy(server.url, retry_after=retry_after, match=_not_create) as proxy:
        env = {**server.env(os.path.join(work, "throttle")), "COMET_URL_OVERRIDE": proxy.url}

        def window_of_429() -> threading.Timer:
            proxy.set_faults({"429": 1.0})
            timer = threading.Timer(window, proxy.set_faults, args=({},))
            timer.start()
            return timer

        _set_env(env)
        started: list[float] = []

        def start() -> None:
            window_of_429()
            started.append(time.perf_counter())

        exp, _ = _log_points(n, "online", before=start, timeout_cleaning=window + 60)
        out["online_s"] = time.perf_counter() - started[0]
        out["online_stored"] = len(_stored(server, exp.key)) / n
        _set_env(server.env(os.path.join(work, "throttle-up")))
        spooled, _ = _log_points(n, "offline")
        _set_env({**env, "COMET_OFFLINE_DIRECTORY": os.path.join(work, "throttle-up")})
        window_of_429()
        t0 = time.perf_counter()
        res = upload_run(spooled.offline_path, Settings.resolve())
        out["upload_s"] = time.perf_counter() - t0
        out["upload_complete"] = res.complete
        out["upload_stored"] = len(_stored(server, res.experiment_key or "")) / n
    return out


def lightning_overhead(steps: str, reps: int) -> dict[str, dict[str, Any]]:
    """``python -m benchmarks.harness train`` for our offline and online defaults: per mode,
    the median slowdown (%) against the same fit without a tracker at the longest length, the
    load average and how many points were read back (the harness checks every one)."""
    from benchmarks.__main__ import RESULT_PREFIX, worker_env

    out: dict[str, dict[str, Any]] = {}
    for peer in ("us-offline", "us-online"):
        with tempfile.TemporaryDirectory(prefix=f"bench-batch-{peer}-") as work:
            cmd = [sys.executable, "-m", "benchmarks.harness", "train", peer]
            cmd += ["--steps", steps, "--reps", str(reps), "--workdir", work]
            proc = subprocess.run(
                cmd,
                cwd=Path(__file__).resolve().parent.parent,
                env=worker_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=1800,
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"harness train {peer} failed: {proc.stderr[-2000:]}")
        res = json.loads(lines[-1][len(RESULT_PREFIX) :])
        longest = res["per_length"][str(res["lengths"][-1])]
        out[peer] = {
            "slowdown_pct": longest["slowdown_pct"],
            # client CPU against the same fit without a tracker: far less sensitive to a
            # loaded box than the wall-clock slowdown
            "cpu_pct": 100 * (longest["cpu_s"] / longest["base_cpu_s"] - 1),
            # the tracker's own CPU (benchmarks.workloads.OwnMeter) against the same fit's
            # CPU without a tracker: the steadiest of the three (the two fits' own variation
            # does not enter it)
            "own_pct": 100 * longest["extra_own_cpu_ms"] / 1000 / longest["base_cpu_s"],
            "steps": res["lengths"][-1],
            "load": res["load_1min"]["median"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_batch")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--points", type=int, default=None, help="points per CPU measurement")
    parser.add_argument("--upload-points", type=int, default=None)
    parser.add_argument(
        "--only", choices=["lightning", "upload"], default=None, help="run only this measurement"
    )
    args = parser.parse_args(argv)
    n = args.points or (10_000 if args.quick else 50_000)
    n_up = args.upload_points or (100_000 if args.quick else 1_000_000)
    window, retry_after = (6.0, 2.0) if args.quick else (20.0, 5.0)
    import logging

    logging.getLogger("comet_callbacks").setLevel(logging.ERROR)
    print("| figure | measured | ratio / check | target |", flush=True)
    print("|---|---|---|---|", flush=True)

    class Rows(list):  # printed as they come: a long run shows its figures as it goes
        def append(self, row: tuple[str, str, str, str]) -> None:
            super().append(row)
            print("| " + " | ".join(row) + " |", flush=True)

    rows: list[tuple[str, str, str, str]] = Rows()

    def lightning_row() -> None:
        fits = lightning_overhead("20,200" if args.quick else "300,1200", 1 if args.quick else 3)
        off, on = fits["us-offline"], fits["us-online"]
        rows.append(
            (
                f"Lightning (tiny, {on['steps']} steps): online overhead − offline overhead",
                f"wall: online {on['slowdown_pct']:+.1f} %, offline {off['slowdown_pct']:+.1f} %; "
                f"client CPU: online {on['cpu_pct']:+.1f} %, offline {off['cpu_pct']:+.1f} %; "
                f"own CPU: online {on['own_pct']:+.1f} %, offline {off['own_pct']:+.1f} % "
                f"(load {off['load']:.1f} / {on['load']:.1f})",
                f"wall {on['slowdown_pct'] - off['slowdown_pct']:+.1f} points, "
                f"CPU {on['cpu_pct'] - off['cpu_pct']:+.1f} points, "
                f"own CPU {on['own_pct'] - off['own_pct']:+.1f} points",
                "≤ 3 points",
            )
        )

    if args.only == "lightning":
        lightning_row()
        return 0
    server = Server()
    if args.only == "upload":  # the batched upload alone, with both sides' CPU per point
        try:
            with tempfile.TemporaryDirectory(prefix="bench-batch-") as work:
                used: dict[str, float] = {}
                rate, complete = upload_rate(server, work, n_up, cpu=used)
                rows.append(
                    (
                        f"`upload` of a {n_up:,}-point offline run",
                        f"{rate:,.0f} points/s (CPU per point: server "
                        f"{used['server_us']:.1f} µs, client {used['client_us']:.1f} µs; "
                        f"load {os.getloadavg()[0]:.1f})",
                        "complete" if complete else "INCOMPLETE",
                        "≥ 50,000 points/s",
                    )
                )
        finally:
            server.close()
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as work:
            cpu = cpu_per_point(server, work, n, SINGLE_POINTS)
            off = cpu["client_offline_us"]
            single = cpu["client_single_us"]
            rows.append(
                (
                    "online client CPU per point ÷ offline",
                    f"{cpu['client_online_us']:.1f} µs ÷ {off:.1f} µs "
                    f"(per point: {single:.0f} µs, {single / off:.0f}×)",
                    f"{cpu['client_online_us'] / off:.1f}×",
                    "≤ 4×",
                )
            )
            srv_single = cpu["server_single_us"]
            rows.append(
                (
                    "local-server CPU per point ÷ offline client CPU",
                    f"{cpu['server_online_us']:.1f} µs ÷ {off:.1f} µs "
                    f"(per point: {srv_single:.0f} µs, {srv_single / off:.0f}×)",
                    f"{cpu['server_online_us'] / off:.1f}×",
                    "≤ 8×",
                )
            )
            waited = end_wait(server, work)
            waited_small = end_wait(server, work, SINGLE_POINTS)
            waited_single = end_wait(server, work, SINGLE_POINTS, batch=False)
            rows.append(
                (
                    "`end()` wait, 10,000 points online",
                    f"{waited:.2f} s; {SINGLE_POINTS:,} points: {waited_small:.2f} s "
                    f"(per point: {waited_single:.2f} s)",
                    f"{waited_single / max(waited_small, 1e-9):.0f}× shorter",
                    "< 0.5 s",
                )
            )
            rate, complete = upload_rate(server, work, n_up)
            rate_single, _ = upload_rate(server, work, SINGLE_POINTS, batch=False)
            rows.append(
                (
                    f"`upload` of a {n_up:,}-point offline run",
                    f"{rate:,.0f} points/s (per point: {rate_single:,.0f} points/s)",
                    f"{rate / rate_single:.0f}× faster" + ("" if complete else ", INCOMPLETE"),
                    "≥ 50,000 points/s",
                )
            )
            share, dups, took = fault_mix_online(server, work)
            rows.append(
                (
                    "fault mix, 3,000 points, cleaning timeout 30 s",
                    f"{share:.1%} stored by `end()` ({took:.1f} s)",
                    f"{dups} duplicates",
                    "100 %, 0 duplicates",
                )
            )
            runs, bad, took = fault_mix_upload(server, work)
            rows.append(
                (
                    "`upload` of a spooled run through the fault mix",
                    f"{runs} run(s), {took:.1f} s",
                    f"{bad} duplicated or missing",
                    "1 run, 0 duplicates",
                )
            )
            th = throttle_window(server, work, window, retry_after)
            rows.append(
                (
                    f"{window:g} s of 429 with `Retry-After: {retry_after:g}`, online",
                    f"finished in {th['online_s']:.1f} s",
                    f"{th['online_stored']:.1%} stored",
                    "finishes without user action",
                )
            )
            rows.append(
                (
                    f"{window:g} s of 429 with `Retry-After: {retry_after:g}`, `upload`",
                    f"finished in {th['upload_s']:.1f} s",
                    f"{th['upload_stored']:.1%} stored"
                    + ("" if th["upload_complete"] else ", INCOMPLETE"),
                    "finishes without user action",
                )
            )
        lightning_row()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
