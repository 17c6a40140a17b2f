"""The offline directory cannot be written (issue 16.9) or fills up (issue 16.1).

Real file systems only: a path below a regular file (``NotADirectoryError``), a read-only
tmpfs and a full 1 MiB tmpfs (see ``tests/tmpfs.py``). An online run never sees an exception
and goes on from memory; an offline run with nowhere to write fails at start with a
``ConfigError`` naming ``COMET_OFFLINE_DIRECTORY``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from quiet import quiet
from tmpfs import mounted_tmpfs

from comet_callbacks import ConfigError, Experiment
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

CLI = str(Path(sys.executable).with_name("comet-callbacks"))


@pytest.fixture(params=["below_a_file", "read_only_mount"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """An offline directory that cannot be created or written."""
    if request.param == "below_a_file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        yield blocker / "offline"
    else:
        with mounted_tmpfs(tmp_path / "ro", read_only=True) as ro:
            yield ro / "offline"


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


def test_unwritable_offline_directory_online_run_continues_in_memory(
    comet_env: ServerHandle,
    reader: Reader,
    unwritable: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(unwritable))
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    exp = Experiment(project_name="unwritable", **quiet(timeout_cleaning=30))
    assert exp.mode == "online" and exp.offline_path is None
    exp.log_parameter("lr", 0.1)
    for i in range(300):
        exp.log_metric("loss", i / 10, step=i)
    exp.end()
    # one warning, naming the folder and the setting
    warned = _warnings(caplog, "cannot be written")
    assert len(warned) == 1, warned
    assert str(unwritable) in warned[0] and "COMET_OFFLINE_DIRECTORY" in warned[0]
    assert "could not be delivered" not in capfd.readouterr().err
    # everything arrived, the experiment ended normally, nothing was written anywhere
    assert sorted(m["step"] for m in reader.metrics(exp.key, "loss")) == list(range(300))
    assert reader.parameters(exp.key)["lr"] == "0.1"
    assert reader.others(exp.key)["status"] == "success"
    assert reader.metadata(exp.key)["running"] is False
    assert not unwritable.exists()


def test_unwritable_offline_directory_offline_mode_is_a_config_error(
    comet_env: ServerHandle, unwritable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(unwritable))
    monkeypatch.setenv("COMET_MODE", "offline")
    with pytest.raises(ConfigError) as info:
        Experiment(**quiet())
    msg = str(info.value)
    assert "COMET_OFFLINE_DIRECTORY" in msg and str(unwritable) in msg, msg
    assert info.value.setting == "offline_directory"
    assert info.value.source == "environment variable COMET_OFFLINE_DIRECTORY"
    assert not unwritable.exists()


def test_unwritable_offline_directory_memory_is_bounded_and_drops_are_counted(
    comet_env: ServerHandle,
    unwritable: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The server goes away mid-run: at most COMET_MAX_QUEUE_SIZE events wait in memory,
    later ones are counted as dropped and end() says so (and returns)."""
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(unwritable))
    exp = Experiment(project_name="bounded", **quiet(timeout_cleaning=2, max_queue_size=100))
    assert exp.flush(10)
    comet_env.close()
    for i in range(1000):
        exp.log_metric("loss", float(i), step=i)
    exp.end()
    err = capfd.readouterr().err
    assert "could not be delivered" in err and "are lost" in err, err
    assert str(unwritable) in err and "COMET_OFFLINE_DIRECTORY" in err
    # 1000 points + the end's 4 events: 100 wait in memory, the rest are counted as dropped
    waiting = re.search(r"(\d+) events could not be delivered", err)
    dropped = re.search(r"(\d+) events dropped", err)
    assert waiting and dropped, err
    assert int(waiting.group(1)) == 100
    assert int(dropped.group(1)) >= 1004 - 100 - 10, err  # a few went out before the server left


# ---------------------------------------------------------------------- disk full (16.1)

N_POINTS = 40_000


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """COMET_OFFLINE_DIRECTORY on a real 1 MiB tmpfs: a long run fills it up."""
    with mounted_tmpfs(tmp_path / "small", size="1m") as small:
        monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(small))
        yield small


