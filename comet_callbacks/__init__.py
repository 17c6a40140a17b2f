"""comet-callbacks: fast, reliable Comet ML experiment tracking over the REST API."""

from __future__ import annotations

__version__ = "0.1.0"
