"""Git metadata (WIRE #34) and the working-tree patch (WIRE #32), via the ``git`` binary.

The ``git`` command line is used instead of GitPython: no extra dependency, and every call has a
timeout so a huge or network-mounted repository cannot stall a training start. Commands run with
``GIT_OPTIONAL_LOCKS=0`` so that reading the user's repository never takes ``index.lock`` out
from under their own git commands. No git binary, not a repository, or a repository without
commits: one debug log and None.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import threading
import zipfile

logger = logging.getLogger("comet_callbacks.capture")

_TIMEOUT_S = 5.0
_PATCH_TIMEOUT_S = 30.0
_PATCH_ENTRY = "git_diff.patch"


class _GitError(Exception):
    """A git command failed, timed out, or git is not installed."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_OPTIONAL_LOCKS"] = "0"  # read-only: never contend with the user's git
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for credentials
    env["LC_ALL"] = "C"
    return env


def _start_dir(path: str | None) -> str:
    path = os.path.abspath(path or os.getcwd())
    return path if os.path.isdir(path) else os.path.dirname(path)


def _git(cwd: str, *args: str, timeout: float = _TIMEOUT_S) -> str | None:
    """Stripped stdout of ``git args`` in ``cwd``; None on a non-zero exit.

    Raises ``_GitError`` when git is missing or the command times out.
    """
    exe = shutil.which("git")
    if exe is None:
        raise _GitError("no git binary on PATH")
    try:
        proc = subprocess.run(
            [exe, *args],
            cwd=cwd,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _GitError(f"git {args[0]} failed: {exc!r}") from exc
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace").strip()


def find_repo_root(path: str | None = None) -> str | None:
    """Top-level directory of the work tree containing ``path`` (default: cwd), or None."""
    try:
        return _git(_start_dir(path), "rev-parse", "--show-toplevel") or None
    except Exception as exc:
        logger.debug("git: repository root unavailable: %r", exc)
        return None


def collect_git_metadata(path: str | None = None) -> dict[str, str | None] | None:
    """``{"user","root","branch","parent","origin"}`` per WIRE §5 Git, or None.

    ``root`` is the SHA of the root commit (the oldest one when histories were merged),
    ``branch`` the full ref or None when HEAD is detached, ``parent`` the SHA of HEAD,
    ``origin`` ``remote.origin.url``, ``user`` ``user.name``; unknown values are None.
    """
    try:
        cwd = _start_dir(path)
        if _git(cwd, "rev-parse", "--show-toplevel") is None:
            logger.debug("git: %s is not in a git repository; metadata skipped", cwd)
            return None
        parent = _git(cwd, "rev-parse", "--verify", "-q", "HEAD")
        if not parent:
            logger.debug("git: repository at %s has no commits; metadata skipped", cwd)
            return None
        roots = _git(cwd, "rev-list", "--max-parents=0", "HEAD")
        return {
            "user": _git(cwd, "config", "--get", "user.name") or None,
            "root": roots.splitlines()[-1] if roots else None,
            "branch": _git(cwd, "symbolic-ref", "-q", "HEAD") or None,
            "parent": parent,
            "origin": _git(cwd, "config", "--get", "remote.origin.url") or None,
        }
    except Exception as exc:
        logger.debug("git metadata skipped: %r", exc)
        return None


def _read_capped(cmd: list[str], cwd: str, max_bytes: int) -> bytes | None:
    """stdout of ``cmd``, or None once it exceeds ``max_bytes`` (the process is then killed).

    Streaming keeps memory bounded by the cap even for a multi-GB diff.
    Raises ``_GitError`` on a non-zero exit or a timeout.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    timer = threading.Timer(_PATCH_TIMEOUT_S, proc.kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        chunks: list[bytes] = []
        size = 0
        while chunk := proc.stdout.read(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                proc.kill()
                proc.wait()
                return None
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if proc.returncode != 0:
        raise _GitError(f"git diff exited with {proc.returncode} (killed on timeout if < 0)")
    return b"".join(chunks)


def collect_git_patch(path: str | None = None, max_bytes: int = 10 * 1024 * 1024) -> bytes | None:
    """The working tree's diff (staged changes included) against HEAD, as zip bytes.

    The zip holds exactly one entry, ``git_diff.patch``. Returns None for a clean tree, outside
    a repository, or when the diff exceeds ``max_bytes`` (then with a WARNING, since the user
    would otherwise silently miss their uncommitted changes).
    """
    try:
        exe = shutil.which("git")
        if exe is None:
            raise _GitError("no git binary on PATH")
        cwd = _start_dir(path)
        if not _git(cwd, "rev-parse", "--verify", "-q", "HEAD"):
            logger.debug("git: %s is not a repository with commits; patch skipped", cwd)
            return None
        cmd = [exe, "diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv"]
        diff = _read_capped(cmd, cwd, max_bytes)
        if diff is None:
            logger.warning(
                "git patch skipped: the uncommitted diff is larger than max_bytes=%d bytes; "
                "commit your changes or raise the limit to have it uploaded",
                max_bytes,
            )
            return None
        if not diff.strip():
            return None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_PATCH_ENTRY, diff)
        return buf.getvalue()
    except Exception as exc:
        logger.debug("git patch skipped: %r", exc)
        return None
