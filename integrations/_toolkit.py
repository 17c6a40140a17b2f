"""What the three framework integrations share, written once.

A framework file (``lightning.py``, ``transformers.py``, ``keras.py``) only maps its hooks onto
these pieces, so the three frameworks behave the same way and a fix lands once:

* :func:`guarded` and :func:`open_experiment`: one error policy. A bug in a hook is reported
  once and never breaks training. A refused API key, an unknown workspace, an unreachable
  server or an unwritable folder never breaks training either: the run is logged offline
  instead (kept on disk for ``comet-callbacks upload``) after one warning, or, when even that
  is impossible, training goes on untracked. Strict mode (``COMET_STRICT=1``) raises instead.
* :func:`numbers`: tensors and framework scalars to Python numbers (the core's
  :func:`~comet_callbacks.values.to_metric_value`).
* :func:`parse_log_model` / :class:`ModelPolicy`: one meaning of ``log_model``.
* :func:`log_final_model`: log the final model and register it; :class:`FileVersions`: each
  version of a checkpoint file handed to the core once.
* :func:`reopen`: continue an ended experiment for a later ``evaluate()``.
* :func:`global_rank`, :func:`share_key` and :func:`join_as_secondary`: rank handling;
  non-zero ranks send only their system metrics when ``COMET_DISTRIBUTED_SYSTEM_METRICS`` is on.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from comet_callbacks import distributed
from comet_callbacks.config import FIELDS, ConfigError, Settings
from comet_callbacks.experiment import Experiment, ExperimentError
from comet_callbacks.values import to_metric_value

__all__ = [
    "NO_RECAPTURE",
    "FileVersions",
    "ModelPolicy",
    "global_rank",
    "guarded",
    "report_hook_error",
    "join_as_secondary",
    "log_final_model",
    "numbers",
    "open_experiment",
    "parse_log_model",
    "non_settings",
    "reopen",
    "settings_from",
    "share_key",
    "warn_once",
]

log = logging.getLogger("comet_callbacks")
F = TypeVar("F", bound=Callable[..., Any])

#: Settings that capture the environment again: off when continuing an experiment (it was
#: captured when the experiment was created).
NO_RECAPTURE: dict[str, bool] = dict(
    auto_log_code=False,
    auto_log_git_metadata=False,
    auto_log_git_patch=False,
    auto_log_env_details=False,
)
#: Also no system metrics or console output: for a short logging call (one ``evaluate()``).
_BRIEF: dict[str, bool] = dict(
    NO_RECAPTURE, auto_log_env_cpu=False, auto_log_env_gpu=False, auto_log_output_logger=False
)


# ------------------------------------------------------------------------------ error policy


def warn_once(reported: set[str], what: str, message: str, *args: Any, **kw: Any) -> None:
    """Log ``message`` as a warning the first time ``what`` goes wrong for this callback."""
    if what not in reported:
        reported.add(what)
        log.warning(message, *args, **kw)


def guarded(fn: F) -> F:
    """Wrap a hook (a method of an object with ``_strict()`` and a ``_reported`` set) so that an
    error in it is reported once per hook and never reaches the framework; strict mode
    re-raises."""

    @functools.wraps(fn)
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:
            report_hook_error(self, fn.__name__, exc)
            return None

    return hook  # type: ignore[return-value]


def report_hook_error(owner: Any, hook: str, exc: Exception) -> None:
    """What :func:`guarded` does with an error in ``owner``'s ``hook`` (for hot hooks that
    inline their ``try``): strict mode re-raises it, else it is reported once per hook."""
    if owner._strict():
        raise exc
    name = f"{type(owner).__name__}.{hook}"
    warn_once(
        owner._reported,
        name,
        "comet_callbacks: %s failed: %s (training goes on; further errors in this hook "
        "are not reported)",
        name,
        exc,
        exc_info=not isinstance(exc, ExperimentError),
    )


def open_experiment(settings: Settings, reported: set[str], **kwargs: Any) -> Experiment | None:
    """Create (or continue, with ``experiment_key=`` in ``kwargs``) an experiment without ever
    breaking training.

    A refused key, an unknown workspace or experiment, or a folder that cannot be written:
    one warning, and the run is logged offline instead, kept on disk for
    ``comet-callbacks upload`` (an unreachable server already falls back to offline in the
    core). If even the offline run cannot be written: one warning, and None (untracked).
    Strict mode raises the first error."""
    try:
        return Experiment(settings=settings, **kwargs)
    except (ExperimentError, ConfigError, OSError) as exc:
        if settings.strict:
            raise
        first: Exception = exc
    if settings.effective_mode == "online":
        try:
            exp = Experiment(settings=settings.replace(mode="offline"), **kwargs)
        except (ExperimentError, ConfigError, OSError) as exc:
            first = exc
        else:
            warn_once(
                reported,
                "start",
                "comet_callbacks: %s; logging this run OFFLINE to %s instead (upload it later "
                "with `comet-callbacks upload`); training goes on",
                first,
                exp.offline_path,
            )
            return exp
    warn_once(
        reported,
        "start",
        "comet_callbacks: cannot start the experiment: %s; training goes on untracked",
        first,
    )
    return None


# ------------------------------------------------------------------------------ values


def numbers(logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float | int]:
    """The numeric entries of a framework's logs (tensors, NumPy and backend scalars
    converted), named ``prefix + name``; anything else (strings, arrays) is left out."""
    out: dict[str, float | int] = {}
    for name, value in (logs or {}).items():
        try:
            out[f"{prefix}{name}"] = to_metric_value(value, name)
        except ValueError:
            continue
    return out


def number(value: Any) -> Any:
    """One value as a Python number when it is one (tensor, NumPy scalar), else unchanged."""
    try:
        return to_metric_value(value)
    except ValueError:
        return value


# ------------------------------------------------------------------------------ models

LogModel = Literal[False, True, "best", "last", "all"]
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "", "none")


def parse_log_model(value: Any) -> LogModel:
    """``log_model`` (argument or ``COMET_LOG_MODEL``): ``False`` | ``True`` | ``"best"`` |
    ``"last"`` | ``"all"``. Raises ``ValueError`` naming the value otherwise."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s == "best":
        return "best"
    if s == "last":
        return "last"
    if s == "all":
        return "all"
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"log_model must be False, True, 'best', 'last' or 'all', got {value!r}")


