"""The training workloads and the meters every benchmark shares.

Two workloads (``--workload``), for Lightning:

``tiny``
    an MLP 64-128-1 on batches of 32: a step is well under a millisecond, so every
    microsecond a tracker spends shows. The worst case for a tracker.
``real``
    a small CNN (two conv layers, 3x32x32 images, batches of 32, 10 classes): a step takes
    tens of milliseconds on one CPU thread, which is the overhead a user would actually see.

Both log two metrics per step (``self.log``) with ``log_every_n_steps=1``. The Hugging Face
Trainer (a 2-layer BERT, hidden 32, ``logging_steps=1``) and Keras 3 (the tiny MLP, torch
backend, logged per batch) run the tiny workload only.

:func:`fit_lightning` times one fit with one tracker: wall and CPU from before the tracker is
built (so every tracker creates its run inside the timed region) until it has finished (its
data is written), plus the wall time to the last step (``loop``), and the tracker's *own* CPU
(:class:`OwnMeter`): what the training thread spent inside the tracker's code plus everything
outside the training thread. The difference of whole fits is what a user pays, but it moves by
more than a tracker's per-step cost from one fit to the next (the training itself varies by a
few per cent); the own CPU measures the tracker alone and resolves tens of microseconds.
"""

from __future__ import annotations

import functools
import inspect
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

WORKLOADS = ("tiny", "real")


# ---------------------------------------------------------------------- meters


class CpuMeter:
    """CPU seconds of this process (all threads), of its finished children (git, dpkg) and of
    its live helper processes (e.g. ``wandb-core``); ``exclude`` pids (our local server, which
    stands for a remote Comet server) are metered separately as *server* CPU."""

    def __init__(self, exclude: set[int] | None = None) -> None:
        self.exclude = exclude or set()
        self._me = psutil.Process()

    @staticmethod
    def _proc_cpu(p: psutil.Process) -> float:
        try:
            t = p.cpu_times()
        except psutil.Error:
            return 0.0
        return t.user + t.system + t.children_user + t.children_system

    def read(self) -> tuple[float, float]:
        """``(client CPU s, server CPU s)`` so far (differences of two reads are the cost)."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        server = 0.0
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            if child.pid in self.exclude:
                server += self._proc_cpu(child)
            else:
                client += self._proc_cpu(child)
        return client, server


def load_average() -> float:
    """The 1-minute load average (recorded next to every figure: this box is shared)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class OwnMeter:
    """A tracker's own CPU during one fit, measured directly instead of as the difference of
    two noisy fits.

    Own CPU = the training thread's CPU inside the tracker's code (building it, each of its
    hooks, its ending: :meth:`call` and :meth:`wrap`, timed with ``time.thread_time_ns``) plus
    all CPU outside the training thread (the tracker's threads, finished children, helper
    processes: the process total minus the training thread's own total). A fit without
    tracker has no hooks; its off-thread CPU (normally ~0 with one torch thread) is the
    baseline's own CPU, subtracted like every other figure. Not counted: work the framework
    does only because a tracker is attached (e.g. Lightning's logger connector), and time the
    training thread waits for the GIL (it shows in wall time, not CPU).
    """

    #: the frameworks' base classes (their no-op hooks are not the tracker's code); trackers
    #: shipped inside a framework (Lightning's CSVLogger, WandbLogger...) are timed
    FRAMEWORK = (
        "lightning.pytorch.callbacks.callback",
        "lightning.pytorch.loggers.logger",
        "lightning.fabric.loggers.logger",
        "keras.src.callbacks.callback",
        "transformers.trainer_callback",
    )

    def __init__(self, cpu: CpuMeter) -> None:
        self._cpu = cpu
        self._thread = threading.get_ident()
        self._inside = False
        self.hook_ns = 0
        self.calls = 0
        self._wrapped: set[int] = set()

    def start(self) -> None:
        self._c0, _ = self._cpu.read()
        self._t0 = time.thread_time()

    def own(self) -> float:
        """Own CPU seconds since :meth:`start`."""
        c1, _ = self._cpu.read()
        off_thread = (c1 - self._c0) - (time.thread_time() - self._t0)
        return max(0.0, off_thread) + self.hook_ns / 1e9

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)``, its training-thread CPU counted (not when nested)."""
        if self._inside or threading.get_ident() != self._thread:
            return fn(*args, **kw)
        self._inside = True
        t0 = time.thread_time_ns()
        try:
            return fn(*args, **kw)
        finally:
            self.hook_ns += time.thread_time_ns() - t0
            self.calls += 1
            self._inside = False

    def wrap(self, obj: Any) -> Any:
        """Time every public method of ``obj`` that its tracker defines (the framework's base
        no-op hooks stay as they are, so the framework's "is it overridden" checks see the
        same hooks); returns ``obj``."""
        if id(obj) in self._wrapped:
            return obj
        self._wrapped.add(id(obj))
        for name in dir(type(obj)):
            if name.startswith("_"):
                continue
            owner = next((k for k in type(obj).__mro__ if name in vars(k)), None)
            if owner is None or owner.__module__ in self.FRAMEWORK:
                continue
            if not inspect.isfunction(vars(owner)[name]):  # methods only (no properties)
                continue
            bound = getattr(obj, name)
            setattr(obj, name, functools.wraps(bound)(functools.partial(self.call, bound)))
        return obj


@dataclass
class Fit:
    """One timed fit: seconds of wall (whole, and to the last step), of CPU, and of the
    tracker's own CPU (:class:`OwnMeter`)."""

    wall: float
    loop: float
    cpu: float
    server_cpu: float
    own: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "wall": self.wall,
            "loop": self.loop,
            "cpu": self.cpu,
            "server_cpu": self.server_cpu,
            "own": self.own,
        }


