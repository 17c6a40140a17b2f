"""Settings that switch every automatic capture off, for tests about something else.

``quiet(**extra)`` gives keyword arguments for ``Experiment``; ``quiet_env(**extra)`` the same
as ``COMET_*`` environment variables (for subprocesses).
"""

from __future__ import annotations

from typing import Any

from comet_callbacks.config import FIELDS

_ENV = {f.name: f.env for f in FIELDS}
CAPTURES = (
    "auto_log_code",
    "auto_log_git_metadata",
    "auto_log_git_patch",
    "auto_log_env_details",
    "auto_log_env_cpu",
    "auto_log_env_gpu",
    "auto_log_output_logger",
)


def quiet(**extra: Any) -> dict[str, Any]:
    """``Experiment`` keyword arguments: no captures, plus ``extra``."""
    return {**dict.fromkeys(CAPTURES, False), **extra}


def quiet_env(**extra: Any) -> dict[str, str]:
    """The same settings as environment variables."""
    return {
        _ENV[k]: (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in quiet(**extra).items()
    }
