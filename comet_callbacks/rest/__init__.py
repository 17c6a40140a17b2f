"""The REST core: one method per documented endpoint, typed errors, pooled retrying transport."""

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
