"""``RestClient``: a typed client for every documented endpoint, over one pooled session."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .call import Call
from .endpoints import Endpoints
from .transport import Transport, clientlib_base

__all__ = ["RestClient"]


class RestClient(Endpoints):
    """Sends each endpoint method's :class:`Call` and returns the parsed answer.

    >>> client = RestClient.from_settings(Settings.resolve())       # doctest: +SKIP
    >>> client.create_experiment("my-ws", "my-project")["experimentKey"]  # doctest: +SKIP
    """

    def __init__(self, root: str, api_key: str | None, **transport_options: Any) -> None:
        self.transport = Transport(root, api_key, **transport_options)

    @classmethod
    def from_settings(cls, settings: Settings, **transport_options: Any) -> RestClient:
        """A client for the configured server, key and timeouts."""
        transport_options.setdefault("timeout", settings.timeout_api)
        transport_options.setdefault("upload_timeout", settings.timeout_upload)
        transport_options.setdefault(
            "clientlib", clientlib_base(settings.root, settings.values.get("url_override"))
        )
        return cls(settings.root, settings.api_key, **transport_options)

    @property
    def root(self) -> str:
        return self.transport.root

    def send(
        self,
        call: Call,
        timeout: float | None = None,
        request_id: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send a prepared call (as built by :class:`~.endpoints.CallBuilder`); ``request_id``
        makes a retried or replayed write idempotent on servers that support it; ``retries=0``
        sends once (the caller retries on its own schedule)."""
        return self.transport.send(call, timeout=timeout, request_id=request_id, retries=retries)

    def _dispatch(self, call: Call) -> Any:
        return self.transport.send(call)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RestClient(root={self.root!r}, api_key=<redacted>)"
