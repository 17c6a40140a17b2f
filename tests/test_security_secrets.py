"""The API key never leaks: not to stdout/stderr, log records (DEBUG, urllib3 included),
exception messages or reprs, offline files, or anything stored on the server (assets,
parameters, system details, output, code), on every path: online, offline, upload, a
forbidden workspace, a wrong key (401), a server that is down, a run that dies mid-way."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comet_callbacks import Experiment
from comet_callbacks.cli import main as cli_main
from comet_callbacks.config import Settings
from comet_callbacks.experiment import ExperimentError
from comet_callbacks.rest.client import RestClient
from comet_callbacks.server.embedded import ServerHandle, start_server
from comet_callbacks.server.reader import Reader
from comet_callbacks.upload import upload_run

KEY = "SECRETKEY-DO-NOT-LEAK-1234567890"
WRONG = "WRONGKEY-DO-NOT-LEAK-0987654321"
SECRETS = (KEY, WRONG, "DO-NOT-LEAK")


@pytest.fixture
def secret_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    """A server whose admin key is KEY; COMET_* points at it; root logging at DEBUG."""
    srv = start_server(db_path=tmp_path / "server" / "db.sqlite", api_key=KEY)
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMET_URL_OVERRIDE", srv.url)
    monkeypatch.setenv("COMET_API_KEY", KEY)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "offline"))
    # debug logging on at the root logger, printing to stderr (captured by capfd)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield srv
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        srv.close()


def leaks(text: str | bytes) -> list[str]:
    """Which secrets occur in ``text``."""
    if isinstance(text, bytes):
        return [s for s in SECRETS if s.encode() in text]
    return [s for s in SECRETS if s in text]


def assert_clean_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> int:
    """No secret in any log record (message, args, exception text) or output stream."""
    found = []
    for rec in caplog.records:
        parts = [rec.getMessage(), repr(rec.args), str(rec.msg)]
        if rec.exc_info and rec.exc_info[1] is not None:
            parts += [str(rec.exc_info[1]), repr(rec.exc_info[1])]
        if rec.exc_text:
            parts.append(rec.exc_text)
        for part in parts:
            if leaks(part):
                found.append(f"{rec.name}: {part[:200]}")
    assert not found, found
    out, err = capfd.readouterr()
    assert not leaks(out), out[:500]
    assert not leaks(err), [ln for ln in err.splitlines() if leaks(ln)][:5]
    return len(caplog.records)


def assert_clean_files(root: str | Path) -> int:
    """No secret in any file under ``root`` (read as bytes)."""
    n = 0
    for dirpath, _, files in os.walk(root):
        for fn in files:
            path = os.path.join(dirpath, fn)
            with open(path, "rb") as fh:
                assert not leaks(fh.read()), path
            n += 1
    return n


def assert_clean_exception(exc: BaseException) -> None:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        for text in (str(cur), repr(cur), repr(getattr(cur, "args", ()))):
            assert not leaks(text), text
        cur = cur.__cause__ or cur.__context__
        seen += 1


def assert_clean_server(reader: Reader, key: str) -> None:
    """Nothing the server stored for ``key`` contains a secret (reads, assets included)."""
    texts: list[Any] = [
        reader.metadata(key),
        reader.parameters(key),
        reader.others(key),
        reader.system_details(key),
        reader.output(key),
        reader.code(key),
        reader.metric_summary(key),
        reader.git_metadata(key),
    ]
    for item in texts:
        assert not leaks(json.dumps(item)), item
    assets = reader.assets(key)
    for asset in assets:
        assert not leaks(reader.get_asset(key, asset["assetId"])), asset["fileName"]
        assert not leaks(json.dumps(asset)), asset


def full_run(tmp_path: Path, **kw: Any) -> Experiment:
    """A run with every capture on: code, git, system details, output, params, asset, model."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    exp = Experiment(project_name="secrets", timeout_cleaning=20, **kw)
    exp.log_parameters({"lr": 0.1, "nested": {"a": 1}})
    for i in range(20):
        exp.log_metric("loss", 1.0 / (i + 1), step=i)
    print("training output line")
    exp.log_asset(b"asset bytes", file_name="a.txt")
    exp.log_model("m", str(model))
    exp.log_other("settings", repr(exp.settings))
    assert not leaks(repr(exp)) and not leaks(repr(exp.settings)) and not leaks(str(exp.settings))
    exp.end()
    return exp


