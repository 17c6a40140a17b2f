"""``python -m benchmarks`` (or ``make bench``): comet-callbacks against its peers.

Runs every scenario of :mod:`benchmarks.harness` for every tracker, each in its own fresh
process (``python -m benchmarks.harness <scenario> <peer> ...``), prints Markdown tables and
writes them, with the machine they ran on and the README "Performance" snippet, to
``benchmarks/RESULTS.md`` (rewritten after each section, so an interrupted run keeps what it
measured). ``--quick`` shrinks every size for a smoke run (a few minutes).

Peers run in their offline / local modes only (see :mod:`benchmarks.peers`); nothing is sent
over the network. Our client runs offline and online against the local server, started as a
separate process on loopback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_PREFIX = "BENCH_JSON "
MACHINE_PREFIX = "BENCH_MACHINE "
EXTRA_BEGIN, EXTRA_END = "BENCH_EXTRA_BEGIN ", "BENCH_EXTRA_END"

# ---------------------------------------------------------------------- the plan

CALLER_PEERS = [
    "none",
    "us-offline",
    "us-online",
    "comet_ml",
    "wandb",
    "mlflow",
    "mlflow-async",
    "csv",
]
TRAIN_PEERS = {
    "lightning": [
        "us-online",
        "us-online-metrics",
        "us-offline",
        "csv",
        "wandb",
        "mlflow-async",
        "comet_ml",
    ],
    "hf": ["us-online", "us-online-metrics", "wandb", "mlflow-async", "comet_ml"],
    "keras": ["us-online", "us-online-metrics", "csv", "mlflow-async", "wandb"],
}
STORE_PEERS = ["us-online", "us-offline", "comet_ml", "wandb", "mlflow", "mlflow-async", "csv"]
OURS = {"us-offline", "us-online", "us-online-metrics", "us-offline-metrics"}

#: targets for our client (issue #10)
TARGET_CALLER_US = 2.0
TARGET_LIGHTNING_PCT = 1.0
TARGET_END_WAIT_S = 1.0
TARGET_MEMORY_MB = 50.0


@dataclass
class Sizes:
    calls: int = 20_000
    budget: float = 2.0
    warmup: int = 1000
    reps: int = 3
    steps: dict[str, int] = field(
        default_factory=lambda: {"lightning": 300, "hf": 100, "keras": 300}
    )
    warmup_steps: int = 30
    train_reps: int = 5  # fits are short and the noise large: more pairs than elsewhere
    end_points: tuple[int, ...] = (10_000, 100_000)
    end_cap_peers: float = 10.0  # logging time cap for peers in the end-of-run scenario
    mem_points: int = 1_000_000
    mem_cap_ours: float = 60.0
    mem_cap_peers: float = 5.0
    timeout: float = 900.0


def sizes(quick: bool) -> Sizes:
    if not quick:
        return Sizes()
    return Sizes(
        calls=2000,
        budget=0.3,
        warmup=200,
        steps={"lightning": 30, "hf": 10, "keras": 30},
        warmup_steps=5,
        train_reps=3,
        end_points=(1000, 10_000),
        end_cap_peers=3.0,
        mem_points=50_000,
        mem_cap_ours=20.0,
        mem_cap_peers=3.0,
        timeout=300.0,
    )


# ---------------------------------------------------------------------- running workers


def worker_env() -> dict[str, str]:
    """The runner's environment without any tracker configuration of the user (no real key
    or URL can leak into a benchmark), with the repository importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMET_", "WANDB_", "MLFLOW_", "HF_", "TRANSFORMERS_"))
    }
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(
    scenario: str, peer: str, args: list[str], scratch: Path, timeout: float, log: Path
) -> dict[str, Any]:
    """One fresh worker process; its JSON result (or an ``error`` entry)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{scenario}-{peer}-", dir=scratch))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness",
        scenario,
        peer,
        "--workdir",
        str(workdir),
        *args,
    ]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=worker_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        rc = -1
    wall = time.monotonic() - t0
    with log.open("a") as fh:
        fh.write(
            f"\n===== {' '.join(cmd[2:])} (rc={rc}, {wall:.1f}s)\n{out}\n--- stderr\n{err[-20000:]}\n"
        )
    shutil.rmtree(workdir, ignore_errors=True)
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            res = json.loads(line[len(RESULT_PREFIX) :])
            res["worker_s"] = wall
            return res
    tail = (err or out).strip().splitlines()[-1:] or ["no output"]
    why = f"timed out after {timeout:.0f} s" if rc == -1 else f"exit {rc}: {tail[0][:200]}"
    return {"scenario": scenario, "peer": peer, "error": why, "worker_s": wall}


# ---------------------------------------------------------------------- formatting


def fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if v != v:  # NaN
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def problem(res: dict[str, Any]) -> str | None:
    if "skipped" in res:
        return f"skipped: {res['skipped']}"
    if "error" in res:
        return f"error: {res['error']}"
    return None


def label(res: dict[str, Any]) -> str:
    from benchmarks.peers import get

    return res.get("label") or get(res["peer"]).label


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, date and load: printed with every table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        ram = "?"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load average (1/5/15 min) at start": load,
    }


# ---------------------------------------------------------------------- report


class Report:
    """Accumulates results and renders RESULTS.md (rewritten after every section)."""

    def __init__(self, path: Path, quick: bool, sz: Sizes, argv: list[str]) -> None:
        self.path = path
        self.quick = quick
        self.sz = sz
        self.argv = argv
        self.machine = machine()
        self.t0 = time.monotonic()
        self.caller: list[dict[str, Any]] = []
        self.train: dict[str, list[dict[str, Any]]] = {}
        self.endwait: dict[int, list[dict[str, Any]]] = {}
        self.memory: list[dict[str, Any]] = []
        self.extras: list[tuple[str, str]] = []
        self.versions: dict[str, tuple[str, str, str]] = {}
        self.loaded = False

    def add(self, res: dict[str, Any]) -> None:
        """File one worker result in its section, replacing an earlier one of the same key."""
        self.seen(res)
        sc = res["scenario"]
        if sc == "caller":
            rows = self.caller
        elif sc in ("lightning", "hf", "keras"):
            rows = self.train.setdefault(sc, [])
        elif sc == "endwait":
            n = res.get("points_target") or res.get("points") or 0
            rows = self.endwait.setdefault(int(n), [])
        else:
            raise ValueError(f"use add_memory for {sc}")
        for i, old in enumerate(rows):
            if old["peer"] == res["peer"]:
                rows[i] = res
                return
        rows.append(res)

    def add_memory(self, runs: list[dict[str, Any]]) -> None:
        """File the runs of one peer's memory scenario (replacing earlier ones)."""
        res = median_run(runs)
        self.seen(res)
        self.memory = [r for r in self.memory if r["peer"] != res["peer"]] + [res]

    def load_log(self, path: Path) -> None:
        """Results of an earlier run, from its workers' log (``--log``)."""
        self.loaded = True
        memory: dict[str, list[dict[str, Any]]] = {}
        extra: tuple[str, list[str]] | None = None
        for line in path.read_text(errors="replace").splitlines():
            if extra is not None:
                if line == EXTRA_END:
                    self.extras = [(n, t) for n, t in self.extras if n != extra[0]]
                    self.extras.append((extra[0], "\n".join(extra[1])))
                    extra = None
                else:
                    extra[1].append(line)
            elif line.startswith(EXTRA_BEGIN):
                extra = (line[len(EXTRA_BEGIN) :], [])
            elif line.startswith(MACHINE_PREFIX):
                self.machine = json.loads(line[len(MACHINE_PREFIX) :])
            elif line.startswith(RESULT_PREFIX):
                res = json.loads(line[len(RESULT_PREFIX) :])
                if res.get("scenario") == "memory":
                    memory.setdefault(res["peer"], []).append(res)
                elif "scenario" in res:
                    self.add(res)
        for runs in memory.values():
            self.add_memory(runs)

    def seen(self, res: dict[str, Any]) -> None:
        if "version" in res and res["peer"] not in self.versions:
            self.versions[res["peer"]] = (label(res), res.get("version", "?"), res.get("mode", ""))

    # -- sections

    def caller_md(self) -> str:
        rows = []
        floor = next((r for r in self.caller if r["peer"] == "none" and "scalar" in r), None)
        for r in self.caller:
            why = problem(r)
            if why:
                rows.append([label(r), why] + [""] * 8)
                continue
            s, d = r["scalar"], r["dict"]
            ratio = s["median_us"] / floor["scalar"]["median_us"] if floor else float("nan")
            rows.append(
                [
                    label(r),
                    fmt(s["median_us"]),
                    fmt(s["p99_us"]),
                    fmt(s["mean_us"]),
                    fmt(d["median_us"]),
                    fmt(d["p99_us"]),
                    fmt(d["mean_us"]),
                    f"{fmt(ratio, 1)}×",
                    f"{s['calls']:,} / {d['calls']:,}",
                    fmt(r.get("close_s")) + ("" if r.get("closed", True) else "+ (capped)"),
                ]
            )
        head = [
            "tracker",
            "scalar median µs",
            "scalar p99 µs",
            "scalar mean µs",
            "10-metric dict median µs",
            "dict p99 µs",
            "dict mean µs",
            "scalar median vs floor",
            "calls per block (scalar / dict)",
            "end of run s",
        ]
        note = (
            "Per-call time on the calling thread (`time.perf_counter_ns` around each call, the "
            f"timer included), after {self.sz.warmup:,} warm-up calls; median of {self.sz.reps} "
            "blocks for each figure. The *mean* carries the rare long stalls (GIL hand-offs to "
            "the tracker's threads, back-pressure): it is what a training loop pays per call on "
            "average. Slow trackers get fewer calls per block so a block stays near "
            f"{self.sz.budget:g} s. Floor: `deque.append` of the point in a Python function."
        )
        return "### Caller cost (µs per call)\n\n" + note + "\n\n" + table(head, rows)

    def train_md(self) -> str:
        parts = []
        names = {
            "lightning": f"Lightning ({self.sz.steps['lightning']} steps, MLP 64-128-1, `self.log` ×2 every step)",
            "hf": f"Hugging Face Trainer ({self.sz.steps['hf']} steps, 2-layer BERT hidden 32, `logging_steps=1`)",
            "keras": f"Keras 3, torch backend ({self.sz.steps['keras']} steps in 3 epochs, MLP 64-128-1, logged every batch)",
        }
        for fw, results in self.train.items():
            rows = []
            for r in results:
                why = problem(r)
                if why:
                    rows.append([label(r), why, "", "", "", "", "", ""])
                    continue
                rows.append(
                    [
                        label(r),
                        fmt(r["base_loop_s"]),
                        fmt(r["loop_s"]),
                        f"{r['loop_slowdown_pct']:+.1f} %",
                        fmt(r["fit_s"] + r["finish_s"]),
                        f"{r['total_slowdown_pct']:+.1f} %",
                        fmt(r["fit_s"] - r["loop_s"] + r["finish_s"]),
                        fmt(1000 * (r["loop_s"] - r["base_loop_s"]) / r["steps"], 2),
                    ]
                )
            head = [
                "tracker",
                "baseline to last step s",
                "with tracker s",
                "slowdown (training)",
                "fit + finish s",
                "slowdown (fit + finish)",
                "tracker end s",
                "extra ms per step (training)",
            ]
            parts.append(f"#### {names[fw]}\n\n" + table(head, rows))
        got = {r.get("reps") for rs in self.train.values() for r in rs if r.get("reps")}
        train_reps = "/".join(str(x) for x in sorted(got)) or str(self.sz.train_reps)
        note = (
            "Each worker trains without a tracker and with it, alternately, "
            f"{train_reps} times each after a {self.sz.warmup_steps}-step warm-up of both, in "
            "the same process; slowdowns are the median of the paired ratios. *Training* is "
            "the time from `fit`/`train` to `on_train_end` (after the last step is logged, "
            "before any tracker ends its run); *fit + finish* adds what each tracker does at "
            "the end inside `fit` (ours: flush + end + final model upload; MLflow: end run) and "
            "after it (`wandb.finish()`, the SDK's `end()`); *tracker end* is that difference. "
            "`torch.set_num_threads(1)`. Our online runs talk to the local server, a separate "
            "process on the same cores (a real server would not take CPU from training)."
        )
        return "### Training overhead\n\n" + note + "\n\n" + "\n\n".join(parts)

    def endwait_md(self) -> str:
        sizes_ = sorted(self.endwait)
        by_peer: dict[str, dict[int, dict[str, Any]]] = {}
        for n in sizes_:
            for r in self.endwait[n]:
                by_peer.setdefault(r["peer"], {})[n] = r
        rows = []
        for per in by_peer.values():
            row = [label(next(iter(per.values())))]
            notes = []
            for n in sizes_:
                r = per.get(n)
                if r is None:
                    row += ["", ""]
                    continue
                why = problem(r)
                if why:
                    row += [why, ""]
                    continue
                row += [fmt(r["end_wait_s"]), fmt(r["points_per_s"] / 1000, 1)]
                if r.get("capped"):
                    notes.append(f"{n:,}: logging capped, {r['points']:,} points logged")
                cpu = [d for d in r.get("details", []) if "client_cpu_s" in d and d["server_cpu_s"]]
                if cpu:
                    notes.append(
                        f"{n:,}: during the end, client CPU "
                        f"{statistics.median(d['client_cpu_s'] for d in cpu):.1f} s, server CPU "
                        f"{statistics.median(d['server_cpu_s'] for d in cpu):.1f} s"
                    )
                und = [d.get("undelivered") for d in r.get("details", []) if d.get("undelivered")]
                if und:
                    notes.append(
                        f"{n:,}: end timed out with {statistics.median(und):,.0f} events left on disk"
                    )
            rows.append(row + ["; ".join(notes)])
        head = ["tracker"]
        for n in sizes_:
            head += [f"{n:,} points: end wait s", f"{n:,}: logged k points/s"]
        head.append("notes")
        note = (
            "Points are logged as 10-metric dicts (one call per step), then the run is ended "
            "(`exp.end()`, `wandb.finish()`, `mlflow.end_run()` after `flush_async_logging()`, "
            f"`CSVLogger.save()`): the wait is the time that takes. Median of {self.sz.reps} "
            f"fresh runs. Peers' logging is capped at {self.sz.end_cap_peers:g} s (noted). Ours "
            "online ends after at most `COMET_TIMEOUT_CLEANING` (30 s); what was not delivered "
            "then stays in the event log for `comet-callbacks upload`."
        )
        return "### End-of-run wait\n\n" + note + "\n\n" + table(head, rows)

    def memory_md(self) -> str:
        rows = []
        for r in self.memory:
            why = problem(r)
            if why:
                rows.append([label(r), why, "", "", "", "", ""])
                continue
            capped = r.get("capped")
            rows.append(
                [
                    label(r),
                    f"{r['points']:,}" + (" (capped)" if capped else ""),
                    fmt(r["rss_growth_mb"], 1),
                    fmt(r["children_growth_mb"], 1),
                    fmt(r["points_per_s"] / 1000, 1),
                    fmt(r["end_s"], 1) + ("" if r.get("ended") else " (not ended, capped)"),
                    str(r.get("reps", 1)),
                ]
            )
        head = [
            "tracker",
            "points logged",
            "peak RSS growth MB",
            "helper processes' growth MB",
            "logging k points/s",
            "end s",
            "runs",
        ]
        note = (
            f"Peak RSS growth of the logging process (psutil, sampled every 10 ms) while "
            f"logging {self.sz.mem_points:,} points (10-metric dicts) and ending the run; each "
            f"figure the median of fresh processes. Peers that cannot log that many within "
            f"{self.sz.mem_cap_peers:g} s are stopped there (*capped*: the memory and rate at "
            f"the cap); ours get {self.sz.mem_cap_ours:g} s for each phase. Helper processes: "
            "the tracker's own child processes (W&B's `wandb-core`); our local server is "
            "not counted."
        )
        return "### Memory\n\n" + note + "\n\n" + table(head, rows)

    def targets(self) -> list[list[str]]:
        out = []

        def pick(rows: list[dict[str, Any]], peer: str) -> dict[str, Any] | None:
            return next((r for r in rows if r["peer"] == peer and not problem(r)), None)

        for peer in ("us-offline", "us-online"):
            r = pick(self.caller, peer)
            if r:
                v = r["scalar"]["median_us"]
                out.append(
                    [
                        f"`log_metric` median on the caller thread < {TARGET_CALLER_US:g} µs ({peer})",
                        f"{fmt(v)} µs (mean {fmt(r['scalar']['mean_us'])} µs)",
                        "met" if v < TARGET_CALLER_US else "**missed**",
                    ]
                )
        for peer in ("us-online", "us-online-metrics", "us-offline"):
            r = pick(self.train.get("lightning", []), peer)
            if r:
                v = r["loop_slowdown_pct"]
                out.append(
                    [
                        f"Lightning training overhead < {TARGET_LIGHTNING_PCT:g} % ({peer})",
                        f"{v:+.1f} % (fit + finish {r['total_slowdown_pct']:+.1f} %)",
                        "met" if v < TARGET_LIGHTNING_PCT else "**missed**",
                    ]
                )
        n0 = min(self.endwait) if self.endwait else None
        r = pick(self.endwait.get(n0, []), "us-online") if n0 else None
        if r:
            v = r["end_wait_s"]
            out.append(
                [
                    f"end-of-run wait < {TARGET_END_WAIT_S:g} s for {n0:,} points online",
                    f"{fmt(v)} s",
                    "met" if v < TARGET_END_WAIT_S else "**missed**",
                ]
            )
        for peer in ("us-offline", "us-online"):
            r = pick(self.memory, peer)
            if r:
                v = r["rss_growth_mb"]
                out.append(
                    [
                        f"peak memory growth < {TARGET_MEMORY_MB:g} MB for {r['points_target']:,} points ({peer})",
                        f"{fmt(v, 1)} MB" + (" (capped)" if r.get("capped") else ""),
                        "met" if v < TARGET_MEMORY_MB and not r.get("capped") else "**missed**",
                    ]
                )
        return out

    def targets_md(self) -> str:
        return "### Targets for comet-callbacks\n\n" + table(
            ["target", "measured", ""], self.targets()
        )

    def machine_md(self) -> str:
        items = dict(self.machine)
        if hasattr(os, "getloadavg"):
            items["load average at the end"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        if not self.loaded:  # a re-rendered report does not know how long its runs took
            items["run time"] = f"{(time.monotonic() - self.t0) / 60:.1f} min"
        return "\n".join(f"- **{k}**: {v}" for k, v in items.items())

    def versions_md(self) -> str:
        rows = [[lab, ver, mode] for lab, ver, mode in self.versions.values()]
        return "### Trackers: versions and modes\n\n" + table(["tracker", "version", "mode"], rows)

    def sections(self) -> list[str]:
        out = []
        if self.caller:
            out.append(self.caller_md())
        if self.train:
            out.append(self.train_md())
        if self.endwait:
            out.append(self.endwait_md())
        if self.memory:
            out.append(self.memory_md())
        return out

    def readme_snippet(self) -> str:
        cmd = "python -m benchmarks" + (" --quick" if self.quick else "")
        lines = [
            "## Performance",
            "",
            "Measured by `python -m benchmarks` (or `make bench`): comet-callbacks next to the "
            "official `comet_ml` SDK (offline), W&B (offline), MLflow (local file store, sync "
            "and async) and Lightning's `CSVLogger`, each in a fresh process, every figure "
            f"the median of {self.sz.reps} runs. Full tables: `benchmarks/RESULTS.md`.",
            "",
        ]
        if self.targets():
            lines += [self.targets_md(), ""]
        short = self._summary_table()
        if short:
            lines += [short, ""]
        lines += [
            f"Machine: {self.machine['CPU']}, {self.machine['cores']} cores, {self.machine['RAM']} "
            f"RAM, Python {self.machine['Python']}, {self.machine['date']} (load average at start "
            f"{self.machine['load average (1/5/15 min) at start']}: a shared machine, so absolute "
            "times are noisy; compare rows of one run).",
            "",
            'Reproduce: `pip install -e ".[bench]"` then `'
            + cmd
            + "` (`--quick` for a smoke run).",
        ]
        return "\n".join(lines)

    def _summary_table(self) -> str:
        """One row per tracker: caller cost, Lightning slowdown, end wait, memory."""
        peers: dict[str, list[str]] = {}
        order: list[str] = []

        def row(peer: str, lab: str) -> list[str]:
            if peer not in peers:
                peers[peer] = [lab, "–", "–", "–", "–"]
                order.append(peer)
            return peers[peer]

        for r in self.caller:
            if not problem(r):
                row(r["peer"], label(r))[1] = (
                    f"{fmt(r['scalar']['median_us'])} / {fmt(r['scalar']['mean_us'])}"
                )
        for r in self.train.get("lightning", []):
            if not problem(r):
                row(r["peer"], label(r))[2] = f"{r['loop_slowdown_pct']:+.1f} %"
        n0 = min(self.endwait) if self.endwait else None
        for r in self.endwait.get(n0, []) if n0 else []:
            if not problem(r):
                row(r["peer"], label(r))[3] = fmt(r["end_wait_s"])
        for r in self.memory:
            if not problem(r):
                row(r["peer"], label(r))[4] = fmt(r["rss_growth_mb"], 1) + (
                    " (capped)" if r.get("capped") else ""
                )
        if not order:
            return ""
        head = [
            "tracker",
            "`log_metric` µs (median / mean)",
            "Lightning slowdown",
            f"end wait s ({n0:,} points)" if n0 else "end wait s",
            f"peak RSS growth MB ({self.sz.mem_points:,} points)",
        ]
        return table(head, [peers[p] for p in order])

    def render(self) -> str:
        title = "# Benchmarks: comet-callbacks and its peers" + (
            " (quick run)" if self.quick else ""
        )
        parts = [
            title,
            "",
            "Generated by `python -m benchmarks "
            + " ".join(self.argv)
            + "`; do not edit by hand. The README's Performance section is at the end.",
            "",
            "## Machine",
            "",
            self.machine_md(),
            "",
            "## Results",
            "",
        ]
        if self.targets():
            parts += [self.targets_md(), ""]
        for s in self.sections():
            parts += [s, ""]
        if self.versions:
            parts += [self.versions_md(), ""]
        if self.extras:
            parts += ["## Other benchmarks of this project", ""]
            for name, text in self.extras:
                parts += [f"### `python -m benchmarks.{name}`", "", text.strip(), ""]
        parts += ["## README snippet", "", "```markdown", self.readme_snippet(), "```", ""]
        return "\n".join(parts)

    def write(self) -> None:
        self.path.write_text(self.render())


# ---------------------------------------------------------------------- main

EXTRAS = {
    "bench_server": (["--seconds", "3"], ["--seconds", "1"]),
    "bench_monitor": (["--seconds", "10"], ["--seconds", "2"]),
    "bench_core": (["--quick"], ["--quick"]),  # its full run repeats what is measured here
    "bench_model_upload": (["--size-mb", "100"], ["--size-mb", "20"]),
    "bench_server_memory": (["--size-mb", "150"], ["--size-mb", "20"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only",
        default="caller,train,endwait,memory,extras",
        help="comma-separated sections: caller, train, endwait, memory, extras",
    )
    parser.add_argument("--peers", default=None, help="comma-separated peers to run (default: all)")
    parser.add_argument("--frameworks", default="lightning,hf,keras", help="training scenarios")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown output")
    parser.add_argument("--log", default=None, help="workers' full output (default: a temp file)")
    parser.add_argument(
        "--from-log",
        action="append",
        default=[],
        metavar="LOG",
        help="start from the results in an earlier run's --log (repeatable; later ones win); "
        "with --only none this just re-renders the tables",
    )
    args = parser.parse_args(argv)
    argv_shown = argv if argv is not None else sys.argv[1:]
    sz = sizes(args.quick)
    if args.reps:
        sz.reps = sz.train_reps = max(1, args.reps)
    only = set(args.only.split(","))
    keep = set(args.peers.split(",")) if args.peers else None

    def chosen(peers: list[str]) -> list[str]:
        return [p for p in peers if keep is None or p in keep]

    scratch = Path(tempfile.mkdtemp(prefix="comet-bench-"))
    log = Path(args.log) if args.log else scratch.parent / f"{scratch.name}.log"
    report = Report(Path(args.out), args.quick, sz, list(argv_shown))
    for earlier in args.from_log:
        report.load_log(Path(earlier))
    with log.open("a") as fh:
        fh.write(MACHINE_PREFIX + json.dumps(report.machine) + "\n")
    print(f"Workers' output: {log}", flush=True)

    def run(scenario: str, peer: str, extra: list[str], reps: int | None = None) -> dict[str, Any]:
        print(f"  {scenario:<9} {peer:<18}", end="", flush=True)
        reps_arg = ["--reps", str(reps or sz.reps)]
        res = run_worker(scenario, peer, [*reps_arg, *extra], scratch, sz.timeout, log)
        print(f" {res.get('worker_s', 0):6.1f} s  {problem(res) or 'ok'}", flush=True)
        return res

    try:
        if "caller" in only:
            print("== caller cost", flush=True)
            for peer in chosen(CALLER_PEERS):
                report.add(
                    run(
                        "caller",
                        peer,
                        [
                            "--n",
                            str(sz.calls),
                            "--budget",
                            str(sz.budget),
                            "--warmup",
                            str(sz.warmup),
                            "--cap",
                            "10",
                        ],
                    )
                )
            report.write()
            print("\n" + report.caller_md() + "\n", flush=True)
        if "train" in only:
            print("== training overhead", flush=True)
            for fw in args.frameworks.split(","):
                for peer in chosen(TRAIN_PEERS[fw]):
                    report.add(
                        run(
                            fw,
                            peer,
                            ["--steps", str(sz.steps[fw]), "--warmup-steps", str(sz.warmup_steps)],
                            reps=sz.train_reps,
                        )
                    )
                    report.write()
            print("\n" + report.train_md() + "\n", flush=True)
        if "endwait" in only:
            print("== end-of-run wait", flush=True)
            for n in sz.end_points:
                for peer in chosen(STORE_PEERS):
                    cap = [] if peer in OURS else ["--cap", str(sz.end_cap_peers)]
                    report.add(run("endwait", peer, ["--points", str(n), *cap]))
                    report.write()
            print("\n" + report.endwait_md() + "\n", flush=True)
        if "memory" in only:
            print("== memory", flush=True)
            for peer in chosen(STORE_PEERS):
                cap = sz.mem_cap_ours if peer in OURS else sz.mem_cap_peers
                runs = []
                for _ in range(sz.reps):  # one fresh process per run: peaks do not mix
                    runs.append(
                        run("memory", peer, ["--points", str(sz.mem_points), "--cap", str(cap)])
                    )
                    if problem(runs[-1]):
                        break
                report.add_memory(runs)
                report.write()
            print("\n" + report.memory_md() + "\n", flush=True)
        if "extras" in only:
            print("== other benchmarks of this project", flush=True)
            for name, (full, quick) in EXTRAS.items():
                if not (HERE / f"{name}.py").exists():
                    continue
                extra_args = quick if args.quick else full
                print(f"  {name}", end="", flush=True)
                t0 = time.monotonic()
                try:
                    proc = subprocess.run(
                        [sys.executable, "-m", f"benchmarks.{name}", *extra_args],
                        cwd=ROOT,
                        env=worker_env(),
                        capture_output=True,
                        text=True,
                        timeout=300 if not args.quick else 120,
                        stdin=subprocess.DEVNULL,
                    )
                    text = (
                        proc.stdout
                        if proc.returncode == 0
                        else f"exit {proc.returncode}:\n\n```\n{(proc.stderr or proc.stdout)[-2000:]}\n```"
                    )
                except subprocess.TimeoutExpired:
                    text = "timed out"
                report.extras = [(n, t) for n, t in report.extras if n != name]
                report.extras.append((name, text))
                with log.open("a") as fh:
                    fh.write(f"{EXTRA_BEGIN}{name}\n{text}\n{EXTRA_END}\n")
                print(f" {time.monotonic() - t0:6.1f} s", flush=True)
                report.write()
    finally:
        report.write()
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + report.targets_md() + "\n")
    print(f"Written: {report.path}")
    return 0


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median peak RSS growth (its other figures come with it)."""
    ok = [r for r in runs if not problem(r)]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r["rss_growth_mb"])
    pick = dict(ok[(len(ok) - 1) // 2]) if len(ok) % 2 == 0 else dict(ok[len(ok) // 2])
    if len(ok) % 2 == 0:  # even: the mean of the two middle growths
        mid = ok[len(ok) // 2 - 1 : len(ok) // 2 + 1]
        pick["rss_growth_mb"] = statistics.fmean(r["rss_growth_mb"] for r in mid)
    pick["reps"] = len(ok)
    pick["all_growth_mb"] = [r["rss_growth_mb"] for r in ok]
    return pick


if __name__ == "__main__":
    raise SystemExit(main())
