"""The event log and ``comet-callbacks upload``: offline runs, SIGKILLed runs, interrupted
uploads re-run without duplicates, a run still being written is left alone, and the API key
never reaches the disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from quiet import quiet, quiet_env

from comet_callbacks import Experiment
from comet_callbacks.offline import list_runs, read_acks, read_events
from comet_callbacks.upload import upload_paths, upload_run

QUIET: dict[str, Any] = quiet(timeout_cleaning=10)
QUIET_ENV = quiet_env()
CLI = str(Path(sys.executable).with_name("comet-callbacks"))


def _offline_root() -> Path:
    return Path(os.environ["COMET_OFFLINE_DIRECTORY"])


def _assert_key_not_on_disk(root: Path, api_key: str) -> None:
    checked = 0
    for path in root.rglob("*"):
        if path.is_file():
            assert api_key.encode() not in path.read_bytes(), path
            checked += 1
    assert checked > 0


def _counts(reader: Any, key: str, name: str) -> Counter[int]:
    return Counter(int(float(m["metricValue"])) for m in reader.metrics(key, name))


def test_offline_run_uploads_everything_via_the_cli(comet_env, reader, tmp_path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(300_000))  # above the inline limit: copied to files/
    exp = Experiment(**QUIET, mode="offline", project_name="offp", experiment_name="off-run")
    exp.log_parameters({"opt": {"lr": 0.1}})
    for i in range(300):
        exp.log_metric("loss", float(i), step=i)
    exp.log_asset(str(weights), step=2)
    exp.log_asset(b"small", file_name="s.txt")
    exp.add_tags(["x", "y"])
    exp.log_html("<p>h</p>")
    exp.end()
    weights.unlink()  # the run must not depend on the original file
    _assert_key_not_on_disk(_offline_root(), comet_env.api_key)
    proc = subprocess.run(
        [CLI, "upload", exp.offline_path], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 failed" in proc.stdout and "complete" in proc.stdout
    [row] = reader.experiments("local", "offp")
    key = row["experimentKey"]
    assert f"/local/offp/{key}" in proc.stdout  # the link
    assert row["experimentName"] == "off-run"
    assert _counts(reader, key, "loss") == Counter(range(300))
    assert reader.parameters(key) == {"opt|lr": "0.1"}
    assert sorted(reader.tags(key)) == ["x", "y"]
    assert reader.html(key) == "<p>h</p>"
    assets = {a["fileName"]: a for a in reader.assets(key)}
    assert len(reader.get_asset(key, assets["w.bin"]["assetId"])) == 300_000
    assert reader.get_asset(key, assets["s.txt"]["assetId"]) == b"small"
    meta = reader.metadata(key)
    assert meta["running"] is False and reader.others(key)["status"] == "success"
    # a second upload finds nothing left to do
    again = subprocess.run([CLI, "upload"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to upload" in again.stdout
    assert len(reader.experiments("local", "offp")) == 1


CHILD = """
import os, sys, time, comet_callbacks
marker = sys.argv[1]
exp = comet_callbacks.start(project_name="killed")
with open(marker + ".key", "w") as fh:
    fh.write(exp.key)
i = 0
with open(marker, "a") as out:
    while True:
        exp.log_metric("idx", float(i), step=i)
        if i % 50 == 0:
            out.write(f"{i} {time.time()}\\n")
            out.flush()
            time.sleep(0.1)
        i += 1
