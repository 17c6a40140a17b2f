"""Asynchronous webhook delivery: a daemon thread posts JSON notifications with retries.

Requests that change a registry version's stages only enqueue (after their transaction
commits), so a slow or dead receiver never blocks or fails the request.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("comet_callbacks.server.webhooks")

Target = tuple[str, dict[str, str]]


class Notifier:
    """Queue of ``(targets, payload)`` delivered by one background thread."""

    def __init__(self, limits: Any) -> None:
        self.retries = int(getattr(limits, "webhook_retries", 3))
        self.timeout = float(getattr(limits, "webhook_timeout_s", 5.0))
        self._queue: queue.Queue[tuple[Target, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self, targets: list[Target], payload: dict[str, Any]) -> None:
        """Enqueue one POST of ``payload`` to each target; returns at once."""
        if not targets:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="comet-webhooks", daemon=True
                )
                self._thread.start()
        for target in targets:
            self._queue.put((target, payload))

    def close(self) -> None:
        """Stop the thread after the queued deliveries (bounded wait)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            (url, headers), payload = item
            self._deliver(url, headers, payload)

    def _deliver(self, url: str, headers: dict[str, str], payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, method="POST")
            req.add_header("Content-Type", "application/json")
            for name, value in headers.items():
                req.add_header(str(name), str(value))
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    if resp.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    log.warning("webhook %s answered %s; not retrying", url, exc.code)
                    return
            except Exception as exc:  # connection refused, timeout, bad URL
                log.info("webhook %s failed (%s), attempt %d", url, type(exc).__name__, attempt + 1)
            time.sleep(min(0.2 * 2**attempt, 2.0))
        log.warning("webhook %s: giving up after %d attempts", url, self.retries + 1)
