"""Test helpers: the embedded server and the read client, under one import."""

from __future__ import annotations

from .embedded import ServerHandle, start_server
from .reader import Reader, ReadError

__all__ = ["ServerHandle", "start_server", "Reader", "ReadError"]
