"""The benchmark worker: one scenario for one tracker, in a fresh process, printing JSON.

``python -m benchmarks.harness <scenario> <peer> [options]`` runs one measurement and prints
one line ``BENCH_JSON {...}`` on stdout (anything else printed is ignored by the runner,
``python -m benchmarks``, which starts one worker per scenario and peer).

Scenarios:

``caller``
    per-call time on the calling thread (``time.perf_counter_ns`` around each call) of logging
    one scalar with a step, and of one 10-metric dict per step; warm-up first, then ``--reps``
    blocks; median and p99 of each block, the median of the blocks reported.
``lightning`` / ``hf`` / ``keras``
    a small model trained for a fixed number of steps, logging every step; each repetition
    trains once without any tracker and once with the tracker (alternating order), in this
    same process, so every slowdown is against a baseline measured next to it.
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

from benchmarks.peers import NO_NETWORK_ENV, Peer, Skip, get

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
    for r in range(opts.reps):
        peer.open(os.path.join(workdir, f"rep{r}"))
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
    return {
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


class _Timer:
    """Wall time from the start of ``fit`` to ``on_train_end`` (put first in hook order, so
    it fires after the last step's logging and before any tracker closes its run)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.train_end = 0.0


def _paired(peer: Peer, opts: argparse.Namespace, run_one: Any, workdir: str) -> dict[str, Any]:
    """Alternate baseline and tracker runs; every figure is a median over ``reps`` pairs."""
    base = get("none")
    rows: dict[str, list[float]] = {k: [] for k in ("base_fit", "fit", "base_loop", "loop")}
    rows["finish"] = []
    # warm-up: one short run of each (imports, first-call costs, tracker service start-up)
    warm = min(opts.steps, opts.warmup_steps)
    run_one(base, os.path.join(workdir, "warm-base"), warm)
    run_one(peer, os.path.join(workdir, "warm-peer"), warm)
    for r in range(opts.reps):
        order = [(base, "base_"), (peer, "")] if r % 2 == 0 else [(peer, ""), (base, "base_")]
        for p, prefix in order:
            gc.collect()
            wd = os.path.join(workdir, f"r{r}-{prefix or 'peer'}")
            fit, loop, finish = run_one(p, wd, opts.steps)
            rows[prefix + "fit"].append(fit)
            rows[prefix + "loop"].append(loop)
            if not prefix:
                rows["finish"].append(finish)
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {
        "reps": opts.reps,
        "steps": opts.steps,
        **{f"{k}_s": v for k, v in med.items()},
        "all": rows,
        # paired: each tracker run against the baseline run next to it
        "loop_slowdown_pct": 100
        * statistics.median(
            a / b - 1 for a, b in zip(rows["loop"], rows["base_loop"], strict=True)
        ),
        "total_slowdown_pct": 100
        * statistics.median(
            (a + f) / b - 1
            for a, f, b in zip(rows["fit"], rows["finish"], rows["base_fit"], strict=True)
        ),
    }


def scenario_lightning(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """A small MLP, ``steps`` optimizer steps, ``self.log`` of the loss (+ a metric) every step."""
    import lightning.pytorch as pl
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(opts.steps * 32, 64)
    y = (x[:, :1] * 2.0 + 0.1 * torch.randn(len(x), 1)).float()
    data = torch.utils.data.TensorDataset(x, y)

    class Model(pl.LightningModule):
        def __init__(self, hidden: int = 128, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            xb, yb = batch
            loss = torch.nn.functional.mse_loss(self.net(xb), yb)
            self.log("train_loss", loss)
            self.log("train_mae", torch.nn.functional.l1_loss(self.net(xb).detach(), yb))
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.t = _Timer()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.t.train_end = time.perf_counter()

    def run_one(p: Peer, wd: str, steps: int) -> tuple[float, float, float]:
        os.makedirs(wd, exist_ok=True)
        kw = p.lightning(wd)
        timer = Timer()
        trainer = pl.Trainer(
            max_steps=steps,
            max_epochs=-1,
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
            default_root_dir=wd,
            logger=kw["logger"],
            callbacks=[timer, *kw["callbacks"]],
        )
        loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=False)
        model = Model()
        t0 = time.perf_counter()
        trainer.fit(model, loader)
        t1 = time.perf_counter()
        p.after_train()
        t2 = time.perf_counter()
        return t1 - t0, timer.t.train_end - t0, t2 - t1

    return _paired(peer, opts, run_one, workdir)


def scenario_hf(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """A tiny BERT (2 layers, hidden 32) from a config, ``steps`` steps, ``logging_steps=1``."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    n = opts.steps * 8
    ids = torch.randint(0, 128, (n, 16))
    labels = (ids[:, 0] % 2).long()

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": ids[i], "labels": labels[i]}

    class Timer(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.t = _Timer()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t.train_end = time.perf_counter()

    def run_one(p: Peer, wd: str, steps: int) -> tuple[float, float, float]:
        os.makedirs(wd, exist_ok=True)
        kw = p.hf(wd)
        args = TrainingArguments(
            output_dir=wd,
            max_steps=steps,
            per_device_train_batch_size=8,
            logging_steps=1,
            save_strategy="no",
            report_to=kw["report_to"],
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            seed=0,
        )
        timer = Timer()
        trainer = Trainer(
            model=BertForSequenceClassification(cfg),
            args=args,
            train_dataset=Data(),
            callbacks=kw["callbacks"],
        )
        # first in hook order: fires before any tracker's on_train_end closes its run
        trainer.callback_handler.callbacks.insert(0, timer)
        t0 = time.perf_counter()
        trainer.train()
        t1 = time.perf_counter()
        p.after_train()
        t2 = time.perf_counter()
        return t1 - t0, timer.t.train_end - t0, t2 - t1

    return _paired(peer, opts, run_one, workdir)


def scenario_keras(peer: Peer, workdir: str, opts: argparse.Namespace) -> dict[str, Any]:
    """A small Keras 3 MLP (torch backend), 3 epochs of ``steps/3`` batches, logged per batch."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    epochs = 3
    x_all = rng.normal(size=(max(1, opts.steps // epochs) * 32, 64)).astype("float32")
    y_all = (x_all[:, :1] * 2.0).astype("float32")

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.t = _Timer()

        def on_train_end(self, logs: Any = None) -> None:
            self.t.train_end = time.perf_counter()

    def run_one(p: Peer, wd: str, steps: int) -> tuple[float, float, float]:
        os.makedirs(wd, exist_ok=True)
        callbacks = p.keras(wd)
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        timer = Timer()
        t0 = time.perf_counter()
        n = max(1, steps // epochs) * 32  # `steps` batches of 32 over 3 epochs
        model.fit(
            x_all[:n],
            y_all[:n],
            batch_size=32,
            epochs=epochs,
            verbose=0,
            callbacks=[timer, *callbacks],
        )
        t1 = time.perf_counter()
        p.after_train()
        t2 = time.perf_counter()
        return t1 - t0, timer.t.train_end - t0, t2 - t1

    return _paired(peer, opts, run_one, workdir)


SCENARIOS = {
    "caller": scenario_caller,
    "endwait": scenario_endwait,
    "memory": scenario_memory,
    "lightning": scenario_lightning,
    "hf": scenario_hf,
    "keras": scenario_keras,
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
    parser.add_argument("--steps", type=int, default=300, help="training: optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=30, help="training: warm-up run")
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
