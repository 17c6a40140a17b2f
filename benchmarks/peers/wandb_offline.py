"""Weights & Biases (``wandb``) in offline mode (``WANDB_MODE=offline``, ``WANDB_SILENT``).

Offline, ``wandb`` writes the run to ``<dir>/wandb/offline-run-*/run-*.wandb`` through its
``wandb-core`` service process, whose CPU is counted with the client's. ``wandb`` runs at its
defaults (console capture, system metrics, git); ``wandb-metrics`` switches those off
(``WANDB_CONSOLE=off``, ``WANDB_X_DISABLE_STATS``, ``WANDB_DISABLE_GIT``, no code saving).
Keras: ``WandbMetricsLogger`` imports TensorFlow, so it is skipped where TensorFlow is not
installed. The read-back parses the run file with wandb's own record reader.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import Peer, Skip


def _records(path: str) -> Iterator[bytes]:
    """The records of a ``.wandb`` file: a LevelDB-style log (7-byte file header, 32 KiB
    blocks, each chunk ``<crc32:4><length:2><type:1>`` + data; FULL, or FIRST/MIDDLE/LAST
    pieces of one record). Written here because wandb no longer ships a Python reader."""
    block, header = 32768, 7
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file")
    pos, parts = header, b""
    while pos + header <= len(data):
        left_in_block = block - pos % block
        if left_in_block < header:  # padding at the end of a block
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            parts = chunk
        elif kind == 3:  # MIDDLE
            parts += chunk
        elif kind == 4:  # LAST
            yield parts + chunk
            parts = b""
        elif kind == 0 and length == 0:  # zero padding
            pos += left_in_block - header - length
        else:
            raise ValueError(f"{path}: bad record type {kind} at {pos}")


def run_file_counts(path: str) -> dict[str, int]:
    """History points per key in one offline ``.wandb`` run file."""
    from wandb.proto import wandb_internal_pb2

    counts: dict[str, int] = {}
    for data in _records(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(data)
        if rec.WhichOneof("record_type") == "history":
            for item in rec.history.item:
                key = item.key or "/".join(item.nested_key)
                counts[key] = counts.get(key, 0) + 1
    return counts


class WandbOffline(Peer):
    key = "wandb"
    label = "wandb (offline)"
    dist = "wandb"
    mode = "`WANDB_MODE=offline`, run file written by `wandb-core`; defaults: full capture"
    metrics_only = False

    def env(self, workdir: str) -> dict[str, str]:
        env = {"WANDB_DIR": workdir, "WANDB_PROJECT": "bench", "WANDB_MODE": "offline"}
        if self.metrics_only:
            env.update(
                WANDB_CONSOLE="off",
                WANDB_X_DISABLE_STATS="true",
                WANDB_DISABLE_GIT="true",
                WANDB_DISABLE_CODE="true",
                WANDB_SAVE_CODE="false",
            )
        return env

    def _dir(self, workdir: str) -> str:
        os.makedirs(workdir, exist_ok=True)
        os.environ["WANDB_DIR"] = workdir  # per run: the read-back finds its run file
        return workdir

    def stored(self, workdir: str) -> dict[str, int]:
        pattern = os.path.join(workdir, "wandb", "offline-run-*", "*.wandb")
        # wandb-core may still be writing the run file after finish() returned (seen: the
        # file missing for 10 s, or the last records missing): wait, untimed, until it exists
        # and its size has been steady for a second
        deadline = time.monotonic() + 30
        sizes: list[int] = []
        while time.monotonic() < deadline:
            files = glob.glob(pattern)
            sizes.append(sum(os.path.getsize(f) for f in files) if files else -1)
            if len(sizes) >= 6 and sizes[-1] >= 0 and len(set(sizes[-6:])) == 1:
                break
            time.sleep(0.2)
        counts: dict[str, int] = {}
        for path in glob.glob(pattern):
            for k, v in run_file_counts(path).items():
                counts[k] = counts.get(k, 0) + v
        return counts

    def open(self, workdir: str) -> None:
        import wandb

        self._run = wandb.init(project="bench", dir=self._dir(workdir), mode="offline")

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

        logger = WandbLogger(project="bench", save_dir=self._dir(workdir), offline=True)
        return {"logger": logger, "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        import wandb

        # started here with this fit's folder: transformers' WandbCallback uses a run that is
        # already open, while its own ``wandb.init`` would take ``WANDB_DIR`` as wandb read it
        # once per process (every later fit of the worker wrote into the first fit's folder)
        wandb.init(project="bench", dir=self._dir(workdir), mode="offline")
        return {"report_to": "wandb", "callbacks": []}

    def keras(self, workdir: str) -> list[Any]:
        try:
            from wandb.integration.keras import WandbMetricsLogger
        except ImportError as exc:
            raise Skip(f"WandbMetricsLogger needs TensorFlow ({exc})") from None
        import wandb

        wandb.init(project="bench", dir=self._dir(workdir), mode="offline")
        return [WandbMetricsLogger(log_freq="batch")]

    def after_train(self) -> None:
        import wandb

        wandb.finish()


class WandbOfflineMetricsOnly(WandbOffline):
    key = "wandb-metrics"
    label = "wandb (offline, metrics only)"
    mode = "offline; console capture, system metrics, git and code saving off"
    metrics_only = True
