"""Lightning integration: real tiny training on CPU against the local Comet server.

Every test compares what the SERVER stored with what Lightning logged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
lightning_mod = pytest.importorskip("comet_callbacks.integrations.lightning")

import torch  # noqa: E402

from comet_callbacks.integrations.lightning import (  # noqa: E402
    CometCallback,
    CometLogger,
    _callbacks_factory,
    pl,
)

HERE = Path(__file__).parent
SCRIPTS = HERE / "lightning_scripts"
sys.path.insert(0, str(SCRIPTS))

from tiny import RecordingLogger, TinyModel, loader  # noqa: E402

torch.set_num_threads(1)


def make_trainer(tmp_path: Path, callbacks: list[Any] | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path / "run"),
        num_sanity_val_steps=1,
    )
    args.update(kw)
    return pl.Trainer(callbacks=callbacks or [], **args)


def only_experiment(reader: Any) -> str:
    exps = reader.experiments("local", "general")
    assert len(exps) == 1, exps
    return exps[0]["experimentKey"]


def series(reader: Any, key: str, name: str) -> list[dict[str, Any]]:
    return sorted(reader.metrics(key, name), key=lambda p: (p["step"] or 0, p["timestamp"]))


def test_callback_logs_metrics_params_graph(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    pl.seed_everything(7)
    cb = CometCallback(log_model=False)
    rec = RecordingLogger()
    trainer = make_trainer(tmp_path, [cb], logger=rec)
    model = TinyModel(lr=0.05, opt={"name": "sgd", "nested": {"momentum": 0.9}})
    trainer.fit(model, loader(), loader(16, seed=1))
    fit_metrics = dict(trainer.logged_metrics)
    trainer.test(model, loader(16, seed=2))

    key = only_experiment(reader)
    assert cb.experiment_key == key
    assert any(isinstance(lg, CometLogger) for lg in trainer.loggers)

    # Each metric Lightning handed to loggers: the server's last value equals it.
    logged = {k: float(v) for k, v in fit_metrics.items() if k != "epoch"}
    logged["test_loss"] = float(trainer.logged_metrics["test_loss"])
    assert {"train_loss_step", "train_loss_epoch", "val_loss", "test_loss"} <= set(logged)
    for name, value in logged.items():
        points = series(reader, key, name)
        assert points, name
        assert float(points[-1]["metricValue"]) == pytest.approx(value, rel=1e-6), name
        assert all(p["epoch"] is not None for p in points), name

    # Every point Lightning passed to loggers is on the server once, with its step and epoch.
    for name in ("train_loss_step", "train_loss_epoch", "val_loss", "test_loss"):
        want = rec.points(name)
        got = [(float(p["metricValue"]), p["step"], p["epoch"]) for p in series(reader, key, name)]
        assert len(got) == len(want), name
        for (gv, gs, ge), (wv, ws, we) in zip(got, want, strict=True):
            assert (gs, ge) == (ws, we) and gv == pytest.approx(wv, rel=1e-6), name
    # Steps are optimizer steps: 4 batches x 2 epochs; validation ran twice (no sanity point).
    steps = series(reader, key, "train_loss_step")
    assert [p["step"] for p in steps] == list(range(8))
    assert [p["epoch"] for p in steps] == [0] * 4 + [1] * 4
    assert len(series(reader, key, "val_loss")) == 2
    assert reader.metrics(key, "epoch") == []

    params = reader.parameters(key)
    assert params["lr"] == "0.05"
    assert params["opt|nested|momentum"] == "0.9"
    assert params["trainer|max_epochs"] == "2"
    assert params["trainer|accumulate_grad_batches"] == "1"
    assert params["trainer|strategy"] == "SingleDeviceStrategy"
    assert params["trainer|precision"] == "32-true"
    assert params["trainer|seed"] == "7"
    assert params["optimizer|class"] == "SGD"
    assert params["optimizer|momentum"] == "0.9"
    assert params["lr_scheduler|class"] == "StepLR"
    assert params["lr_scheduler|gamma"] == "0.5"
    total = sum(p.numel() for p in model.parameters())
    assert params["model|total_params"] == str(total)
    assert params["model|trainable_params"] == str(total - 6)
    assert "Sequential" in (reader.graph(key) or "")

    meta = reader.metadata(key)
    assert meta["running"] is False
    others = reader.others(key)
    assert others["status"] == "success"
    assert others["Created from"] == "pytorch-lightning"
