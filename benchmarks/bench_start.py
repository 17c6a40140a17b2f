"""What tracking costs before the first step: import time, and the fixed CPU of a fit.

Run: ``python -m benchmarks.bench_start [--quick]``. Prints Markdown tables.

* **Imports**, each in a fresh interpreter (bytecode caches written first, as after a
  ``pip install``), median of ``--import-reps``: ``import comet_callbacks`` alone, and the
  Lightning integration once Lightning itself is imported. Both as ``python -X importtime``
  reports them (cumulative wall µs of the top-level imports) and as CPU time
  (``time.process_time``), which a loaded machine disturbs less.
* **Fixed CPU per fit**: the ``train`` scenario of :mod:`benchmarks.harness` (Lightning, tiny
  model, offline), two lengths, paired against a fit without tracker in the same process; the
  extra CPU at the two lengths gives the fixed cost per fit and the cost per step. Short fits
  (20 and 200 steps) keep the baseline's own CPU, and so its noise, small next to the fixed
  cost. The first fit of a process (imports, per-process caches) is reported apart.
* ``--before REV`` measures the package as it was at git revision REV too (exported with
  ``git archive``), in the same run, for before/after figures.

Targets (issue 20): fixed CPU per fit with default captures <= 30 ms; ``import
comet_callbacks`` <= 100 ms; the Lightning integration beyond Lightning <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_FIXED_CPU_MS = 30.0
TARGET_IMPORT_MS = 100.0
TARGET_INTEGRATION_MS = 50.0

#: one fresh interpreter: the import under test, timed in CPU; importtime goes to stderr
_IMPORT_CODE = """
import sys, time, json
pre = {pre!r}
if pre:
    __import__(pre)
sys.stderr.write("BENCH_MARK\\n")
c0 = time.process_time()
import {target}
cpu = time.process_time() - c0
print(json.dumps({{"cpu_ms": 1000 * cpu, "requests": "requests" in sys.modules}}))
"""


#: ``--code DIR``: measure the ``comet_callbacks`` package in DIR (e.g. an export of an earlier
#: commit: ``git archive <rev> comet_callbacks | tar -x -C DIR``) for before/after figures
CODE: list[str] = []
#: the children's working directory: not the repository, whose folder would shadow ``CODE``
NEUTRAL = tempfile.gettempdir()


def env() -> dict[str, str]:
    """The caller's environment with bytecode caching on and no tracker configuration."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "WANDB_"))}
    out.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install has .pyc files
    path = [*CODE, str(ROOT), *([out["PYTHONPATH"]] if out.get("PYTHONPATH") else [])]
    out["PYTHONPATH"] = os.pathsep.join(path)
    out.setdefault("KERAS_BACKEND", "torch")
    return out


def import_once(target: str, pre: str = "") -> dict[str, Any]:
    """One fresh interpreter: ``-X importtime`` wall (µs summed over the top-level imports
    after ``pre``) and CPU ms of ``import target``."""
    code = _IMPORT_CODE.format(target=target, pre=pre)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env(),
        cwd=NEUTRAL,
        check=True,
    )
    after = proc.stderr.split("BENCH_MARK\n", 1)[1]
    wall_us = 0
    for line in after.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|", 2)
        if not name.startswith("  "):  # a top-level import of the measured statement
            wall_us += int(cumulative)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["importtime_ms"] = wall_us / 1000
    return res


def imports(reps: int) -> list[dict[str, Any]]:
    """Median figures of each import, over ``reps`` fresh interpreters."""
    cases = [
        ("`import comet_callbacks`", "comet_callbacks", "", TARGET_IMPORT_MS),
        (
            "Lightning integration, Lightning already imported",
            "comet_callbacks.integrations.lightning",
            "lightning.pytorch",
            TARGET_INTEGRATION_MS,
        ),
        ("reference: `import requests`", "requests", "", None),
    ]
    rows = []
    for label, target, pre, target_ms in cases:
        import_once(target, pre)  # writes the bytecode caches
        runs = [import_once(target, pre) for _ in range(reps)]
        rows.append(
            {
                "what": label,
                "importtime_ms": statistics.median(r["importtime_ms"] for r in runs),
                "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
                "requests_loaded": runs[-1]["requests"],
                "target_ms": target_ms,
            }
        )
    return rows


