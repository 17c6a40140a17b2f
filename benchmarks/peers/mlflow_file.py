"""MLflow with a local file store (``file:`` tracking URI), synchronous and asynchronous.

``mlflow`` logs each call synchronously to the file store; ``mlflow-async`` passes
``synchronous=False`` (and sets ``MLFLOW_ENABLE_ASYNC_LOGGING``), so calls are queued and
written by MLflow's own thread; the end of the run flushes that queue. Lightning uses
``MLFlowLogger(tracking_uri="file:...", synchronous=...)``, Hugging Face ``report_to="mlflow"``
(which always logs with ``synchronous=False``), Keras MLflow's ``MlflowCallback`` logging every
step (``log_every_n_steps=1``) in a run we start.

MLflow's defaults capture nothing but what is logged (no system metrics, no console); with
``mlflow-async-sys`` its system-metrics thread is on (``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``),
the closest it comes to our default captures. The read-back asks MLflow's own client for the
metric history of every run in the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import Peer


class MlflowSync(Peer):
    key = "mlflow"
    label = "mlflow (file store, sync)"
    dist = "mlflow"
    mode = "`file:` tracking URI, synchronous logging"
    synchronous = True
    system_metrics = False

    def env(self, workdir: str) -> dict[str, str]:
        return {
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "true" if self.system_metrics else "false",
            "MLFLOW_TRACKING_URI": "file:" + os.path.join(workdir, "mlruns"),
            "MLFLOW_EXPERIMENT_NAME": "bench",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false" if self.synchronous else "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # MLflow 3.x refuses the file store unless asked for (it wants SQLite)
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }

    def _uri(self, workdir: str) -> str:
        """The run's own store (also set as ``MLFLOW_TRACKING_URI``, which HF's callback reads)."""
        uri = "file:" + os.path.join(workdir, "mlruns")
        os.environ["MLFLOW_TRACKING_URI"] = uri
        return uri

    def stored(self, workdir: str) -> dict[str, int]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self._uri(workdir))
        counts: dict[str, int] = {}
        for exp in client.search_experiments():
            for run in client.search_runs([exp.experiment_id]):
                for name in run.data.metrics:
                    if not name.startswith("system/"):
                        n = len(client.get_metric_history(run.info.run_id, name))
                        counts[name] = counts.get(name, 0) + n
        return counts

    def open(self, workdir: str) -> None:
        import mlflow

        mlflow.set_tracking_uri(self._uri(workdir))
        mlflow.set_experiment("bench")
        mlflow.start_run()

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        import mlflow

        log, sync = mlflow.log_metric, self.synchronous

        def f(name: str, value: float, step: int) -> None:
            log(name, value, step=step, synchronous=sync)

        return f

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        import mlflow

        log, sync = mlflow.log_metrics, self.synchronous

        def f(metrics: dict[str, float], step: int) -> None:
            log(metrics, step=step, synchronous=sync)

        return f

    def close(self) -> dict[str, Any] | None:
        import mlflow

        if not self.synchronous:
            mlflow.flush_async_logging()
        mlflow.end_run()
        return None

    def lightning(self, workdir: str) -> dict[str, Any]:
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(
            experiment_name="bench", tracking_uri=self._uri(workdir), synchronous=self.synchronous
        )
        return {"logger": logger, "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        import mlflow

        mlflow.set_tracking_uri(self._uri(workdir))
        return {"report_to": "mlflow", "callbacks": []}

    def keras(self, workdir: str) -> list[Any]:
        import mlflow
        from mlflow.keras.callback import MlflowCallback

        mlflow.set_tracking_uri(self._uri(workdir))
        mlflow.set_experiment("bench")
        mlflow.start_run()
        return [MlflowCallback(log_every_epoch=True, log_every_n_steps=1)]

    def after_train(self) -> None:
        import mlflow

        mlflow.flush_async_logging()
        if mlflow.active_run() is not None:
            mlflow.end_run()


class MlflowAsync(MlflowSync):
    key = "mlflow-async"
    label = "mlflow (file store, async)"
    mode = "`file:` tracking URI, `synchronous=False` / `MLFLOW_ENABLE_ASYNC_LOGGING=true`"
    synchronous = False


class MlflowAsyncSystemMetrics(MlflowAsync):
    key = "mlflow-async-sys"
    label = "mlflow (file store, async, system metrics)"
    mode = "as `mlflow-async`, plus `MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true`"
    system_metrics = True
