"""The floor: no tracker at all.

For the caller-cost scenario it is a plain ``collections.deque.append`` of the point (what the
cheapest possible non-blocking logger does on the caller's thread, including the Python call);
for the training scenarios it adds nothing to the trainer.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from typing import Any

from . import Peer


class NoLogging(Peer):
    key = "none"
    label = "no logging (baseline)"
    dist = None
    mode = "training: no logger; caller: `deque.append` of the point"

    def version(self) -> str:
        return f"Python {sys.version.split()[0]}"

    def open(self, workdir: str) -> None:
        self._q: collections.deque[Any] = collections.deque()

    def log_scalar(self) -> Callable[[str, float, int], Any]:
        append = self._q.append

        def f(name: str, value: float, step: int) -> None:
            append((name, value, step))

        return f

    def log_dict(self) -> Callable[[dict[str, float], int], Any]:
        append = self._q.append

        def f(metrics: dict[str, float], step: int) -> None:
            for name, value in metrics.items():
                append((name, value, step))

        return f

    def close(self) -> dict[str, Any] | None:
        self._counts: dict[str, int] = {}
        for name, _, _ in self._q:
            self._counts[name] = self._counts.get(name, 0) + 1
        self._q.clear()
        return None

    def stored(self, workdir: str) -> dict[str, int]:
        """What the deque held at close (training stores nothing: no check there)."""
        return getattr(self, "_counts", {})

    def lightning(self, workdir: str) -> dict[str, Any]:
        return {"logger": False, "callbacks": []}

    def hf(self, workdir: str) -> dict[str, Any]:
        return {"report_to": "none", "callbacks": []}

    def keras(self, workdir: str) -> list[Any]:
        return []
