"""What the Keras integration (``keras.py``) needs besides its callback's hooks: ``autolog()``
(re-exported there), which patches ``keras.Model.fit`` so every ``fit()`` gets a
:class:`~.keras.CometCallback`; the files of the checkpoints it watches; the model's
description; backend values as numbers and the optimizer's step counters."""

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

from comet_callbacks.experiment import Experiment

from ._params import fit_arguments
from ._toolkit import FileVersions, numbers, warn_once

__all__ = [
    "autolog",
    "checkpoint_files",
    "keras_numbers",
    "log_description",
    "log_new_checkpoints",
    "model_description",
    "optimizer_steps",
    "raw_iterations",
]

log = logging.getLogger("comet_callbacks")


def keras_numbers(logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float | int]:
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


def optimizer_steps(model: Any) -> int | None:
    """``optimizer.iterations`` (the optimizer steps taken), None without an optimizer."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    return int(keras.ops.convert_to_numpy(opt.iterations))


def raw_iterations(model: Any) -> int:
    """The optimizer's raw iteration counter (batches, gradient accumulation included)."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return 0
    raw = getattr(opt, "_iterations", None)
    return int(keras.ops.convert_to_numpy(raw if raw is not None else opt.iterations))


def checkpoint_files(checkpoints: list[Any]) -> list[str]:
    """The files of ``ModelCheckpoint`` callbacks, ``filepath`` patterns or folders."""
    files: set[str] = set()
    for ckpt in checkpoints:
        pattern = getattr(ckpt, "filepath", ckpt)
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            found = glob.glob(os.path.join(glob.escape(pattern), "**", "*"), recursive=True)
        else:  # a ModelCheckpoint pattern such as "ckpt/model-{epoch:02d}.keras"
            found = glob.glob(re.sub(r"\{[^}]*\}", "*", pattern))
        files.update(f for f in found if os.path.isfile(f))
    return sorted(files)


def model_description(model: Any) -> tuple[str | None, str]:
    """The model's architecture as JSON (None for a subclassed model without ``get_config``)
    and its ``summary()`` text (empty when that fails)."""
    try:
        graph = model.to_json()
    except Exception:  # subclassed models without get_config
        graph = None
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    except Exception as exc:
        log.debug("comet_callbacks: model.summary() failed: %r", exc)
    return graph, "\n".join(lines)


_patched: dict[str, Any] = {}  # "fit" -> the original attribute, "had_own" -> bool
_autolog_kwargs: dict[str, Any] = {}


def autolog(disable: bool = False, **callback_kwargs: Any) -> None:
    """Log every ``keras.Model.fit()`` from now on: each ``fit()`` gets a
    :class:`CometCallback` (built with ``callback_kwargs``) unless one is passed, and its
    arguments are logged. A ``fit()`` that raises ends the experiment as failed (interrupted
    for Ctrl-C) and re-raises the same exception. ``autolog(disable=True)`` restores
    ``keras.Model.fit``. Nothing is patched until this is called."""
    from .keras import CometCallback  # at call time: keras.py imports this module

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


def log_description(exp: Experiment, model: Any) -> None:
    """The model's graph (its architecture, else its summary) and ``model_summary.txt``."""
    graph, summary = model_description(model)
    if graph or summary:
        exp.set_model_graph(graph or summary)
    if summary:
        exp.log_asset(summary.encode("utf-8"), file_name="model_summary.txt")


def log_new_checkpoints(
    exp: Experiment,
    name: str,
    checkpoints: list[Any],
    versions: FileVersions,
    reported: set[str],
    step: int | None,
) -> None:
    """Hand the core each new version of the watched checkpoint files, as the model ``name``;
    without any checkpoint to watch, one warning."""
    if not checkpoints:
        warn_once(
            reported,
            "no-checkpoint",
            "comet_callbacks: checkpoint upload is on but no checkpoint was given: pass "
            "CometCallback(checkpoint=<your ModelCheckpoint>) (autolog finds them itself)",
        )
        return
    for path in checkpoint_files(checkpoints):
        if not versions.is_new(path):
            continue
        # the core snapshots it: ModelCheckpoint rewrites the file in place later
        exp.log_model(name, path, overwrite=True, step=step)
