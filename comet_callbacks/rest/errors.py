"""Typed errors of the REST core.

Each carries the HTTP status (``None`` for transport failures), the endpoint that failed and
the server's message. Messages never contain the API key: they are built from the endpoint
path (the key is sent only in a header) and passed through :func:`comet_callbacks.config.scrub`.
"""

from __future__ import annotations

from ..config import scrub
from ..errors import CometCallbacksError

__all__ = [
    "CometCallbacksError",
    "CometAPIError",
    "BadRequestError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "CometConnectionError",
    "CometTimeoutError",
    "error_for_status",
]

_HINTS = {
    401: "check COMET_API_KEY: the server does not know this key",
    403: "the key may not use this workspace: check COMET_WORKSPACE or ask for access",
    404: "check the experiment key / project / model name",
    413: "the payload is larger than the server accepts",
}


class CometAPIError(CometCallbacksError):
    """A failed REST call: ``status`` (None for transport errors), ``endpoint``, ``server_message``."""

    status: int | None = None
    #: seconds the server asked to wait (``Retry-After-Custom`` / ``Retry-After``), if any
    retry_after: float | None = None

    def __init__(
        self,
        endpoint: str,
        message: str = "",
        status: int | None = None,
        *,
        method: str = "",
    ) -> None:
        if status is not None:
            self.status = status
        self.endpoint = endpoint
        self.method = method
        self.server_message = scrub(message or "")
        where = f"{method} {endpoint}".strip()
        code = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{where} failed ({code})"
        if self.server_message:
            text += f": {self.server_message}"
        hint = _HINTS.get(self.status or 0)
        if hint:
            text += f" — {hint}"
        super().__init__(scrub(text))

    def __reduce__(self):  # picklable across processes, with the same fields
        return (
            _rebuild,
            (type(self), self.endpoint, self.server_message, self.status, self.method),
        )


def _rebuild(cls, endpoint, message, status, method):
    return cls(endpoint, message, status, method=method)


class BadRequestError(CometAPIError):
    """400: the request was malformed; the message starts with the offending field."""

    status = 400


class UnauthorizedError(CometAPIError):
    """401: the API key is missing or unknown."""

    status = 401


class ForbiddenError(CometAPIError):
    """403: the key may not touch this workspace (or the workspace does not exist)."""

    status = 403


class NotFoundError(CometAPIError):
    """404: unknown experiment, project, model, version, asset or path."""

    status = 404


class ConflictError(CometAPIError):
    """409: a duplicate, such as an existing registry version or name."""

    status = 409


class PayloadTooLargeError(CometAPIError):
    """413: the body or upload is larger than the server accepts."""

    status = 413


class RateLimitedError(CometAPIError):
    """429: rate limited; ``retry_after`` is the server's ``Retry-After`` in seconds (or None)."""

    status = 429

    def __init__(
        self,
        endpoint: str,
        message: str = "",
        status: int | None = 429,
        *,
        method: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(endpoint, message, status, method=method)

    def __reduce__(self):
        return (_rebuild_429, (self.endpoint, self.server_message, self.method, self.retry_after))


def _rebuild_429(endpoint, message, method, retry_after):
    return RateLimitedError(endpoint, message, method=method, retry_after=retry_after)


class ServerError(CometAPIError):
    """5xx: the server failed; retried before this is raised."""

    status = 500


class CometConnectionError(CometAPIError):
    """The server could not be reached (refused, DNS, reset) after retries."""

    status = None


class CometTimeoutError(CometConnectionError):
    """The server did not answer in time (after retries)."""


_BY_STATUS: dict[int, type[CometAPIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
}


def error_for_status(
    status: int, endpoint: str, message: str, *, method: str = "", retry_after: float | None = None
) -> CometAPIError:
    """The error object for an HTTP error answer."""
    if status == 429:
        return RateLimitedError(endpoint, message, status, method=method, retry_after=retry_after)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else CometAPIError
    return cls(endpoint, message, status, method=method)


def is_retryable(exc: BaseException) -> bool:
    """True for failures that may succeed later (transport, 408, 429, 5xx): keep the event."""
    return isinstance(exc, (CometConnectionError, ServerError, RateLimitedError)) or (
        isinstance(exc, CometAPIError)
        and exc.status is not None
        and (exc.status >= 500 or exc.status == 408)
    )
