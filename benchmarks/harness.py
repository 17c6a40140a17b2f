"""The benchmark worker: one scenario for one tracker, in a fresh process, printing JSON.

``python -m benchmarks.harness <scenario> <peer> [options]`` runs one measurement and prints
one line ``BENCH_JSON {...}`` on stdout (anything else printed is ignored by the runner,
``python -m benchmarks``, which starts one worker per scenario and peer).

Every tracker proves it stored what was logged: after each measured run the worker reads it
back (:meth:`benchmarks.peers.Peer.stored`); too few points is an error, reported as such.

Scenarios:

``caller``
    per-call time on the calling thread (``time.perf_counter_ns`` around each call) of logging
    one scalar with a step, and of one 10-metric dict per step; warm-up first, then ``--reps``
    blocks; median and p99 of each block, the median of the blocks reported.
``train``
    ``--framework`` lightning / hf / keras, ``--workload`` tiny / real (see
    :mod:`benchmarks.workloads`), at two lengths (``--steps 300,1200``): each repetition fits
    once without any tracker and once with it (alternating order) in this same process, wall
    and CPU (process + helper processes) from before the tracker is built until it finished,
    and the tracker's own CPU (:class:`benchmarks.workloads.OwnMeter`: its code on the
    training thread plus everything off that thread), which resolves what the difference of
    two whole fits cannot (the training itself varies by more than a tracker's step cost).
    The extra cost against the baseline next to it, at two lengths, gives a fixed cost per fit
    and a cost per step (a straight line through the two medians). The first tracker fit of
    the process (its imports and one-off start-up) is reported apart.
``endwait``
    log ``--points`` points (10-metric dicts), then time the end of the run (end + flush).
``memory``
    peak RSS growth (sampled every 10 ms in a thread) while logging ``--points`` points and
    ending the run, both capped in time (``--cap``): a capped run reports how far it got.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.peers import NO_NETWORK_ENV, NothingStored, Peer, Skip, check_stored, get
from benchmarks.workloads import FITS, KERAS_EPOCHS, Fit, load_average

RESULT_PREFIX = "BENCH_JSON "
METRICS_PER_STEP = 10


# ---------------------------------------------------------------------- helpers


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[idx])


def emit(result: dict[str, Any]) -> None:
    """Print the result line the runner parses (flushing, as capture may wrap stdout)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def metric_dict(i: int) -> dict[str, float]:
    """The 10 metrics logged at step ``i``."""
    v = 1.0 / (i + 1)
    return {f"metric_{j}": v + j for j in range(METRICS_PER_STEP)}


