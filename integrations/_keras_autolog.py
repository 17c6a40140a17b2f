"""``autolog()`` for the Keras integration (``keras.py``, which re-exports it): patch
``keras.Model.fit`` so every ``fit()`` gets a :class:`~.keras.CometCallback`."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import keras

from ._params import fit_arguments

__all__ = ["autolog"]

log = logging.getLogger("comet_callbacks")

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
