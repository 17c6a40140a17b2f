"""The root of every error this project raises on purpose.

``except CometCallbacksError`` catches them all: configuration (:class:`~.config.ConfigError`),
experiment creation (:class:`~.experiment.ExperimentError`), REST calls
(:class:`~.rest.errors.CometAPIError` and its subclasses) and the model registry
(:class:`~.registry.RegistryError`). It lives in a module of its own, importing nothing, so
that every layer can derive from it without an import cycle.
"""

from __future__ import annotations

__all__ = ["CometCallbacksError"]


class CometCallbacksError(Exception):
    """Base class of every comet-callbacks error; messages never contain the API key."""