"""


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_sigkill_then_upload_delivers_exactly_once(comet_env, reader, tmp_path, mode) -> None:
    marker = tmp_path / "progress"
    env = {**os.environ, **QUIET_ENV, "COMET_MODE": mode}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() or len(marker.read_text().splitlines()) < 10:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)
        kill_time = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    progress = [ln.split() for ln in marker.read_text().splitlines() if ln.strip()]
    # everything logged up to ~1 s before the kill must be on disk or on the server
    safe = max(int(i) for i, t in progress if float(t) <= kill_time - 1.0)
    logged = max(int(i) for i, _ in progress)
    [run] = list_runs(str(_offline_root()))
    _assert_key_not_on_disk(_offline_root(), comet_env.api_key)
    proc2 = subprocess.run([CLI, "upload", run], capture_output=True, text=True, timeout=180)
    assert proc2.returncode == 0, proc2.stdout + proc2.stderr
    if mode == "online":
        key = (tmp_path / "progress.key").read_text()
    else:
        [row] = reader.experiments("local", "killed")
        key = row["experimentKey"]
    counts = _counts(reader, key, "idx")
    assert all(counts[i] == 1 for i in range(safe + 1)), [
        i for i in range(safe + 1) if counts[i] != 1
    ]
    assert max(counts.values()) == 1, "a point arrived twice"
    assert safe <= max(counts) < logged + 50  # nothing invented past what was logged
    others = reader.others(key)
    assert others["status"] == "crashed" and reader.metadata(key)["running"] is False


def _offline_run(n: int) -> Experiment:
    exp = Experiment(**QUIET, mode="offline", project_name="interrupted")
    for i in range(n):
        exp.log_metric("m", float(i), step=i)
        exp.log_parameter("p", i)
    exp.end()
    return exp


def test_interrupted_upload_rerun_does_not_duplicate(comet_env, reader, monkeypatch) -> None:
    # Per point, so the server can be stopped half-way (300 points make a single batch, which
    # is stored before any stopper could act); interrupted batches: test_batch_delivery.py.
    monkeypatch.setenv("COMET_BATCH", "false")
    exp = _offline_run(300)
    run = exp.offline_path
    n_events = len(list(read_events(run)))

    def stop_midway() -> None:
        while len(read_acks(run)) < 150:
            time.sleep(0.005)
        comet_env.stop()

    stopper = threading.Thread(target=stop_midway)
    stopper.start()
    first = upload_run(run, unreachable=1.0)  # the server is gone: stop after 1 s of silence
    stopper.join()
    assert not first.complete and first.errors
    assert 150 <= len(read_acks(run)) < n_events
    comet_env.start()
    [second] = upload_paths([run], progress=False)
    assert second.complete, second.errors
    assert second.skipped >= 150
    [row] = reader.experiments("local", "interrupted")
    key = row["experimentKey"]
    assert second.experiment_key == key == first.experiment_key
    assert _counts(reader, key, "m") == Counter(range(300))
    assert reader.parameters(key)["p"] == "299"
    assert reader.metadata(key)["running"] is False


def test_ack_lost_for_a_stored_point_is_not_sent_again(comet_env, reader) -> None:
    """The answer of the last request was lost (ack missing) but the server stored it."""
    exp = _offline_run(20)
    run = Path(exp.offline_path)
    assert upload_run(str(run)).complete
    acks = (run / "acks.log").read_text().splitlines()
    metric_seqs = {
        e["seq"] for e in read_events(str(run)) if "metricName" in (e["call"].get("json") or {})
    }
    # forget the acks of 5 metric points, as if the process died before writing them
    lost = sorted(metric_seqs)[-5:]
    (run / "acks.log").write_text(
        "".join(ln + "\n" for ln in acks if int(ln.split()[1]) not in lost)
    )
    meta = json.loads((run / "meta.json").read_text())
    meta.pop("uploaded")
    (run / "meta.json").write_text(json.dumps(meta))
    res = upload_run(str(run))
    assert res.complete and res.sent == 0
    assert _counts(reader, res.experiment_key, "m") == Counter(range(20))


def test_a_run_still_being_written_is_not_uploaded(comet_env, reader) -> None:
    exp = Experiment(**QUIET, mode="offline", project_name="live")
    exp.log_metric("m", 1.0)
    exp.flush()
    [res] = upload_paths([exp.offline_path], progress=False)
    assert not res.complete and "still being written" in res.errors[0]
    assert "live" not in [p["projectName"] for p in reader.projects("local")]
    exp.end()
    [res] = upload_paths([exp.offline_path], progress=False)
    assert res.complete
    assert len(reader.metrics(res.experiment_key, "m")) == 1


def test_online_leftovers_continue_the_recorded_experiment(comet_env, reader) -> None:
    """An online run whose end could not deliver everything: upload continues its key."""
    exp = Experiment(**{**QUIET, "timeout_cleaning": 1})
    exp.log_metric("m", 0.0, step=0)
    assert exp.flush(10)
    comet_env.stop()
    for i in range(1, 50):
        exp.log_metric("m", float(i), step=i)
    exp.end()
    comet_env.start()
    proc = subprocess.run([CLI, "upload", "-q"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert exp.key in proc.stdout
    assert _counts(reader, exp.key, "m") == Counter(range(50))
    assert len(reader.experiments("local", "general")) == 1
    assert reader.others(exp.key)["status"] == "success"
