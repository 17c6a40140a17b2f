"""Automatic capture, end to end: what a real run stores on the server.

A training script in a temporary git repository with an uncommitted edit runs against the
local server; the test then checks the stored values, not just that requests were made.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import comet_callbacks

    exp = comet_callbacks.Experiment(project_name="capture", cpu_monitor_interval=0.3)
    print("line one to stdout")
    print("line two to stderr", file=sys.stderr)
    for i in range(5):
        sys.stdout.write(f"\\rprogress {i * 25}%")
        sys.stdout.flush()
    sys.stdout.write("\\n")
    print("last line to stdout")
    for step in range(20):
        exp.log_metric("loss", 1.0 / (step + 1), step=step)
        time.sleep(0.1)
    exp.end()
    print(exp.key)
    """
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def run(comet_env, tmp_path):
    """Run SCRIPT inside a fresh git repo with an uncommitted edit; return (key, repo, script)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Ada Lovelace")
    _git(repo, "config", "user.email", "ada@example.com")
    _git(repo, "remote", "add", "origin", "https://example.com/ada/train.git")
    script = repo / "train.py"
    script.write_text(SCRIPT)
    (repo / "data.txt").write_text("original\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "data.txt").write_text("original\nUNCOMMITTED EDIT\n")
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    key = proc.stdout.strip().splitlines()[-1]
    return key, repo, script, proc


def test_git_metadata_and_patch_are_the_repository_state(run, reader) -> None:
    key, repo, _, _ = run
    meta = reader.git_metadata(key)
    assert meta["parent"] == _git(repo, "rev-parse", "HEAD")
    assert meta["root"] == _git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert meta["branch"] == "refs/heads/main"
    assert meta["origin"] == "https://example.com/ada/train.git"
    assert meta["user"] == "Ada Lovelace"
    with zipfile.ZipFile(io.BytesIO(reader.git_patch(key))) as zf:
        assert zf.namelist() == ["git_diff.patch"]
        patch = zf.read("git_diff.patch").decode()
    assert "+UNCOMMITTED EDIT" in patch


def test_code_and_file_path_are_the_entry_script(run, reader) -> None:
    key, _, script, _ = run
    assert reader.code(key) == script.read_text()
    assert reader.metadata(key)["filePath"] == str(script)


def test_output_lines_in_order_with_stream_flags(run, comet_server) -> None:
    key, _, _, proc = run
    assert "line one to stdout" in proc.stdout  # the user still sees everything
    assert "line two to stderr" in proc.stderr
    with sqlite3.connect(comet_server.db_path) as db:
        rows = db.execute(
            "SELECT text, stderr FROM output WHERE exp_key=? ORDER BY offset", (key,)
        ).fetchall()
    lines = [(text, bool(err)) for text, err in rows]
    ours = [ln for ln in lines if not ln[0].startswith("comet_callbacks")]
    assert ours[:4] == [
        ("line one to stdout\n", False),
        ("line two to stderr\n", True),
        ("progress 100%\n", False),  # the final state of a \r progress line, not every redraw
        ("last line to stdout\n", False),
    ]


def test_system_details_and_cpu_ram_samples_at_the_configured_interval(run, reader) -> None:
    key, _, _, _ = run
    details = reader.system_details(key)
    assert details["pid"] and details["pythonVersion"] == sys.version.split()[0]
    assert details["executable"] == sys.executable
    assert any(p.startswith("requests==") for p in details["installedPackages"])
    cpu = reader.metrics(key, "sys.cpu.percent.avg")
    ram = reader.metrics(key, "sys.ram.used")
    # 2 s of logging with a 0.3 s interval: several samples (not an exact timer assertion)
    assert len(cpu) >= 3 and len(ram) >= 3
    stamps = sorted(p["timestamp"] for p in cpu)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 150  # paced by the interval, not a busy loop
    assert all(p["step"] is not None for p in cpu[1:])  # tagged with the current step
