"""Keras 3 integration: :class:`CometCallback` and the opt-in :func:`autolog`.

Works on every Keras 3 backend and imports nothing backend-specific, so a PyTorch or JAX run
never imports TensorFlow. What is logged: README, "What each integration logs".

Experiment lifetime. Each ``fit()`` (or stand-alone ``evaluate()``) is a *session*. Online,
the experiment ends with each session (finished, with its model, as soon as training returns,
also in a notebook); a later session continues it by key. Offline, an experiment cannot be
continued by key, so it stays open until process exit or :meth:`CometCallback.end`. A
``fit()`` that raises leaves it open: :func:`autolog` ends it as failed, otherwise the
process-exit hooks do. An ``experiment=`` you pass in is yours and is never ended
(``end_experiment=True`` to change that).

Checkpoints. Keras does not show a callback the other callbacks: the files of a
``ModelCheckpoint`` are uploaded when you name it (``checkpoint=``, its path pattern or a
folder) and ``log_checkpoints=True`` or ``COMET_LOG_MODEL=all``; :func:`autolog` finds them
itself. New or changed files go to the core after each epoch, which snapshots them.

Distribution: only global rank 0 logs.
"""

from __future__ import annotations

import functools
import glob
import inspect
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import keras

from comet_callbacks.config import Settings
from comet_callbacks.distributed import broadcast_key
from comet_callbacks.experiment import Experiment

from ._params import fit_arguments, keras_parameters
from ._toolkit import (
    FileVersions,
    ModelPolicy,
    global_rank,
    guarded,
    join_as_secondary,
    log_final_model,
    non_settings,
    numbers,
    open_experiment,
    reopen,
    settings_from,
    warn_once,
)

__all__ = ["CometCallback", "autolog"]

log = logging.getLogger("comet_callbacks")


def _numbers(logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float | int]:
    """Numeric log entries; backend tensors without ``.item()`` (TensorFlow) go through NumPy."""
    plain = {
        k: v if hasattr(v, "item") or isinstance(v, (int, float)) else _to_numpy(v)
        for k, v in (logs or {}).items()
    }
    return numbers(plain, prefix)


def _to_numpy(value: Any) -> Any:
    try:
        return keras.ops.convert_to_numpy(value)
    except Exception:
        return value


