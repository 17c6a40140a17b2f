"""Hugging Face ``Trainer`` integration: ``Trainer(..., callbacks=[CometCallback()])``.

A translation of Trainer hooks into calls on one :class:`~comet_callbacks.Experiment`. What is
logged: README, "What each integration logs". Lifecycle decisions (and why):

* **Evaluate/predict after ``train()``.** The experiment ends at ``on_train_end`` (a finished
  training shows a stopped, successful experiment at once; notebooks never exit). A later
  ``evaluate()``/``predict()`` continues it by key for that one call. Offline, an experiment
  cannot be continued into the same run folder, so it stays open until the next ``train()``
  of this callback or process exit.
* **Failure.** Transformers does not call ``on_train_end`` when training raises: the core's
  exit hook ends the experiment as ``failed`` (``interrupted`` for Ctrl-C) in a script; in a
  long-lived process the next ``train()`` of this callback does.
* **Resume.** The key is stored with each checkpoint, in ``trainer_state.json`` (this callback
  is an ``ExportableState``) and in ``comet_experiment.json``;
  ``train(resume_from_checkpoint=...)`` continues that experiment.
* **Distributed.** Only the world-zero process creates, logs, uploads and ends; with
  ``COMET_DISTRIBUTED_SYSTEM_METRICS`` the other ranks join as secondaries sending only their
  system metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

try:  # transformers >= 4.41: callbacks whose state is saved in trainer_state.json
    from transformers.trainer_callback import ExportableState
except ImportError:  # pragma: no cover - older transformers: resume uses comet_experiment.json

    class ExportableState:  # type: ignore[no-redef]
        """Stand-in for transformers versions without stateful callbacks."""


from comet_callbacks.config import Settings
from comet_callbacks.distributed import global_rank
from comet_callbacks.experiment import Experiment

from ._hf_checkpoints import (
    KEY_FILE,
    json_args,
    log_metrics_of,
    log_trainer_model,
    remember_in_state,
    rewrite_logs,
    stored_key,
    unmutated,
    write_key,
)
from ._params import trainer_parameters
from ._toolkit import (
    ModelPolicy,
    guarded,
    non_settings,
    open_experiment,
    parse_log_model,
    reopen,
    report_hook_error,
    settings_from,
    share_key,
)

__all__ = ["CometCallback", "rewrite_logs", "KEY_FILE"]


class CometCallback(TrainerCallback, ExportableState):
    """Track a Hugging Face ``Trainer`` run in Comet.

    >>> trainer = Trainer(model, args, callbacks=[CometCallback()])   # doctest: +SKIP

    Args:
        experiment: log to this experiment instead of creating one. It is yours: the callback
            does not end it (call ``experiment.end()``).
        log_model: ``False`` (no model upload), ``True`` (the final model at the end; the best
            one with ``load_best_model_at_end``), ``"best"`` (the best checkpoint at the end),
            ``"all"`` (every saved checkpoint, and the final model). Default:
            ``COMET_LOG_MODEL`` (``true``).
        model_name: name of the final model in the experiment (default: the model's class).
        registry_name: register the final model under this registry name (default:
            ``COMET_MODEL_REGISTRY_NAME``; unset: no registration).
        experiment_kwargs: passed to :class:`~comet_callbacks.Experiment` (``project_name``,
            ``workspace``, ``experiment_name``, ``tags``, ``mode``, ``strict``, any setting).
    """

    def __init__(
        self,
        experiment: Experiment | None = None,
        *,
        log_model: bool | str | None = None,
        model_name: str | None = None,
        registry_name: str | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        self._user_experiment = experiment
        self._log_model_arg = None if log_model is None else parse_log_model(log_model)
        self._model_name = model_name
        self._registry_arg = registry_name
        self._experiment_kwargs = experiment_kwargs
        self._settings: Settings | None = experiment.settings if experiment is not None else None
        self._exp: Experiment | None = experiment
        self._key: str | None = experiment.key if experiment is not None else None
        self._training = False
        self._kept_open = False
        self._params_logged = False
        self._secondary: Experiment | None = None
        self._reported: set[str] = set()
        self._saved_experiment_key: str | None = None  # restored by the Trainer on resume

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> Settings:
        """Resolved settings: this callback's keyword arguments > ``COMET_*`` > config file."""
        if self._settings is None:
            self._settings = settings_from(self._experiment_kwargs)
        return self._settings

    @property
    def experiment(self) -> Experiment | None:
        """The experiment currently logged to (None before training, on other ranks, or
        after it ended)."""
        return self._exp if self._exp is not None and not self._exp.ended else None

    @property
    def experiment_key(self) -> str | None:
        """Key of the experiment this callback logs to (kept after the experiment ended)."""
        return self._key

    @property
    def log_model(self) -> bool | str:
        """The model upload mode in force (argument, else ``COMET_LOG_MODEL``)."""
        return ModelPolicy.of(self._log_model_arg, self.settings).mode

    @property
    def registry_name(self) -> str | None:
        """Registry name for the final model (argument, else ``COMET_MODEL_REGISTRY_NAME``)."""
        return self._registry_arg or self.settings.model_registry_name or None

    def _strict(self) -> bool:
        try:
            return bool(self.settings.strict)
        except Exception:
            return False

    # ------------------------------------------------------------------ ExportableState

    def state(self) -> dict[str, Any]:
        """Saved into ``trainer_state.json`` with each checkpoint: the experiment key, so that a
        resumed training continues the same experiment; ``args`` rebuild this callback when the
        Trainer restores callback states (JSON-safe constructor arguments only)."""
        args = json_args(
            {
                "log_model": self._log_model_arg,
                "model_name": self._model_name,
                "registry_name": self._registry_arg,
                **self._experiment_kwargs,
            }
        )
        return {"args": args, "attributes": {"_saved_experiment_key": self._key}}

    # ------------------------------------------------------------------ experiment lifecycle

    def _new_experiment(self, args: Any, key: str | None) -> Experiment | None:
        # self.settings already holds this callback's setting arguments, parsed; only the
        # experiment's own overrides (parsed values) are applied on top
        overrides: dict[str, Any] = {}
        if key:
            overrides["experiment_key"] = key
        elif not self.settings.experiment_name and not self.settings.experiment_key:
            run_name = getattr(args, "run_name", None)
            if run_name and run_name != getattr(args, "output_dir", None):
                overrides["experiment_name"] = run_name
        settings = self.settings.replace(**overrides) if overrides else self.settings
        return open_experiment(settings, self._reported, **non_settings(self._experiment_kwargs))

    def _ensure_experiment(
        self, args: Any, state: Any, model: Any, resume_key: str | None = None
    ) -> Experiment | None:
        """The experiment to log to on the main process, created (or continued, given the key
        stored with the checkpoint being resumed) on first use."""
        if self._user_experiment is not None:
            if self._user_experiment.ended:
                return None  # the user's experiment has ended: nothing to log to
            self._exp = self._user_experiment
            self._log_setup(args, state, model)
            return self._exp
        if self._exp is not None and not self._exp.ended:
            return self._exp
        self._exp = self._new_experiment(args, resume_key)
        if self._exp is None:
            return None
        self._key = self._exp.key
        self._params_logged = False
        self._log_setup(args, state, model)
        return self._exp

    def _reopen(self) -> Experiment | None:
        """Continue the ended experiment for one post-training logging call (evaluate/predict)."""
        if self._user_experiment is not None or not self._key:
            return None
        return reopen(self.settings, self._key, self._reported, brief=True)

    def _log_setup(self, args: Any, state: Any, model: Any) -> None:
        """Parameters and graph, once per experiment."""
        exp = self._exp
        if exp is None or self._params_logged:
            return
        self._params_logged = True
        s = exp.settings
        exp.log_other("Created from", "transformers")
        if s.auto_log_parameters:
            params = trainer_parameters(args, model)
            exp.log_parameters(params, source="auto-logged")
            if getattr(state, "is_hyper_param_search", False) and getattr(
                state, "trial_params", None
            ):
                exp.log_parameters(state.trial_params, prefix="trial", source="auto-logged")
        if s.auto_log_graph and model is not None:
            exp.set_model_graph(str(model))

    def _end(self, status: str = "success") -> None:
        """End the experiment this callback created (never the user's own), and any secondary."""
        exp = self._exp
        if exp is not self._user_experiment:
            self._exp = None
        if exp is not None and exp is not self._user_experiment and not exp.ended:
            exp.end(status)
        if self._secondary is not None:
            sec, self._secondary = self._secondary, None
            sec.end(status)

    # ------------------------------------------------------------------ hooks

    @guarded
    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        resume_key = (
            stored_key(args, state, type(self).__name__, self._saved_experiment_key)
            if state.is_world_process_zero
            else None
        )
        remember_in_state(state, type(self).__name__, self.state)
        try:
            if self._training and self._exp is not None and not self._exp.ended:
                # the previous train() of this callback never reached on_train_end: it raised
                self._end("failed")
            elif self._kept_open:
                self._end("success")  # an offline experiment kept open after its training
            self._kept_open = False
            self._training = True
            if state.is_world_process_zero:
                if resume_key and self._exp is not None and self._exp.key != resume_key:
                    self._end("success")  # an experiment opened by an earlier evaluate()
                self._ensure_experiment(args, state, model, resume_key)
                self._log_setup(args, state, model)
        finally:
            # a collective: every rank reaches it, whatever happened above on rank 0
            if self.settings.distributed_system_metrics:  # rank 0 shares its key
                rank = 0 if state.is_world_process_zero else global_rank()
                self._secondary = share_key(
                    self.settings, self._key, rank, self._reported, joined=self._secondary
                )

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        """The Trainer's logs as metrics (``eval_x`` → ``eval/x``, ``x`` → ``train/x``) at the
        global step. Called on every logging step: the guard is inlined (errors are reported
        once and swallowed, as :func:`guarded` does)."""
        try:
            if not state.is_world_process_zero or not logs:
                return
            self._log_metrics(args, state, model, unmutated(logs, state))
        except Exception as exc:
            report_hook_error(self, "on_log", exc)

    @guarded
    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        self._log_metrics(args, state, kwargs.get("model"), metrics)

    def _log_metrics(self, args: Any, state: Any, model: Any, logs: Mapping[str, Any]) -> None:
        exp = self._exp
        if exp is not None and not exp.ended:  # the common case: training is logging
            self._log_to(exp, state, logs)
            return
        if self._key and self._user_experiment is None:
            exp = self._reopen()  # evaluate()/predict() after train() ended
            if exp is not None:
                try:
                    self._log_to(exp, state, logs)
                finally:
                    exp.end("success")
            return
        exp = self._ensure_experiment(args, state, model)  # e.g. evaluate() before train()
        if exp is not None:
            self._log_to(exp, state, logs)

    @staticmethod
    def _log_to(exp: Experiment, state: Any, logs: Mapping[str, Any]) -> None:
        if exp.settings.auto_log_metrics:
            epoch = state.epoch
            exp.log_metrics(
                log_metrics_of(logs),
                step=state.global_step,
                epoch=None if epoch is None else int(epoch),
            )

    @guarded
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder):
            return
        if self._key:
            write_key(folder, self._key)
        exp = self.experiment
        if exp is not None and self.log_model == "all":
            # the core snapshots the files (the Trainer deletes rotated checkpoints)
            exp.log_model(os.path.basename(folder), folder, step=state.global_step)

    @guarded
    def on_train_end(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        processing_class: Any = None,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        self._training = False
        if not state.is_world_process_zero:
            self._end("success")
            return
        exp = self.experiment
        try:
            if exp is not None and self.log_model:
                processor = processing_class or tokenizer
                name = self._model_name or (type(model).__name__ if model is not None else "model")
                mode, registry = self.log_model, self._registry_arg
                log_trainer_model(exp, args, state, model, processor, name, mode, registry)
        finally:
            if exp is not None and exp.mode == "offline" and exp is not self._user_experiment:
                # An offline experiment cannot be continued by key into the same run: keep it
                # open for a later evaluate()/predict(); the next train() or exit ends it.
                self._kept_open = True
            else:
                self._end("success")
