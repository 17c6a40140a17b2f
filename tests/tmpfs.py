"""Real small file systems for disk tests: a tmpfs of a given size, optionally read-only.

Mounting needs root (or CAP_SYS_ADMIN); where it is impossible the test is skipped with the
reason, never faked.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["mounted_tmpfs", "fill"]


@contextmanager
def mounted_tmpfs(path: Path, size: str = "1m", *, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` (created), unmount it afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> int:
    """Fill the file system holding ``path`` until ENOSPC; returns the bytes written."""
    written = 0
    with open(path / "filler", "wb") as fh:
        chunk = b"\0" * 4096
        try:
            while True:
                fh.write(chunk)
                fh.flush()
                written += len(chunk)
        except OSError:
            pass
        try:
            os.fsync(fh.fileno())
        except OSError:
            pass
    return written