class CometCallback(keras.callbacks.Callback):
    """Log a Keras 3 ``fit()`` to Comet: parameters, graph, metrics, the model and registry.

    Args:
        experiment: log into this experiment (you own it: it is not ended). Default: the
            callback creates one at the start of training from ``experiment_kwargs`` and the
            ``COMET_*`` settings, and ends it at the end of training.
        log_batch_every: also log the batch logs as ``batch_<name>`` every N optimizer steps.
        log_model: save the trained model (``.keras``) and log it; default from
            ``COMET_LOG_MODEL`` (true unless set to false).
        model_name: the name of the logged model (and of the registry model by default).
        registry_name: register the model under this registry name; default
            ``COMET_MODEL_REGISTRY_NAME``.
        log_checkpoints: upload the files ``checkpoint`` writes; default true when
            ``COMET_LOG_MODEL=all``.
        checkpoint: a ``keras.callbacks.ModelCheckpoint``, its ``filepath`` pattern or a folder
            (or a list of them) whose files are uploaded when ``log_checkpoints`` is on.
        end_experiment: end the experiment at the end of each ``fit()``/``evaluate()``
            session. Default: yes for an experiment the callback created online; an offline
            one stays open until process exit (or :meth:`end`); never for ``experiment=``.
        experiment_kwargs: passed to :class:`~comet_callbacks.Experiment` (``project_name``,
            ``workspace``, ``experiment_name``, ``tags``, any setting...).
    """

    #: Keras 3 may dispatch batch hooks of this callback on a worker thread: logging only
    #: enqueues, and the batch hook reads no model state.
    async_safe = True

    def __init__(
        self,
        experiment: Experiment | None = None,
        *,
        log_batch_every: int | None = None,
        log_model: bool | str | None = None,
        model_name: str = "keras-model",
        registry_name: str | None = None,
        log_checkpoints: bool | None = None,
        checkpoint: Any = None,
        end_experiment: bool | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_batch_every is not None and (
            not isinstance(log_batch_every, int) or log_batch_every < 1
        ):
            raise ValueError(f"log_batch_every must be a positive int, got {log_batch_every!r}")
        self._exp = experiment
        self._owns = experiment is None
        self._end = end_experiment if self._owns or end_experiment else False
        self._kwargs = experiment_kwargs
        self._settings: Settings | None = experiment.settings if experiment is not None else None
        self._secondary: Experiment | None = None
        self._key_shared = False
        self._others = non_settings(experiment_kwargs)
        self.log_batch_every = log_batch_every
        self._log_model = log_model
        self.model_name = model_name
        self._registry_name = registry_name
        self._log_checkpoints = log_checkpoints
        self._checkpoints: list[Any] = []
        if checkpoint is not None:
            self.add_checkpoint(checkpoint)
        self._reported: set[str] = set()
        self._key: str | None = experiment.key if experiment is not None else None
        self._in_fit = False
        self._session = False  # an evaluate() outside fit opened the experiment
        self._raw_start = 0  # raw optimizer iterations at the start of the epoch
        self._accumulation = 1
        self._per_execution = 1
        self._versions = FileVersions()
        self._fit_args: dict[str, Any] = {}
        if log_batch_every:
            # Batch hooks exist only when batch logging is on: Keras checks whether a callback
            # overrides them (``utils.is_default``) before deciding how to dispatch them.
            self.on_train_batch_end = self._log_train_batch  # type: ignore[method-assign]

    # ------------------------------------------------------------------ the experiment

    @property
    def experiment(self) -> Experiment | None:
        """The experiment being logged to (None on non-zero ranks or before training)."""
        return self._exp

    @property
    def settings(self) -> Settings:
        """Resolved settings: the experiment's, else this callback's arguments > ``COMET_*``."""
        if self._settings is None:
            self._settings = settings_from(self._kwargs)
        return self._settings

    def _strict(self) -> bool:
        exp = self._exp
        if exp is not None:
            return exp.strict
        return bool(self.settings.strict)

    def _open(self) -> Experiment | None:
        """The live experiment for this session: create it, or continue it by key after an
        earlier session ended it. None on non-zero ranks (which join as secondaries when
        ``COMET_DISTRIBUTED_SYSTEM_METRICS`` is on) or when it cannot be started."""
        rank, exp = global_rank(), self._exp
        if rank != 0:
            exp = None
        elif exp is None:
            exp = open_experiment(self.settings, self._reported, **self._others)
        elif exp.ended:
            exp = self._reopen(exp) if self._owns else None
        if self.settings.distributed_system_metrics and not self._key_shared:
            self._key_shared = True  # a collective: once per callback on every rank
            key = broadcast_key(exp.key if exp is not None else None)
            key = key or self.settings.experiment_key
            self._secondary = join_as_secondary(self.settings, key, rank, self._reported)
        if exp is not None:
            self._exp, self._key = exp, exp.key
        return exp

    def _reopen(self, ended: Experiment) -> Experiment | None:
        if ended.mode == "online" and self._key:
            return reopen(self.settings, self._key, self._reported)
        log.warning(
            "comet_callbacks: the previous offline experiment was ended; logging this session "
            "to a new offline experiment"
        )
        return open_experiment(self.settings, self._reported, **self._others)

    def _close(self, status: str = "success", force: bool = False) -> None:
        """End of a session: end the experiment when the callback owns it (after delivering
        what it logged).

        Offline (by default) the experiment stays open until process exit or :meth:`end`: an
        offline run cannot be continued by key, and nobody sees it before it is uploaded."""
        sec, self._secondary, self._key_shared = self._secondary, None, False
        if sec is not None:
            sec.end(status)
        exp = self._exp
        if exp is None or exp.ended:
            return
        end = self._end
        if end is None:
            end = exp.mode != "offline"
        if end or force:
            exp.end(status)

    def end(self, status: str = "success") -> None:
        """End the experiment now (``success``, ``failed`` or ``interrupted``), even one passed
        in with ``experiment=``."""
        self._close(status, force=True)

    def set_fit_args(self, **fit_args: Any) -> None:
        """Record ``fit()`` arguments (batch size...) to log as parameters; :func:`autolog`
        calls it. Call it before ``fit()``."""
        self._fit_args.update(fit_args)

    def add_checkpoint(self, checkpoint: Any) -> None:
        """Watch a ``ModelCheckpoint``, a file path pattern or a folder (or a list of them)."""
        if isinstance(checkpoint, (list, tuple)):
            for c in checkpoint:
                self.add_checkpoint(c)
        elif checkpoint not in self._checkpoints:
            self._checkpoints.append(checkpoint)

    # ------------------------------------------------------------------ helpers

    def _policy(self) -> ModelPolicy:
        return ModelPolicy.of(self._log_model, self.settings)

    def _iterations(self) -> int | None:
        """``optimizer.iterations`` (the optimizer steps taken), None without an optimizer."""
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return None
        return int(keras.ops.convert_to_numpy(opt.iterations))

    def _raw_iterations(self) -> int:
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return 0
        raw = getattr(opt, "_iterations", None)
        return int(keras.ops.convert_to_numpy(raw if raw is not None else opt.iterations))

    # ------------------------------------------------------------------ parameters and graph

    def _parameters(self) -> dict[str, Any]:
        return keras_parameters(self.model, self.params or {}, self._fit_args)

    def _log_model_description(self, exp: Experiment) -> None:
        model = self.model
        try:
            graph = model.to_json()
        except Exception:  # subclassed models without get_config
            graph = None
        lines: list[str] = []
        try:
            model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        except Exception as exc:
            log.debug("comet_callbacks: model.summary() failed: %r", exc)
        summary = "\n".join(lines)
        if graph or summary:
            exp.set_model_graph(graph or summary)
        if summary:
            exp.log_asset(summary.encode("utf-8"), file_name="model_summary.txt")

    # ------------------------------------------------------------------ training hooks

    @guarded
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._in_fit = True
        exp = self._open()
        if exp is None:
            return
        exp.log_others(
            {"keras_backend": keras.backend.backend(), "keras_version": keras.__version__}
        )
        if exp.settings.auto_log_parameters:
            exp.log_parameters(self._parameters())
        if exp.settings.auto_log_graph:
            self._log_model_description(exp)
        opt = getattr(self.model, "optimizer", None)
        self._accumulation = int(getattr(opt, "gradient_accumulation_steps", None) or 1)
        self._per_execution = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        self._raw_start = self._raw_iterations()
        if self._upload_checkpoints():
            # only files written from now on are uploaded
            self._versions.clear()
            for path in self._checkpoint_files():
                self._versions.is_new(path)

    @guarded
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._exp is None or self._exp.ended:
            return
        self._raw_start = self._raw_iterations()
        self._exp.set_epoch(epoch)

    @guarded
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        exp = self._exp
        if exp is None or exp.ended:
            return
        step = self._iterations()
        if exp.settings.auto_log_metrics:
            exp.log_metrics(_numbers(logs), step=step, epoch=epoch)
        if self._upload_checkpoints():
            self._log_new_checkpoints(exp, step)

    @guarded
    def _log_train_batch(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Batch logging (bound as ``on_train_batch_end`` only when ``log_batch_every`` is set).

        Keras passes the index of the last batch of the execution (``steps_per_execution``
        batches per call), and may run this on several worker threads, in any order. So the
        decision is stateless: log when the optimizer steps this execution took include a
        multiple of ``log_batch_every``, at the step reached. Steps are derived from the
        iterations counted at the epoch's start; the model is not read here (with JAX that
        would force a state sync)."""
        exp = self._exp
        if exp is None or exp.ended or not exp.settings.auto_log_metrics:
            return
        every, acc = self.log_batch_every or 1, self._accumulation
        steps = (self.params or {}).get("steps")
        if steps:  # the last execution of an epoch may be partial: Keras still reports its
            batch = min(batch, steps - 1)  # nominal last batch, past the epoch's end
        first = (batch // self._per_execution) * self._per_execution  # execution's first batch
        before = (self._raw_start + first) // acc
        step = (self._raw_start + batch + 1) // acc
        if step // every > before // every:
            exp.log_metrics(_numbers(logs, prefix="batch_"), step=step)

    @guarded
    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._in_fit = False
        exp = self._exp
        if exp is None or exp.ended:
            self._close("success")  # a secondary (non-zero rank) ends here
            return
        exp.set_epoch(None)  # what follows (model, evaluation) belongs to no epoch
        if self._upload_checkpoints():
            self._log_new_checkpoints(exp, self._iterations())
        try:
            if self._policy().enabled:
                self._log_final_model(exp)  # may raise (a model Keras cannot save)...
        finally:
            self._close("success")  # ...the experiment is ended all the same

    # ------------------------------------------------------------------ evaluation hooks

    @guarded
    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._in_fit:  # validation inside fit(): reported with the epoch logs as val_*
            return
        self._session = self._open() is not None

    @guarded
    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._in_fit or not self._session:
            return
        self._session = False
        exp = self._exp
        if exp is None or exp.ended:
            return
        if exp.settings.auto_log_metrics:
            exp.log_metrics(_numbers(logs, prefix="eval_"), step=self._iterations())
        self._close("success")

    # ------------------------------------------------------------------ models

    def _log_final_model(self, exp: Experiment) -> None:
        path = os.path.join(exp.scratch_folder(), f"{self.model_name}.keras")
        self.model.save(path)
        log_final_model(
            exp,
            self.model_name,
            path,
            registry_name=self._registry_name,
            metadata={"format": "keras", "keras_backend": keras.backend.backend()},
            overwrite=True,
            step=self._iterations(),
        )

    def _upload_checkpoints(self) -> bool:
        if self._log_checkpoints is not None:
            return bool(self._log_checkpoints)
        return self._policy().each_checkpoint

    def _checkpoint_files(self) -> list[str]:
        files: set[str] = set()
        for ckpt in self._checkpoints:
            pattern = getattr(ckpt, "filepath", ckpt)
            pattern = os.fspath(pattern)
            if os.path.isdir(pattern):
                found = glob.glob(os.path.join(glob.escape(pattern), "**", "*"), recursive=True)
            else:  # a ModelCheckpoint pattern such as "ckpt/model-{epoch:02d}.keras"
                found = glob.glob(re.sub(r"\{[^}]*\}", "*", pattern))
            files.update(f for f in found if os.path.isfile(f))
        return sorted(files)

    def _log_new_checkpoints(self, exp: Experiment, step: int | None) -> None:
        if not self._checkpoints:
            warn_once(
                self._reported,
                "no-checkpoint",
                "comet_callbacks: checkpoint upload is on but no checkpoint was given: pass "
                "CometCallback(checkpoint=<your ModelCheckpoint>) (autolog finds them itself)",
            )
            return
        for path in self._checkpoint_files():
            if not self._versions.is_new(path):
                continue
            # the core snapshots it: ModelCheckpoint rewrites the file in place later
            exp.log_model(f"{self.model_name}-checkpoints", path, overwrite=True, step=step)


# ---------------------------------------------------------------------- autolog

_patched: dict[str, Any] = {}  # "fit" -> the original attribute, "had_own" -> bool
_autolog_kwargs: dict[str, Any] = {}


def autolog(disable: bool = False, **callback_kwargs: Any) -> None:
    """Log every ``keras.Model.fit()`` from now on: each ``fit()`` gets a
    :class:`CometCallback` (built with ``callback_kwargs``) unless one is passed, and its
    arguments are logged. A ``fit()`` that raises ends the experiment as failed (interrupted
    for Ctrl-C) and re-raises the same exception. ``autolog(disable=True)`` restores
    ``keras.Model.fit``. Nothing is patched until this is called."""
    model_cls = keras.Model
    if disable:
        if _patched:
            if _patched["had_own"]:
                model_cls.fit = _patched["fit"]
            else:
                del model_cls.fit
            _patched.clear()
        _autolog_kwargs.clear()
        return
    _autolog_kwargs.clear()
    _autolog_kwargs.update(callback_kwargs)
    if _patched:
        return
    _patched["had_own"] = "fit" in vars(model_cls)
    original = _patched["fit"] = vars(model_cls).get("fit", model_cls.fit)
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)  # let Keras report the bad call
        arguments = bound.arguments
        callbacks = arguments.get("callbacks")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            log.warning("comet_callbacks: autolog skips a fit() whose callbacks is not a list")
            return original(self, *args, **kwargs)
        callbacks = list(callbacks or [])
        comet = next((c for c in callbacks if isinstance(c, CometCallback)), None)
        if comet is None:
            comet = CometCallback(**_autolog_kwargs)
            callbacks.append(comet)
            comet.add_checkpoint(
                [c for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)]
            )
        try:
            comet.set_fit_args(**fit_arguments(arguments))
        except Exception as exc:
            log.debug("comet_callbacks: reading fit() arguments failed: %r", exc)
        arguments["callbacks"] = callbacks
        try:
            return original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            try:
                comet._in_fit = False
                if comet._owns:
                    comet.end(status)
            except Exception as end_exc:
                log.warning("comet_callbacks: ending the failed experiment failed: %r", end_exc)
            raise

    fit.comet_autolog = True  # type: ignore[attr-defined]
    model_cls.fit = fit
