"""The keep-alive of an online experiment: ``set-status`` now and then every interval the server
asks for, which also tells the system monitor the server's sampling intervals (unless set).

A failing heartbeat never blocks or crashes anything: the first failure of a series is logged
at debug level, and the next beat is tried after the same interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .config import Settings
from .rest.endpoints import calls

__all__ = ["heartbeat"]

log = logging.getLogger("comet_callbacks")


def heartbeat(
    client: Any,
    key: str,
    settings: Settings,
    stop: threading.Event,
    monitor: Callable[[], Any] = lambda: None,
) -> None:
    """Beat until ``stop`` is set (run on its own thread)."""
    interval = 10.0
    failed = False
    while not stop.is_set() and client is not None:
        try:
            ans = client.transport.send(
                calls.set_status(key), timeout=min(10.0, settings.timeout_api)
            )
            if isinstance(ans, dict):
                interval = max(0.5, ans.get("isAliveBeatDurationMillis", 10000) / 1000.0)
                mon = monitor()
                if mon is not None:
                    s = settings
                    mon.set_intervals(
                        cpu_interval=s.cpu_monitor_interval
                        or ans.get("cpuMonitorIntervalMillis", 68000) / 1000.0,
                        gpu_interval=s.gpu_monitor_interval
                        or ans.get("gpuMonitorIntervalMillis", 60000) / 1000.0,
                    )
            failed = False
        except Exception as exc:  # a failing heartbeat never blocks or crashes anything
            if not failed:
                log.debug("comet_callbacks: heartbeat failed: %r", exc)
            failed = True
        stop.wait(interval)
