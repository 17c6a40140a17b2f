"""The offline directory cannot be written (issue 16.9) or fills up (issue 16.1).

Real file systems only: a path below a regular file (``NotADirectoryError``), a read-only
tmpfs and a full 1 MiB tmpfs (see ``tests/tmpfs.py``). An online run never sees an exception
and goes on from memory; an offline run with nowhere to write fails at start with a
``ConfigError`` naming ``COMET_OFFLINE_DIRECTORY``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from quiet import quiet
from tmpfs import mounted_tmpfs

from comet_callbacks import ConfigError, Experiment
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader


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
