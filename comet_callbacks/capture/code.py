"""Source code capture: the entry script (WIRE #37 ``code``) and folders of sources (assets)."""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
import sysconfig
from collections.abc import Iterable

logger = logging.getLogger("comet_callbacks.capture")

_SKIP_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", "node_modules", ".tox"})


def _installed_roots() -> list[str]:
    """Directories of installed code (stdlib, site-packages): never the user's script."""
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            roots.add(os.path.realpath(sysconfig.get_path(key)))
        except Exception:
            pass
    return sorted(r for r in roots if r)


def entry_script_path() -> str | None:
    """Absolute path of the ``__main__`` script when it is a real ``.py`` file, else None.

    Covers ``python train.py`` and ``python -m pkg`` (``pkg/__main__.py``). Returns None for
    the REPL, notebooks and ``python -c`` (no ``__file__``), and for installed tools' entry
    points such as ``python -m pytest`` (a file under site-packages/stdlib is not user code).
    """
    try:
        main = sys.modules.get("__main__")
        file = getattr(main, "__file__", None)
        if not file or not str(file).endswith(".py"):
            return None
        path = os.path.abspath(file)
        if not os.path.isfile(path):
            return None
        real = os.path.realpath(path)
        for root in _installed_roots():
            if real == root or real.startswith(root + os.sep):
                return None
        return path
    except Exception as exc:
        logger.debug("code capture: entry script unavailable: %r", exc)
        return None


def read_source(path: str, max_bytes: int = 5 * 1024 * 1024) -> str | None:
    """Text of ``path`` (UTF-8, undecodable bytes replaced); None if unreadable or too big."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            logger.debug(
                "code capture: %s skipped (%d bytes > max_bytes=%d)", path, size, max_bytes
            )
            return None
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat
        if len(data) > max_bytes:
            logger.debug("code capture: %s skipped (grew past max_bytes=%d)", path, max_bytes)
            return None
        return data.decode("utf-8", errors="replace")
    except Exception as exc:
        logger.debug("code capture: cannot read %s: %r", path, exc)
        return None


def iter_code_files(
    folder: str, patterns: Iterable[str] = ("*.py",), max_files: int = 1000
) -> list[tuple[str, str]]:
    """``(abs_path, relative_posix_name)`` of files under ``folder`` matching ``patterns``.

    Skips ``.git``, virtualenvs, ``__pycache__``, ``node_modules`` and hidden directories, does
    not follow directory symlinks, and stops at ``max_files`` (debug log) so pointing it at a
    huge tree cannot flood the upload queue. Sorted for reproducible asset names.
    """
    pats = tuple(patterns)
    found: list[tuple[str, str]] = []
    try:
        root = os.path.abspath(folder)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")
            )
            for name in sorted(filenames):
                if not any(fnmatch.fnmatch(name, p) for p in pats):
                    continue
                abs_path = os.path.join(dirpath, name)
                if not os.path.isfile(abs_path):
                    continue
                if len(found) >= max_files:
                    logger.debug(
                        "code capture: %s has over %d files; rest skipped", root, max_files
                    )
                    return found
                rel = os.path.relpath(abs_path, root).replace(os.sep, "/")
                found.append((abs_path, rel))
    except Exception as exc:
        logger.debug("code capture: cannot list %s: %r", folder, exc)
    return found
