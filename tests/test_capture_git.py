"""Git metadata and patch capture against real temporary repositories."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from comet_callbacks.capture.git import collect_git_metadata, collect_git_patch, find_repo_root


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's global/system git config out of the results."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo with two commits, then an unstaged edit and a staged new file."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    git(path, "config", "user.name", "Ada Lovelace")
    git(path, "config", "user.email", "ada@example.com")
    git(path, "config", "commit.gpgsign", "false")
    (path / "train.py").write_text("lr = 0.1\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    (path / "README").write_text("hello\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "second")
    (path / "train.py").write_text("lr = 0.2  # tuned\n")
    (path / "staged.py").write_text("STAGED = True\n")
    git(path, "add", "staged.py")
    return path


def test_metadata_matches_git(repo: Path) -> None:
    meta = collect_git_metadata(str(repo))
    assert meta is not None
    assert set(meta) == {"user", "root", "branch", "parent", "origin"}
    assert meta["parent"] == git(repo, "rev-parse", "HEAD")
    assert meta["root"] == git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert meta["root"] != meta["parent"]
    assert meta["branch"] == "refs/heads/trunk"
    assert meta["user"] == "Ada Lovelace"
    assert meta["origin"] is None


def test_metadata_origin_and_subdirectory(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@example.com:team/proj.git")
    sub = repo / "pkg" / "deep"
    sub.mkdir(parents=True)
    meta = collect_git_metadata(str(sub))
    assert meta is not None and meta["origin"] == "git@example.com:team/proj.git"
    assert find_repo_root(str(sub)) == os.path.realpath(repo)
    # a file path works like its folder
    assert find_repo_root(str(repo / "train.py")) == os.path.realpath(repo)


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "stash", "-q")  # a clean tree so checkout cannot conflict
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    meta = collect_git_metadata(str(repo))
    assert meta is not None
    assert meta["branch"] is None
    assert meta["parent"] == git(repo, "rev-parse", "HEAD")


def test_patch_is_zip_with_edit_and_staged_file(repo: Path) -> None:
    data = collect_git_patch(str(repo))
    assert data is not None
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["git_diff.patch"]
        patch = zf.read("git_diff.patch").decode()
    assert "+lr = 0.2  # tuned" in patch
    assert "-lr = 0.1" in patch
    assert "+STAGED = True" in patch
    assert "diff --git a/staged.py b/staged.py" in patch
    # the patch is what `git diff HEAD` says, so `git apply` on HEAD reproduces the tree
    assert (
        patch
        == subprocess.run(
            ["git", "diff", "HEAD", "--no-color"], cwd=repo, capture_output=True, text=True
        ).stdout
    )


def test_clean_tree_has_no_patch(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "everything")
    assert collect_git_patch(str(repo)) is None


def test_patch_size_cap_skips_with_warning(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="comet_callbacks.capture"):
        assert collect_git_patch(str(repo), max_bytes=50) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped" in warnings[0].getMessage() and "50" in warnings[0].getMessage()
    # the same diff under a generous cap is produced
    assert collect_git_patch(str(repo), max_bytes=1 << 20) is not None


def test_not_a_repo(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        assert collect_git_metadata(str(plain)) is None
        assert collect_git_patch(str(plain)) is None
        assert find_repo_root(str(plain)) is None
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


def test_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    assert collect_git_metadata(str(tmp_path)) is None
    assert collect_git_patch(str(tmp_path)) is None
    assert find_repo_root(str(tmp_path)) == os.path.realpath(tmp_path)


def test_no_git_binary(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        assert collect_git_metadata(str(repo)) is None
        assert collect_git_patch(str(repo)) is None
        assert find_repo_root(str(repo)) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all("no git binary" in m for m in messages)


def test_metadata_config_as_git_config_get(repo: Path) -> None:
    """user.name and origin come from one merged config read: the last value wins, like
    ``git config --get``, and values are taken whole (spaces kept)."""
    git(repo, "config", "--add", "user.name", "Second Name  With Spaces")
    git(repo, "remote", "add", "origin", "https://example.com/a b.git")
    meta = collect_git_metadata(str(repo))
    assert meta is not None
    assert meta["user"] == git(repo, "config", "--get", "user.name") == "Second Name  With Spaces"
    assert meta["origin"] == "https://example.com/a b.git"
    # a new commit: HEAD, and the same root (cached per HEAD, looked up again for a new one)
    git(repo, "commit", "-q", "-m", "third")
    again = collect_git_metadata(str(repo))
    assert again is not None and again["parent"] == git(repo, "rev-parse", "HEAD")
    assert again["root"] == meta["root"] == git(repo, "rev-list", "--max-parents=0", "HEAD")


def test_metadata_reused_until_the_repository_changes(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second read of an unchanged repository runs no git process; a commit, a branch
    switch or a config change is seen at once."""
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    bin_dir, runs = tmp_path / "bin", tmp_path / "runs"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f'#!/bin/sh\necho "$1" >> {runs}\nexec {real_git} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def count() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    first = collect_git_metadata(str(repo))
    n = count()
    assert first is not None and n >= 2
    assert collect_git_metadata(str(repo)) == first and count() == n
    git(repo, "commit", "-q", "-m", "third")
    after_commit = collect_git_metadata(str(repo))
    assert after_commit is not None and after_commit["parent"] == git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "other")
    assert collect_git_metadata(str(repo))["branch"] == "refs/heads/other"  # type: ignore[index]
    git(repo, "config", "user.name", "Grace Hopper")
    assert collect_git_metadata(str(repo))["user"] == "Grace Hopper"  # type: ignore[index]
