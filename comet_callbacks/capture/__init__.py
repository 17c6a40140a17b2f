"""Automatic capture building blocks: system details, metrics, git, code, output, cloud.

These modules know nothing about ``Experiment`` or REST: they return payload dicts/bytes or
call the callbacks they are given. Every capture is best effort - a failure is logged once at
debug level on the ``comet_callbacks.capture`` logger and never raised.

Names are imported on first use (PEP 562), and heavy modules (``psutil``, ``subprocess``,
``zipfile``) only inside the functions that need them, so that importing the package stays
cheap: the captures run on a background thread, which then pays for those imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comet_callbacks.capture.cloud import collect_cloud_details
    from comet_callbacks.capture.code import entry_script_path, iter_code_files, read_source
    from comet_callbacks.capture.git import (
        collect_git_metadata,
        collect_git_patch,
        find_repo_root,
    )
    from comet_callbacks.capture.monitor import SystemMonitor
    from comet_callbacks.capture.output import OutputCapture
    from comet_callbacks.capture.system import (
        collect_gpu_metrics,
        collect_gpu_static_info,
        collect_host_details,
        collect_installed_packages,
        collect_os_packages,
    )

#: public name -> submodule that defines it
_WHERE = {
    "OutputCapture": "output",
    "SystemMonitor": "monitor",
    "collect_cloud_details": "cloud",
    "collect_git_metadata": "git",
    "collect_git_patch": "git",
    "collect_gpu_metrics": "system",
    "collect_gpu_static_info": "system",
    "collect_host_details": "system",
    "collect_installed_packages": "system",
    "collect_os_packages": "system",
    "entry_script_path": "code",
    "find_repo_root": "git",
    "iter_code_files": "code",
    "read_source": "code",
}

__all__ = [
    "OutputCapture",
    "SystemMonitor",
    "collect_cloud_details",
    "collect_git_metadata",
    "collect_git_patch",
    "collect_gpu_metrics",
    "collect_gpu_static_info",
    "collect_host_details",
    "collect_installed_packages",
    "collect_os_packages",
    "entry_script_path",
    "find_repo_root",
    "iter_code_files",
    "read_source",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
