"""What is captured once when an experiment starts: the entry script and its source, host and
system details, installed and OS packages, GPU and cloud details, git metadata and patch.

Runs on a background thread (the training never waits for it); each part may fail alone, and
a failure is only logged at debug level: capture never breaks anything.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

from ..config import Settings, scrub
from ..rest.endpoints import calls
from . import cloud as cloud_capture
from . import code as code_capture
from . import git as git_capture
from . import system

__all__ = ["capture_at_start"]

log = logging.getLogger("comet_callbacks")


def capture_at_start(settings: Settings, key: str, put: Callable[[Any], None]) -> None:
    """Build each start-up call for experiment ``key`` (as the ``auto_log_*`` settings ask)
    and hand it to ``put``."""
    s = settings
    try:
        path = code_capture.entry_script_path()
        if path:
            put(calls.set_file_path(key, path))
            if s.auto_log_code:
                src = code_capture.read_source(path)
                if src is not None:
                    put(calls.set_code(key, src))
        if s.auto_log_env_details:
            details = system.collect_host_details()
            if isinstance(details.get("command"), list):  # e.g. `train.py --api-key KEY`
                details["command"] = [scrub(str(a)) for a in details["command"]]
            if not s.auto_log_env_host:
                for k in ("hostname", "ip", "networkInterfaceIps", "user"):
                    details.pop(k, None)
            # the collected keys are the wire's (camelCase): the endpoint's arguments
            fields = {re.sub("([A-Z])", r"_\1", k).lower(): v for k, v in details.items()}
            put(calls.log_system_details(key, **fields))
            put(
                calls.log_system_details(
                    key, installed_packages=system.collect_installed_packages()
                )
            )
            gpus = system.collect_gpu_static_info() if s.auto_log_env_gpu else []
            if gpus:
                put(calls.log_system_details(key, gpu_static_info_list=gpus))
            cloud = cloud_capture.collect_cloud_details()
            if cloud:
                put(calls.log_cloud_details(key, cloud[0], cloud[1]))
            os_pkgs = system.collect_os_packages()
            if os_pkgs:
                put(calls.log_system_details(key, os_packages=os_pkgs))
        if s.auto_log_git_metadata or s.auto_log_git_patch:
            start_dir = os.path.dirname(path) if path else None
            if s.auto_log_git_metadata:
                meta = git_capture.collect_git_metadata(start_dir)
                if meta:
                    put(calls.log_git_metadata(key, **meta))
            if s.auto_log_git_patch:
                patch = git_capture.collect_git_patch(start_dir)
                if patch:
                    put(calls.upload_git_patch(key, patch))
    except Exception as exc:  # capture must never break anything
        log.debug("comet_callbacks: start-up capture failed: %r", exc)
