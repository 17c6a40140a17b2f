"""The trackers compared by ``python -m benchmarks``: one module per tracker, one class per mode.

Every peer implements the same small surface (:class:`Peer`) so that the worker
(``python -m benchmarks.harness``) times them all with one loop. A peer that cannot run a
scenario raises :class:`Skip` with the reason, which ends up in the tables.

Each worker is a fresh process, so a peer's :meth:`Peer.env` (offline mode, no telemetry) is
applied before anything of the tracker is imported.

Every tracker proves it did real work: after each measured run, :meth:`Peer.stored` reads back
what it stored (its files, or our local server) and the worker fails loudly when fewer points
than were logged came back (:func:`check_stored`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "NO_NETWORK_ENV",
    "PEERS",
    "NothingStored",
    "Peer",
    "Skip",
    "check_stored",
    "count_metric_names",
    "get",
    "version_of",
]


class Skip(Exception):
    """This peer cannot run this scenario here; the message says why (shown in the table)."""


class NothingStored(Exception):
    """A tracker stored fewer points than were logged: its figures would measure nothing."""


def count_metric_names(obj: Any, counts: dict[str, int], key: str = "metricName") -> None:
    """Add 1 to ``counts[name]`` for every dict in ``obj`` (nested) with ``{key: name}``."""
    if isinstance(obj, dict):
        name = obj.get(key)
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
        for v in obj.values():
            if isinstance(v, dict | list):
                count_metric_names(v, counts, key)
    elif isinstance(obj, list):
        for v in obj:
            count_metric_names(v, counts, key)


def check_stored(peer: Peer, workdir: str, names: list[str] | str, expected: int) -> int:
    """Read back what ``peer`` stored; the most points of one of ``names`` (or, with a
    substring such as ``"loss"``, of any metric whose name contains it) must reach
    ``expected``. Returns that count; raises :class:`NothingStored` otherwise."""
    counts = peer.stored(workdir)
    if isinstance(names, str):
        hits = [n for n in counts if names in n]
    else:
        hits = [n for n in names if n in counts]
    best = max((counts[n] for n in hits), default=0)
    if best < expected:
        shown = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])
        files = sorted(
            os.path.relpath(os.path.join(d, f), workdir)
            for d, _, fs in os.walk(workdir)
            for f in fs
        )
        raise NothingStored(
            f"{peer.key}: read back {best} points of {names!r}, expected at least {expected} "
            f"(found: {shown or 'nothing'}; files under the run folder: {files[:6] or 'none'})"
        )
    return best


#: Set for every worker: nothing may try the network (telemetry, hubs, version checks).
NO_NETWORK_ENV: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    # Hugging Face: never contact the hub
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    # W&B: offline, quiet, no error reporting (Sentry) nor version check
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    # MLflow: no telemetry (3.x)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Lightning / Keras
    "KERAS_BACKEND": "torch",
    "PL_DISABLE_FORK": "1",
    # tokenizers warn about fork otherwise
    "TOKENIZERS_PARALLELISM": "false",
}


def version_of(dist: str) -> str:
    """Installed version of distribution ``dist`` (``"not installed"`` if missing)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class Peer:
    """One tracker in one mode. Subclasses override what they support.

    ``open``/``log_scalar``/``log_dict``/``close`` serve the caller-cost, end-of-run and memory
    scenarios; ``lightning``/``hf``/``keras`` (+ ``after_*``) the training scenarios.
    """

    #: command-line name (``python -m benchmarks.harness caller <key>``)
    key: str = ""
    #: row label in the tables
    label: str = ""
    #: distribution whose version is reported
    dist: str | None = None
    #: how it runs (offline, file store...): documented in the output
    mode: str = ""

    def env(self, workdir: str) -> dict[str, str]:
        """Environment set before the tracker is imported (on top of :data:`NO_NETWORK_ENV`)."""
        return {}

    def version(self) -> str:
        return version_of(self.dist) if self.dist else "-"

    # -------------------------------------------------------------- plain logging

    def open(self, workdir: str) -> None:
        """Start a fresh run (an experiment, a W&B run, an MLflow run...)."""
        raise Skip("no plain logging API")

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        """A callable ``f(name, value, step)`` logging one scalar (timed per call)."""
        raise Skip("no plain logging API")

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        """A callable ``f(metrics, step)`` logging one dict of metrics at one step."""
        raise Skip("no plain logging API")

    def close(self) -> dict[str, Any] | None:
        """End the run and flush everything (the end-of-run wait); may return details."""
        return None

    def stored(self, workdir: str) -> dict[str, int]:
        """Points stored per metric name by the latest run, read back from the tracker's own
        files (or server) under ``workdir``. Every tracker must implement it."""
        raise NotImplementedError(f"{self.key}: no read-back of what it stored")

    def extra_pids(self) -> set[int]:
        """Child processes that are not part of the client (e.g. our local server)."""
        return set()

    # -------------------------------------------------------------- training

    def lightning(self, workdir: str) -> dict[str, Any]:
        """``Trainer`` keyword arguments (``logger``, ``callbacks``) for this tracker."""
        raise Skip("no Lightning integration")

    def hf(self, workdir: str) -> dict[str, Any]:
        """``TrainingArguments`` ``report_to`` and extra ``callbacks`` for this tracker."""
        raise Skip("no Hugging Face integration")

    def keras(self, workdir: str) -> list[Any]:
        """Keras callbacks for this tracker."""
        raise Skip("no Keras integration")

    def after_train(self) -> None:
        """Finish the run after ``fit``/``train`` returned (e.g. ``wandb.finish()``)."""

    def shutdown(self) -> None:
        """Release anything the peer started for the whole worker (a server process)."""


#: key -> "module:Class", imported only in the worker that needs it
_REGISTRY: dict[str, str] = {
    "none": "baseline:NoLogging",
    "us-offline": "ours:OursOffline",
    "us-online": "ours:OursOnline",
    "us-online-metrics": "ours:OursOnlineMetricsOnly",
    "us-offline-metrics": "ours:OursOfflineMetricsOnly",
    "comet_ml": "official_comet:CometOffline",
    "comet_ml-metrics": "official_comet:CometOfflineMetricsOnly",
    "wandb": "wandb_offline:WandbOffline",
    "wandb-metrics": "wandb_offline:WandbOfflineMetricsOnly",
    "mlflow": "mlflow_file:MlflowSync",
    "mlflow-async": "mlflow_file:MlflowAsync",
    "mlflow-async-sys": "mlflow_file:MlflowAsyncSystemMetrics",
    "csv": "csv_floor:CsvFloor",
}
PEERS: tuple[str, ...] = tuple(_REGISTRY)


def get(key: str) -> Peer:
    """An instance of peer ``key`` (see :data:`PEERS`)."""
    try:
        target = _REGISTRY[key]
    except KeyError:
        raise SystemExit(f"unknown peer {key!r}; known: {', '.join(PEERS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
