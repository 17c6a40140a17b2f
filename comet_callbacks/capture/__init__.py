"""Automatic capture building blocks: system details, metrics, git, code, output, cloud.

These modules know nothing about ``Experiment`` or REST: they return payload dicts/bytes or
call the callbacks they are given. Every capture is best effort - a failure is logged once at
debug level on the ``comet_callbacks.capture`` logger and never raised.
"""

from __future__ import annotations

from comet_callbacks.capture.cloud import collect_cloud_details
from comet_callbacks.capture.code import entry_script_path, iter_code_files, read_source
from comet_callbacks.capture.git import collect_git_metadata, collect_git_patch, find_repo_root
from comet_callbacks.capture.monitor import SystemMonitor
from comet_callbacks.capture.output import OutputCapture
from comet_callbacks.capture.system import (
    collect_gpu_metrics,
    collect_gpu_static_info,
    collect_host_details,
    collect_installed_packages,
    collect_os_packages,
)

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
