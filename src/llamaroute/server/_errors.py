"""llamaroute's typed errors as OpenAI-style HTTP errors: status, ``type``, ``code`` and
``Retry-After``. Mapped once, here, from the error classes (never from message text)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidRequestError,
    LlamarouteError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnknownModelError,
)

__all__ = ["HttpError", "http_error"]


@dataclass(frozen=True, slots=True)
class HttpError:
    """How an error is answered: HTTP ``status``, OpenAI's error ``type`` and ``code``, the
    message, the parameter at fault, and ``retry_after`` seconds (for 429 and 503)."""

    status: int
    type: str
    code: str | None
    message: str
    param: str | None = None
    retry_after: int | None = None

    def body(self) -> dict[str, object]:
        """OpenAI's ``{"error": {...}}`` object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """``Retry-After`` where there is one."""
        return {} if self.retry_after is None else {"retry-after": str(self.retry_after)}


def _seconds(value: float | None) -> int:
    return max(1, math.ceil(value)) if value is not None and value > 0 else 1


def _provider(error: ProviderError) -> HttpError:
    message = str(error)
    if isinstance(error, StreamInterruptedError):
        return HttpError(502, "api_error", "stream_interrupted", message)
    if isinstance(error, RateLimitError):
        return HttpError(
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
            retry_after=_seconds(error.retry_after),
        )
    if isinstance(error, ProviderTimeoutError):
        return HttpError(504, "api_error", "upstream_timeout", message)
    if isinstance(error, BadRequestError | InvalidRequestError):
        return HttpError(400, "invalid_request_error", error.code, message)
    if isinstance(error, ModelNotAvailableError):
        return HttpError(503, "api_error", "model_not_available", message)
    if isinstance(error, AuthenticationError | PaymentRequiredError):
        # The gateway's own provider credentials were refused: the caller's key is fine.
        return HttpError(502, "api_error", "upstream_credentials", message)
    if isinstance(error, ServerError) and error.status_code in (503, 529):
        return HttpError(
            503,
            "api_error",
            "upstream_unavailable",
            message,
            retry_after=_seconds(error.retry_after),
        )
    if isinstance(error, ProviderConnectionError):
        return HttpError(502, "api_error", "upstream_unreachable", message)
    return HttpError(502, "api_error", "upstream_error", message)


def _group(error: AllProvidersFailedError) -> HttpError:
    message = str(error)
    if isinstance(error, DeadlineExceededError):
        return HttpError(504, "api_error", "timeout", message)
    causes = [cause for cause in error.exceptions if isinstance(cause, ProviderError)]
    if causes and all(isinstance(cause, RateLimitError) for cause in causes):
        waits = [cause.retry_after for cause in causes if cause.retry_after]
        return HttpError(
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
            retry_after=_seconds(min(waits) if waits else None),
        )
    if causes and all(isinstance(cause, ProviderTimeoutError) for cause in causes):
        return HttpError(504, "api_error", "upstream_timeout", message)
    if causes and all(isinstance(cause, BadRequestError) for cause in causes):
        return HttpError(400, "invalid_request_error", "upstream_rejected", message)
    if not causes or "circuit" in message:
        # No provider could be asked (every breaker open): try again shortly.
        return HttpError(503, "api_error", "upstream_unavailable", message, retry_after=1)
    if all(isinstance(c, ServerError | ProviderConnectionError) for c in causes):
        return HttpError(503, "api_error", "upstream_unavailable", message, retry_after=1)
    return HttpError(502, "api_error", "upstream_error", message)


def http_error(error: BaseException) -> HttpError:
    """The HTTP answer for an error raised by a llamaroute call."""
    if isinstance(error, BudgetExceededError):
        return HttpError(429, "insufficient_quota", "insufficient_quota", str(error))
    if isinstance(error, AllProvidersFailedError):
        return _group(error)
    if isinstance(error, ProviderError):
        return _provider(error)
    if isinstance(error, UnknownModelError):
        return HttpError(404, "invalid_request_error", "model_not_found", str(error), "model")
    if isinstance(error, InvalidRequestError):
        return HttpError(
            400, "invalid_request_error", None, str(error), getattr(error, "param", None)
        )
    if isinstance(error, ConfigurationError):
        # Nothing configured can serve the request (no provider for this model).
        return HttpError(503, "api_error", "no_route", str(error))
    if isinstance(error, LlamarouteError):
        return HttpError(500, "api_error", None, str(error))
    return HttpError(500, "api_error", None, "internal error (see the gateway's log)")
