"""The Lightning ``Logger`` half of the integration: :class:`CometLogger`, and the choice
between ``lightning.pytorch`` and ``pytorch_lightning`` (``pl``). Re-exported by
``lightning.py``, which holds the :class:`CometCallback` driving it; see there for the whole
picture."""

from __future__ import annotations

import logging
import sys
import uuid
import weakref
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any

from comet_callbacks.config import Settings
from comet_callbacks.experiment import Experiment, ExperimentError

from ._lightning_models import CheckpointsAndModel
from ._params import hparams, optimizer_config, parameter_counts, trainer_config
from ._toolkit import (
    FileVersions,
    global_rank,
    guarded,
    number,
    open_experiment,
    reopen,
    report_hook_error,
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
_Logger: Any = pl.loggers.Logger
_rank_zero_only: Any = pl.utilities.rank_zero.rank_zero_only
_SANITY_CHECKING: Any = pl.trainer.states.RunningStage.SANITY_CHECKING
_DummyExperiment: Any = pl.loggers.logger.DummyExperiment

__all__ = ["CometLogger", "pl"]

log = logging.getLogger("comet_callbacks")
# finalize(status): what each status Lightning (or third-party code) passes means for the run
_FAILED = frozenset({"failed", "failure", "error", "crashed"})
_INTERRUPTED = frozenset({"aborted", "interrupted", "killed", "cancelled", "canceled"})


def _rank() -> int:
    """Global rank: Lightning's (set by its strategies and launchers), else the launcher's."""
    return global_rank(int(getattr(_rank_zero_only, "rank", 0) or 0))


class CometLogger(_Logger, CheckpointsAndModel):
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
        self._metrics_exp: Experiment | None = None  # set once metrics may go the fast path
        self._settings: Settings | None = None
        self._prefix = prefix
        self._metric_prefix = f"{prefix}-" if prefix else ""  # Lightning's convention
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
        self.experiment.log_parameters(hparams(params), source="auto-logged")

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Metrics at the step Lightning passes; its ``epoch`` entry goes to the epoch field.

        Called on every logging step, so this is the one hot path of the integration: no
        decorators (the rank check of ``rank_zero_only`` is implied: only global rank 0 ever
        creates an experiment; see :meth:`_log_metrics_slow`), no enum comparison for the
        sanity check (an identity test on the trainer's stage), plain numbers passed through.
        Errors are reported once and swallowed, like every hook (:func:`guarded`)."""
        try:
            exp = self._metrics_exp
            if exp is None or exp.ended or self._metric_prefix:
                return self._log_metrics_slow(metrics, step)
            ref = self._trainer_ref
            if ref is not None:
                trainer = ref()
                if trainer is not None and trainer.state.stage is _SANITY_CHECKING:
                    return
            epoch = metrics.get("epoch")
            if epoch is not None:  # Lightning's own entry: the epoch field, not a metric
                metrics = dict(metrics)
                del metrics["epoch"]
                epoch = epoch if type(epoch) is int else int(number(epoch))
                exp.set_epoch(epoch)
            # Lightning hands over Python numbers; anything else is converted (or reported)
            # by the experiment, as for a direct call
            exp.log_metrics(metrics, step=step, epoch=epoch)
        except Exception as exc:
            report_hook_error(self, "log_metrics", exc)

    @_rank_zero_only
    def _log_metrics_slow(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """:meth:`log_metrics` before the experiment exists (creating it), after it ended
        (reopening it), with metric logging off, or with a ``prefix``: rank 0 only."""
        trainer = self._trainer()
        if trainer is not None and getattr(trainer, "sanity_checking", False):
            return
        if not self.settings.auto_log_metrics:
            return
        exp = self.experiment
        if exp is self._experiment and exp is not None and not exp.ended:
            self._metrics_exp = exp  # from now on, the fast path (no prefix)
        values = {f"{self._metric_prefix}{k}": number(v) for k, v in metrics.items()}
        epoch = values.pop(f"{self._metric_prefix}epoch", None)
        if epoch is not None:
            epoch = int(epoch)
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
            source="auto-logged",
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
        exp.log_parameters(trainer_config(trainer), prefix="trainer", source="auto-logged")
        exp.log_parameters(optimizer_config(trainer), source="auto-logged")
