"""``Experiment``: create → log_* → end. The only object integrations talk to.

Every ``log_*`` call validates and converts its input on the caller's thread and enqueues an
event; all I/O happens in :class:`~.sender.Sender`. Errors in logging are reported once per
kind and never raised into the training loop, unless ``strict=True``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import __version__, exits, registry
from .capture import code as code_capture
from .capture.monitor import SystemMonitor
from .capture.output import OutputCapture
from .capture.startup import capture_at_start
from .config import ConfigError, Settings
from .errors import CometCallbacksError
from .heartbeat import heartbeat
from .log import short_reason
from .offline import PendingSnapshot, RunStore
from .rest.call import Call, FilePart
from .rest.delivery import send_waiting
from .rest.endpoints import calls, check_parameter_source, closing_calls, experiment_link
from .rest.errors import (
    CometAPIError,
    CometConnectionError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from .sender import Op, Sender
from .values import (
    MAX_TEXT,
    check_name,
    check_step,
    flatten_params,
    json_safe,
    to_metric_value,
    truncate,
)

if TYPE_CHECKING:  # requests is imported only when a client is built
    from .rest.client import RestClient

__all__ = [
    "ConfigError",
    "Experiment",
    "ExperimentError",
    "start",
    "RegisteredModel",
    "get_running_experiment",
]

log = logging.getLogger("comet_callbacks")
_time = time.time
_live = exits.live
_current: Experiment | None = None
_announced: set[str] = set()  # keys whose link this process printed
DEFAULT_PROJECT = "general"
#: Assets whose file is snapshotted when logged online (offline: every file)
_SNAPSHOT_TYPES = frozenset({"model-element", "checkpoint"})
_INT64_MAX = 2**63 - 1


class ExperimentError(CometCallbacksError, RuntimeError):
    """The experiment could not be created or continued; the message says what to fix."""


class RegisteredModel(dict):
    """Result of :meth:`Experiment.register_model`: ``registry_model_id``, ``version``, ``item_id``."""

    @property
    def version(self) -> str | None:
        return self.get("version")


def get_running_experiment() -> Experiment | None:
    """The most recently created experiment that has not ended (like the SDK's helper)."""
    return _current if _current is not None and not _current.ended else None


class Experiment:
    """A Comet experiment.

    >>> with Experiment(project_name="demo") as exp:              # doctest: +SKIP
    ...     exp.log_parameters({"lr": 0.01, "opt": {"name": "adam"}})
    ...     exp.log_metric("loss", 0.25, step=1)

    Arguments override ``COMET_*`` environment variables, which override ``.comet.config``.
    Any setting of :data:`comet_callbacks.config.FIELDS` may be passed as a keyword
    (``auto_log_output_logger=False``, ``timeout_cleaning=5``...).

    ``secondary=True`` joins an existing experiment (``experiment_key`` required) as a
    non-zero rank of a distributed run: nothing is captured or stopped, only system metrics
    are sent (with ``context``) when ``send_system_metrics`` is true.

    ``send_system_metrics``: sample CPU/RAM/load/GPU metrics (each kind still subject to its
    ``auto_log_env_*`` setting). Default: yes, and for a secondary only with
    ``COMET_DISTRIBUTED_SYSTEM_METRICS`` on.
    """

    def __init__(
        self,
        api_key: str | None = None,
        workspace: str | None = None,
        project_name: str | None = None,
        experiment_name: str | None = None,
        experiment_key: str | None = None,
        *,
        mode: str | None = None,
        tags: Iterable[str] | None = None,
        strict: bool | None = None,
        settings: Settings | None = None,
        secondary: bool = False,
        context: str | None = None,
        send_system_metrics: bool | None = None,
        **options: Any,
    ) -> None:
        global _current
        self.ended = False
        self._sender: Sender | None = None
        self._client: RestClient | None = None
        self._monitor: Any = None
        self._capture_thread: threading.Thread | None = None
        self._output: Any = None
        self._beat_thread: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._reported: set[str] = set()
        self._models: dict[str, list[str]] = {}
        self._step: int | None = None
        self._epoch: int | None = None
        self._secondary = secondary
        self._context = context
        self._lock = threading.Lock()
        self._forked = False  # True in a child forked while this experiment was alive
        args: dict[str, Any] = dict(
            api_key=api_key,
            workspace=workspace,
            project_name=project_name,
            experiment_name=experiment_name,
            experiment_key=experiment_key,
            mode=mode,
            strict=strict,
        )
        args.update(options)
        if settings is None:
            settings = Settings.resolve(**args)
        else:
            given = {k: v for k, v in args.items() if v is not None}
            if given:
                settings = settings.replace(**given)
        self.settings = settings
        if send_system_metrics is None:
            send_system_metrics = not secondary or bool(settings.distributed_system_metrics)
        self._send_system_metrics = bool(send_system_metrics)
        self.strict = bool(settings.strict)
        self._mode = settings.effective_mode
        self._workspace: str | None = settings.workspace
        self._project: str = settings.project_name or DEFAULT_PROJECT
        self._name: str | None = settings.experiment_name
        self._key: str = settings.experiment_key or ""  # "" until known (never when disabled)
        self._link: str | None = None
        self._unreachable: str | None = None  # "<root> (<reason>)" when it went offline
        self._start_ms = int(_time() * 1000)
        if self._mode == "disabled":
            return
        if secondary and not self._key:
            raise ExperimentError("secondary=True needs experiment_key (the key rank 0 created)")
        if self._mode == "online":
            self._connect()
        if self._mode == "offline" and not self._key:
            self._key = uuid.uuid4().hex
        assert self._key
        store = self._open_store(
            {
                "mode": self._mode,
                "experimentKey": self._key,
                "online": self._mode == "online",
                "continued": bool(settings.experiment_key),
                "workspace": self._workspace,
                "project": self._project,
                "experimentName": self._name,
                "root": settings.root,
                "startTimeMillis": self._start_ms,
                "secondary": secondary,
                "version": __version__,
            }
        )
        self._store = store
        store.on_disk_error = self._on_disk_error
        self._sender = Sender(
            store,
            self._key,
            self._client,
            workers=settings.workers,
            max_pending=settings.max_queue_size,
            batch=bool(settings.batch),
        )
        _live.add(self)
        if not secondary:
            _current = self
            if self._unreachable:
                log.warning(
                    "comet_callbacks: cannot reach %s; continuing OFFLINE in %s. Training goes "
                    "on; once the server is back: comet-callbacks upload %s",
                    self._unreachable,
                    store.path,
                    store.path,
                )
            elif self._mode == "offline":
                print(
                    f"comet_callbacks: offline mode, logging to {store.path}; "
                    f"upload later with: comet-callbacks upload {store.path}",
                    file=sys.stderr,
                )
            if self._mode == "offline":
                self._put(calls.set_start_end_time(self._key, self._start_ms, None))
            elif settings.display_summary_level and self._key not in _announced:
                _announced.add(self._key)  # a later evaluate() continuing it: not again
                print(f"comet_callbacks: experiment is live at {self.url}", file=sys.stderr)
            if self._name and settings.experiment_key is None and self._mode == "offline":
                self._put(calls.log_other(self._key, "Name", self._name))
            if tags:
                self.add_tags(tags)
        self._start_background()

    # ------------------------------------------------------------------ creation

    def _connect(self) -> None:
        s = self.settings
        from .rest.client import RestClient  # requests: imported only when a client is built

        self._client = RestClient.from_settings(s, pool_size=max(8, s.workers * 2 + 2))
        # a busy server (429, 5xx) is waited for as the sender would, until the cleaning timeout
        deadline = time.monotonic() + max(0.0, float(s.timeout_cleaning))

        def send(call: Call) -> Any:
            return send_waiting(self._client, call, deadline)  # type: ignore[arg-type]

        try:
            if self._key:
                meta = send(calls.get_experiment_metadata(self._key))
                self._workspace = meta.get("workspaceName") or self._workspace
                self._project = meta.get("projectName") or self._project
                self._name = meta.get("experimentName") or self._name
            else:
                if not self._workspace:
                    self._workspace = send(calls.get_account_details())["defaultWorkspaceName"]
                res = send(calls.create_experiment(self._workspace, self._project, self._name))
                self._key = res["experimentKey"]
                self._link = res.get("link")
        except UnauthorizedError:
            raise ExperimentError(
                f"the API key was refused by {s.root} (401). Set COMET_API_KEY to a valid key "
                "(Comet: Account settings → API keys; local server: the key it printed at start)."
            ) from None
        except ForbiddenError:
            raise ExperimentError(
                f"the API key may not use workspace {self._workspace!r} on {s.root} (403). "
                "Set COMET_WORKSPACE to a workspace you belong to, or ask its owner to add you."
            ) from None
        except NotFoundError:
            raise ExperimentError(
                f"experiment key {self._key!r} is unknown on {s.root} (404). Unset "
                "COMET_EXPERIMENT_KEY to start a new experiment, or check the key."
            ) from None
        except CometConnectionError as exc:
            self._client.close()
            self._client = None
            self._mode = "offline"
            if self.strict:
                raise ExperimentError(f"cannot reach {s.root}: {exc}") from None
            # reported once the run folder exists, so the line can name the upload command
            self._unreachable = f"{s.root} ({short_reason(exc)})"
        except (CometAPIError, KeyError, TypeError) as exc:
            raise ExperimentError(f"could not create the experiment on {s.root}: {exc}") from None

    def _open_store(self, meta: dict[str, Any]) -> RunStore:
        """The run's event log under ``COMET_OFFLINE_DIRECTORY``.

        When that folder cannot be written, an online run goes on with its events in memory
        only (one warning naming the folder and the setting); an offline run cannot keep
        anything, so that is a :class:`ConfigError` naming ``COMET_OFFLINE_DIRECTORY``.
        """
        root = self.settings.offline_directory
        try:
            return RunStore(root, meta=meta)
        except OSError as exc:
            reason = f"{type(exc).__name__}: {exc.strerror or exc}"
            if self._mode != "online":
                if self._client is not None:
                    self._client.close()
                source = self.settings.sources.get("offline_directory", "default")
                raise ConfigError(
                    "offline_directory",
                    source,
                    root,
                    f"offline mode keeps the whole run in that folder, but it cannot be "
                    f"written ({reason}). Set COMET_OFFLINE_DIRECTORY (or offline_directory=) "
                    "to a writable folder",
                ) from None
            log.warning(
                "comet_callbacks: the offline directory %s cannot be written (%s); continuing "
                "online with undelivered events kept in memory only (at most "
                "COMET_MAX_QUEUE_SIZE=%d; beyond that they are dropped and counted). Set "
                "COMET_OFFLINE_DIRECTORY to a writable folder to keep them on disk.",
                os.path.abspath(root),
                reason,
                self.settings.max_queue_size,
            )
            return RunStore(root, meta=meta, memory_only=True)

    def _on_disk_error(self, exc: OSError) -> None:
        """The event log could not be written any more (the disk is full): one warning."""
        where = self._store.root
        reason = f"{errno.errorcode.get(exc.errno or 0, type(exc).__name__)}: {exc.strerror or exc}"
        if self._mode == "online":
            log.warning(
                "comet_callbacks: cannot write to the offline directory %s (%s); the event log "
                "stops here and delivery goes on from memory (at most COMET_MAX_QUEUE_SIZE=%d "
                "events waiting; beyond that new events are dropped and counted). Free some "
                "space or set COMET_OFFLINE_DIRECTORY to another disk.",
                where,
                reason,
                self.settings.max_queue_size,
            )
        else:
            log.warning(
                "comet_callbacks: cannot write to the offline directory %s (%s); events logged "
                "from now on are NOT kept (they are counted). Free some space or set "
                "COMET_OFFLINE_DIRECTORY to another disk.",
                where,
                reason,
            )

    def _start_background(self) -> None:
        s = self.settings
        if not self._secondary:
            self._capture_thread = threading.Thread(
                target=self._capture_start, name="comet-capture", daemon=True
            )
            self._capture_thread.start()
            if s.auto_log_output_logger:
                self._start_output()
        if self._mode == "online":
            self._beat_thread = threading.Thread(
                target=heartbeat,
                args=(self._client, self._key, self.settings, self._beat_stop),
                kwargs={"monitor": lambda: self._monitor},
                name="comet-beat",
                daemon=True,
            )
            self._beat_thread.start()
        cpu, gpu = bool(s.auto_log_env_cpu), bool(s.auto_log_env_gpu)
        if not self._send_system_metrics:
            cpu = gpu = False
        if cpu or gpu:
            self._monitor = SystemMonitor(
                self._emit_system_metric,
                cpu_interval=s.cpu_monitor_interval or 68.0,
                gpu_interval=s.gpu_monitor_interval or 60.0,
                position=lambda: (self._step, self._epoch),
                context=self._context,
                cpu=cpu,
                gpu=gpu,
            )
            self._monitor.start()
        exits.install()

    def _capture_start(self) -> None:
        def put(call: Any) -> None:  # also accepted while end() waits for this thread
            sender = self._sender
            if sender is not None:
                sender.put(call)

        capture_at_start(self.settings, self._key, put)

    def _start_output(self) -> None:
        start_offset = 0 if not self.settings.experiment_key else int(_time() * 1000) * 1000
        key = self._key

        def emit(lines: list[dict[str, Any]]) -> None:
            if self._sender is not None and lines:
                self._sender.put(calls.log_output(key, lines, context=self._context))

        self._output = OutputCapture(emit, start_offset=start_offset)
        try:
            self._output.start()
        except Exception as exc:
            log.debug("comet_callbacks: output capture unavailable: %r", exc)
            self._output = None

    def _emit_system_metric(self, kind: str, payload: dict[str, Any]) -> None:
        key = self._key
        t = {k: payload.get(k) for k in ("context", "step", "epoch", "timestamp")}
        if kind == "cpu-metrics":
            call = calls.log_cpu_metrics(key, payload["cpuPercentUtilization"], **t)
        elif kind == "ram-metrics":
            call = calls.log_ram_metrics(key, payload["totalRam"], payload["usedRam"], **t)
        elif kind == "load-metrics":
            call = calls.log_load_metrics(key, payload["loadAverage"], **t)
        elif kind == "gpu-metrics":
            call = calls.log_gpu_metrics(key, payload["gpus"], **t)
        else:
            return
        sender = self._sender  # also while end() stops the monitor (its last sample)
        if sender is not None:
            sender.put(call)

    # ------------------------------------------------------------------ internals

    def _put(self, item: Any) -> None:
        sender = self._sender
        if sender is not None and not self.ended:
            sender.put(item)
            if type(item) is PendingSnapshot:
                sender.wake()  # copy a file that may be rewritten in place without delay
        else:
            self._dropped()

    def _dropped(self) -> None:
        """Called when a log_* call cannot log: after :meth:`end` that is reported (once)."""
        if self._forked:
            exits.warn_forked_once()
        elif self.ended and self._mode != "disabled":
            self._report(
                "after end",
                ValueError(
                    "the experiment has ended: log_* calls after end() are not logged "
                    "(start a new Experiment, or continue this one with experiment_key=)"
                ),
            )

    def _report(self, kind: str, exc: BaseException | str) -> None:
        """Strict: raise. Otherwise log the first problem of each kind and go on."""
        msg = str(exc)
        if self.strict:
            raise exc if isinstance(exc, BaseException) else ValueError(msg)
        if kind not in self._reported:
            self._reported.add(kind)
            log.warning("comet_callbacks: %s (further problems of this kind are not reported)", msg)

    # ------------------------------------------------------------------ properties

    @property
    def key(self) -> str | None:
        """The experiment key (a local id for an offline run until it is uploaded)."""
        return self._key or None

    @property
    def mode(self) -> str:
        """``online``, ``offline`` or ``disabled``."""
        return self._mode

    @property
    def url(self) -> str | None:
        """Link to the experiment (None offline or disabled)."""
        if self._mode != "online" or not self._key:
            return None
        if self._link:
            return self._link
        return experiment_link(self.settings.root, self._workspace, self._project, self._key)

    @property
    def workspace(self) -> str | None:
        return self._workspace

    @property
    def project_name(self) -> str:
        return self._project

    @property
    def offline_path(self) -> str | None:
        """Folder of this run's event log (None when disabled)."""
        store = getattr(self, "_store", None)
        if store is None or (not store.on_disk and store.disk_error is None):
            return None  # the folder could not be created: nothing on disk
        return store.path

    @property
    def step(self) -> int | None:
        return self._step

    def set_step(self, step: int | None) -> None:
        """The current step: used for system metrics and as default for metrics."""
        self._step = step

    def set_epoch(self, epoch: int | None) -> None:
        """The current epoch: used for system metrics and as default for metrics."""
        self._epoch = epoch

    # ------------------------------------------------------------------ metrics

    def log_metric(
        self,
        name: str,
        value: Any,
        step: int | None = None,
        epoch: int | None = None,
        context: str | None = None,
    ) -> None:
        """Log one metric value. Only validates and enqueues: microseconds on this thread."""
        sender = self._sender
        if sender is None:
            return self._dropped()
        tv = type(value)
        if (
            (tv is float or tv is int)
            and type(name) is str
            and (step is None or (type(step) is int and 0 <= step <= _INT64_MAX))
            and (epoch is None or (type(epoch) is int and 0 <= epoch <= _INT64_MAX))
            and (context is None or type(context) is str)
            and 0 < len(name) <= 1000
        ):
            if step is not None:
                self._step = step
            else:
                step = self._step
            if epoch is None:
                epoch = self._epoch
            sender.put((name, value, step, epoch, context or self._context, _time()))
            return
        self._log_metric_slow(name, value, step, epoch, context)

    def _log_metric_slow(self, name: Any, value: Any, step: Any, epoch: Any, context: Any) -> None:
        try:
            name = check_name(name, "metric name")
            step = check_step(step, "step")
            epoch = check_step(epoch, "epoch")
            value = to_metric_value(value, name)
            if context is not None and not isinstance(context, str):
                raise ValueError(f"context must be a string, got {type(context).__name__}")
        except ValueError as exc:
            self._report(f"metric:{name if isinstance(name, str) else type(name).__name__}", exc)
            return
        if step is not None:
            self._step = step
        else:
            step = self._step
        if epoch is None:
            epoch = self._epoch
        sender = self._sender
        if sender is None:  # ended meanwhile (another thread)
            return self._dropped()
        sender.put((name, value, step, epoch, context or self._context, _time()))

    def log_metrics(
        self,
        metrics: Mapping[str, Any],
        step: int | None = None,
        epoch: int | None = None,
        context: str | None = None,
        prefix: str | None = None,
    ) -> None:
        """Log several metrics at the same step; nested dicts become ``outer/inner`` names.

        All points get the same timestamp. Plain ``float``/``int`` values take a fast path
        (one tuple appended per metric); anything else goes through :meth:`log_metric`.
        """
        sender = self._sender
        if sender is None:
            return self._dropped()
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            self._report(
                "log_metrics",
                ValueError(f"metrics must be a mapping, got {type(metrics).__name__}"),
            )
            return
        pre = f"{prefix}/" if prefix else ""
        if not (
            (step is None or (type(step) is int and 0 <= step <= _INT64_MAX))
            and (epoch is None or (type(epoch) is int and 0 <= epoch <= _INT64_MAX))
            and (context is None or type(context) is str)
        ):  # odd step/epoch/context: validated (and reported) per metric by log_metric
            for k, v in metrics.items():
                if isinstance(v, Mapping):
                    self.log_metrics(v, step, epoch, context, prefix=f"{pre}{k}")
                else:
                    self.log_metric(f"{pre}{k}" if type(k) is str else k, v, step, epoch, context)
            return
        if step is not None:
            self._step = step
        else:
            step = self._step
        if epoch is None:
            epoch = self._epoch
        ctx = context or self._context
        t = _time()
        fast: list[tuple[Any, ...]] = []  # plain numbers: enqueued together, as for log_metric
        for k, v in metrics.items():
            tv = type(v)
            if (tv is float or tv is int) and type(k) is str and 0 < len(k) + len(pre) <= 1000:
                fast.append((pre + k if pre else k, v, step, epoch, ctx, t))
            elif tv is not float and tv is not int and isinstance(v, Mapping):
                self.log_metrics(v, step, epoch, context, prefix=f"{pre}{k}")
            else:
                self._log_metric_slow(f"{pre}{k}" if type(k) is str else k, v, step, epoch, ctx)
        if fast:
            sender.put_many(fast)

    # ------------------------------------------------------------------ parameters, others, tags

    def log_parameter(self, name: str, value: Any, step: int | None = None) -> None:
        """Log one parameter (a nested value is flattened with ``|``)."""
        if not isinstance(name, str) or not name:
            self._report(
                "parameter name",
                ValueError(f"parameter name must be a non-empty string, got {name!r}"[:200]),
            )
            return
        self.log_parameters({name: value}, step=step)

    def log_parameters(
        self,
        parameters: Any,
        step: int | None = None,
        prefix: str | None = None,
        *,
        source: str = "manual",
    ) -> None:
        """Log parameters from a dict, dataclass, Namespace or mapping (e.g. OmegaConf), flattened.

        ``source`` says where the values come from, as the parameter batches carry it:
        ``"manual"`` (a user's call, the default), ``"auto-logged"`` (what an integration or
        the run capture logs by itself) or ``"cli"`` (the command line). Any other source is
        reported and the values are logged as ``"manual"``."""
        if self._sender is None:
            return self._dropped()
        try:
            check_parameter_source(source)
        except ValueError as exc:  # reported; the values are still logged, as the user's
            self._report("parameter source", exc)
            source = "manual"
        try:
            step = check_step(step, "step")
            flat, nested = flatten_params(parameters, prefix=f"{prefix}|" if prefix else "")
        except (ValueError, RecursionError) as exc:
            self._report("log_parameters", ValueError(str(exc)))
            return
        ts = int(_time() * 1000)
        for k, v in flat.items():
            if (
                v is None
            ):  # null means "not given" on the wire: keep the value visible, like the SDK
                v = "None"
            self._put(calls.log_parameter(self._key, k, v, step=step, timestamp=ts, source=source))
        if nested and not getattr(self, "_nested_logged", False):
            self._nested_logged = True
            self._put(calls.log_other(self._key, "hasNestedParams", True, timestamp=ts))

    def log_other(self, key: str, value: Any) -> None:
        """Log an "other" value (string, number or boolean; anything else as text)."""
        if self._sender is None:
            return self._dropped()
        try:
            key = check_name(key, "other key")
        except ValueError as exc:
            self._report("log_other", exc)
            return
        if (
            not isinstance(value, (str, int, float, bool))
            or isinstance(value, float)
            and value != value
        ):
            value = json_safe(value)
            if not isinstance(value, (str, int, float, bool)):
                import json

                value = json.dumps(value, separators=(",", ":"))
        if isinstance(value, str):
            value = truncate(value, MAX_TEXT)
        self._put(calls.log_other(self._key, key, value, timestamp=int(_time() * 1000)))

    def log_others(self, others: Mapping[str, Any]) -> None:
        """Log several "other" values."""
        if not isinstance(others, Mapping):
            self._report(
                "log_others", ValueError(f"others must be a mapping, got {type(others).__name__}")
            )
            return
        for k, v in others.items():
            self.log_other(k, v)

    def add_tag(self, tag: str) -> None:
        """Add one tag."""
        self.add_tags([tag])

    def add_tags(self, tags: Iterable[str]) -> None:
        """Add tags (set semantics on the server)."""
        if self._sender is None:
            return self._dropped()
        if isinstance(tags, str):
            tags = [tags]
        clean = []
        for t in tags:
            if not isinstance(t, str) or not t:
                self._report("tag", ValueError(f"tags must be non-empty strings, got {t!r}"))
                continue
            clean.append(truncate(t, 1000))
        if clean:
            self._put(calls.add_tags(self._key, clean))

    def set_name(self, name: str) -> None:
        """Rename the experiment (the ``Name`` other)."""
        if not isinstance(name, str) or not name:
            self._report("set_name", ValueError(f"name must be a non-empty string, got {name!r}"))
            return
        self._name = name
        self.log_other("Name", name)
        if self._sender is not None:
            self._store.update_meta(experimentName=name)

    # ------------------------------------------------------------------ text, html, code, graph

    def log_html(self, html: str, clear: bool = False) -> None:
        """Append HTML to the experiment's HTML tab (``clear=True`` replaces it)."""
        if self._sender is None:
            return self._dropped()
        if not isinstance(html, str):
            self._report(
                "log_html", ValueError(f"html must be a string, got {type(html).__name__}")
            )
            return
        self._put(calls.log_html(self._key, html, override=clear, timestamp=int(_time() * 1000)))

    def log_text(
        self, text: str, step: int | None = None, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Log a text sample."""
        if self._sender is None:
            return self._dropped()
        try:
            if not isinstance(text, str):
                raise ValueError(f"text must be a string, got {type(text).__name__}")
            step = check_step(step)
            if metadata is not None and not isinstance(metadata, Mapping):
                raise ValueError(f"metadata must be a mapping, got {type(metadata).__name__}")
        except ValueError as exc:
            self._report("log_text", exc)
            return
        meta = json_safe(dict(metadata)) if metadata else None
        self._put(
            calls.upload_text_sample(
                self._key, text, step=step, context=self._context, metadata=meta
            )
        )

    def log_code(
        self,
        file_name: str | None = None,
        folder: str | None = None,
        code: str | None = None,
        code_name: str | None = None,
    ) -> None:
        """Log source code: ``code`` text, a file, or every ``*.py`` under ``folder`` (as assets)."""
        if self._sender is None:
            return self._dropped()
        try:
            if code is not None:
                if not isinstance(code, str):
                    raise ValueError(f"code must be a string, got {type(code).__name__}")
                self._put(
                    self._asset_call(
                        FilePart(code_name or "code.py", data=code.encode()),
                        code_name or "code.py",
                        "source_code",
                    )
                )
            if file_name is not None:
                if not os.path.isfile(file_name):
                    raise ValueError(f"file_name {file_name!r} is not a readable file")
                self._put(
                    self._asset_call(
                        FilePart(os.path.basename(file_name), path=os.path.abspath(file_name)),
                        os.path.basename(file_name),
                        "source_code",
                    )
                )
            if folder is not None:
                if not os.path.isdir(folder):
                    raise ValueError(f"folder {folder!r} is not a directory")
                for abs_path, rel in code_capture.iter_code_files(folder):
                    self._put(self._asset_call(FilePart(rel, path=abs_path), rel, "source_code"))
        except ValueError as exc:
            self._report("log_code", exc)

    def set_model_graph(self, graph: Any) -> None:
        """Log the model graph: a string; a Keras model (its ``to_json()`` architecture, which
        the web UI draws, as the official SDK does); or anything whose ``str`` describes the
        model (a PyTorch module prints its layers)."""
        if self._sender is None:
            return self._dropped()
        text = graph if isinstance(graph, str) else None
        to_json = getattr(graph, "to_json", None) if text is None else None
        if callable(to_json) and type(graph).__module__.startswith(("keras", "tf_keras")):
            try:
                text = to_json()
            except Exception as exc:  # e.g. a subclassed model that cannot serialise itself
                log.debug("comet_callbacks: %s.to_json() failed: %r", type(graph).__name__, exc)
                text = None
            if not isinstance(text, str):
                text = None
        if text is None:
            text = str(graph)
        self._put(calls.set_graph(self._key, truncate(text, 10_000_000)))

    def log_system_info(self, key: str, value: Any) -> None:
        """Add one item to the system details (merged by key on the server)."""
        if self._sender is None:
            return self._dropped()
        try:
            key = check_name(key, "system info key")
        except ValueError as exc:
            self._report("log_system_info", exc)
            return
        self._put(
            calls.log_system_details(
                self._key, log_additional_system_info_list=[{"key": key, "value": json_safe(value)}]
            )
        )

    # ------------------------------------------------------------------ assets and models

    def _asset_call(
        self, part: FilePart, file_name: str, type: str, **kw: Any
    ) -> Call | PendingSnapshot:
        if part.data is not None:
            part = self._store.keep_file(part)
        ext = os.path.splitext(file_name)[1].lstrip(".") or None
        call = calls.upload_asset(
            self._key, part, file_name=file_name, extension=ext, type=type, **kw
        )
        if part.path and (type in _SNAPSHOT_TYPES or self._mode == "offline"):
            # one snapshot, by the core, finished on the sender's thread (RunStore.snapshot)
            return self._store.snapshot(call)
        return call

    def scratch_folder(self) -> str:
        """A new empty folder for files made only to be logged (e.g. a final model saved for
        :meth:`log_model`). It belongs to the run: its files need no snapshot, and they are
        removed once delivered, or with the run."""
        return self._store.scratch_dir()

    def log_asset(
        self,
        file_data: str | os.PathLike[str] | bytes | io.IOBase,
        file_name: str | None = None,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        type: str = "asset",
        overwrite: bool = False,
        epoch: int | None = None,
    ) -> None:
        """Upload a file (path), bytes, or a binary file object as an asset."""
        if self._sender is None:
            return self._dropped()
        try:
            step = check_step(step)
            epoch = check_step(epoch, "epoch")
            if metadata is not None and not isinstance(metadata, Mapping):
                raise ValueError(f"metadata must be a mapping, got {type(metadata).__name__}")
            part = self._file_part(file_data, file_name)
        except (ValueError, OSError) as exc:
            self._report("log_asset", ValueError(str(exc)))
            return
        meta = json_safe(dict(metadata)) if metadata else None
        self._put(
            self._asset_call(
                part,
                part.filename,
                type,
                step=step,
                epoch=epoch,
                context=self._context,
                overwrite=bool(overwrite),
                metadata=meta,
            )
        )

    @staticmethod
    def _file_part(file_data: Any, file_name: str | None) -> FilePart:
        if isinstance(file_data, (str, os.PathLike)):
            path = os.fspath(file_data)
            if not os.path.isfile(path):
                raise ValueError(f"file_data {path!r} is not a readable file")
            return FilePart(file_name or os.path.basename(path), path=os.path.abspath(path))
        if isinstance(file_data, (bytes, bytearray, memoryview)):
            return FilePart(file_name or "asset.bin", data=bytes(file_data))
        read = getattr(file_data, "read", None)
        if callable(read):
            data = read()
            if isinstance(data, str):
                data = data.encode("utf-8")
            return FilePart(
                file_name or os.path.basename(getattr(file_data, "name", "") or "asset.bin"),
                data=data,
            )
        raise ValueError(
            f"file_data must be a path, bytes or a file object, got {type(file_data).__name__}"
        )

    def log_model(
        self,
        name: str,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        file_name: str | None = None,
        step: int | None = None,
    ) -> None:
        """Upload a model file, or a whole folder (nested), as the experiment model ``name``.

        Files are streamed from disk (never read whole), retried on transient failures, and
        kept in the event log for ``comet-callbacks upload`` if delivery fails.
        """
        if self._sender is None:
            return self._dropped()
        try:
            name = check_name(name, "model name")
            step = check_step(step)
            path = os.fspath(path)
            if os.path.isfile(path):
                files = [(os.path.abspath(path), file_name or os.path.basename(path))]
            elif os.path.isdir(path):
                base = os.path.basename(os.path.normpath(path))
                files = []
                for dirpath, dirnames, filenames in os.walk(path):
                    dirnames.sort()
                    for fn in sorted(filenames):
                        full = os.path.join(dirpath, fn)
                        rel = os.path.relpath(full, path).replace(os.sep, "/")
                        files.append((os.path.abspath(full), f"{base}/{rel}"))
                if not files:
                    raise ValueError(f"model folder {path!r} contains no files")
            else:
                raise ValueError(f"model path {path!r} is neither a file nor a folder")
        except (ValueError, TypeError) as exc:
            self._report("log_model", ValueError(str(exc)))
            return
        meta = json_safe(dict(metadata)) if metadata else None
        for abs_path, fname in files:
            part = FilePart(fname, path=abs_path)
            self._put(
                self._asset_call(
                    part,
                    fname,
                    "model-element",
                    step=step,
                    overwrite=bool(overwrite),
                    grouping_name=name,
                    metadata=meta,
                )
            )
        self._models.setdefault(name, []).extend(f for _, f in files)

    def register_model(
        self,
        name: str,
        version: str | None = None,
        registry_name: str | None = None,
        description: str | None = None,
        public: bool = False,
        comment: str | None = None,
        stages: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> RegisteredModel | None:
        """Register the logged model ``name`` in the model registry.

        Waits for the model's uploads, then creates the registry model or adds a version
        (default: the next patch version, first ``1.0.0``). Returns ``registry_model_id``,
        ``version`` and ``item_id``. Offline, the registration is recorded and performed by
        ``comet-callbacks upload`` (returns None).
        """
        if self._sender is None:
            return None
        try:
            if name not in self._models:
                raise registry.RegistryError(
                    f"model {name!r} was never logged in this experiment: call log_model({name!r}, path) first"
                )
            if version is not None:
                registry.parse_semver(version)  # RegistryError naming the version
            stage_list = list(stages) if stages is not None else None
            args: dict[str, Any] = dict(
                model_name=name,
                version=version,
                registry_name=registry_name,
                description=description,
                public=bool(public),
                comment=comment,
                stages=stage_list,
            )
            if self._mode == "offline" or self._client is None:
                self._put(Op("register_model", {**args, "workspace": self._workspace}))
                return None
            if not self.flush(timeout if timeout is not None else self.settings.timeout_cleaning):
                raise registry.RegistryError(
                    f"the files of model {name!r} could not all be uploaded in time; not registering"
                )
            assert self._workspace is not None
            res = registry.register(self._client, self._workspace, self._key, **args)
            return RegisteredModel(res)
        except Exception as exc:  # never break training unless strict
            if self.strict:
                raise
            log.error("comet_callbacks: model registration of %r failed: %s", name, exc)
            return None

    # ------------------------------------------------------------------ flush and end

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is delivered (or written, offline)."""
        if self._sender is None:
            return True
        if self._output is not None:
            try:
                self._output.flush()
            except Exception:
                pass
        return self._sender.flush(self.settings.timeout_cleaning if timeout is None else timeout)

    def end(self, status: str = "success") -> None:
        """Stop capture and beats, flush (bounded by ``COMET_TIMEOUT_CLEANING``), set the end
        time and stop the experiment. ``status``: ``success``, ``failed`` or ``interrupted``.

        What could not be delivered in time stays in the run's event log, and the command
        that sends it later is printed. Never raises unless ``strict``.
        """
        global _current
        with self._lock:
            if self.ended:
                return
            self.ended = True
        if _current is self:
            _current = None
        if self._sender is None:
            return
        if status not in ("success", "failed", "interrupted", "crashed"):
            log.warning("comet_callbacks: end(status=%r) is not a known status; using it", status)
        for part in (self._output, self._monitor):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:
                    log.debug("comet_callbacks: stopping capture failed: %r", exc)
        self._beat_stop.set()
        capture = self._capture_thread
        if capture is not None and capture.is_alive():
            # a very short run: let the start-up capture (system details, git) finish first
            capture.join(timeout=min(10.0, max(0.0, float(self.settings.timeout_cleaning))))
        sender, key = self._sender, self._key
        assert key is not None
        timeout = max(0.0, float(self.settings.timeout_cleaning))
        deadline = time.monotonic() + timeout
        end_ms = int(_time() * 1000)
        background = self._mode == "online" and bool(self.settings.background_upload)
        if background:
            # hand over quickly: whatever is not delivered in a moment goes to a detached uploader
            timeout = min(timeout, 0.5)
            deadline = time.monotonic() + timeout
        if not self._secondary:
            # everything logged so far first, so that `stop` really is the last request
            sender.flush(timeout)
            start = self._start_ms if self._mode == "offline" else None
            sender.put_many(closing_calls(key, status, end_ms, start))  # as upload closes a run
        done = sender.close(max(0.0, deadline - time.monotonic()))
        self._sender = None
        self._store.update_meta(endTimeMillis=end_ms, status=status, ended=True)
        if self._mode == "online":
            summary = sender.stats.summary()
            if done and not self._secondary and self.settings.display_summary_level:
                print(
                    f"comet_callbacks: experiment ended ({status}): {summary}; {self.url}",
                    file=sys.stderr,
                )
            if done:
                self._store.remove()
                if self._store.disk_error is not None and not sender.stats.dropped:
                    print(
                        f"comet_callbacks: the offline directory {self._store.root} could not "
                        f"be written during the run ({self._store.disk_error.strerror}); every "
                        "event was delivered from memory, none lost",
                        file=sys.stderr,
                    )
                if sender.stats.dropped:
                    msg = (
                        f"comet_callbacks: {sender.stats.dropped} events were not kept ({summary}): "
                        f"the offline directory {self._store.root} could not be written and "
                        "memory was full (COMET_OFFLINE_DIRECTORY, COMET_MAX_QUEUE_SIZE)"
                    )
                    print(msg, file=sys.stderr)
                    if self.strict:
                        raise ExperimentError(msg)
                elif sender.stats.failed:
                    log.warning("comet_callbacks: %s", summary)
                    if self.strict:
                        raise ExperimentError(f"some events were refused by the server: {summary}")
            elif not self._store.on_disk:
                self._store.close()
                store = self._store
                lost = sender.undelivered_after(store.disk_last_seq)
                kept = sender.pending() - lost
                msg = (
                    f"comet_callbacks: {sender.pending()} events could not be delivered in "
                    f"{timeout:g}s ({summary}). {lost + sender.stats.dropped} events are lost: "
                    f"the offline directory {store.root} could not be written "
                    "(COMET_OFFLINE_DIRECTORY)"
                )
                if store.disk_error is not None and kept > 0:
                    msg += (
                        f". The other {kept}, logged before the disk filled up, are kept in "
                        f"{store.path}; send them with: comet-callbacks upload {store.path}"
                    )
                print(msg, file=sys.stderr)
                if self.strict:
                    raise ExperimentError(msg)
            elif background:
                self._store.close()
                self._upload_in_background(sender.pending())
            else:
                self._store.close()
                msg = (
                    f"comet_callbacks: {sender.pending()} events could not be delivered in "
                    f"{timeout:g}s ({summary}). They are kept in "
                    f"{self._store.path}; send them with: comet-callbacks upload {self._store.path}"
                )
                log.warning(msg)
                if self.strict:
                    raise ExperimentError(msg)
        else:
            self._store.close()
            store = self._store
            if store.disk_error is not None:
                not_kept = sender.stats.dropped + store.lost_lines
                msg = (
                    f"comet_callbacks: offline run saved in {store.path} up to event "
                    f"{store.disk_last_seq}: the disk filled up ({store.disk_error.strerror}) "
                    f"and {not_kept} events were not kept (lost). Upload what was kept with: "
                    f"comet-callbacks upload {store.path}"
                )
                print(msg, file=sys.stderr)
                if self.strict:
                    raise ExperimentError(msg)
            elif not self._secondary:
                print(
                    f"comet_callbacks: offline run saved in {self._store.path}; "
                    f"upload with: comet-callbacks upload {self._store.path}",
                    file=sys.stderr,
                )
        if self._client is not None:
            self._client.close()
        _live.discard(self)

    def _upload_in_background(self, pending: int) -> None:
        """Start a detached ``comet-callbacks upload --remove <run>`` that delivers the rest.

        The key travels in the child's environment only (never on disk). If the child cannot
        start, the usual "upload later" line is printed: nothing is lost either way.
        """
        import subprocess

        env = dict(os.environ)
        env["COMET_URL_OVERRIDE"] = self.settings.root
        if self.settings.api_key:
            env["COMET_API_KEY"] = self.settings.api_key
        path = self._store.path
        cmd = [sys.executable, "-m", "comet_callbacks.cli", "upload", "--quiet", "--remove", path]
        try:
            with open(os.path.join(path, "upload.log"), "ab") as log_file:
                proc = subprocess.Popen(
                    cmd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            print(
                f"comet_callbacks: could not start the background upload ({exc}); send the "
                f"{pending} remaining events with: comet-callbacks upload {path}",
                file=sys.stderr,
            )
            return
        print(
            f"comet_callbacks: delivering the last {pending} events in the background "
            f"(pid {proc.pid}, log {os.path.join(path, 'upload.log')})",
            file=sys.stderr,
        )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.end("success")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("interrupted")
        else:
            self.end("failed")

    def __repr__(self) -> str:
        return f"Experiment(key={self.key!r}, mode={self._mode!r}, workspace={self._workspace!r}, project={self._project!r})"

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's state (threads, sender, client, files, locks).

        The child never sends, writes, ends or waits for anything of the parent's experiment;
        its ``log_*`` calls are no-ops (one warning per process). Takes no lock: a lock held
        by another thread at fork time would never be released in the child.
        """
        self._lock = threading.Lock()
        self._forked = True
        self.ended = True
        output, self._output = self._output, None
        if output is not None:
            try:
                output.forget_after_fork()
            except Exception:
                pass
        store = getattr(self, "_store", None)
        if store is not None:
            try:
                store.forget_after_fork()
            except Exception:
                pass
        # the parent's threads do not exist here; its sockets are left alone (never closed
        # with a shutdown, never reused)
        self._sender = None
        self._client = None
        self._monitor = None
        self._capture_thread = None
        self._beat_thread = None
        self._beat_stop = threading.Event()


def start(**kwargs: Any) -> Experiment:
    """Create (or continue, with ``experiment_key=``) an experiment; same arguments as :class:`Experiment`."""
    return Experiment(**kwargs)


def _forget_current() -> None:
    global _current
    _current = None


exits.on_fork_in_child(_forget_current)  # a forked child has no running experiment
