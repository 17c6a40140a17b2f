"""The REST core: one method per documented endpoint, typed errors, pooled retrying transport.

Names are imported on first use (PEP 562), so that ``import comet_callbacks`` does not pay
for ``requests``/``urllib3`` until a client is actually built (an offline run never does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .call import Call, FilePart
    from .client import RestClient
    from .endpoints import (
        CallBuilder,
        Endpoints,
        calls,
        encode_metric_value,
        metric_item,
        parameter_item,
    )
    from .errors import (
        BadRequestError,
        CometAPIError,
        CometConnectionError,
        CometTimeoutError,
        ConflictError,
        ForbiddenError,
        NotFoundError,
        PayloadTooLargeError,
        RateLimitedError,
        ServerError,
        UnauthorizedError,
        error_for_status,
        is_retryable,
    )
    from .transport import USER_AGENT, Transport

#: public name -> submodule that defines it
_WHERE = {
    "Call": "call",
    "FilePart": "call",
    "RestClient": "client",
    "CallBuilder": "endpoints",
    "Endpoints": "endpoints",
    "calls": "endpoints",
    "encode_metric_value": "endpoints",
    "metric_item": "endpoints",
    "parameter_item": "endpoints",
    "BadRequestError": "errors",
    "CometAPIError": "errors",
    "CometConnectionError": "errors",
    "CometTimeoutError": "errors",
    "ConflictError": "errors",
    "ForbiddenError": "errors",
    "NotFoundError": "errors",
    "PayloadTooLargeError": "errors",
    "RateLimitedError": "errors",
    "ServerError": "errors",
    "UnauthorizedError": "errors",
    "error_for_status": "errors",
    "is_retryable": "errors",
    "USER_AGENT": "transport",
    "Transport": "transport",
}

__all__ = [
    "BadRequestError",
    "Call",
    "CallBuilder",
    "CometAPIError",
    "CometConnectionError",
    "CometTimeoutError",
    "ConflictError",
    "Endpoints",
    "FilePart",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RestClient",
    "ServerError",
    "Transport",
    "USER_AGENT",
    "UnauthorizedError",
    "calls",
    "encode_metric_value",
    "error_for_status",
    "is_retryable",
    "metric_item",
    "parameter_item",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
