"""The official Comet SDK (``comet_ml``) in offline mode: ``comet_ml.OfflineExperiment``.

Offline it writes the run to a local zip (``COMET_OFFLINE_DIRECTORY``) at ``end()``; nothing
is sent. ``COMET_DISABLE_AUTO_LOGGING=1`` stops its framework auto-logging (monkey patching of
torch/keras/...), which would add work the others do not do (Lightning's ``CometLogger`` sets
it too). Lightning uses Lightning's ``CometLogger`` with ``COMET_START_ONLINE=false`` and no
``online=`` argument: ``online=False`` makes Lightning 2.6 build a *disabled* experiment that
records nothing. Hugging Face uses ``report_to="comet_ml"`` with the same variable.

``comet_ml`` runs at its defaults (stdout, system metrics, code, git, environment: about the
captures of our defaults); ``comet_ml-metrics`` switches those captures off through the same
``COMET_AUTO_LOG_*`` variables as our metrics-only variant.
"""

from __future__ import annotations

import glob
import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

from . import Peer, count_metric_names
from .ours import METRICS_ONLY_ENV


def zip_counts(path: str) -> dict[str, int]:
    """Metric points per name in one offline zip (its JSON message files)."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith((".json", ".jsonl")):
                continue
            for line in zf.read(name).decode("utf-8", "replace").splitlines():
                try:
                    count_metric_names(json.loads(line), counts, key="metricName")
                except ValueError:
                    continue
    return counts


class CometOffline(Peer):
    key = "comet_ml"
    label = "comet_ml (offline)"
    dist = "comet_ml"
    mode = "offline zip written at end (`COMET_START_ONLINE=false`); defaults: full capture"
    metrics_only = False

    def env(self, workdir: str) -> dict[str, str]:
        env = {
            "COMET_START_ONLINE": "false",
            "COMET_DISABLE_AUTO_LOGGING": "1",
            "COMET_PROJECT_NAME": "bench",
            "COMET_LOGGING_CONSOLE": "critical",
        }
        if self.metrics_only:
            env.update(METRICS_ONLY_ENV)
        return env

    def _dir(self, workdir: str) -> str:
        path = os.path.join(workdir, "comet-ml-offline")
        os.makedirs(path, exist_ok=True)
        os.environ["COMET_OFFLINE_DIRECTORY"] = path  # per run: the read-back finds its zip
        return path

    def stored(self, workdir: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in glob.glob(os.path.join(workdir, "comet-ml-offline", "*.zip")):
            for k, v in zip_counts(path).items():
                counts[k] = counts.get(k, 0) + v
        return counts

    def open(self, workdir: str) -> None:
        import comet_ml

        self._exp = comet_ml.OfflineExperiment(
            project_name="bench", offline_directory=self._dir(workdir)
        )

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        log = self._exp.log_metric

        def f(name: str, value: float, step: int) -> None:
            log(name, value, step=step)

        return f

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        log = self._exp.log_metrics

        def f(metrics: dict[str, float], step: int) -> None:
            log(metrics, step=step)

        return f

    def close(self) -> dict[str, Any] | None:
        self._exp.end()
        return None

    def lightning(self, workdir: str) -> dict[str, Any]:
        from lightning.pytorch.loggers import CometLogger

        # no online=False: Lightning turns it into disabled=True (nothing recorded)
        logger = CometLogger(project="bench", offline_directory=self._dir(workdir))
        return {"logger": logger, "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        self._dir(workdir)
        return {"report_to": "comet_ml", "callbacks": []}

    def after_train(self) -> None:
        import comet_ml

        exp = comet_ml.get_running_experiment()
        if exp is not None:
            exp.end()


class CometOfflineMetricsOnly(CometOffline):
    key = "comet_ml-metrics"
    label = "comet_ml (offline, metrics only)"
    mode = "offline zip; every `COMET_AUTO_LOG_*` capture off (as our metrics-only variant)"
    metrics_only = True
