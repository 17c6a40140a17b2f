"""The local-file floor: Lightning's ``CSVLogger`` (and ``keras.callbacks.CSVLogger``).

In training, Lightning calls ``logger.save()`` after every ``log_metrics``, so the CSV is
written every step; called directly (caller, end-of-run scenarios) ``log_metrics`` saves every
``flush_logs_every_n_steps`` (100) steps and at the end. Keras' ``CSVLogger`` writes one row per epoch
(it has no per-batch mode). The Hugging Face Trainer has no file logger.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Callable
from typing import Any

from . import Peer, Skip


def _csv_counts(paths: list[str]) -> dict[str, int]:
    """Non-empty cells per column over the CSV files (one count per logged point)."""
    counts: dict[str, int] = {}
    for path in paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                for k, v in row.items():
                    if k and v not in ("", None):
                        counts[k] = counts.get(k, 0) + 1
    return counts


class CsvFloor(Peer):
    key = "csv"
    label = "CSVLogger (local file)"
    dist = "lightning"
    mode = "Lightning `CSVLogger` (Keras: `keras.callbacks.CSVLogger`, per epoch)"

    def open(self, workdir: str) -> None:
        from lightning.pytorch.loggers import CSVLogger

        self._logger = CSVLogger(save_dir=workdir, name="bench")

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        log = self._logger.log_metrics

        def f(name: str, value: float, step: int) -> None:
            log({name: value}, step)

        return f

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        return self._logger.log_metrics

    def close(self) -> dict[str, Any] | None:
        self._logger.save()
        self._logger.finalize("success")
        return None

    def stored(self, workdir: str) -> dict[str, int]:
        files = glob.glob(os.path.join(workdir, "bench", "version_*", "metrics.csv"))
        return _csv_counts(files + glob.glob(os.path.join(workdir, "log.csv")))

    def lightning(self, workdir: str) -> dict[str, Any]:
        from lightning.pytorch.loggers import CSVLogger

        return {"logger": CSVLogger(save_dir=workdir, name="bench"), "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        raise Skip("the HF Trainer has no CSV logger")

    def keras(self, workdir: str) -> list[Any]:
        import keras

        return [keras.callbacks.CSVLogger(os.path.join(workdir, "log.csv"))]