def test_disk_full_online_delivery_goes_on_from_memory(
    comet_env: ServerHandle,
    reader: Reader,
    full_disk: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    exp = Experiment(project_name="diskfull", **quiet(timeout_cleaning=120))
    exp.log_parameter("lr", 0.1)
    for i in range(N_POINTS):
        exp.log_metric("loss", i / 1000, step=i)
    exp.log_asset(bytes(300_000), file_name="big.bin")  # too big to inline: a file on disk
    exp.end()  # never raises
    warned = _warnings(caplog, "cannot write to the offline directory")
    assert len(warned) == 1, warned
    assert str(full_disk) in warned[0] and "COMET_OFFLINE_DIRECTORY" in warned[0]
    assert "ENOSPC" in warned[0]
    err = capfd.readouterr().err
    assert "every event was delivered from memory, none lost" in err, err
    # every point arrived, the asset too, and the experiment ended as a success
    steps = sorted(m["step"] for m in reader.metrics(exp.key, "loss"))
    assert steps == list(range(N_POINTS)), len(steps)
    assert [a["fileSize"] for a in reader.assets(exp.key) if a["fileName"] == "big.bin"] == [
        300_000
    ]
    assert reader.others(exp.key)["status"] == "success"
    assert reader.metadata(exp.key)["running"] is False
    assert list(full_disk.iterdir()) == []  # the partial run folder was removed


def test_disk_full_offline_same_warning_and_counts(
    comet_env: ServerHandle,
    full_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COMET_MODE", "offline")
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    exp = Experiment(**quiet(timeout_cleaning=30))
    for i in range(N_POINTS):
        exp.log_metric("loss", i / 1000, step=i)
    exp.end()  # never raises
    warned = _warnings(caplog, "cannot write to the offline directory")
    assert len(warned) == 1, warned
    assert str(full_disk) in warned[0] and "NOT kept" in warned[0]
    err = capfd.readouterr().err
    found = re.search(
        r"up to event (\d+): the disk filled up .* and (\d+) events were not kept", err
    )
    assert found, err
    last_seq, not_kept = int(found.group(1)), int(found.group(2))
    # what is on disk plus what was counted is everything the run produced: nothing silent
    lines = (Path(exp.offline_path or "") / "events.jsonl").read_text().split("\n")
    complete = [json.loads(ln) for ln in lines[:-1]]
    assert complete[-1]["seq"] == last_seq
    produced = N_POINTS + 4  # + start time at start; status, end time and stop at the end
    assert len(complete) + not_kept == produced, (len(complete), not_kept)
    assert 1000 < len(complete) < N_POINTS


def test_disk_full_while_the_server_is_down_counts_then_upload_sends_what_was_kept(
    comet_env: ServerHandle,
    reader: Reader,
    full_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No delivery at all (every request dropped by the proxy) and a small memory bound:
    events spill to the disk until it is full, then are dropped. end() returns and splits
    the undelivered into kept (on disk) and lost; `upload` then sends exactly the kept ones."""
    proxy = FaultProxy(
        comet_env.url,
        faults={"drop": 1.0},
        seed=1,
        match=lambda m, p: not p.endswith("experiment/create") and "account" not in p,
    )
    proxy.start()
    monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
    try:
        exp = Experiment(project_name="fulldown", **quiet(timeout_cleaning=2, max_queue_size=200))
        for i in range(N_POINTS):
            exp.log_metric("loss", float(i), step=i)
        exp.end()
    finally:
        proxy.stop()
    err = capfd.readouterr().err
    found = re.search(
        r"(\d+) events could not be delivered .* (\d+) events dropped .*\)\. (\d+) events are "
        r"lost: .* The other (\d+), logged before the disk filled up, are kept in (\S+); send",
        err,
    )
    assert found, err
    pending, dropped, lost, kept = (int(found.group(i)) for i in (1, 2, 3, 4))
    # every event is accounted for: kept on disk, or lost and counted (+ status, end, stop)
    assert pending + dropped == N_POINTS + 3, err
    assert kept + lost == N_POINTS + 3, err
    assert 1000 < kept < N_POINTS
    run = found.group(5)
    moved = full_disk.parent / "moved"  # the user moves the run to a disk with room
    shutil.copytree(run, moved)
    monkeypatch.setenv("COMET_URL_OVERRIDE", comet_env.url)
    proc = subprocess.run([CLI, "upload", str(moved)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{kept} events sent" in proc.stdout, proc.stdout
    steps = sorted(m["step"] for m in reader.metrics(exp.key, "loss"))
    assert steps == list(range(kept))  # the first points, each once
