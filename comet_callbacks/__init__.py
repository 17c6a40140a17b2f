"""comet-callbacks: fast, reliable Comet ML experiment tracking over the REST API.

>>> import comet_callbacks
>>> exp = comet_callbacks.start(project_name="demo")   # doctest: +SKIP
>>> exp.log_metric("loss", 0.1, step=1)                # doctest: +SKIP
>>> exp.end()                                          # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import ConfigError, Settings  # noqa: E402
from .errors import CometCallbacksError  # noqa: E402
from .experiment import Experiment, ExperimentError, get_running_experiment, start  # noqa: E402
from .log import install as _install_stderr_fallback  # noqa: E402

_install_stderr_fallback()  # warnings reach stderr until the program configures logging

__all__ = [
    "CometCallbacksError",
    "ConfigError",
    "Experiment",
    "ExperimentError",
    "Settings",
    "__version__",
    "get_running_experiment",
    "start",
]
