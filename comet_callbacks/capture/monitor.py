"""Periodic system metrics (WIRE #41-#44) sampled on one daemon thread.

The monitor only measures and calls ``emit(kind, payload)``; the caller (``Experiment``) turns
payloads into requests. ``emit`` should just enqueue: it runs on the monitor thread.

CPU percentages are computed from this monitor's own ``psutil.cpu_times(percpu=True)``
snapshots rather than ``psutil.cpu_percent(interval=None)``: the latter keeps one
process-global "last call" state, so a user's own ``cpu_percent()`` calls would silently
shorten our measuring window. The formula is psutil's (busy = total - idle - iowait, guest
time excluded on Linux), so values match ``cpu_percent`` over the same interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from comet_callbacks.capture import system

logger = logging.getLogger("comet_callbacks.capture")

Emit = Callable[[str, dict[str, Any]], None]
Position = Callable[[], tuple[int | None, int | None]]

# The first CPU sample comes this soon after start (so short runs get one), late enough that
# the percentages cover a real window.
_FIRST_CPU_SAMPLE_S = 0.25
_MIN_INTERVAL_S = 0.05  # guard against 0/negative intervals turning the loop into a spin


def _busy_and_total(t: Any) -> tuple[float, float]:
    """psutil's busy/total split of one ``cpu_times`` entry."""
    total = sum(t)
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # already in user/nice
    busy = total - t.idle - getattr(t, "iowait", 0.0)
    return busy, total


class _CpuPercent:
    """Per-core CPU percent between consecutive ``sample()`` calls (private state)."""

    def __init__(self) -> None:
        import psutil  # here, on the monitor thread: a cheap package import

        self._last = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]

    def sample(self) -> list[float]:
        import psutil

        now = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]
        out: list[float] = []
        for (busy0, total0), (busy1, total1) in zip(self._last, now, strict=False):
            d_total = total1 - total0
            pct = 0.0 if d_total <= 0 else (busy1 - busy0) / d_total * 100.0
            out.append(round(min(max(pct, 0.0), 100.0), 1))
        self._last = now
        return out


def _load_average() -> float:
    if hasattr(os, "getloadavg"):
        return float(os.getloadavg()[0])
    import psutil

    return float(psutil.getloadavg()[0])  # Windows: psutil emulates it


