"""``python -m benchmarks`` (or ``make bench``): comet-callbacks against its peers.

Runs every scenario of :mod:`benchmarks.harness` for every tracker, each in its own fresh
process, then the project's other benchmarks (``benchmarks/bench_*.py``), and writes the
tables (:mod:`benchmarks.report`) to ``benchmarks/RESULTS.md``, rewritten after each worker so
an interrupted run keeps what it measured. ``--quick`` shrinks every size (a smoke run);
``--from-log`` re-renders an earlier run. Exits non-zero when a worker failed, including a
tracker that did not store what was logged.

Peers run in their offline / local modes only (see :mod:`benchmarks.peers`); nothing is sent
over the network. Our client runs offline, and online against the local server
(:mod:`benchmarks.server`), a separate process on loopback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import Results, problem

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_PREFIX = "BENCH_JSON "
MACHINE_PREFIX = "BENCH_MACHINE "
EXTRA_BEGIN, EXTRA_END = "BENCH_EXTRA_BEGIN ", "BENCH_EXTRA_END"

# ---------------------------------------------------------------------- the plan

#: (framework, workload) -> trackers. Defaults and captures-matched variants side by side:
#: our defaults ~ comet_ml's and wandb's defaults; our metrics-only ~ their metrics-only,
#: MLflow's and CSVLogger's defaults (which capture nothing else).
TRAIN: dict[tuple[str, str], list[str]] = {
    ("lightning", "tiny"): [
        "us-offline",
        "us-offline-metrics",
        "us-online",
        "us-online-metrics",
        "comet_ml",
        "comet_ml-metrics",
        "wandb",
        "wandb-metrics",
        "mlflow-async",
        "mlflow-async-sys",
        "csv",
    ],
    ("lightning", "real"): ["us-offline", "us-online", "comet_ml", "wandb", "mlflow-async", "csv"],
    ("hf", "tiny"): ["us-offline", "us-online", "comet_ml", "wandb", "mlflow-async"],
    ("keras", "tiny"): ["us-offline", "us-online", "mlflow-async", "csv", "wandb"],
}
CALLER = ["none", "us-offline", "us-online", "comet_ml", "wandb", "mlflow", "mlflow-async", "csv"]
STORE = ["us-online", "us-offline", "comet_ml", "wandb", "mlflow-async", "csv"]
OURS = {"us-offline", "us-online", "us-online-metrics", "us-offline-metrics"}

#: other benchmarks of the project: module -> (full arguments, quick arguments); a module that
#: does not exist (yet) is skipped
EXTRAS: dict[str, tuple[list[str], list[str]]] = {
    "bench_start": ([], ["--quick"]),
    "bench_batch": ([], ["--quick"]),
    "bench_server": (["--seconds", "3"], ["--seconds", "1"]),
    "bench_server_memory": ([], ["--quick"]),
    "bench_ui": ([], ["--points", "100000", "--reps", "1"]),
    "bench_monitor": (["--seconds", "10"], ["--seconds", "2"]),
    "bench_model_upload": (["--size-mb", "100"], ["--size-mb", "20"]),
}


@dataclass
class Sizes:
    calls: int = 20_000
    budget: float = 1.0
    warmup: int = 1000
    reps: int = 3
    #: (framework, workload) -> (two lengths, pairs per length)
    train: dict[tuple[str, str], tuple[str, int]] = field(
        default_factory=lambda: {
            # the own-CPU line (see benchmarks.workloads.OwnMeter) needs no long fits; the
            # fit-difference columns stay noisy at any length a run can afford on 2 cores
            ("lightning", "tiny"): ("200,800", 2),
            ("lightning", "real"): ("20,60", 2),
            ("hf", "tiny"): ("60,240", 2),
            ("keras", "tiny"): ("150,600", 2),
        }
    )
    warmup_steps: int = 30
    end_points: int = 10_000
    end_cap_peers: float = 10.0
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
        reps=1,
        train={
            ("lightning", "tiny"): ("20,200", 1),
            ("lightning", "real"): ("10,40", 1),
            ("hf", "tiny"): ("20,80", 1),
            ("keras", "tiny"): ("60,240", 1),
        },
        warmup_steps=5,
        end_points=1000,
        end_cap_peers=3.0,
        mem_points=50_000,
        mem_cap_ours=20.0,
        mem_cap_peers=3.0,
        timeout=300.0,
    )


# ---------------------------------------------------------------------- running workers


def worker_env() -> dict[str, str]:
    """The runner's environment without any tracker configuration of the user (no real key
    or URL can leak into a benchmark), with the repository importable and bytecode caching
    on (as in a user's install)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMET_", "WANDB_", "MLFLOW_", "HF_", "TRANSFORMERS_"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
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
    cmd = [sys.executable, "-m", "benchmarks.harness", scenario, peer, "--workdir", str(workdir)]
    cmd += args
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
        fh.write(f"\n===== {' '.join(cmd[2:])} (rc={rc}, {wall:.1f}s)\n{out}\n--- stderr\n")
        fh.write(err[-20000:] + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            res = json.loads(line[len(RESULT_PREFIX) :])
            res["worker_s"] = wall
            return res
    tail = (err or out).strip().splitlines()[-1:] or ["no output"]
    why = f"timed out after {timeout:.0f} s" if rc == -1 else f"exit {rc}: {tail[0][:200]}"
    return {"scenario": scenario, "peer": peer, "error": why, "worker_s": wall}


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, date and load: printed with every report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load average (1/5/15 min) at start": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def load_log(results: Results, path: Path) -> None:
    """The results of an earlier run, from its workers' log (``--log``)."""
    extra: tuple[str, list[str]] | None = None
    for line in path.read_text(errors="replace").splitlines():
        if extra is not None:
            if line == EXTRA_END:
                results.add_extra(extra[0], "\n".join(extra[1]))
                extra = None
            else:
                extra[1].append(line)
        elif line.startswith(EXTRA_BEGIN):
            extra = (line[len(EXTRA_BEGIN) :], [])
        elif line.startswith(MACHINE_PREFIX):
            results.machine = json.loads(line[len(MACHINE_PREFIX) :])
        elif line.startswith(RESULT_PREFIX):
            res = json.loads(line[len(RESULT_PREFIX) :])
            if "scenario" in res:
                results.add(res)


def run_extra(name: str, args: list[str], timeout: float) -> str:
    """One of the project's other benchmarks; its Markdown output (or why it failed)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *args],
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if proc.returncode == 0:
        return proc.stdout
    return f"exit {proc.returncode}:\n\n```\n{(proc.stderr or proc.stdout)[-2000:]}\n```"


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the Markdown section starting at ``heading`` (up to the next heading of the
    same level) by ``text``, which starts with that heading itself."""
    lines = path.read_text().split("\n")
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    path.write_text("\n".join([*lines[:start], *text.split("\n"), "", *lines[end:]]))


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only",
        default="train,caller,endwait,memory,extras",
        help="comma-separated sections: train, caller, endwait, memory, extras (or none)",
    )
    parser.add_argument("--peers", default=None, help="comma-separated peers (default: all)")
    parser.add_argument(
        "--train",
        default=",".join(f"{fw}:{wl}" for fw, wl in TRAIN),
        help="training cases, framework:workload[:peer+peer...] (default: all, each with its "
        "planned trackers)",
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown output")
    parser.add_argument(
        "--readme",
        default=None,
        metavar="PATH",
        help="also replace the '## Performance' section of this README with the run's snippet",
    )
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
    argv_shown = list(argv if argv is not None else sys.argv[1:])
    sz = sizes(args.quick)
    if args.reps:
        sz.reps = max(1, args.reps)
    only = set(args.only.split(","))
    keep = set(args.peers.split(",")) if args.peers else None

    def chosen(peers: list[str]) -> list[str]:
        return [p for p in peers if keep is None or p in keep]

    scratch = Path(tempfile.mkdtemp(prefix="comet-bench-"))
    log = Path(args.log) if args.log else scratch.parent / f"{scratch.name}.log"
    results = Results(machine(), argv_shown, args.quick)
    results.machine["command"] = "`python -m benchmarks " + " ".join(argv_shown) + "`"
    for earlier in args.from_log:
        load_log(results, Path(earlier))
    with log.open("a") as fh:
        fh.write(MACHINE_PREFIX + json.dumps(results.machine) + "\n")
    out = Path(args.out)
    t_start = time.monotonic()
    print(f"Workers' output: {log}", flush=True)

    def write() -> None:
        if not args.from_log or only != {"none"}:
            results.run_minutes = (time.monotonic() - t_start) / 60
        out.write_text(results.render())

    def run(scenario: str, peer: str, extra: list[str], tag: str = "") -> None:
        print(f"  {scenario:<8} {tag:<16} {peer:<20}", end="", flush=True)
        res = run_worker(scenario, peer, extra, scratch, sz.timeout, log)
        print(f" {res.get('worker_s', 0):6.1f} s  {problem(res) or 'ok'}", flush=True)
        results.add(res)
        write()

    try:
        if "train" in only:
            print("== training", flush=True)
            for case in args.train.split(","):
                fw, wl, *only_peers = case.split(":")
                steps, reps = sz.train[(fw, wl)]
                planned = only_peers[0].split("+") if only_peers else TRAIN[(fw, wl)]
                case = f"{fw}:{wl}"
                for peer in chosen(planned):
                    opts = ["--framework", fw, "--workload", wl, "--steps", steps]
                    opts += ["--reps", str(args.reps or reps)]
                    run("train", peer, [*opts, "--warmup-steps", str(sz.warmup_steps)], case)
        if "caller" in only:
            print("== caller cost", flush=True)
            for peer in chosen(CALLER):
                opts = ["--n", str(sz.calls), "--budget", str(sz.budget)]
                opts += ["--warmup", str(sz.warmup), "--reps", str(sz.reps), "--cap", "10"]
                run("caller", peer, opts)
        if "endwait" in only:
            print("== end-of-run wait", flush=True)
            for peer in chosen(STORE):
                cap = [] if peer in OURS else ["--cap", str(sz.end_cap_peers)]
                run("endwait", peer, ["--points", str(sz.end_points), "--reps", str(sz.reps), *cap])
        if "memory" in only:
            print("== memory", flush=True)
            for peer in chosen(STORE):
                cap = sz.mem_cap_ours if peer in OURS else sz.mem_cap_peers
                run("memory", peer, ["--points", str(sz.mem_points), "--cap", str(cap)])
        if "extras" in only:
            print("== other benchmarks of this project", flush=True)
            for name, (full, quick) in EXTRAS.items():
                if not (HERE / f"{name}.py").exists():
                    continue
                print(f"  {name}", end="", flush=True)
                t0 = time.monotonic()
                text = run_extra(name, quick if args.quick else full, 120 if args.quick else 400)
                results.add_extra(name, text)
                with log.open("a") as fh:
                    fh.write(f"{EXTRA_BEGIN}{name}\n{text}\n{EXTRA_END}\n")
                print(f" {time.monotonic() - t0:6.1f} s", flush=True)
                write()
    finally:
        write()
        shutil.rmtree(scratch, ignore_errors=True)
        if only != {"none"}:  # the log keeps how long the run took, for a re-render
            done = dict(results.machine, **{"run time": f"{results.run_minutes or 0:.1f} min"})
            with log.open("a") as fh:
                fh.write(MACHINE_PREFIX + json.dumps(done) + "\n")
    print(f"Written: {out}")
    if args.readme:
        replace_section(Path(args.readme), "## Performance", results.readme_snippet())
        print(f"Updated: {args.readme} (Performance section)")
    failures = results.failures()
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