def fit_costs(peer: str, steps: str, reps: int) -> dict[str, Any]:
    """The harness ``train`` scenario for one of our variants, in its own process."""
    cmd = [sys.executable, "-m", "benchmarks.harness", "train", peer, "--steps", steps]
    cmd += ["--reps", str(reps), "--framework", "lightning", "--workload", "tiny"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=NEUTRAL)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    return {"peer": peer, "error": (proc.stderr or proc.stdout).strip()[-500:]}


def export(rev: str, dest: str) -> None:
    """``comet_callbacks`` (with its integrations) as at git revision ``rev``, into ``dest``."""
    archive = subprocess.run(
        ["git", "archive", rev, "comet_callbacks", "integrations"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    os.rename(
        os.path.join(dest, "integrations"), os.path.join(dest, "comet_callbacks", "integrations")
    )


def _rest(args: argparse.Namespace, code: str | None) -> list[str]:
    """The command line of one half of a ``--before`` run."""
    out = ["--quick"] if args.quick else []
    for flag, value in (("--import-reps", args.import_reps), ("--reps", args.reps)):
        if value:
            out += [flag, str(value)]
    if args.steps:
        out += ["--steps", args.steps]
    if code:
        out += ["--code", code]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, shorter fits")
    ap.add_argument("--import-reps", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None, help="fit pairs per length")
    ap.add_argument("--steps", default=None, help="two fit lengths (default 300,1200)")
    ap.add_argument("--code", default=None, help="measure the comet_callbacks package in DIR")
    ap.add_argument("--before", default=None, metavar="REV", help="also measure revision REV")
    args = ap.parse_args(argv)
    if args.before:
        with tempfile.TemporaryDirectory(prefix="bench-start-before-") as tmp:
            export(args.before, tmp)
            print(f"# Before: revision {args.before}\n", flush=True)
            main(_rest(args, tmp))  # the targets are this tree's: its exit status counts
            print("\n# After: this working tree\n", flush=True)
            return main(_rest(args, None))
    CODE[:] = [os.path.abspath(args.code)] if args.code else []
    import_reps = args.import_reps or (3 if args.quick else 7)
    reps = args.reps or (2 if args.quick else 5)
    steps = args.steps or ("20,100" if args.quick else "20,200")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())

    print(f"## Import time (median of {import_reps} fresh interpreters; load {load})\n")
    print("| import | `-X importtime` ms | CPU ms | `requests` imported | target (CPU) |")
    print("|---|---:|---:|---|---|")
    ok = True
    for r in imports(import_reps):
        target = "" if r["target_ms"] is None else f"≤ {r['target_ms']:g} ms"
        if r["target_ms"] is not None:
            met = r["cpu_ms"] <= r["target_ms"]
            ok &= met
            target += " met" if met else " **missed**"
        print(
            f"| {r['what']} | {r['importtime_ms']:.0f} | {r['cpu_ms']:.0f} | "
            f"{'yes' if r['requests_loaded'] else 'no'} | {target} |"
        )

    print(
        "\nThe verdict is on CPU time: `-X importtime` is wall clock, which on a loaded "
        "machine also counts the time the process waits for a core (compare the two "
        "columns); on an idle machine the two agree."
    )
    print(
        f"\n## Extra CPU per fit against no tracker (Lightning, tiny model, offline; "
        f"{reps} pairs per length {steps})\n"
    )
    print(
        "| variant | first fit of the process ms | fixed per fit ms | per step µs | "
        "load (1 min) | target |"
    )
    print("|---|---:|---:|---:|---|---|")
    for peer, label, target in (
        ("us-offline", "defaults (every capture)", TARGET_FIXED_CPU_MS),
        ("us-offline-metrics", "metrics only (captures off)", None),
    ):
        r = fit_costs(peer, steps, reps)
        if "error" in r:
            print(f"| {label} | error: {r['error'][:200]} | | | | |")
            ok = False
            continue
        t = ""
        if target is not None:
            met = r["fixed_cpu_ms"] <= target
            ok &= met
            t = f"fixed ≤ {target:g} ms " + ("met" if met else "**missed**")
        ld = r["load_1min"]
        print(
            f"| {label} | {r['first']['extra_cpu_ms']:.0f} | {r['fixed_cpu_ms']:.0f} | "
            f"{r['per_step_cpu_us']:.0f} | {ld['min']:.1f}–{ld['max']:.1f} | {t} |"
        )
    print(
        "\nCPU is the whole process (every thread) plus its finished children (git, "
        "dpkg-query) and live helper processes. *First fit* is the first tracked fit of a "
        "fresh process against the untracked fit before it: it adds the imports and the "
        "per-process caches (installed packages, git metadata) that later fits reuse."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
