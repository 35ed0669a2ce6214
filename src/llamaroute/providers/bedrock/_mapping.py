"""Where boto3, botocore and urllib3 exceptions become llamaroute errors, for the Bedrock
provider (AWS error codes through the shared rule of ``providers/_errors.py``; never from
message text but for the two messages AWS gives no code of their own).

No boto3 import at load: botocore and urllib3 are imported inside :func:`map_exception`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..._exceptions import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnsupportedFeatureError,
    RateLimitError,
)
from .._errors import (
    CONTEXT_RULE,
    aws_rule,
    connection_refused,
    context_overflow,
    parse_retry_after,
)

__all__ = ["NAME", "map_error", "map_exception"]

NAME = "bedrock"

_ACCESS_HINT = (
    "check the AWS credentials, the IAM permissions (bedrock:InvokeModel and "
    "bedrock:InvokeModelWithResponseStream on the inference profile and on its foundation "
    "models in every destination region), and that model access to Meta Llama 3.2 has been "
    "granted in the Bedrock console for this account"
)


def map_error(
    code: str,
    status: int | None,
    message: str,
    *,
    model_id: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProviderError:
    """The llamaroute error for an AWS error code (either case of its first letter) and HTTP
    status: the code decides, the shared status table for codes AWS names nowhere. Two messages
    are read, because AWS gives them no code of their own: the on-demand
    ``ValidationException``, and the ``ValidationException`` of a model that takes no tools."""
    code = code[:1].upper() + code[1:]
    rule = aws_rule(code, status)
    cls, retry_after = rule.error, None
    if cls is RateLimitError:
        retry_after = parse_retry_after(headers or {})
    elif cls is AuthenticationError:
        message = f"AWS refused the call ({message}): {_ACCESS_HINT}"
    elif cls is BadRequestError and "on-demand throughput" in message:
        message = (
            f"Bedrock refused {model_id} on demand: it needs an inference profile ID. "
            f"llamaroute's catalog sent the wrong ID for this region; that is a catalog bug "
            f"(please report it): {message}"
        )
    elif cls is BadRequestError and context_overflow(message):
        # AWS has no code of its own for it: "Input is too long for requested model."
        rule = CONTEXT_RULE
        message = f"the prompt is over {model_id}'s context window on Bedrock: {message}"
    elif cls is BadRequestError and _refuses_tools(message):
        # "This model doesn't support tool use." (Llama 3.2 1B/3B; any model in a stream),
        # "... doesn't support the toolConfig.toolChoice.any field": this route cannot take
        # the request, another may (no retry, but a fallback).
        return ProviderUnsupportedFeatureError(
            f"{model_id} does not take this tool request on Bedrock ({message})",
            provider=NAME, model_id=model_id, status_code=status, code="tools_unsupported",
        )  # fmt: skip
    elif cls is ModelNotAvailableError:
        message = f"Bedrock does not serve {model_id} to this account and region: {message}"
    elif extra and extra.get("originalStatusCode") is not None:
        # ModelError/ModelStreamError carry the model's own status (botocore keeps it for
        # HTTP errors; it drops it from exception events).
        message = f"{message} (model status {extra['originalStatusCode']})"
    return rule.build(
        message,
        provider=NAME,
        model_id=model_id,
        status_code=status,
        code=code or None,
        retry_after=retry_after,
    )


def _refuses_tools(message: str) -> bool:
    lowered = message.lower().replace("\u2019", "'")
    return any(f"{no} support {what}" in lowered for no in ("doesn't", "does not")
               for what in ("tool use", "the toolconfig"))  # fmt: skip


def _from_client_error(error: Any, model_id: str, redact: Callable[[str], str]) -> ProviderError:
    response = _dict_or_empty(getattr(error, "response", None))
    detail, metadata = (
        _dict_or_empty(response.get("Error")),
        _dict_or_empty(response.get("ResponseMetadata")),
    )
    status = metadata.get("HTTPStatusCode")
    return map_error(
        str(detail.get("Code") or ""),
        status if isinstance(status, int) else None,
        redact(str(detail.get("Message") or "request failed")),
        model_id=model_id,
        headers=_dict_or_empty(metadata.get("HTTPHeaders")),
        extra=response,
    )


def map_exception(
    error: BaseException, *, model_id: str, redact: Callable[[str], str] = str
) -> ProviderError | None:
    """The llamaroute error for an exception boto3, botocore or urllib3 raised (``None`` for
    any other exception). Service errors go through :func:`map_error`; transport errors
    become connection or timeout errors (a refused connection is not retryable: nothing is
    listening); corrupt frames and unparseable responses become
    :class:`MalformedResponseError`; missing credentials become a non-retryable
    :class:`AuthenticationError`, so that a router can fall back to another provider."""
    import botocore.exceptions as bx
    import urllib3.exceptions as ux
    from botocore.eventstream import ParserError as FrameError
    from botocore.parsers import ResponseParserError

    kwargs: dict[str, Any] = {"provider": NAME, "model_id": model_id}
    name = type(error).__name__
    text = redact(str(error) or name)
    if isinstance(error, bx.ClientError):  # EventStreamError included
        return _from_client_error(error, model_id, redact)
    if isinstance(error, bx.ConnectTimeoutError | ux.ConnectTimeoutError):
        # Never connected, so never sent: nothing was billed.
        return ProviderTimeoutError(f"timed out connecting ({name})", code=name, **kwargs)
    if isinstance(error, bx.ReadTimeoutError | ux.TimeoutError | TimeoutError):
        return ProviderTimeoutError(f"timed out waiting for the answer ({name})", code=name,
                                    **kwargs)  # fmt: skip
    if isinstance(error, FrameError | ResponseParserError):
        return MalformedResponseError(f"unreadable Bedrock response: {text}", code=name, **kwargs)
    missing = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
               bx.NoAuthTokenError, bx.TokenRetrievalError)  # fmt: skip
    if isinstance(error, missing):
        return AuthenticationError(
            f"no usable AWS credentials ({text}): pass aws_access_key_id/aws_secret_access_key, "
            "profile= or session=, or configure the default AWS credential chain",
            code=name, retryable=False, **kwargs,
        )  # fmt: skip
    if isinstance(error, bx.ParamValidationError):
        return BadRequestError(f"boto3 refused the request: {text}", code=name, **kwargs)
    if isinstance(error, bx.HTTPClientError | bx.ConnectionError | ux.HTTPError | OSError):
        refused = connection_refused(error)
        return ProviderConnectionError(
            f"connection failed: {text}",
            code="connection_refused" if refused else name,
            retryable=not refused,
            **kwargs,
        )
    if isinstance(error, bx.BotoCoreError):
        return ProviderError(f"boto3 failed: {text}", code=name, **kwargs)
    return None


def _dict_or_empty(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
