"""Shared fixtures: a real local Comet server per test, environment pointing at it, a reader."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet_callbacks.server.embedded import ServerHandle, start_server
from comet_callbacks.server.reader import Reader


@pytest.fixture
def comet_server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A fresh local server (own SQLite file and asset folder) on an ephemeral port."""
    handle = start_server(
        db_path=tmp_path / "server" / "comet.sqlite", assets_dir=tmp_path / "server" / "assets"
    )
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def comet_env(
    comet_server: ServerHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ServerHandle:
    """Point ``COMET_*`` configuration at ``comet_server``; clear every other ``COMET_*``."""
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name, raising=False)
    offline = tmp_path / "comet-offline"
    offline.mkdir()
    monkeypatch.setenv("COMET_URL_OVERRIDE", comet_server.url)
    monkeypatch.setenv("COMET_API_KEY", comet_server.api_key)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(offline))
    return comet_server


@pytest.fixture
def reader(comet_server: ServerHandle) -> Iterator[Reader]:
    """A :class:`Reader` for ``comet_server`` using its admin key."""
    rd = Reader(comet_server.url, comet_server.api_key)
    try:
        yield rd
    finally:
        rd.close()