@pytest.fixture
def script_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run looks like ``python train.py`` (captured as code and command)."""
    script = tmp_path / "train.py"
    script.write_text("print('train')\n")
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "1"])


def test_online_and_debug_logging(
    secret_server: ServerHandle,
    script_argv: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    exp = full_run(tmp_path)
    assert exp.mode == "online"
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG really was on
    assert_clean_logs(caplog, capfd)
    reader = Reader(secret_server.url, KEY)
    try:
        assert len(reader.metrics(exp.key, "loss")) == 20  # the run did reach the server
        assert_clean_server(reader, exp.key)
    finally:
        reader.close()
    assert_clean_files(os.environ["COMET_OFFLINE_DIRECTORY"])
    assert not leaks(repr(RestClient.from_settings(Settings.resolve())))


def test_key_on_the_command_line_is_not_stored(
    secret_server: ServerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A user passing the key as an argument (``--api-key KEY``): the captured command and
    system details must not carry it to the server."""
    script = tmp_path / "train.py"
    script.write_text("print('train')\n")
    monkeypatch.setattr(sys, "argv", [str(script), "--api-key", KEY, f"--key={KEY}"])
    caplog.set_level(logging.DEBUG)
    exp = Experiment(project_name="secrets", timeout_cleaning=20)
    exp.log_metric("x", 1.0)
    exp.end()
    reader = Reader(secret_server.url, KEY)
    try:
        assert_clean_server(reader, exp.key)
    finally:
        reader.close()
    assert_clean_logs(caplog, capfd)


def test_offline_then_upload(
    secret_server: ServerHandle,
    script_argv: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    exp = full_run(tmp_path, mode="offline")
    assert exp.mode == "offline"
    offline = os.environ["COMET_OFFLINE_DIRECTORY"]
    assert assert_clean_files(offline) >= 3  # meta, events, acks, files/...
    assert cli_main(["-v", "upload", offline]) == 0
    assert_clean_logs(caplog, capfd)
    assert_clean_files(offline)
    reader = Reader(secret_server.url, KEY)
    try:
        (uploaded,) = reader.experiments("local", "secrets")
        assert_clean_server(reader, uploaded["experimentKey"])
    finally:
        reader.close()


def test_failures_wrong_key_forbidden_workspace_server_down(
    secret_server: ServerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet = dict(auto_log_env_details=False, auto_log_git_metadata=False, auto_log_code=False)
    # 401: a wrong (recognisable) key
    with pytest.raises(ExperimentError) as info:
        Experiment(api_key=WRONG, project_name="secrets", **quiet)
    assert "401" in str(info.value)
    assert_clean_exception(info.value)
    # 403: a workspace the key may not use
    secret_server.create_user("other")
    with pytest.raises(ExperimentError) as info:
        Experiment(workspace="other", project_name="secrets", **quiet)
    assert "403" in str(info.value)
    assert_clean_exception(info.value)
    # a continued experiment with a wrong key
    key = Experiment(project_name="secrets", **quiet)
    key.end()
    with pytest.raises(ExperimentError) as info:
        Experiment(api_key=WRONG, experiment_key=key.key, **quiet)
    assert_clean_exception(info.value)
    # strict mode: the delivery failure is raised at end() (events kept on disk)
    strict = Experiment(project_name="secrets", strict=True, timeout_cleaning=1, **quiet)
    secret_server.stop()
    strict.log_metric("m", 1.0)
    with pytest.raises(ExperimentError) as info:
        strict.end()
    assert_clean_exception(info.value)
    # the server is down from the start: offline fallback, then an upload that fails
    exp = Experiment(project_name="secrets", timeout_api=1, **quiet)
    assert exp.mode == "offline"
    exp.log_metric("m", 1.0)
    exp.end()
    res = upload_run(exp.offline_path, Settings.resolve(timeout_api=1))
    assert not res.complete and res.errors
    for e in res.errors:
        assert not leaks(e), e
    # a direct REST error (401) carries no key either
    secret_server.start()
    client = RestClient(secret_server.url, WRONG)
    try:
        with pytest.raises(Exception) as info:
            client.get_account_details()
        assert_clean_exception(info.value)
    finally:
        client.close()
    assert_clean_logs(caplog, capfd)
    assert_clean_files(os.environ["COMET_OFFLINE_DIRECTORY"])