# ---------------------------------------------------------------------- Lightning


def _lightning_parts(workload: str, steps: int) -> tuple[Any, Any]:
    """``(make_model, loader)`` for a workload (data made in code, seeded)."""
    import lightning.pytorch as pl
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if workload == "tiny":
        x = torch.randn(steps * 32, 64)
        y = (x[:, :1] * 2.0 + 0.1 * torch.randn(len(x), 1)).float()

        def net() -> Any:
            return torch.nn.Sequential(
                torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1)
            )

        loss_fn = torch.nn.functional.mse_loss

        def second(out: Any, yb: Any) -> Any:
            return torch.nn.functional.l1_loss(out, yb)

    elif workload == "real":
        x = torch.randn(steps * 32, 3, 32, 32)
        y = torch.randint(0, 10, (len(x),))
        nn = torch.nn

        def net() -> Any:
            return nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(64 * 8 * 8, 128),
                nn.ReLU(),
                nn.Linear(128, 10),
            )

        loss_fn = torch.nn.functional.cross_entropy

        def second(out: Any, yb: Any) -> Any:
            return (out.argmax(dim=1) == yb).float().mean()

    else:
        raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")

    class Model(pl.LightningModule):
        def __init__(self, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = net()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            xb, yb = batch
            out = self.net(xb)
            loss = loss_fn(out, yb)
            self.log("train_loss", loss)
            self.log("train_metric", second(out.detach(), yb))
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=False)
    return Model, loader


