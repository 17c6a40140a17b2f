"""comet-callbacks (this project): offline, and online to a local server in its own process.

Online, the worker starts ``python -m comet_callbacks.server`` as a child process (so the
server does not share the client's GIL; a real Comet server is on another machine anyway) and
points the client at it with ``COMET_URL_OVERRIDE``/``COMET_API_KEY``.

The default variants measure our defaults (output capture, system monitor, code, git, system
details, final model upload); the ``metrics only`` variants switch every ``auto_log_*`` capture
off and ``COMET_LOG_MODEL=false``, keeping only metrics and parameters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..server import API_KEY, LocalServer, free_port
from . import Peer, count_metric_names

__all__ = ["API_KEY", "LocalServer", "METRICS_ONLY_ENV", "free_port"]  # the old import path

#: every capture off: what remains is metrics and parameters
METRICS_ONLY_ENV = {
    "COMET_AUTO_LOG_CODE": "false",
    "COMET_AUTO_LOG_GIT_METADATA": "false",
    "COMET_AUTO_LOG_GIT_PATCH": "false",
    "COMET_AUTO_LOG_ENV_DETAILS": "false",
    "COMET_AUTO_LOG_ENV_HOST": "false",
    "COMET_AUTO_LOG_ENV_CPU": "false",
    "COMET_AUTO_LOG_ENV_GPU": "false",
    "COMET_AUTO_LOG_OUTPUT_LOGGER": "false",
    "COMET_AUTO_LOG_GRAPH": "false",
    "COMET_LOG_MODEL": "false",
}


class _Ours(Peer):
    dist = "comet-callbacks"
    online = False
    metrics_only = False

    def env(self, workdir: str) -> dict[str, str]:
        env = {"COMET_OFFLINE_DIRECTORY": os.path.join(workdir, "comet-offline")}
        if self.metrics_only:
            env.update(METRICS_ONLY_ENV)
        if not self.online:
            env["COMET_MODE"] = "offline"
        return env

    def _server(self, workdir: str) -> None:
        """Start the local server once per worker and point the client at it."""
        if self.online and getattr(self, "_srv", None) is None:
            self._srv = LocalServer(os.path.join(workdir, "server"))
            os.environ.update(self._srv.env())
            os.environ["COMET_MODE"] = "online"

    def extra_pids(self) -> set[int]:
        srv = getattr(self, "_srv", None)
        return {srv.proc.pid} if srv is not None else set()

    def shutdown(self) -> None:
        srv = getattr(self, "_srv", None)
        if srv is not None:
            srv.stop()
            self._srv = None

    def stored(self, workdir: str) -> dict[str, int]:
        """Online: the metric points the server holds for the run's experiment (asked through
        its REST API). Offline: the metric events in the run's event log on disk. The latest
        run is the one not seen by an earlier call (asked again, the same run's counts)."""
        seen: set[str] = getattr(self, "_seen", set())
        self._seen = seen
        if self.online:
            reader = self._srv.reader()
            try:
                workspace = reader.account_details()["defaultWorkspaceName"]
                keys = [e["experimentKey"] for e in reader.experiments(workspace, "bench")]
                new = [k for k in keys if k not in seen]
                if len(new) > 1:
                    return {}  # several new experiments: not what one run should leave
                if new:
                    seen.add(new[0])
                    self._latest = new[0]
                key = getattr(self, "_latest", None)
                counts: dict[str, int] = {}
                for row in reader.metric_summary(key) if key else []:
                    name = row["name"]
                    if not name.startswith("sys."):  # system metrics are not the run's
                        counts[name] = len(reader.metrics(key, name))
                return counts
            finally:
                reader.close()
        from comet_callbacks.offline import list_runs, read_events

        runs = [r for r in list_runs(os.environ["COMET_OFFLINE_DIRECTORY"]) if r not in seen]
        if len(runs) > 1:
            return {}
        if runs:
            seen.add(runs[0])
            self._latest = runs[0]
        counts = {}
        if getattr(self, "_latest", None):
            for event in read_events(self._latest):
                count_metric_names(event, counts)
        return counts

    def open(self, workdir: str) -> None:
        from comet_callbacks import Experiment

        self._server(workdir)
        self._exp = Experiment(project_name="bench")
        if self._exp.mode != ("online" if self.online else "offline"):
            raise RuntimeError(f"expected {self.mode}, got mode {self._exp.mode}")

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        return self._exp.log_metric

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        return self._exp.log_metrics

    def close(self) -> dict[str, Any] | None:
        """End the experiment; also report where the end's time went: CPU seconds of this
        process and of the server process during ``end()``, next to its wall time."""
        import psutil

        exp = self._exp
        sender = exp._sender
        me = psutil.Process()
        srv = getattr(self, "_srv", None)
        srv_proc = psutil.Process(srv.proc.pid) if srv is not None else None

        def cpu(p: Any) -> float:
            t = p.cpu_times()
            return t.user + t.system

        c0, s0, t0 = cpu(me), cpu(srv_proc) if srv_proc else 0.0, time.perf_counter()
        exp.end()
        out: dict[str, Any] = {
            "end_wall_s": time.perf_counter() - t0,
            "client_cpu_s": cpu(me) - c0,
            "server_cpu_s": (cpu(srv_proc) - s0) if srv_proc else 0.0,
        }
        if sender is not None:
            out["undelivered"] = sender.pending()
            out["delivered"] = sender.stats.sent
        return out

    def lightning(self, workdir: str) -> dict[str, Any]:
        from comet_callbacks.integrations.lightning import CometCallback

        self._server(workdir)
        self._cb = CometCallback(project_name="bench")
        return {"logger": False, "callbacks": [self._cb]}

    def hf(self, workdir: str) -> dict[str, Any]:
        from comet_callbacks.integrations.transformers import CometCallback

        self._server(workdir)
        self._cb = CometCallback(project_name="bench")
        return {"report_to": "none", "callbacks": [self._cb]}

    def keras(self, workdir: str) -> list[Any]:
        from comet_callbacks.integrations.keras import CometCallback

        self._server(workdir)
        self._cb = CometCallback(log_batch_every=1, project_name="bench")
        return [self._cb]

    def after_train(self) -> None:
        """End the run now. Offline, the Keras and Hugging Face callbacks keep the experiment
        open after training (for a later ``evaluate()``) until process exit; ending it here
        keeps that cost inside the timed region, like ``wandb.finish()`` for W&B."""
        cb = getattr(self, "_cb", None)
        exp = getattr(cb, "experiment", None)
        if exp is not None and not exp.ended:
            exp.end()


class OursOffline(_Ours):
    key = "us-offline"
    label = "**us** (offline)"
    mode = "offline: event log on local disk (defaults: full capture)"


class OursOnline(_Ours):
    key = "us-online"
    label = "**us** (online, local server)"
    online = True
    mode = "online to the local server (a separate process on loopback); defaults: full capture"


class OursOnlineMetricsOnly(_Ours):
    key = "us-online-metrics"
    label = "**us** (online, metrics only)"
    online = True
    metrics_only = True
    mode = "online to the local server; every `auto_log_*` capture off, `COMET_LOG_MODEL=false`"


class OursOfflineMetricsOnly(_Ours):
    key = "us-offline-metrics"
    label = "**us** (offline, metrics only)"
    metrics_only = True
    mode = "offline; every `auto_log_*` capture off, `COMET_LOG_MODEL=false`"
