"""Weights & Biases (``wandb``) in offline mode (``WANDB_MODE=offline``, ``WANDB_SILENT``).

Offline, ``wandb`` writes the run to ``WANDB_DIR`` through its ``wandb-core`` service process;
its defaults (console capture, system metrics, git) stay on. Its memory is reported with the
helper processes. Keras: ``WandbMetricsLogger`` imports TensorFlow, so it is skipped where
TensorFlow is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import Peer, Skip


class WandbOffline(Peer):
    key = "wandb"
    label = "wandb (offline)"
    dist = "wandb"
    mode = "`WANDB_MODE=offline`, run files under `WANDB_DIR` (written by `wandb-core`)"

    def env(self, workdir: str) -> dict[str, str]:
        return {"WANDB_DIR": workdir, "WANDB_PROJECT": "bench", "WANDB_MODE": "offline"}

    def open(self, workdir: str) -> None:
        import wandb

        os.makedirs(workdir, exist_ok=True)
        self._run = wandb.init(project="bench", dir=workdir, mode="offline")

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        log = self._run.log

        def f(name: str, value: float, step: int) -> None:
            log({name: value}, step=step)

        return f

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        log = self._run.log

        def f(metrics: dict[str, float], step: int) -> None:
            log(metrics, step=step)

        return f

    def close(self) -> dict[str, Any] | None:
        self._run.finish()
        return None

    def lightning(self, workdir: str) -> dict[str, Any]:
        from lightning.pytorch.loggers import WandbLogger

        return {
            "logger": WandbLogger(project="bench", save_dir=workdir, offline=True),
            "callbacks": [],
        }

    def hf(self, workdir: str) -> dict[str, Any]:
        return {"report_to": "wandb", "callbacks": []}

    def keras(self, workdir: str) -> list[Any]:
        try:
            from wandb.integration.keras import WandbMetricsLogger
        except ImportError as exc:
            raise Skip(f"WandbMetricsLogger needs TensorFlow ({exc})") from None
        import wandb

        wandb.init(project="bench", dir=workdir, mode="offline")
        return [WandbMetricsLogger(log_freq="batch")]

    def after_train(self) -> None:
        import wandb

        wandb.finish()
