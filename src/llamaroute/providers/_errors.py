"""What a provider failure means, decided once for every provider.

* :func:`status_rule` reads the one table from an HTTP status to an error class, whether the
  same request may succeed if sent again, and the code reported when the provider gives none.
  OpenRouter and Ollama map every HTTP error through it; Bedrock maps the error codes AWS does
  not name in :data:`AWS_ERROR_RULES` through it. A status therefore means the same thing on
  every provider (504 is a retryable :class:`ProviderTimeoutError` everywhere); each provider's
  wire module refines it only from structured fields of its own (OpenRouter's
  ``error.metadata.error_type``, Ollama's 404 for a model that is not pulled).
* :func:`aws_rule` is the one rule for AWS service error codes (``ThrottlingException`` and the
  others in :data:`AWS_ERROR_RULES`), falling back to the status table.
* :func:`connection_refused` tells a refused connection (nothing listening: not worth an
  immediate retry) from other connection failures, by exception type.
* :func:`parse_retry_after` reads the server's wait hint from the response headers.
* :func:`context_overflow` says whether an error means the prompt overflowed the route's
  context window (:data:`CONTEXT_ERROR_CODES` where the provider has a code,
  :data:`CONTEXT_OVERFLOW_TEXTS` where it documents only a message), and :data:`CONTEXT_RULE`
  is what such an error becomes: a :class:`ContextWindowExceededError`, not retried on the
  route, which the client falls back from.

Nothing here does I/O or imports an HTTP library.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "AWS_ERROR_RULES",
    "CONTEXT_ERROR_CODES",
    "CONTEXT_OVERFLOW_TEXTS",
    "CONTEXT_RULE",
    "HTTP_STATUS_RULES",
    "ErrorRule",
    "aws_rule",
    "connection_refused",
    "context_overflow",
    "parse_retry_after",
    "status_rule",
]


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """What one kind of failure means: the error class to raise, whether the same request may
    succeed if sent again, and the code to report when the provider sends none of its own."""

    error: type[ProviderError]
    retryable: bool
    code: str | None = None

    def build(
        self,
        message: str,
        *,
        provider: str,
        model_id: str,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        """The error this rule gives; ``code`` (the provider's own) wins over the rule's, and
        ``retryable`` overrides the rule's when the server says otherwise."""
        return self.error(
            message,
            provider=provider,
            model_id=model_id,
            status_code=status_code,
            code=code or self.code,
            retryable=self.retryable if retryable is None else retryable,
            retry_after=retry_after,
        )


def _rule(error: type[ProviderError], code: str | None = None) -> ErrorRule:
    return ErrorRule(error, error.default_retryable, code)


#: HTTP statuses with one meaning on every provider. Other 4xx statuses are a
#: :class:`BadRequestError`, other 5xx statuses (and a failure with no status at all) a
#: :class:`ServerError`, and 3xx statuses a redirect (see :func:`status_rule`).
HTTP_STATUS_RULES: Mapping[int, ErrorRule] = MappingProxyType(
    {
        400: _rule(BadRequestError),
        401: _rule(AuthenticationError),
        402: _rule(PaymentRequiredError),
        403: _rule(AuthenticationError),
        404: _rule(ModelNotAvailableError),
        408: _rule(ProviderTimeoutError),
        429: _rule(RateLimitError),
        # "Client closed request" (an nginx convention; Ollama answers it for a request
        # canceled while it waited). Not a fault of the request: another try may pass.
        499: _rule(ServerError, "request_canceled"),
        # Gateway timeouts: the server behind the gateway did not answer in time (524 is
        # Cloudflare's, in front of OpenRouter). A timeout, whoever reports it.
        504: _rule(ProviderTimeoutError),
        524: _rule(ProviderTimeoutError),
    }
)

# Redirects are never followed (credentials must not travel to another host): the configured
# URL is wrong, which sending again cannot fix but another provider can route around.
_REDIRECT = ErrorRule(ProviderConnectionError, False, "redirect")
_CLIENT_ERROR = _rule(BadRequestError)
_SERVER_ERROR = _rule(ServerError)


def status_rule(status: int | None) -> ErrorRule:
    """The rule for an HTTP error status (``None``: a failure that carried no status, which is
    unknown and so worth another try)."""
    if status is None:
        return _SERVER_ERROR
    rule = HTTP_STATUS_RULES.get(status)
    if rule is not None:
        return rule
    if 300 <= status < 400:
        return _REDIRECT
    if 400 <= status < 500:
        return _CLIENT_ERROR
    return _SERVER_ERROR


#: AWS service error codes, as AWS spells them in HTTP errors (inside an event stream they
#: arrive in lowerCamel, which :func:`aws_rule`'s caller normalises). Meanings and statuses:
#: the Errors section of https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
#: and https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html.
AWS_ERROR_RULES: Mapping[str, ErrorRule] = MappingProxyType(
    {
        "ThrottlingException": _rule(RateLimitError),
        # Not among Converse's documented errors (InvokeModel's), but seen from it: a quota.
        "ServiceQuotaExceededException": _rule(RateLimitError),
        # A 429 for a model that is still loading: AWS's SDKs retry it, and so may we.
        "ModelNotReadyException": _rule(ServerError),
        "ServiceUnavailableException": _rule(ServerError),
        "InternalServerException": _rule(ServerError),
        "ModelErrorException": _rule(ServerError),
        "ModelStreamErrorException": _rule(ServerError),
        "ModelTimeoutException": _rule(ProviderTimeoutError),
        "ValidationException": _rule(BadRequestError),
        "AccessDeniedException": _rule(AuthenticationError),
        "UnrecognizedClientException": _rule(AuthenticationError),
        "ExpiredTokenException": _rule(AuthenticationError),
        "InvalidSignatureException": _rule(AuthenticationError),
        "IncompleteSignatureException": _rule(AuthenticationError),
        "MissingAuthenticationTokenException": _rule(AuthenticationError),
        "ResourceNotFoundException": _rule(ModelNotAvailableError),
    }
)


def aws_rule(code: str, status: int | None) -> ErrorRule:
    """The rule for an AWS service error: its ``code`` (UpperCamel) decides; a code that is
    empty or not in :data:`AWS_ERROR_RULES` falls back to the HTTP status table."""
    return AWS_ERROR_RULES.get(code) or status_rule(status)


#: A prompt too long for the route's window: not retried there (the same prompt overflows the
#: same window), but another route, with a larger window, may take it.
CONTEXT_RULE = ErrorRule(ContextWindowExceededError, False, "context_length_exceeded")

#: Structured codes for a prompt over the context window: OpenRouter's
#: ``error.metadata.error_type`` (https://openrouter.ai/docs/api/reference/errors-and-debugging,
#: "Size and length"), and the ``type`` of llama.cpp's server error that Ollama passes on when
#: a request says ``"truncate": false``.
CONTEXT_ERROR_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})

