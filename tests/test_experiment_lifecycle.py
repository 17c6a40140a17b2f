"""Modes (online / offline / disabled) and how an experiment ends: explicitly, at interpreter
exit, on an uncaught exception, on SIGTERM; bounded end with the server down; no numpy/torch
import for plain floats. Process-level behaviour runs in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from quiet import quiet, quiet_env

from comet_callbacks import Experiment
from comet_callbacks.upload import upload_paths

QUIET: dict[str, Any] = quiet(timeout_cleaning=10)
QUIET_ENV = quiet_env(timeout_cleaning=10)


def _child(code: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------------- modes


def test_offline_is_the_default_without_key_or_url(monkeypatch, tmp_path, capsys) -> None:
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "off"))
    exp = Experiment(**QUIET)
    start_err = capsys.readouterr().err
    assert exp.mode == "offline" and exp.url is None
    lines = [ln for ln in start_err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert exp.offline_path in lines[0] and "comet-callbacks upload" in lines[0]
    exp.log_metric("loss", 0.5, step=1)
    exp.end()
    events = (Path(exp.offline_path) / "events.jsonl").read_text().splitlines()
    metric = [json.loads(e) for e in events if "write/experiment/metric" in e]
    assert [m["call"]["json"]["metricValue"] for m in metric] == [0.5]


def test_comet_mode_overrides(comet_env, monkeypatch) -> None:
    monkeypatch.setenv("COMET_MODE", "offline")
    exp = Experiment(**QUIET)
    assert exp.mode == "offline"
    exp.end()
    monkeypatch.setenv("COMET_MODE", "disabled")
    assert Experiment(**QUIET).mode == "disabled"
    monkeypatch.delenv("COMET_MODE")
    exp = Experiment(**QUIET)
    assert exp.mode == "online"
    exp.end()


def test_disabled_is_a_true_no_op(httpserver, monkeypatch, tmp_path) -> None:
    """No thread, no file, no request, even with a key and URL configured."""
    off = tmp_path / "off"
    off.mkdir()
    monkeypatch.setenv("COMET_URL_OVERRIDE", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("COMET_API_KEY", "k" * 20)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(off))
    monkeypatch.setenv("COMET_MODE", "disabled")
    before = threading.active_count()
    with Experiment(project_name="x", tags=["t"]) as exp:  # every capture on (the defaults)
        assert exp.mode == "disabled" and exp.key is None and exp.offline_path is None
        exp.log_metric("loss", 1.0, step=1)
        exp.log_metrics({"a": 1})
        exp.log_parameters({"p": {"q": 1}})
        exp.log_other("o", 1)
        exp.add_tag("t")
        exp.log_asset(b"data", file_name="f.bin")
        exp.log_text("t")
        exp.log_html("<b/>")
        exp.set_model_graph("g")
        exp.log_system_info("k", "v")
        assert exp.flush(1) is True
        assert threading.active_count() == before
    assert threading.active_count() == before
    assert httpserver.log == []
    assert list(off.iterdir()) == []


def test_unreachable_server_falls_back_to_offline(monkeypatch, tmp_path, caplog) -> None:
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COMET_URL_OVERRIDE", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("COMET_API_KEY", "k" * 20)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path))
    exp = Experiment(**QUIET, timeout_api=2)
    assert exp.mode == "offline"
    assert any("OFFLINE" in r.getMessage() for r in caplog.records)
    exp.end()


# ---------------------------------------------------------------------- end


def test_end_is_bounded_when_the_server_is_gone(comet_env, reader, caplog) -> None:
    exp = Experiment(**{**QUIET, "timeout_cleaning": 2})
    exp.log_metric("before", 1.0)
    assert exp.flush(10)
    comet_env.stop()
    for i in range(100):
        exp.log_metric("during", float(i), step=i)
    t0 = time.monotonic()
    exp.end()
    waited = time.monotonic() - t0
    assert waited < 2 + 5, waited  # timeout_cleaning + the lanes' last attempt
    # a warning (stderr unless logging is configured, as pytest does: tests/test_messages.py)
    assert f"comet-callbacks upload {exp.offline_path}" in caplog.text
    # what was left is on disk and uploads later: every point once, and the end calls
    comet_env.start()
    [res] = upload_paths([exp.offline_path], progress=False)
    assert res.complete, res.errors
    assert sorted(m["step"] for m in reader.metrics(exp.key, "during")) == list(range(100))
    assert len(reader.metrics(exp.key, "before")) == 1
    meta = reader.metadata(exp.key)
    assert meta["running"] is False and reader.others(exp.key)["status"] == "success"


def test_not_ended_explicitly_ends_at_exit(comet_env, reader) -> None:
    proc = _child(
        """
        import comet_callbacks
        exp = comet_callbacks.start(project_name="atexit")
        for i in range(20):
            exp.log_metric("loss", 1.0 / (i + 1), step=i)
        print(exp.key)
        """
    )
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert len(reader.metrics(key, "loss")) == 20
    meta = reader.metadata(key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
    assert reader.others(key)["status"] == "success"


def test_uncaught_exception_marks_failed(comet_env, reader) -> None:
    proc = _child(
        """
        import comet_callbacks
        exp = comet_callbacks.start(project_name="crash")
        exp.log_metric("loss", 1.0, step=0)
        print(exp.key, flush=True)
        raise ValueError("training blew up")
        """
    )
    assert proc.returncode == 1 and "training blew up" in proc.stderr
    key = proc.stdout.strip()
    others = reader.others(key)
    assert others["status"] == "failed" and others["hasCrashed"] == "true"
    assert reader.metadata(key)["running"] is False
    assert len(reader.metrics(key, "loss")) == 1


def test_sigterm_ends_as_interrupted(comet_env, reader, tmp_path) -> None:
    ready = tmp_path / "ready"
    code = f"""
        import time, comet_callbacks
        exp = comet_callbacks.start(project_name="term")
        exp.log_metric("loss", 1.0, step=0)
        exp.flush(10)
        open({str(ready)!r}, "w").write(exp.key)
        while True:
            time.sleep(0.05)
        """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **QUIET_ENV},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == -signal.SIGTERM
    key = ready.read_text()
    others = reader.others(key)
    assert others["status"] == "interrupted" and others["hasCrashed"] == "true"
    assert reader.metadata(key)["running"] is False


def test_plain_floats_do_not_import_numpy_or_torch(comet_env) -> None:
    proc = _child(
        """
        import sys, comet_callbacks
        exp = comet_callbacks.start(project_name="imports")
        for i in range(50):
            exp.log_metric("loss", 1.0 / (i + 1), step=i)
            exp.log_metrics({"a": float(i), "b": i}, step=i)
        exp.log_metric("bad", "x")
        exp.log_parameters({"lr": 0.1, "opt": {"name": "adam"}})
        exp.log_other("o", [1, 2])
        exp.end()
        print(sorted(m for m in ("numpy", "torch", "jax", "tensorflow") if m in sys.modules))
        """,
        # every automatic capture on (the defaults): none of it may import them either
        env={k: "true" for k in QUIET_ENV if k.startswith("COMET_AUTO_LOG")},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
