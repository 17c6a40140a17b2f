"""SystemMonitor: cadence, payloads, promptness and resilience, on the real machine."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psutil
import pytest

from comet_callbacks.capture.monitor import SystemMonitor


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((time.monotonic(), kind, payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for _, k, p in self.events if k == kind]


def wait_for(cond: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_cadence_and_payloads() -> None:
    sink = Sink()
    mon = SystemMonitor(sink, cpu_interval=0.2, gpu_interval=0.2, context="train")
    mon.start()
    time.sleep(2.0)
    mon.stop()
    cpu, ram, load = sink.of("cpu-metrics"), sink.of("ram-metrics"), sink.of("load-metrics")
    # ~10 expected in 2 s at 0.2 s; generous bounds on a shared machine
    assert 5 <= len(cpu) <= 12
    assert len(ram) == len(cpu) == len(load)
    assert sink.of("gpu-metrics") == []  # no NVML here
    n_cpus = psutil.cpu_count()
    for p in cpu:
        assert len(p["cpuPercentUtilization"]) == n_cpus
        assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in p["cpuPercentUtilization"])
    for p in ram:
        assert isinstance(p["totalRam"], int) and isinstance(p["usedRam"], int)
        assert 0 < p["usedRam"] <= p["totalRam"] == psutil.virtual_memory().total
    for p in load:
        assert isinstance(p["loadAverage"], float) and p["loadAverage"] >= 0
    now_ms = time.time() * 1000
    for p in cpu + ram + load:
        assert isinstance(p["timestamp"], int) and now_ms - 10_000 < p["timestamp"] <= now_ms
        assert p["context"] == "train"
        assert "step" not in p and "epoch" not in p
    stamps = [p["timestamp"] for p in cpu]
    assert stamps == sorted(stamps)


def test_first_sample_comes_right_after_start() -> None:
    sink = Sink()
    mon = SystemMonitor(sink, cpu_interval=68.0)
    t0 = time.monotonic()
    mon.start()
    try:
        assert wait_for(lambda: sink.of("cpu-metrics"), timeout=3.0)
        assert sink.events[0][0] - t0 < 2.0
    finally:
        mon.stop()


def test_cpu_percent_sees_a_busy_core() -> None:
    sink = Sink()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    burner = threading.Thread(target=spin, daemon=True)
    burner.start()
    mon = SystemMonitor(sink, cpu_interval=0.3)
    mon.start()
    try:
        assert wait_for(lambda: len(sink.of("cpu-metrics")) >= 3)
    finally:
        mon.stop()
        stop.set()
    # a spinning thread keeps (at least) one core busy for most of each window
    assert max(max(p["cpuPercentUtilization"]) for p in sink.of("cpu-metrics")[1:]) > 50.0


def test_step_and_epoch_from_position() -> None:
    sink = Sink()
    pos = {"step": 7, "epoch": None}
    mon = SystemMonitor(sink, cpu_interval=0.1, position=lambda: (pos["step"], pos["epoch"]))
    mon.start()
    try:
        assert wait_for(lambda: sink.of("ram-metrics"))
        pos.update(step=12, epoch=3)
        n = len(sink.events)
        assert wait_for(lambda: len(sink.events) > n + 6)
    finally:
        mon.stop()
    first, last = sink.of("ram-metrics")[0], sink.of("ram-metrics")[-1]
    assert first["step"] == 7 and "epoch" not in first
    assert last["step"] == 12 and last["epoch"] == 3
    assert "context" not in last


def test_stop_is_prompt() -> None:
    mon = SystemMonitor(Sink(), cpu_interval=68.0, gpu_interval=60.0)
    mon.start()
    time.sleep(0.5)  # the thread is now waiting for a 68 s interval
    thread = mon.thread
    assert thread is not None and thread.is_alive() and thread.daemon
    t0 = time.monotonic()
    mon.stop()
    assert time.monotonic() - t0 < 1.0
    assert not thread.is_alive()
    mon.stop()  # idempotent


def test_emit_raising_does_not_kill_thread(caplog: pytest.LogCaptureFixture) -> None:
    got: list[str] = []

    def bad_emit(kind: str, payload: dict[str, Any]) -> None:
        if kind == "cpu-metrics":
            raise RuntimeError("queue full")
        got.append(kind)

    mon = SystemMonitor(bad_emit, cpu_interval=0.1)
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        mon.start()
        try:
            assert wait_for(lambda: got.count("ram-metrics") >= 5)
            assert mon.thread is not None and mon.thread.is_alive()
        finally:
            mon.stop()
    failures = [r for r in caplog.records if "cpu-metrics emit" in r.getMessage()]
    assert len(failures) == 1  # logged once, not per sample


def test_failing_source_is_skipped_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A restricted /proc: psutil raising for RAM must not stop CPU and load samples."""

    def denied() -> Any:
        raise PermissionError("/proc/meminfo: permission denied")

    monkeypatch.setattr(psutil, "virtual_memory", denied)
    sink = Sink()
    mon = SystemMonitor(sink, cpu_interval=0.1)
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        mon.start()
        try:
            assert wait_for(lambda: len(sink.of("load-metrics")) >= 4)
        finally:
            mon.stop()
    assert sink.of("ram-metrics") == []
    assert len(sink.of("cpu-metrics")) >= 4
    ram_logs = [r for r in caplog.records if "ram-metrics" in r.getMessage()]
    assert len(ram_logs) == 1 and ram_logs[0].levelno == logging.DEBUG


def test_set_intervals_takes_effect_promptly() -> None:
    sink = Sink()
    mon = SystemMonitor(sink, cpu_interval=60.0)
    mon.start()
    try:
        assert wait_for(lambda: len(sink.of("cpu-metrics")) == 1)
        time.sleep(0.3)
        assert len(sink.of("cpu-metrics")) == 1  # the next one is a minute away
        mon.set_intervals(cpu_interval=0.1)
        assert wait_for(lambda: len(sink.of("cpu-metrics")) >= 5, timeout=3.0)
        mon.set_intervals(cpu_interval=60.0)
        time.sleep(0.2)  # let an in-flight sample land
        n = len(sink.of("cpu-metrics"))
        time.sleep(0.6)
        assert len(sink.of("cpu-metrics")) == n  # slowed down again
    finally:
        mon.stop()


def test_cpu_disabled_and_no_gpu_means_no_thread_work() -> None:
    sink = Sink()
    mon = SystemMonitor(sink, cpu_interval=0.1, gpu_interval=0.1, cpu=False)
    mon.start()
    time.sleep(0.4)
    mon.stop()
    assert sink.events == []