#: The documented messages of providers that give the overflow no code of its own, lowercased;
#: read only where no code decides. Bedrock answers a ``ValidationException`` ("Input is too
#: long for requested model."; "too many input tokens" on Converse), Ollama an error text
#: ("the input length exceeds the context length"; "request (N tokens) exceeds the available
#: context size (M tokens), try increasing it" with ``truncate: false``; "the prompt is longer
#: than the context length ..." with ``shift: false``), and OpenAI-style servers (an OpenRouter
#: upstream error passed on without an ``error_type``) "This endpoint's maximum context length
#: is N tokens. However, you requested about ...".
CONTEXT_OVERFLOW_TEXTS = (
    "input is too long for requested model",
    "too many input tokens",
    "exceeds the context length",
    "exceeds the available context size",
    "prompt is longer than the context length",
    "maximum context length is",
)


def context_overflow(message: str, code: str | None = None) -> bool:
    """Whether an error with this ``code`` (the provider's structured one, if any) or, failing
    a code, this ``message`` means the prompt overflowed the route's context window."""
    if code:
        return code in CONTEXT_ERROR_CODES
    lowered = message.lower()
    return any(text in lowered for text in CONTEXT_OVERFLOW_TEXTS)


def connection_refused(error: BaseException) -> bool:
    """Whether ``error`` is, or was caused by, a refused connection (``ECONNREFUSED``)."""
    # HTTP libraries chain the OS error under their own: look for it by type, not message.
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """The server's wait hint in seconds, or ``None``.

    Reads ``retry-after-ms`` or ``x-amz-retry-after`` (milliseconds) first, then
    ``Retry-After`` as seconds or as an HTTP-date (RFC 9110). Negative or unreadable values are
    ignored.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("x-amz-retry-after", 0.001)):
        value = lowered.get(name)
        if value is not None:
            with contextlib.suppress(ValueError):
                seconds = float(value) * scale
                if seconds >= 0:
                    return seconds
    value = lowered.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())
