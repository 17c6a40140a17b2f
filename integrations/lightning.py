"""Comet tracking for PyTorch Lightning 2.x (``lightning`` or ``pytorch_lightning``).

``Trainer(callbacks=[CometCallback()])``: the callback attaches a :class:`CometLogger` (or
completes the one passed with ``logger=``), so what the model logs with ``self.log`` reaches
Comet at Lightning's step. What is logged: README, "What each integration logs".

Only global rank 0 creates the experiment; it shares the key with the other ranks, which log
nothing but, with ``COMET_DISTRIBUTED_SYSTEM_METRICS=1``, their own system metrics. The key is
stored in each checkpoint (``"comet_callbacks"``), so ``fit(ckpt_path=...)`` continues the
experiment. ``COMET_LIGHTNING_AUTO=1`` adds a callback to every ``Trainer`` through Lightning's
``callbacks_factory`` entry point. Hooks are guarded by the toolkit's one policy
(``_toolkit.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
import weakref
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any

from comet_callbacks.config import Settings
from comet_callbacks.experiment import Experiment, ExperimentError

from ._params import hparams, optimizer_config, parameter_counts, trainer_config
from ._toolkit import (
    FileVersions,
    ModelPolicy,
    global_rank,
    guarded,
    join_as_secondary,
    log_final_model,
    number,
    open_experiment,
    reopen,
    settings_from,
)


def _import_lightning() -> Any:
    """``lightning.pytorch`` or ``pytorch_lightning``: the one already imported wins (so our
    classes subclass the Trainer's), else whichever is installed."""
    if "pytorch_lightning" in sys.modules and "lightning.pytorch" not in sys.modules:
        import pytorch_lightning

        return pytorch_lightning
    try:
        import lightning.pytorch as module
    except ImportError:  # pragma: no cover - depends on what is installed
        import pytorch_lightning as module  # type: ignore[no-redef]
    return module


pl: Any = _import_lightning()
_Callback: Any = pl.Callback
_Logger: Any = pl.loggers.Logger
_ModelCheckpoint: Any = pl.callbacks.ModelCheckpoint
_rank_zero_only: Any = pl.utilities.rank_zero.rank_zero_only
_DummyExperiment: Any = pl.loggers.logger.DummyExperiment

__all__ = ["CometCallback", "CometLogger"]

log = logging.getLogger("comet_callbacks")
AUTO_ENV = "COMET_LIGHTNING_AUTO"
CKPT_KEY = "comet_callbacks"  # our entry in a Lightning checkpoint: {"experiment_key": ...}
# finalize(status): what each status Lightning (or third-party code) passes means for the run
_FAILED = frozenset({"failed", "failure", "error", "crashed"})
_INTERRUPTED = frozenset({"aborted", "interrupted", "killed", "cancelled", "canceled"})


def _rank() -> int:
    """Global rank: Lightning's (set by its strategies and launchers), else the launcher's."""
    return global_rank(int(getattr(_rank_zero_only, "rank", 0) or 0))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------
# Logger


class CometLogger(_Logger):
    """A Lightning ``Logger`` writing to one Comet :class:`~comet_callbacks.Experiment`.

    Use it directly with ``Trainer(logger=CometLogger(...))`` or let :class:`CometCallback`
    attach one. The experiment is created lazily on global rank 0 (first use of
    :attr:`experiment`); other ranks get a dummy. Arguments are those of
    :class:`~comet_callbacks.Experiment` (any ``COMET_*`` setting as a keyword) plus:

    - ``prefix``: prepended to metric names (``prefix-name``, Lightning's convention);
    - ``log_model``: ``False`` | ``True`` (best and last checkpoint at the end) | ``"best"`` |
      ``"last"`` | ``"all"`` (every save); default ``COMET_LOG_MODEL`` (true);
    - ``registry_name``: register the final model under this registry name (default
      ``COMET_MODEL_REGISTRY_NAME``); ``model_name``: the experiment model's name (default:
      the LightningModule's class name).
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
        prefix: str | None = None,
        log_model: bool | str | None = None,
        registry_name: str | None = None,
        model_name: str | None = None,
        tags: list[str] | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        super().__init__()
        self._exp_args: dict[str, Any] = dict(
            api_key=api_key,
            workspace=workspace,
            project_name=project_name,
            experiment_name=experiment_name,
            mode=mode,
            **experiment_kwargs,
        )
        self._tags = list(tags) if tags else None
        self._key: str | None = experiment_key
        self._version: str | None = None  # the folder name while no key exists (see version)
        self._key_from_checkpoint = False
        self._experiment: Experiment | None = None
        self._settings: Settings | None = None
        self._prefix = prefix
        self._log_model_arg = log_model
        self._registry_name_arg = registry_name
        self._model_name = model_name
        self._trainer_ref: Callable[[], Any] | None = None
        self._module_ref: Callable[[], Any] | None = None
        self._deferred = False  # True while a resume may still give us the key (no creation)
        self._end_status: str | None = None  # set by CometCallback.on_exception
        self._uploaded = FileVersions()
        self._ckpt_meta: dict[str, dict[str, Any]] = {}
        self._config_logged_for: int | None = None
        self.registered_model: dict[str, Any] | None = None
        self._reported: set[str] = set()
        self._start_failed = False  # the experiment could not start: log nothing (warned once)

    # ------------------------------------------------------------------ plumbing

    def _strict(self) -> bool:
        try:
            return bool(self.settings.strict)
        except Exception:
            return False

    @property
    def settings(self) -> Settings:
        """The resolved settings (the experiment's once it exists)."""
        if self._experiment is not None:
            return self._experiment.settings
        if self._settings is None:
            self._settings = settings_from(self._exp_args)
        return self._settings

    def _bind(self, trainer: Any) -> None:
        self._trainer_ref = weakref.ref(trainer)

    def _trainer(self) -> Any:
        return self._trainer_ref() if self._trainer_ref is not None else None

    def _create(self) -> Experiment | None:
        """Create, continue (with a known key) or reopen (after ``finalize``) the experiment.
        Rank 0 only. None when it cannot start (warned once; training goes on)."""
        ended, key, exp = self._experiment, self._key, None
        if self._key_from_checkpoint:
            try:  # the checkpoint's experiment may be unknown here (e.g. an offline run)
                exp = Experiment(settings=self.settings, experiment_key=key, tags=self._tags)
            except (ExperimentError, OSError) as exc:
                log.warning(
                    "comet_callbacks: cannot continue the experiment %s saved in the checkpoint "
                    "(%s); starting a new experiment",
                    key,
                    exc,
                )
                key = None
            self._key_from_checkpoint = False
        if exp is None and ended is not None and key:
            exp = reopen(self.settings, key, self._reported)
        elif exp is None:
            exp = open_experiment(
                self.settings, self._reported, experiment_key=key, tags=self._tags
            )
        if exp is None:
            self._start_failed = True
            return None
        self._experiment, self._key = exp, exp.key
        if not key:
            exp.log_other("Created from", "pytorch-lightning")
            exp.log_other("lightning_version", getattr(pl, "__version__", "unknown"))
        return exp

    # ------------------------------------------------------------------ Logger API

    @property
    def experiment(self) -> Experiment:
        """The :class:`~comet_callbacks.Experiment` (created on first use; a dummy on ranks
        other than 0). After :meth:`finalize` ended it, using it again continues the same
        experiment (e.g. ``trainer.test`` after ``trainer.fit``)."""
        exp = self._experiment
        if exp is not None and not exp.ended:
            return exp  # only rank 0 ever creates one: no rank lookup on every logging call
        if _rank() != 0 or self._start_failed or self._create() is None:
            return _DummyExperiment()  # type: ignore[no-any-return]
        assert self._experiment is not None
        return self._experiment

    @property
    def name(self) -> str:
        """The Comet project name."""
        if self._experiment is not None:
            return self._experiment.project_name
        return self.settings.project_name or "general"

    @property
    def version(self) -> str:
        """The experiment key; never None, so ``ModelCheckpoint`` never writes to
        ``version_None``. Rank 0 creates the experiment when Lightning first asks (except while
        a resume may still restore the key). Where no key exists (an untracked or disabled
        run, a non-zero rank, a pending resume) it is a 32-hex id this logger chose once, in
        the format of a key; Lightning replaces a non-zero rank's answer with rank 0's."""
        if self._key is None and not self._deferred and _rank() == 0:
            self.experiment  # noqa: B018 - creates it
        if self._key:
            return self._key
        if self._version is None:
            self._version = uuid.uuid4().hex
        return self._version

    @property
    def save_dir(self) -> None:
        """Nothing is written locally (the offline event log lives in the offline directory)."""
        return None

    @_rank_zero_only
    @guarded
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kw: Any) -> None:
        """The module's and datamodule's saved hyperparameters, nested ones flattened ``a|b``."""
        if not self.settings.auto_log_parameters:
            return
        self.experiment.log_parameters(hparams(params))

    @_rank_zero_only
    @guarded
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Metrics at the step Lightning passes; its ``epoch`` entry goes to the epoch field."""
        trainer = self._trainer()
        if trainer is not None and getattr(trainer, "sanity_checking", False):
            return
        if not self.settings.auto_log_metrics:
            return
        values = {k: number(v) for k, v in metrics.items()}
        epoch = values.pop("epoch", None)
        if epoch is not None:
            epoch = int(epoch)
        if self._prefix:
            values = {f"{self._prefix}-{k}": v for k, v in values.items()}
        exp = self.experiment
        if epoch is not None:
            exp.set_epoch(epoch)
        exp.log_metrics(values, step=step, epoch=epoch)

    @_rank_zero_only
    @guarded
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """The model's structure as the graph, its parameter counts, and (once per fit) the
        trainer / optimizer configuration."""
        self._module_ref = weakref.ref(model)
        trainer = getattr(model, "_trainer", None)
        if trainer is not None and self._trainer_ref is None:
            self._bind(trainer)
        exp = self.experiment
        total, trainable = parameter_counts(model)
        exp.log_parameters(
            {"class": type(model).__name__, "total_params": total, "trainable_params": trainable},
            prefix="model",
        )
        if exp.settings.auto_log_graph:
            exp.set_model_graph(str(model))
        if trainer is not None:
            self._log_run_config(trainer)

    @_rank_zero_only
    @guarded
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Note each checkpoint's epoch/step/score when saved; with ``log_model="all"``,
        upload it now."""
        path = getattr(checkpoint_callback, "_last_checkpoint_saved", None)
        if not path:
            return
        self._ckpt_meta[path] = self._checkpoint_metadata(checkpoint_callback, path)
        if self._policy().each_checkpoint:
            self._upload_checkpoint(checkpoint_callback, path)

    @_rank_zero_only
    @guarded
    def finalize(self, status: str) -> None:
        """End of a trainer run. ``success`` after ``fit``: log the final model (and register
        it), then end the experiment. A failure status (``failed``...) ends it as failed (or
        interrupted on Ctrl-C); ``aborted``/``interrupted`` as interrupted. Any other status
        (``finished`` for a SLURM requeue...) only flushes: the run may go on."""
        exp = self._experiment
        if exp is None or exp.ended:
            return
        end = self._end_status
        if status in _INTERRUPTED:
            end = end or "interrupted"
        elif status in _FAILED and end is None:
            crashed = isinstance(sys.exc_info()[1], KeyboardInterrupt)
            end = "interrupted" if crashed else "failed"
        elif status != "success" and end is None:
            exp.flush()
            return
        try:
            if end is None:
                trainer = self._trainer()
                fn = getattr(getattr(trainer, "state", None), "fn", None)
                try:
                    if trainer is None or str(getattr(fn, "value", fn)) == "fit":
                        self._log_final_model(trainer)  # may raise (a model that cannot be saved)
                finally:
                    exp.end("success")
            else:
                exp.end(end)
        finally:
            self._end_status = None
            self._uploaded.clear()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for ``ddp_spawn``: no experiment or weak references."""
        state = self.__dict__.copy()
        state.update(_experiment=None, _trainer_ref=None, _module_ref=None)
        return state

    # ------------------------------------------------------------------ configuration

    def _log_run_config(self, trainer: Any) -> None:
        """Trainer, optimizer and LR scheduler configuration, once per fit."""
        if id(trainer.state) == self._config_logged_for or not self.settings.auto_log_parameters:
            return
        fn = getattr(trainer.state, "fn", None)
        if str(getattr(fn, "value", fn)) != "fit":
            return
        self._config_logged_for = id(trainer.state)
        exp = self.experiment
        exp.log_parameters(trainer_config(trainer), prefix="trainer")
        exp.log_parameters(optimizer_config(trainer))

    # ------------------------------------------------------------------ models

    def _policy(self) -> ModelPolicy:
        return ModelPolicy.of(self._log_model_arg, self.settings)

    def _checkpoint_metadata(self, cb: Any, path: str) -> dict[str, Any]:
        """Monitor, score, epoch and step of a checkpoint (as noted when it was saved)."""
        saved = self._ckpt_meta.get(path)
        if saved is not None:
            best = bool(cb is not None and path == getattr(cb, "best_model_path", None))
            return {**saved, "best": best}
        trainer = self._trainer()
        score = None
        if cb is not None:
            best_k = getattr(cb, "best_k_models", {}) or {}
            score = best_k.get(path)
            if score is None and path == getattr(cb, "best_model_path", None):
                score = getattr(cb, "best_model_score", None)
            if score is None and path == getattr(cb, "last_model_path", None):
                score = getattr(cb, "current_score", None)
        return {
            "monitor": getattr(cb, "monitor", None),
            "score": number(score) if score is not None else None,
            "epoch": getattr(trainer, "current_epoch", None),
            "step": getattr(trainer, "global_step", None),
            "best": bool(cb is not None and path == getattr(cb, "best_model_path", None)),
            "checkpoint": os.path.basename(path),
        }

    def _upload_checkpoint(self, cb: Any, path: str) -> None:
        real = os.path.realpath(path)
        if not os.path.isfile(real) or not self._uploaded.is_new(real):
            return
        meta = self._checkpoint_metadata(cb, path)
        self.experiment.log_asset(  # the core snapshots it (Lightning may rewrite last.ckpt)
            real,
            file_name=os.path.basename(path),
            step=meta["step"],
            metadata=meta,
            type="checkpoint",
        )

    def _log_final_model(self, trainer: Any) -> None:
        """The experiment model per ``log_model`` (the best checkpoint, else the last one, else
        the final weights; ``"last"``: never the best), registered when a registry name is
        configured. ``True`` also uploads ``last.ckpt`` as a checkpoint asset."""
        policy = self._policy()
        if not policy.enabled:
            return
        exp = self.experiment
        cbs = [
            c for c in getattr(trainer, "checkpoint_callbacks", []) if hasattr(c, "best_model_path")
        ]
        best_cb = next(
            (c for c in cbs if c.best_model_path and os.path.isfile(c.best_model_path)), None
        )
        last_cb = next(
            (c for c in cbs if c.last_model_path and os.path.exists(c.last_model_path)), None
        )
        best = best_cb.best_model_path if best_cb and policy.prefer_best else None
        last = last_cb.last_model_path if last_cb else None
        if policy.mode is True and last and last != best:
            self._upload_checkpoint(last_cb, last)
        model_cb, model_path = (best_cb, best) if best else (last_cb, last)
        module = self._module_ref() if self._module_ref is not None else None
        if module is None and trainer is not None:
            module = trainer.lightning_module
        name = self._model_name or (type(module).__name__ if module is not None else "model")
        file_name = None
        if model_path:
            meta = self._checkpoint_metadata(model_cb, model_path)
            meta["source"] = "checkpoint"
            path, file_name = os.path.realpath(model_path), os.path.basename(model_path)
        elif module is not None:
            import torch

            path = os.path.join(exp.scratch_folder(), "model.pt")
            torch.save(module.state_dict(), path)
            meta = {
                "source": "final_weights",
                "epoch": getattr(trainer, "current_epoch", None),
                "step": getattr(trainer, "global_step", None),
            }
        else:
            return
        self.registered_model = log_final_model(
            exp,
            name,
            path,
            registry_name=self._registry_name_arg,
            metadata=meta,
            file_name=file_name,
        )


# ---------------------------------------------------------------------------------------------
# Callback


class CometCallback(_Callback):
    """``Trainer(callbacks=[CometCallback()])``: full Comet tracking of the run.

    Attaches a :class:`CometLogger` (arguments are passed to it) unless the trainer already
    has one, in which case it completes it with resume, distributed and status handling.
    The experiment is created when training starts (``on_fit_start``), never at construction,
    and never under ``fast_dev_run``.
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
        prefix: str | None = None,
        log_model: bool | str | None = None,
        registry_name: str | None = None,
        model_name: str | None = None,
        tags: list[str] | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        self._logger_kwargs: dict[str, Any] = dict(
            api_key=api_key,
            workspace=workspace,
            project_name=project_name,
            experiment_name=experiment_name,
            experiment_key=experiment_key,
            mode=mode,
            prefix=prefix,
            log_model=log_model,
            registry_name=registry_name,
            model_name=model_name,
            tags=tags,
            **experiment_kwargs,
        )
        self._auto = False  # made by the entry-point factory
        self._active = False  # this callback drives the current trainer run
        self._logger: CometLogger | None = None
        self._owns_logger = False
        self._secondary: Experiment | None = None
        self.experiment_key: str | None = None
        self._reported: set[str] = set()

    def _strict(self) -> bool:
        if self._logger is not None:
            return self._logger._strict()
        return False

    @property
    def logger(self) -> CometLogger | None:
        """The :class:`CometLogger` this callback drives (after ``setup``)."""
        return self._logger

    @property
    def experiment(self) -> Experiment | None:
        """The experiment on rank 0 once created (None elsewhere, or before training starts)."""
        return self._logger._experiment if self._logger is not None else None

    # ------------------------------------------------------------------ hooks

    @guarded
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._active = False
        if trainer.fast_dev_run:
            return  # a smoke test: no experiment
        mine = [cb for cb in trainer.callbacks if isinstance(cb, CometCallback)]
        winner = next((cb for cb in mine if not cb._auto), mine[0] if mine else self)
        if winner is not self:
            return  # a second one (e.g. from the factory besides the user's): stay inert
        self._active = True
        existing = next((lg for lg in trainer.loggers if isinstance(lg, CometLogger)), None)
        if existing is not None:
            self._logger, self._owns_logger = existing, False
        elif self._logger is None or not self._owns_logger:
            self._logger, self._owns_logger = CometLogger(**self._logger_kwargs), True
        self._logger._bind(trainer)
        if stage == "fit":
            # A resume restores our key from the checkpoint after setup (trainer.ckpt_path is
            # not known yet here): create nothing before on_fit_start.
            self._logger._deferred = True
        else:
            self._attach(trainer)

    def _attach(self, trainer: Any) -> None:
        if self._logger is not None and self._logger not in trainer.loggers:
            trainer.loggers = [*trainer.loggers, self._logger]

    @guarded
    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CKPT_KEY) or {}
        key = state.get("experiment_key") if isinstance(state, Mapping) else None
        lg = self._logger
        if self._active and lg is not None and key and lg._experiment is None:
            if self._logger_kwargs.get("experiment_key") is None or not self._owns_logger:
                lg._key, lg._key_from_checkpoint = key, True

    @guarded
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._active and self.experiment_key:
            checkpoint[CKPT_KEY] = {"experiment_key": self.experiment_key}

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Create the experiment on rank 0 (after a resume restored its key) and share the key."""
        if not self._active or self._logger is None:
            return
        lg = self._logger
        lg._deferred = False
        self._attach(trainer)
        key, error = None, None
        if trainer.global_rank == 0 and _rank() == 0:  # launcher vars (MPI...) count too
            try:
                lg.experiment  # noqa: B018 - creates it (None when it cannot start: warned)
                key = lg._key if lg._experiment is not None else None
            except Exception as exc:  # strict mode; raised after the collective below
                error = exc
        if trainer.world_size > 1:
            key = trainer.strategy.broadcast(key, src=0)  # a collective: every rank gets here
        if error is not None:
            raise error
        self.experiment_key = key
        if trainer.global_rank != 0 and key:
            self._start_secondary(trainer, key)

    @guarded
    def _start_secondary(self, trainer: Any, key: str) -> None:
        assert self._logger is not None
        self._secondary = join_as_secondary(
            self._logger.settings, key, trainer.global_rank, self._reported
        )

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # In case Lightning did not call log_graph (enable_autolog_hparams=False).
        if self._active and trainer.global_rank == 0 and self._logger is not None:
            self._logger._log_run_config(trainer)

    @guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        exp = self._secondary or (self.experiment if trainer.global_rank == 0 else None)
        if self._active and exp is not None:
            exp.set_epoch(trainer.current_epoch)

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Mark the run failed (or interrupted on Ctrl-C); Lightning then finalizes the
        logger, which ends the experiment. The exception itself is left alone."""
        if not self._active or self._logger is None:
            return
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        lg = self._logger
        lg._end_status = status
        if lg not in trainer.loggers and lg._experiment is not None:
            lg.finalize(status)  # not attached yet: Lightning will not finalize it
        self._end_secondary(status)

    @guarded
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._active:
            self._end_secondary("success")

    def _end_secondary(self, status: str) -> None:
        sec, self._secondary = self._secondary, None
        if sec is not None:
            sec.end(status)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_secondary"] = None
        return state


def _callbacks_factory() -> list[Any]:
    """Lightning's ``callbacks_factory`` entry point: a :class:`CometCallback` for every
    Trainer when ``COMET_LIGHTNING_AUTO=1`` (opt-in), else nothing. A callback the user
    passed wins: this one then stays inert (see :meth:`CometCallback.setup`)."""
    if not _truthy(os.environ.get(AUTO_ENV)):
        return []
    cb = CometCallback()
    cb._auto = True
    return [cb]