class SystemMonitor:
    """Samples CPU, RAM and load every ``cpu_interval`` s and GPUs every ``gpu_interval`` s.

    Payloads (``+T`` = ``timestamp`` epoch ms, ``step``/``epoch`` from ``position()`` when not
    None, ``context`` when set):

    * ``emit("cpu-metrics", {"cpuPercentUtilization": [per-core %], +T})``
    * ``emit("ram-metrics", {"totalRam": bytes, "usedRam": bytes, +T})``
    * ``emit("load-metrics", {"loadAverage": 1-min float, +T})``
    * ``emit("gpu-metrics", {"gpus": [{gpuId, freeMemory, usedMemory, gpuUtilization,
      totalMemory}], +T})``, only when NVML reports GPUs.

    A failing sample or ``emit`` is logged once per kind at debug level and never stops the
    thread. ``stop()`` is prompt: the thread sleeps on an Event, not ``time.sleep``.
    """

    def __init__(
        self,
        emit: Emit,
        cpu_interval: float = 68.0,
        gpu_interval: float = 60.0,
        position: Position | None = None,
        context: str | None = None,
        gpu: bool = True,
        cpu: bool = True,
    ) -> None:
        self._emit = emit
        self._cpu_interval = max(float(cpu_interval), _MIN_INTERVAL_S)
        self._gpu_interval = max(float(gpu_interval), _MIN_INTERVAL_S)
        self._position = position
        self._context = context
        self._gpu_enabled = gpu
        self._cpu_enabled = cpu
        self._stop = threading.Event()
        self._wake = threading.Event()  # set to re-read intervals (and by stop)
        self._thread: threading.Thread | None = None
        self._failed_kinds: set[str] = set()
        self._lock = threading.Lock()

    # --- public API ------------------------------------------------------------------------

    @property
    def thread(self) -> threading.Thread | None:
        """The sampling thread while running (for diagnostics and benchmarks)."""
        return self._thread

    def start(self) -> None:
        """Start the daemon thread (no-op if already running); samples begin right away."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._wake.clear()
            self._thread = threading.Thread(
                target=self._run, name="comet-callbacks-system-monitor", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Wake and join the thread (at most ``timeout`` s). Safe to call repeatedly."""
        with self._lock:
            thread = self._thread
            self._stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def set_intervals(
        self, cpu_interval: float | None = None, gpu_interval: float | None = None
    ) -> None:
        """Change the sampling intervals (e.g. from the keep-alive answer); applies promptly.

        The next sample is due one new interval after the previous one (immediately if that
        moment has already passed).
        """
        if cpu_interval is not None:
            self._cpu_interval = max(float(cpu_interval), _MIN_INTERVAL_S)
        if gpu_interval is not None:
            self._gpu_interval = max(float(gpu_interval), _MIN_INTERVAL_S)
        self._wake.set()

    # --- sampling --------------------------------------------------------------------------

    def _failed(self, kind: str, exc: BaseException) -> None:
        if kind not in self._failed_kinds:
            self._failed_kinds.add(kind)
            logger.debug("system monitor: %s sample failed (logged once): %r", kind, exc)

    def _common(self) -> dict[str, Any]:
        """``+T``: timestamp, and step/epoch/context when known."""
        out: dict[str, Any] = {"timestamp": int(time.time() * 1000)}
        if self._position is not None:
            try:
                step, epoch = self._position()
                if step is not None:
                    out["step"] = int(step)
                if epoch is not None:
                    out["epoch"] = int(epoch)
            except Exception as exc:
                self._failed("position", exc)
        if self._context is not None:
            out["context"] = self._context
        return out

    def _send(self, kind: str, build: Callable[[], dict[str, Any]]) -> None:
        """Build one payload and emit it; any failure is logged once per kind."""
        try:
            payload = build()
        except Exception as exc:
            self._failed(kind, exc)
            return
        payload.update(self._common())
        try:
            self._emit(kind, payload)
        except Exception as exc:
            self._failed(f"{kind} emit", exc)

    def _sample_cpu(self, cpu: _CpuPercent | None) -> None:
        if cpu is not None:
            self._send("cpu-metrics", lambda: {"cpuPercentUtilization": cpu.sample()})

        def ram() -> dict[str, Any]:
            import psutil

            vm = psutil.virtual_memory()
            # "used" as total - available: what is really unavailable to new allocations
            # (psutil's ``used`` differs per platform in how it counts caches).
            return {"totalRam": int(vm.total), "usedRam": int(vm.total - vm.available)}

        self._send("ram-metrics", ram)
        self._send("load-metrics", lambda: {"loadAverage": _load_average()})

    def _sample_gpu(self) -> None:
        gpus = system.collect_gpu_metrics()
        if gpus:
            self._send("gpu-metrics", lambda: {"gpus": gpus})

    def _run(self) -> None:
        try:
            cpu: _CpuPercent | None = _CpuPercent() if self._cpu_enabled else None
        except Exception as exc:  # e.g. restricted /proc: RAM/load may still work
            self._failed("cpu-metrics", exc)
            cpu = None
        try:
            gpu_on = self._gpu_enabled and system.has_gpus()
        except Exception as exc:
            self._failed("gpu-metrics", exc)
            gpu_on = False

        start = time.monotonic()
        # "last" times are chosen so the first samples fall right after start.
        last_cpu = start + min(_FIRST_CPU_SAMPLE_S, self._cpu_interval) - self._cpu_interval
        last_gpu = start - self._gpu_interval
        sampled = False
        while not self._stop.is_set():
            now = time.monotonic()
            if self._cpu_enabled and now >= last_cpu + self._cpu_interval:
                last_cpu = now
                self._sample_cpu(cpu)
                sampled = True
            if gpu_on and now >= last_gpu + self._gpu_interval:
                last_gpu = now
                self._sample_gpu()
            due = []
            if self._cpu_enabled:
                due.append(last_cpu + self._cpu_interval)
            if gpu_on:
                due.append(last_gpu + self._gpu_interval)
            if not due:
                return  # nothing to sample
            timeout = max(min(due) - time.monotonic(), 0.0)
            self._wake.wait(timeout)
            self._wake.clear()
        if self._cpu_enabled and not sampled:
            # a run shorter than the first interval still gets one CPU/RAM/load sample
            self._sample_cpu(cpu)
