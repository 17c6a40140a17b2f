"""Keras 3 integration: :class:`CometCallback` and the opt-in :func:`autolog`.

Works on every Keras 3 backend and imports nothing backend-specific, so a PyTorch or JAX run
never imports TensorFlow. What is logged: README, "What each integration logs".

Each ``fit()`` (or stand-alone ``evaluate()``) is a *session*: online, the experiment ends
with it and a later session continues it by key; offline it stays open until process exit or
:meth:`CometCallback.end` (README, "What each integration logs"). A ``fit()`` that raises
leaves it open: :func:`autolog` ends it as failed, otherwise the process-exit hooks do.
Checkpoint files are found from what ``checkpoint=`` names (Keras does not show a callback
the other callbacks) and handed to the core, which snapshots them, after each epoch.
Distribution: only global rank 0 logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import keras

from comet_callbacks.config import Settings
from comet_callbacks.experiment import Experiment

from ._keras_helpers import _patched as _patched  # re-exported (module state, for tests)
from ._keras_helpers import (
    autolog,
    checkpoint_files,
    log_description,
    log_new_checkpoints,
    optimizer_steps,
    raw_iterations,
)
from ._keras_helpers import keras_numbers as _numbers
from ._params import keras_parameters
from ._toolkit import (
    FileVersions,
    ModelPolicy,
    global_rank,
    guarded,
    log_final_model,
    non_settings,
    open_experiment,
    reopen,
    settings_from,
    share_key,
)

__all__ = ["CometCallback", "autolog"]

log = logging.getLogger("comet_callbacks")


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
            key, fallback = exp.key if exp is not None else None, self.settings.experiment_key
            self._secondary = share_key(self.settings, key, rank, self._reported, fallback=fallback)
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

    # ------------------------------------------------------------------ parameters and graph

    def _parameters(self) -> dict[str, Any]:
        return keras_parameters(self.model, self.params or {}, self._fit_args)

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
            exp.log_parameters(self._parameters(), source="auto-logged")
        if exp.settings.auto_log_graph:
            log_description(exp, self.model)
        opt = getattr(self.model, "optimizer", None)
        self._accumulation = int(getattr(opt, "gradient_accumulation_steps", None) or 1)
        self._per_execution = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        self._raw_start = raw_iterations(self.model)
        if self._upload_checkpoints():
            # only files written from now on are uploaded
            self._versions.clear()
            for path in checkpoint_files(self._checkpoints):
                self._versions.is_new(path)

    @guarded
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._exp is None or self._exp.ended:
            return
        self._raw_start = raw_iterations(self.model)
        self._exp.set_epoch(epoch)

    @guarded
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        exp = self._exp
        if exp is None or exp.ended:
            return
        step = optimizer_steps(self.model)
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
            self._log_new_checkpoints(exp, optimizer_steps(self.model))
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
            exp.log_metrics(_numbers(logs, prefix="eval_"), step=optimizer_steps(self.model))
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
            step=optimizer_steps(self.model),
        )

    def _upload_checkpoints(self) -> bool:
        if self._log_checkpoints is not None:
            return bool(self._log_checkpoints)
        return self._policy().each_checkpoint

    def _log_new_checkpoints(self, exp: Experiment, step: int | None) -> None:
        name, files = f"{self.model_name}-checkpoints", self._checkpoints
        log_new_checkpoints(exp, name, files, self._versions, self._reported, step)
