"""Git metadata (WIRE #34) and the working-tree patch (WIRE #32), via the ``git`` binary.

The ``git`` command line is used instead of GitPython: no extra dependency, and every call has a
timeout so a huge or network-mounted repository cannot stall a training start. Commands run with
``GIT_OPTIONAL_LOCKS=0`` so that reading the user's repository never takes ``index.lock`` out
from under their own git commands. No git binary, not a repository, or a repository without
commits: one debug log and None.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading

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


def _run(cwd: str, *args: str, timeout: float = _TIMEOUT_S) -> tuple[int, str]:
    """``(exit code, stripped stdout)`` of ``git args`` in ``cwd``.

    Raises ``_GitError`` when git is missing or the command times out.
    """
    import subprocess  # here: the module is imported by a background capture, not at start

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
    return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()


def _git(cwd: str, *args: str, timeout: float = _TIMEOUT_S) -> str | None:
    """Stripped stdout of ``git args`` in ``cwd``; None on a non-zero exit.

    Raises ``_GitError`` when git is missing or the command times out.
    """
    rc, out = _run(cwd, *args, timeout=timeout)
    return out if rc == 0 else None


def find_repo_root(path: str | None = None) -> str | None:
    """Top-level directory of the work tree containing ``path`` (default: cwd), or None."""
    try:
        return _git(_start_dir(path), "rev-parse", "--show-toplevel") or None
    except Exception as exc:
        logger.debug("git: repository root unavailable: %r", exc)
        return None


#: root commit per HEAD commit: a fact that never changes, so it is computed once per process
#: (``rev-list`` walks the whole history, the costliest of these commands on a big repository)
_roots: dict[str, str | None] = {}
#: metadata per fingerprint of the files it is read from (see ``_fingerprint``)
_meta_cache: dict[tuple[object, ...], dict[str, str | None]] = {}


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _fingerprint(cwd: str) -> tuple[object, ...] | None:
    """Identity of everything the metadata is read from: ``.git/HEAD`` (and the ref it names),
    ``packed-refs``, the repository's and the user's config. Git rewrites these files by
    rename, so a new inode or time means a change. The ``GIT_*`` variables are part of it.
    None (no caching) for anything unusual: ``GIT_DIR``-style variables that move the
    repository, a ``.git`` file (worktree, submodule), no repository found."""
    if any(k in os.environ for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")):
        return None
    git_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_")))
    path = cwd
    while True:
        dot_git = os.path.join(path, ".git")
        if os.path.isdir(dot_git):
            break
        if os.path.exists(dot_git):
            return None
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    try:
        with open(os.path.join(dot_git, "HEAD"), encoding="utf-8", errors="replace") as fh:
            head = fh.read().strip()
    except OSError:
        return None
    files = [os.path.join(dot_git, n) for n in ("HEAD", "config", "packed-refs")]
    if head.startswith("ref: "):
        files.append(os.path.join(dot_git, *head[5:].split("/")))
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files += [os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config")]
    return (cwd, head, git_env, *(_stat_key(f) for f in files))


_CONFIG_KEYS = ("user.name", "remote.origin.url")


def _config(cwd: str) -> dict[str, str]:
    """``user.name`` and ``remote.origin.url`` in one ``git config`` call (last value wins,
    as with ``git config --get``); a key set without a value reads as an empty string."""
    rc, out = _run(cwd, "config", "--get-regexp", r"^(user\.name|remote\.origin\.url)$")
    values: dict[str, str] = {}
    if rc != 0:  # 1: none of the keys is set
        return values
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key in _CONFIG_KEYS:
            values[key] = value
    return values


def collect_git_metadata(path: str | None = None) -> dict[str, str | None] | None:
    """``{"user","root","branch","parent","origin"}`` per WIRE §5 Git, or None.

    ``root`` is the SHA of the root commit (the oldest one when histories were merged),
    ``branch`` the full ref or None when HEAD is detached, ``parent`` the SHA of HEAD,
    ``origin`` ``remote.origin.url``, ``user`` ``user.name``; unknown values are None.

    Each ``git`` process costs a few milliseconds of CPU next to a training process, so the
    reads are merged into two (three the first time a HEAD is seen), and the result is reused
    in this process while the files it comes from are unchanged (a second fit runs none).
    """
    try:
        cwd = _start_dir(path)
        if shutil.which("git") is None:
            raise _GitError("no git binary on PATH")
        fingerprint = _fingerprint(cwd)
        cached = _meta_cache.get(fingerprint) if fingerprint is not None else None
        if cached is not None:
            return dict(cached)
        # toplevel, HEAD's SHA, and HEAD's ref ("HEAD" itself when detached) in one call
        rc, out = _run(cwd, "rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD")
        lines = out.splitlines()
        if rc != 0 or len(lines) != 3:
            if lines and os.path.isabs(lines[0]):
                logger.debug("git: repository at %s has no commits; metadata skipped", cwd)
            else:
                logger.debug("git: %s is not in a git repository; metadata skipped", cwd)
            return None
        parent, ref = lines[1], lines[2]
        if parent not in _roots:
            roots = _git(cwd, "rev-list", "--max-parents=0", "HEAD")
            _roots[parent] = roots.splitlines()[-1] if roots else None
        config = _config(cwd)
        meta = {
            "user": config.get("user.name") or None,
            "root": _roots[parent],
            "branch": ref if ref.startswith("refs/") else None,
            "parent": parent,
            "origin": config.get("remote.origin.url") or None,
        }
        if fingerprint is not None:
            _meta_cache[fingerprint] = meta
        return dict(meta)
    except Exception as exc:
        logger.debug("git metadata skipped: %r", exc)
        return None


def _read_capped(cmd: list[str], cwd: str, max_bytes: int) -> bytes | None:
    """stdout of ``cmd``, or None once it exceeds ``max_bytes`` (the process is then killed).

    Streaming keeps memory bounded by the cap even for a multi-GB diff.
    Raises ``_GitError`` on a non-zero exit or a timeout.
    """
    import subprocess

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
        cmd = [exe, "diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv"]
        # one process: outside a repository, or without commits, `git diff HEAD` fails
        # (exit 128) and the patch is skipped with a debug log below
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
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_PATCH_ENTRY, diff)
        return buf.getvalue()
    except Exception as exc:
        logger.debug("git patch skipped: %r", exc)
        return None
