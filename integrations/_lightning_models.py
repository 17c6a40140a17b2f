"""Checkpoints and the final model of a Lightning run: a mixin of
:class:`~.lightning_logger.CometLogger` (its methods read the logger's state). Which
checkpoint becomes the experiment model follows ``log_model`` (README, "What each integration
logs")."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from comet_callbacks.config import Settings
from comet_callbacks.experiment import Experiment

from ._toolkit import FileVersions, ModelPolicy, log_final_model, number

__all__ = ["CheckpointsAndModel"]


class CheckpointsAndModel:
    """Checkpoint uploads and the final model (registered when asked) of a ``CometLogger``."""

    # state of the logger that these methods use (CometLogger defines them)
    registered_model: dict[str, Any] | None
    _log_model_arg: bool | str | None
    _registry_name_arg: str | None
    _model_name: str | None
    _module_ref: Callable[[], Any] | None
    _uploaded: FileVersions
    _ckpt_meta: dict[str, dict[str, Any]]

    @property
    def settings(self) -> Settings:
        raise NotImplementedError

    @property
    def experiment(self) -> Experiment:
        raise NotImplementedError

    def _trainer(self) -> Any:
        raise NotImplementedError

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
