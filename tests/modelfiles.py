"""Model folders for tests: a nested folder on disk, and what the server stored of one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def make_model_folder(root: Path, seed: int = 0) -> dict[str, bytes]:
    """A nested model folder ``root``; returns ``{"<folder>/<rel path>": bytes}``."""
    files = {
        "weights.bin": os.urandom(300 * 1024),  # above the 256 KiB inline limit
        "config.json": json.dumps({"hidden": 8, "seed": seed}).encode(),
        "tokenizer/vocab.txt": b"a\nb\nc\n",
        "tokenizer/deeper/merges.txt": f"merge {seed}\n".encode(),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return {f"{root.name}/{rel}": data for rel, data in files.items()}


def stored_model_files(reader: Any, key: str) -> dict[str, bytes]:
    """``{fileName: bytes}`` of an experiment's model-element assets, read from the server."""
    return {
        a["fileName"]: reader.get_asset(key, a["assetId"])
        for a in reader.assets(key, type="model-element")
    }
