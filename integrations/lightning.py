"""Comet tracking for PyTorch Lightning 2.x (``lightning`` or ``pytorch_lightning``).

``Trainer(callbacks=[CometCallback()])``: the callback attaches a :class:`CometLogger` (or
completes the one passed with ``logger=``), so what the model logs with ``self.log`` reaches
Comet at Lightning's step. What is logged: README, "What each integration logs".

The ``Logger`` half, :class:`CometLogger`, lives in ``lightning_logger.py`` (re-exported here).
Only global rank 0 creates the experiment; it shares the key with the other ranks, which log
nothing but, with ``COMET_DISTRIBUTED_SYSTEM_METRICS=1``, their own system metrics. The key is
stored in each checkpoint (``"comet_callbacks"``), so ``fit(ckpt_path=...)`` continues the
experiment. ``COMET_LIGHTNING_AUTO=1`` adds a callback to every ``Trainer`` through Lightning's
``callbacks_factory`` entry point. Hooks are guarded by the toolkit's one policy
(``_toolkit.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from comet_callbacks.experiment import Experiment

from ._toolkit import guarded, join_as_secondary
from .lightning_logger import CometLogger, _rank, pl

_Callback: Any = pl.Callback

__all__ = ["CometCallback", "CometLogger"]

AUTO_ENV = "COMET_LIGHTNING_AUTO"
CKPT_KEY = "comet_callbacks"  # our entry in a Lightning checkpoint: {"experiment_key": ...}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


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