class RssSampler:
    """Peak RSS of this process (and of its children, except ``exclude``) every ``interval``."""

    def __init__(self, exclude: set[int], interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._exclude = exclude
        self.interval = interval
        self.base_self = self._proc.memory_info().rss
        self.base_children = self._children_rss()
        self.peak_self = self.base_self
        self.peak_children = self.base_children
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _children_rss(self) -> int:
        total = 0
        for child in self._proc.children(recursive=True):
            if child.pid in self._exclude:
                continue
            try:
                total += child.memory_info().rss
            except Exception:  # the child exited meanwhile
                pass
        return total

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            self.peak_self = max(self.peak_self, self._proc.memory_info().rss)
            n += 1
            if n % 10 == 0:  # helper processes change slowly: every 100 ms is enough
                self.peak_children = max(self.peak_children, self._children_rss())
            self.samples = n

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.peak_children = max(self.peak_children, self._children_rss())
        mb = 1024 * 1024
        return {
            "rss_base_mb": self.base_self / mb,
            "rss_growth_mb": (self.peak_self - self.base_self) / mb,
            "children_growth_mb": (self.peak_children - self.base_children) / mb,
            "samples": self.samples,
        }


# ---------------------------------------------------------------------- caller cost


def _time_calls(fn: Any, args: list[tuple[Any, ...]]) -> list[int]:
    """Per-call nanoseconds of ``fn(*a)`` for each ``a`` (the timer's own cost included)."""
    pc = time.perf_counter_ns
    out = [0] * len(args)
    for i, a in enumerate(args):
        t0 = pc()
        fn(*a)
        out[i] = pc() - t0
    return out


def scenario_caller(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Per-call caller-thread cost of one scalar and of one 10-metric dict."""
    peer.open(workdir)
    out: dict[str, Any] = {}
    step = 0
    gc.collect()
    for kind, fn, make in (
        ("scalar", peer.log_scalar(), lambda i: ("loss", 1.0 / (i + 1), i)),
        ("dict", peer.log_dict(), lambda i: (metric_dict(i), i)),
    ):
        n_max = opts.n if kind == "scalar" else max(1000, opts.n // 4)
        warm = [make(step + i) for i in range(opts.warmup)]
        t = _time_calls(fn, warm)
        step += opts.warmup
        mean_s = max(1e-9, statistics.fmean(t[len(t) // 2 :]) / 1e9)
        # slow trackers get fewer calls so that a block stays within the time budget
        n = int(min(n_max, max(opts.min_calls, opts.budget / mean_s)))
        medians, p99s, p999s, means, maxs = [], [], [], [], []
        for _ in range(opts.reps):
            block = [make(step + i) for i in range(n)]
            t = _time_calls(fn, block)
            step += n
            t.sort()
            medians.append(percentile(t, 0.5) / 1000)
            p99s.append(percentile(t, 0.99) / 1000)
            p999s.append(percentile(t, 0.999) / 1000)
            maxs.append(t[-1] / 1000)
            # the mean carries the rare long stalls (GIL hand-offs to background threads,
            # back-pressure): per call, it is what the training loop pays on average
            means.append(statistics.fmean(t) / 1000)
        out[kind] = {
            "calls": n,
            "reps": opts.reps,
            "median_us": statistics.median(medians),
            "p99_us": statistics.median(p99s),
            "p999_us": statistics.median(p999s),
            "mean_us": statistics.median(means),
            "max_us": statistics.median(maxs),
            "rep_medians_us": medians,
        }
    out["close_s"], out["closed"] = close_capped(peer, opts.cap)
    out["_exit_now"] = not out["closed"]
    if out["closed"]:  # a capped end may still be writing: nothing to read back yet
        total = {k: opts.warmup + opts.reps * out[k]["calls"] for k in ("scalar", "dict")}
        out["read_back"] = {
            "loss": check_stored(peer, workdir, ["loss"], total["scalar"]),
            "metric_0": check_stored(peer, workdir, ["metric_0"], total["dict"]),
        }
    return out


def close_capped(peer: Peer, cap: float) -> tuple[float, bool]:
    """End the run in a thread; wait at most ``cap`` s. Returns (seconds, ended in time)."""
    ended = threading.Event()

    def finish() -> None:
        try:
            peer.close()
        finally:
            ended.set()

    t0 = time.perf_counter()
    threading.Thread(target=finish, name="bench-close", daemon=True).start()
    ended.wait(cap)
    return time.perf_counter() - t0, ended.is_set()


# ---------------------------------------------------------------------- end-of-run wait


def scenario_endwait(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Log ``points`` points, then time the end of the run; ``reps`` fresh runs."""
    steps = max(1, opts.points // METRICS_PER_STEP)
    waits, log_s, done_steps, details = [], [], [], []
    pc = time.perf_counter
    read_back = []
    for r in range(opts.reps):
        rep_dir = os.path.join(workdir, f"rep{r}")
        os.makedirs(rep_dir, exist_ok=True)
        peer.open(rep_dir)
        fn = peer.log_dict()
        t0 = pc()
        deadline = t0 + opts.cap  # a slow tracker stops logging here (reported as capped)
        done = 0
        for i in range(steps):
            fn(metric_dict(i), i)
            done = i + 1
            if i % 64 == 0 and pc() > deadline:
                break
        t1 = pc()
        info = peer.close()
        t2 = pc()
        waits.append(t2 - t1)
        log_s.append(t1 - t0)
        done_steps.append(done)
        details.append(info or {})
        read_back.append(check_stored(peer, rep_dir, ["metric_0"], done))
        gc.collect()
    points = int(statistics.median(done_steps)) * METRICS_PER_STEP
    return {
        "points_target": steps * METRICS_PER_STEP,
        "points": points,
        "capped": min(done_steps) < steps,
        "reps": opts.reps,
        "end_wait_s": statistics.median(waits),
        "end_wait_all_s": waits,
        "logging_s": statistics.median(log_s),
        "points_per_s": statistics.median(
            d * METRICS_PER_STEP / max(1e-9, t) for d, t in zip(done_steps, log_s, strict=True)
        ),
        "details": details,
        "read_back": read_back,
    }


# ---------------------------------------------------------------------- memory


def scenario_memory(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS growth while logging ``points`` points and ending the run (one run).

    Logging stops at ``cap`` seconds; the end of the run gets ``cap`` seconds more (it runs in
    a thread; past the cap the worker reports and exits without waiting for it).
    """
    steps = max(1, opts.points // METRICS_PER_STEP)
    peer.open(workdir)
    fn = peer.log_dict()
    gc.collect()
    sampler = RssSampler(peer.extra_pids()).start()
    t0 = time.perf_counter()
    deadline = t0 + opts.cap
    done = 0
    pc = time.perf_counter
    for i in range(steps):
        fn(metric_dict(i), i)
        if i % 256 == 0 and pc() > deadline:
            break
        done = i + 1
    t1 = time.perf_counter()
    mid = dict(sampler.__dict__)
    end_s, ended = close_capped(peer, opts.cap)
    mem = sampler.stop()
    mb = 1024 * 1024
    stored = check_stored(peer, workdir, ["metric_0"], done) if ended else None
    return {
        "read_back": stored,
        "points_target": steps * METRICS_PER_STEP,
        "points": done * METRICS_PER_STEP,
        "capped": done < steps,
        "logging_s": t1 - t0,
        "points_per_s": done * METRICS_PER_STEP / max(1e-9, t1 - t0),
        "peak_growth_while_logging_mb": (mid["peak_self"] - mid["base_self"]) / mb,
        "end_s": end_s,
        "ended": ended,
        **mem,
        "_exit_now": not ended,  # do not wait for a capped end at interpreter exit
    }


# ---------------------------------------------------------------------- training


def expected_points(peer: Peer, framework: str, steps: int) -> int:
    """Points of the per-step loss a tracker must have stored after a fit of ``steps``."""
    if framework == "keras" and peer.key == "csv":
        return KERAS_EPOCHS  # keras.callbacks.CSVLogger has no per-batch mode
    if framework == "keras":
        return max(1, steps // KERAS_EPOCHS) * KERAS_EPOCHS
    return steps


def line_through(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
    """``(intercept, slope)`` of the line through two points: fixed cost and cost per step."""
    slope = (y1 - y0) / (x1 - x0)
    return y0 - slope * x0, slope


def scenario_train(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Paired fits (baseline, tracker) at each length; the first tracker fit reported apart."""
    fit = FITS[opts.framework]
    base = get("none")
    lengths = sorted({int(x) for x in str(opts.steps).split(",")})
    runs = 0
    loads: list[float] = []
    read_back: dict[int, list[int]] = {n: [] for n in lengths}

    def one(p: Peer, steps: int) -> Fit:
        nonlocal runs
        runs += 1
        wd = os.path.join(workdir, f"run{runs}-{p.key}")
        gc.collect()
        loads.append(load_average())
        res = fit(p, wd, steps, opts.workload)
        if p is not base:
            n = check_stored(p, wd, "loss", expected_points(p, opts.framework, steps))
            read_back.setdefault(steps, []).append(n)
        return res

    one(base, opts.warmup_steps)  # imports and first-call costs of the framework itself
    b0, f0 = one(base, lengths[0]), one(peer, lengths[0])
    first = {
        "steps": lengths[0],
        "extra_cpu_ms": 1000 * (f0.cpu - b0.cpu),
        "extra_wall_ms": 1000 * (f0.wall - b0.wall),
    }
    pairs: dict[int, list[tuple[Fit, Fit]]] = {n: [] for n in lengths}
    for r in range(opts.reps):
        for n in lengths:
            if r % 2 == 0:
                b, t = one(base, n), one(peer, n)
            else:
                t = one(peer, n)
                b = one(base, n)
            pairs[n].append((b, t))

    def med(values: list[float]) -> float:
        return statistics.median(values)

    per_length: dict[str, dict[str, Any]] = {}
    extra: dict[str, dict[int, float]] = {"cpu": {}, "wall": {}, "loop": {}, "own": {}}
    for n, ps in pairs.items():
        for what in extra:
            extra[what][n] = med([getattr(t, what) - getattr(b, what) for b, t in ps])
        per_length[str(n)] = {
            "base_wall_s": med([b.wall for b, _ in ps]),
            "wall_s": med([t.wall for _, t in ps]),
            "base_cpu_s": med([b.cpu for b, _ in ps]),
            "cpu_s": med([t.cpu for _, t in ps]),
            "extra_cpu_ms": 1000 * extra["cpu"][n],
            "extra_wall_ms": 1000 * extra["wall"][n],
            "extra_loop_ms": 1000 * extra["loop"][n],
            "extra_own_cpu_ms": 1000 * extra["own"][n],
            "slowdown_pct": 100 * med([t.wall / b.wall - 1 for b, t in ps]),
            "loop_slowdown_pct": 100 * med([t.loop / b.loop - 1 for b, t in ps]),
            "server_cpu_ms": 1000 * med([t.server_cpu for _, t in ps]),
            "base_step_ms": 1000 * med([b.loop / n for b, _ in ps]),
            "pairs": [{"base": b.as_dict(), "peer": t.as_dict()} for b, t in ps],
        }
    n0, n1 = lengths[0], lengths[-1]
    out: dict[str, Any] = {
        "framework": opts.framework,
        "workload": opts.workload,
        "lengths": lengths,
        "reps": opts.reps,
        "first": first,
        "per_length": per_length,
        "points_read_back": {str(k): v for k, v in read_back.items()},
        "base_step_ms": per_length[str(n1)]["base_step_ms"],
        "load_1min": {"min": min(loads), "median": med(loads), "max": max(loads)},
    }
    if n1 > n0:
        for what, unit in (("cpu", "cpu"), ("wall", "wall"), ("loop", "loop"), ("own", "own_cpu")):
            fixed, slope = line_through(n0, extra[what][n0], n1, extra[what][n1])
            out[f"fixed_{unit}_ms"] = 1000 * fixed
            out[f"per_step_{unit}_us"] = 1e6 * slope
    return out


SCENARIOS = {
    "caller": scenario_caller,
    "endwait": scenario_endwait,
    "memory": scenario_memory,
    "train": scenario_train,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("peer")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--n", type=int, default=20_000, help="caller: scalar calls per block")
    parser.add_argument("--warmup", type=int, default=1000, help="caller: warm-up calls")
    parser.add_argument("--min-calls", type=int, default=1000, help="caller: fewest calls")
    parser.add_argument("--budget", type=float, default=2.0, help="caller: seconds per block")
    parser.add_argument("--points", type=int, default=10_000, help="endwait/memory: points")
    parser.add_argument(
        "--cap",
        type=float,
        default=60.0,
        help="seconds: memory: per phase; endwait: of logging; caller: of the end wait",
    )
    parser.add_argument(
        "--steps", default="300,1200", help="train: comma-separated lengths (optimizer steps)"
    )
    parser.add_argument("--warmup-steps", type=int, default=30, help="train: warm-up run")
    parser.add_argument("--framework", default="lightning", choices=sorted(FITS))
    parser.add_argument("--workload", default="tiny", choices=["tiny", "real"])
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    # set only what is not set, so the runner (or the user) can override
    workdir = opts.workdir or tempfile.mkdtemp(prefix="bench-")
    os.makedirs(workdir, exist_ok=True)
    for k, v in NO_NETWORK_ENV.items():
        os.environ.setdefault(k, v)
    peer = get(opts.peer)
    for k, v in peer.env(workdir).items():
        os.environ[k] = v
    os.chdir(workdir)  # trackers that write next to the cwd (mlruns, wandb) stay in the scratch
    result: dict[str, Any] = {
        "scenario": opts.scenario,
        "framework": opts.framework if opts.scenario == "train" else None,
        "workload": opts.workload if opts.scenario == "train" else None,
        "load_1min_at_start": load_average(),
        "peer": opts.peer,
        "label": peer.label,
        "mode": peer.mode,
        "version": peer.version(),
    }
    exit_now = False
    try:
        result.update(SCENARIOS[opts.scenario](peer, workdir, opts))
        exit_now = bool(result.pop("_exit_now", False))
    except Skip as exc:
        result["skipped"] = str(exc)
    except NothingStored as exc:
        result["error"] = f"nothing stored: {exc}"
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if not exit_now:
            try:
                peer.shutdown()
            except Exception as exc:  # report, but keep the measurement
                result.setdefault("warning", f"shutdown: {exc!r}")
    emit(result)
    if exit_now:
        # a capped run may still be ending: exit without waiting for atexit hooks
        try:
            peer.shutdown()
        finally:
            os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
