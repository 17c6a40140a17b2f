"""The ``comet-callbacks server`` command: clean shutdown on SIGINT and SIGTERM,
``--show-key`` and ``--new-admin-key`` without serving, help text for every option."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from comet_callbacks.server.__main__ import build_parser
from comet_callbacks.server.embedded import start_server
from comet_callbacks.server.store import Store

CLI = [sys.executable, "-m", "comet_callbacks.cli", "server"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=_env(**env)
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_shut_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """Both signals end the server with status 0 and a closed database: no -wal/-shm
    left, everything written is in the main file."""
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*CLI, "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(COMET_SERVER_API_KEY="fixed-test-key-for-signals"),
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        url = lines[2].strip().split("=", 1)[1]
        headers = {"Authorization": "fixed-test-key-for-signals"}
        deadline = time.monotonic() + 15
        while True:
            try:
                resp = requests.post(
                    url + "/api/rest/v2/write/workspace/new",
                    json={"name": "written-before-" + sig.name},
                    headers=headers,
                    timeout=2,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert resp.status_code == 200, resp.text
        assert (data / "comet.sqlite-wal").exists()  # open: the WAL is in use
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in data.iterdir()) == ["assets", "comet.sqlite"]
    store = Store(data / "comet.sqlite", data / "assets")
    try:
        names = [r[0] for r in store.conn.execute("SELECT name FROM workspaces")]
    finally:
        store.close()
    assert "written-before-" + sig.name in names


def test_show_key_does_not_start_a_server(tmp_path: Path) -> None:
    """``--show-key`` on a port already in use: no bind attempted, no second server; it says
    the key is stored hashed and how to get a new one. With the key given, it prints it."""
    data = tmp_path / "data"
    store = Store(data / "comet.sqlite", data / "assets")
    key, created = store.ensure_admin()
    store.close()
    assert created and key
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        started = time.monotonic()
        res = _run("--show-key", "--port", str(port), "--data-dir", str(data))
        assert time.monotonic() - started < 30
        assert res.returncode == 1, res
        assert "cannot bind" not in res.stderr and "Local Comet server at" not in res.stdout
        assert f"export COMET_URL_OVERRIDE=http://127.0.0.1:{port}" in res.stdout
        assert "stored only as salted hashes" in res.stderr
        assert f"--new-admin-key --data-dir {data}" in res.stderr
        assert key not in res.stdout + res.stderr

        ok = _run(
            "--show-key", "--port", str(port), "--data-dir", str(data), COMET_SERVER_API_KEY=key
        )
        assert ok.returncode == 0, ok
        assert f"export COMET_API_KEY={key}" in ok.stdout
        wrong = _run("--show-key", "--data-dir", str(data), "--api-key", "not-this-servers-key")
        assert wrong.returncode == 1 and "is not a key of this server" in wrong.stderr
        assert "not-this-servers-key" not in wrong.stdout


def test_show_key_without_data_creates_nothing(tmp_path: Path) -> None:
    res = _run("--show-key", "--data-dir", str(tmp_path / "none"))
    assert res.returncode == 1
    assert "no server data at" in res.stderr and "Start the server once" in res.stderr
    assert not (tmp_path / "none").exists()


def test_new_admin_key_while_a_server_runs(tmp_path: Path) -> None:
    """A lost admin key: ``--new-admin-key`` on the data folder prints a new key once;
    the running server accepts it at once and refuses the old one."""
    db = tmp_path / "data" / "comet.sqlite"
    with start_server(db_path=db, assets_dir=tmp_path / "data" / "assets") as srv:
        old = srv.api_key
        url = srv.url + "/api/rest/v2/workspaces"
        assert requests.get(url, headers={"Authorization": old}, timeout=5).status_code == 200
        res = _run("--new-admin-key", "--data-dir", str(tmp_path / "data"), "--port", str(srv.port))
        assert res.returncode == 0, res
        assert "shown only this once" in res.stdout and "Local Comet server at" not in res.stdout
        new = res.stdout.split("export COMET_API_KEY=", 1)[1].split()[0]
        assert requests.get(url, headers={"Authorization": new}, timeout=5).json() == {
            "workspaceNames": ["local"]
        }
        assert requests.get(url, headers={"Authorization": old}, timeout=5).status_code == 401
    assert new.encode() not in db.read_bytes()


def test_first_start_prints_the_key_once_and_says_it_is_hashed(tmp_path: Path) -> None:
    def start(lines: int) -> list[str]:
        proc = subprocess.Popen(
            [*CLI, "--port", "0", "--data-dir", str(tmp_path / "d")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            return [proc.stdout.readline() for _ in range(lines)]  # type: ignore[union-attr]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0

    first = start(5)
    assert first[3].startswith("  export COMET_API_KEY=") and "stored hashed" in first[4]
    again = start(4)
    assert "<the admin key printed at first start; lost?" in again[3]
    assert "--new-admin-key" in again[3]


def test_every_option_has_help() -> None:
    parser = build_parser()
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []
    text = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in ("--show-key", "--new-admin-key", "--max-upload-bytes", "--max-json-bytes"):
        assert option in text
    assert "exit without starting a server" in " ".join(text.split())