@dataclass(frozen=True)
class ModelPolicy:
    """What ``log_model`` means, the same for every framework.

    ``False``: no model. ``True`` (default): at the end, the best checkpoint when the framework
    tracks one, else the final model. ``"best"``: the best checkpoint (else the final model).
    ``"last"``: the final model (the last state), never the best checkpoint. ``"all"``: every
    checkpoint as it is saved, and at the end the model as with ``True``."""

    mode: LogModel

    @classmethod
    def of(cls, argument: Any, settings: Settings) -> ModelPolicy:
        """The argument when given, else ``COMET_LOG_MODEL``."""
        return cls(parse_log_model(settings.log_model if argument is None else argument))

    @property
    def enabled(self) -> bool:
        return self.mode is not False

    @property
    def each_checkpoint(self) -> bool:
        """Upload every checkpoint when it is saved."""
        return self.mode == "all"

    @property
    def prefer_best(self) -> bool:
        """The experiment model is the best checkpoint when there is one."""
        return self.mode in (True, "best", "all")


def log_final_model(
    exp: Experiment,
    name: str,
    path: str,
    *,
    registry_name: str | None = None,
    skip: Callable[[str], bool] | None = None,
    **log_model_kwargs: Any,
) -> dict[str, Any] | None:
    """Log ``path`` (file or folder) as the experiment model ``name``, then register it under
    ``registry_name`` (argument, else ``COMET_MODEL_REGISTRY_NAME``; unset: not registered).
    ``skip``: for a folder, the file names to leave out (e.g. a checkpoint's training state);
    the others are logged as ``<name>/<relative path>``. The core snapshots every file.
    Returns the registration (None when not registered, or registered later offline)."""
    if skip is None or not os.path.isdir(path):
        exp.log_model(name, path, **log_model_kwargs)
    else:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for fn in sorted(f for f in filenames if not skip(f)):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                exp.log_model(name, full, file_name=f"{name}/{rel}", **log_model_kwargs)
    registry = registry_name or exp.settings.model_registry_name
    if not registry:
        return None
    res = exp.register_model(name, registry_name=registry)
    if res is not None:
        log.info("comet_callbacks: registered model %r version %s", registry, res.get("version"))
    return res


