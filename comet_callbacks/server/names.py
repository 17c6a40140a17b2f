"""Safe asset names: what the server stores and what a download may write.

An asset's file name is a label chosen by the client (``../../x``, ``/etc/passwd``,
``C:\\boot.ini`` or names holding NUL bytes all arrive as sent). The server stores a
relative display name, and every client-side download joins names to its target folder
only through :func:`safe_join`, so no stored name can write outside that folder.
No third-party imports: usable without the server extra.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Characters a display name never keeps: NUL and other control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_asset_name(name: str, default: str = "asset") -> str:
    """A relative, ``/``-separated display name: no ``..`` or ``.`` parts, no leading
    ``/`` or drive, no backslashes or control characters (``default`` if nothing is left).

    ``a/b.txt`` stays ``a/b.txt`` (folders logged with their layout keep it);
    ``../../x`` becomes ``x``, ``/etc/passwd`` becomes ``etc/passwd``.
    """
    text = _CONTROL.sub("", name).replace("\\", "/")
    text = _DRIVE.sub("", text)
    parts = [p.strip() for p in text.split("/")]
    kept = [p for p in parts if p and p not in (".", "..")]
    return "/".join(kept) or default


def safe_join(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder / safe_asset_name(name)``, checked to lie inside ``folder`` (ValueError
    otherwise, e.g. through a symbolic link already in the folder)."""
    root = Path(folder).resolve()
    target = (root / safe_asset_name(name)).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"asset name {name!r} would be written outside {str(root)!r}")
    return target
