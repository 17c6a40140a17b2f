"""The official Comet SDK (``comet_ml``) in offline mode: ``comet_ml.OfflineExperiment``.

Offline it writes the run to a local zip (``COMET_OFFLINE_DIRECTORY``) at ``end()``; nothing
is sent. ``COMET_DISABLE_AUTO_LOGGING=1`` stops its framework auto-logging (monkey patching of
torch/keras/...), which would also add work the others do not do; its default captures
(stdout, system metrics, code, git, environment) stay on, like ours. Lightning uses Lightning's
own ``CometLogger(online=False)``; Hugging Face ``report_to="comet_ml"`` with
``COMET_START_ONLINE=false`` (its callback refuses ``COMET_MODE=offline``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import Peer


class CometOffline(Peer):
    key = "comet_ml"
    label = "comet_ml (offline)"
    dist = "comet_ml"
    mode = "`OfflineExperiment` (HF/Lightning: `COMET_START_ONLINE=false`), zip written at end"

    def env(self, workdir: str) -> dict[str, str]:
        return {
            "COMET_OFFLINE_DIRECTORY": os.path.join(workdir, "comet-ml-offline"),
            "COMET_START_ONLINE": "false",
            "COMET_DISABLE_AUTO_LOGGING": "1",
            "COMET_PROJECT_NAME": "bench",
            "COMET_LOGGING_CONSOLE": "critical",
        }

    def open(self, workdir: str) -> None:
        import comet_ml

        os.makedirs(workdir, exist_ok=True)
        self._exp = comet_ml.OfflineExperiment(
            project_name="bench", offline_directory=os.path.join(workdir, "comet-ml-offline")
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

        logger = CometLogger(
            online=False,
            project="bench",
            offline_directory=os.path.join(workdir, "comet-ml-offline"),
        )
        self._logger = logger
        return {"logger": logger, "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        return {"report_to": "comet_ml", "callbacks": []}

    def after_train(self) -> None:
        import comet_ml

        exp = comet_ml.get_running_experiment()
        if exp is not None:
            exp.end()