class FileVersions:
    """The versions (modification time, size) of checkpoint files already handed to the
    core, so that each version is logged once however often a hook sees it."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}

    def is_new(self, path: str) -> bool:
        """True (and remembered) when ``path`` is a file in a version not seen before."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if self._seen.get(path) == stamp:
            return False
        self._seen[path] = stamp
        return True

    def clear(self) -> None:
        self._seen.clear()


# ------------------------------------------------------------------------------ lifetime


def reopen(
    settings: Settings, key: str, reported: set[str], *, brief: bool = False
) -> Experiment | None:
    """Continue the ended experiment ``key`` (e.g. for ``evaluate()`` after training), without
    capturing the environment again; ``brief`` (one logging call) also leaves out system
    metrics and console output."""
    quiet = _BRIEF if brief else NO_RECAPTURE
    return open_experiment(
        settings.replace(experiment_name=None, **quiet), reported, experiment_key=key
    )


# ------------------------------------------------------------------------------ ranks


def global_rank(framework_rank: int | None = None) -> int:
    """This process's global rank: the framework's when it knows one, else the launcher's
    (torch.distributed, torchrun, SLURM, MPI, TF_CONFIG...), else ``jax.process_index()`` when
    JAX is loaded."""
    if framework_rank:
        return int(framework_rank)
    rank = distributed.global_rank()
    jax = sys.modules.get("jax")
    if rank == 0 and jax is not None:
        try:
            rank = int(jax.process_index())
        except Exception:
            pass
    return rank


def join_as_secondary(
    settings: Settings, key: str | None, rank: int, reported: set[str]
) -> Experiment | None:
    """On a non-zero rank with ``COMET_DISTRIBUTED_SYSTEM_METRICS`` on: join rank 0's
    experiment ``key`` as a secondary that sends only this rank's system metrics (context
    ``rank<N>``). None otherwise, or (after one warning) when it cannot join."""
    if rank == 0 or not key or not settings.distributed_system_metrics:
        return None
    try:
        return Experiment(
            settings=settings.replace(experiment_name=None),
            experiment_key=key,
            secondary=True,
            context=distributed.rank_context(rank),
        )
    except (ExperimentError, OSError) as exc:
        if settings.strict:
            raise
        warn_once(
            reported,
            "secondary",
            "comet_callbacks: rank %s cannot join the experiment: %s",
            rank,
            exc,
        )
        return None


def share_key(
    settings: Settings,
    key: str | None,
    rank: int,
    reported: set[str],
    *,
    fallback: str | None = None,
    joined: Experiment | None = None,
) -> Experiment | None:
    """A collective, called on every rank: rank 0's experiment ``key`` is broadcast (else
    ``fallback``) and a non-zero rank joins it as a secondary (:func:`join_as_secondary`),
    unless it already has one (``joined``, returned as is). Returns this rank's secondary."""
    shared = distributed.broadcast_key(key if rank == 0 else None) or fallback
    return joined if joined is not None else join_as_secondary(settings, shared, rank, reported)


# ------------------------------------------------------------------------------ settings

_SETTING_NAMES = frozenset(f.name for f in FIELDS)


def settings_from(kwargs: Mapping[str, Any]) -> Settings:
    """A callback's setting arguments resolved: arguments > ``COMET_*`` > config file."""
    return Settings.resolve(
        **{k: v for k, v in kwargs.items() if k in _SETTING_NAMES and v is not None}
    )


def non_settings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The other :class:`Experiment` arguments among a callback's keywords (``tags``...)."""
    return {k: v for k, v in kwargs.items() if k not in _SETTING_NAMES}