def fit_lightning(peer: Any, workdir: str, steps: int, workload: str = "tiny") -> Fit:
    """One Lightning fit of ``steps`` steps with ``peer``'s logger/callbacks (see peers)."""
    import lightning.pytorch as pl

    make_model, loader = _lightning_parts(workload, steps)
    os.makedirs(workdir, exist_ok=True)

    class LastStep(pl.Callback):
        """First in hook order: the time of the last step, before any tracker ends its run."""

        at = 0.0

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            LastStep.at = time.perf_counter()

    class Loggers(pl.Callback):
        """Last in hook order: times the loggers a tracker's callback attached itself (ours
        adds its ``CometLogger`` in ``on_fit_start``)."""

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            for logger in trainer.loggers:
                own.wrap(logger)

    meter = CpuMeter(peer.extra_pids())
    own = OwnMeter(meter)
    model = make_model()
    c0, s0 = meter.read()
    own.start()
    t0 = time.perf_counter()
    kw = own.call(peer.lightning, workdir)  # inside the timed region: building it counts
    for obj in [kw["logger"], *kw["callbacks"]]:
        if obj:
            own.wrap(obj)
    trainer = pl.Trainer(
        max_steps=steps,
        max_epochs=-1,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=workdir,
        logger=kw["logger"],
        callbacks=[LastStep(), *kw["callbacks"], Loggers()],
    )
    trainer.fit(model, loader)
    own.call(peer.after_train)
    t1 = time.perf_counter()
    c1, s1 = meter.read()
    return Fit(t1 - t0, LastStep.at - t0, c1 - c0, s1 - s0, own.own())


# ---------------------------------------------------------------------- Hugging Face


def fit_hf(peer: Any, workdir: str, steps: int, workload: str = "tiny") -> Fit:
    """A tiny BERT (2 layers, hidden 32) from a config, ``steps`` steps, ``logging_steps=1``."""
    if workload != "tiny":
        raise ValueError("the Hugging Face scenario has the tiny workload only")
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
    n = steps * 8
    ids = torch.randint(0, 128, (n, 16))
    labels = (ids[:, 0] % 2).long()

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": ids[i], "labels": labels[i]}

    class LastStep(transformers.TrainerCallback):
        at = 0.0

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            LastStep.at = time.perf_counter()

    os.makedirs(workdir, exist_ok=True)
    meter = CpuMeter(peer.extra_pids())
    own = OwnMeter(meter)
    model = BertForSequenceClassification(cfg)
    c0, s0 = meter.read()
    own.start()
    t0 = time.perf_counter()
    kw = own.call(peer.hf, workdir)
    args = TrainingArguments(
        output_dir=workdir,
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
    trainer = own.call(
        Trainer, model=model, args=args, train_dataset=Data(), callbacks=kw["callbacks"]
    )
    for cb in trainer.callback_handler.callbacks:  # ours, or the report_to integrations
        own.wrap(cb)
    trainer.callback_handler.callbacks.insert(0, LastStep())  # before any tracker's end
    trainer.train()
    own.call(peer.after_train)
    t1 = time.perf_counter()
    c1, s1 = meter.read()
    return Fit(t1 - t0, LastStep.at - t0, c1 - c0, s1 - s0, own.own())


# ---------------------------------------------------------------------- Keras

KERAS_EPOCHS = 3


def fit_keras(peer: Any, workdir: str, steps: int, workload: str = "tiny") -> Fit:
    """The tiny MLP in Keras 3 (torch backend), ``steps`` batches over 3 epochs, per batch."""
    if workload != "tiny":
        raise ValueError("the Keras scenario has the tiny workload only")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    per_epoch = max(1, steps // KERAS_EPOCHS)
    x = rng.normal(size=(per_epoch * 32, 64)).astype("float32")
    y = (x[:, :1] * 2.0).astype("float32")

    class LastStep(keras.callbacks.Callback):
        at = 0.0

        def on_train_end(self, logs: Any = None) -> None:
            LastStep.at = time.perf_counter()

    os.makedirs(workdir, exist_ok=True)
    meter = CpuMeter(peer.extra_pids())
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    own = OwnMeter(meter)
    c0, s0 = meter.read()
    own.start()
    t0 = time.perf_counter()
    callbacks = [own.wrap(cb) for cb in own.call(peer.keras, workdir)]
    model.fit(
        x, y, batch_size=32, epochs=KERAS_EPOCHS, verbose=0, callbacks=[LastStep(), *callbacks]
    )
    own.call(peer.after_train)
    t1 = time.perf_counter()
    c1, s1 = meter.read()
    return Fit(t1 - t0, LastStep.at - t0, c1 - c0, s1 - s0, own.own())


FITS = {"lightning": fit_lightning, "hf": fit_hf, "keras": fit_keras}
