"""Subprocess entry point for the Lightning tests (DDP must not fork pytest; entry points).

``train.py ddp OUT``: 2-process CPU DDP (gloo) with a CometCallback; each rank writes the
metrics Lightning passed to loggers to ``OUT/rank<N>.json``.
``train.py auto OUT``: COMET_LIGHTNING_AUTO=1 is set by the caller; trains once with no
callback, once with a user CometCallback, and writes what the trainers held to ``OUT/auto.json``.
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comet_callbacks.integrations.lightning import CometCallback, CometLogger, pl  # noqa: E402
from tiny import RecordingLogger, TinyModel, loader  # noqa: E402

torch.set_num_threads(1)
COMMON = dict(
    accelerator="cpu",
    enable_progress_bar=False,
    enable_model_summary=False,
    log_every_n_steps=1,
    num_sanity_val_steps=0,
)


class DumpRank(pl.Callback):
    """Each rank writes what Lightning passed to its loggers and the key it learned (in the
    worker process itself, so it works for ddp_spawn too)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_fit_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        rec = next(lg for lg in trainer.loggers if isinstance(lg, RecordingLogger))
        cb = next(c for c in trainer.callbacks if isinstance(c, CometCallback))
        with open(os.path.join(self.out, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump({"calls": rec.calls, "key": cb.experiment_key}, f)


def ddp(out: str, strategy: str = "ddp") -> None:
    trainer = pl.Trainer(
        devices=2,
        strategy=strategy,
        max_epochs=2,
        callbacks=[CometCallback(), DumpRank(out)],
        logger=RecordingLogger(),
        default_root_dir=os.path.join(out, "run"),
        **COMMON,
    )
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))


def ddp_spawn(out: str) -> None:
    ddp(out, "ddp_spawn")


def auto(out: str) -> None:
    result = {}
    for phase in ("factory", "user"):
        user = [CometCallback(experiment_name="user-callback")] if phase == "user" else []
        trainer = pl.Trainer(
            devices=1,
            max_epochs=1,
            callbacks=user,
            logger=False,
            default_root_dir=os.path.join(out, phase),
            **COMMON,
        )
        trainer.fit(TinyModel(), loader(), loader(16, seed=1))
        mine = [c for c in trainer.callbacks if isinstance(c, CometCallback)]
        result[phase] = {
            "callbacks": len(mine),
            "auto": [c._auto for c in mine],
            "active": [c._active for c in mine],
            "keys": [c.experiment_key for c in mine],
            "loggers": sum(isinstance(lg, CometLogger) for lg in trainer.loggers),
        }
    with open(os.path.join(out, "auto.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    {"ddp": ddp, "ddp_spawn": ddp_spawn, "auto": auto}[sys.argv[1]](sys.argv[2])
