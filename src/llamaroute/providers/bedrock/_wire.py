"""The Converse wire format for the Bedrock provider, with no I/O and no boto3 import at load.

Request building and validation (what botocore does not check), response and stream-event
parsing, and the one place where boto3, botocore and urllib3 exceptions become llamaroute
errors (AWS error codes through the shared rule of ``providers/_errors.py``).

Facts relied on (the Converse API reference,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html, and
https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html): Llama 3.2
is served only through ``us.`` / ``eu.`` inference profiles (a bare ``meta.`` ID fails with an
on-demand ``ValidationException``); images go as raw bytes whose declared ``format`` must match
the bytes; usage arrives in the final ``metadata`` event; exceptions inside a stream surface as
``EventStreamError`` with lowerCamel codes; botocore checks no ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..._exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidImageError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UnsupportedFeatureError,
)
from ..._records import FinishReason, Usage
from ..._request import ImagePart
from ...catalog import Route
from ...images import PreparedImage
from .._base import ProviderCall, ProviderResult
from .._errors import aws_rule, connection_refused, parse_retry_after

__all__ = [
    "NAME",
    "ConverseStreamState",
    "build_converse_request",
    "close_stream",
    "iter_events",
    "map_error",
    "map_exception",
    "parse_converse",
]

NAME = "bedrock"

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

_ACCESS_HINT = (
    "check the AWS credentials, the IAM permissions (bedrock:InvokeModel and "
    "bedrock:InvokeModelWithResponseStream on the inference profile and on its foundation "
    "models in every destination region), and that model access to Meta Llama 3.2 has been "
    "granted in the Bedrock console for this account"
)


# --- pure functions: request --------------------------------------------------------------


def _check_model_id(route: Route) -> str:
    model_id = route.model_id
    # The router picks the profile for the provider's region; this guards a broken user
    # catalog. Bedrock would refuse a bare foundation ID anyway, after a wasted round trip.
    if model_id.startswith("meta.") or model_id == route.foundation_model_id:
        raise ConfigurationError(
            f"refusing to send the bare foundation-model ID {model_id}: Llama 3.2 on Bedrock is "
            "served only through inference profiles (us./eu. IDs); fix this catalog route"
        )
    return model_id


def _image_block(image: PreparedImage, route: Route) -> dict[str, Any]:
    if image.data is None or image.format is None:
        raise InvalidImageError(
            f"Bedrock takes image bytes, not URLs: {image.url} has not been fetched; pass the "
            "image as a file, bytes or a data: URL"
        )
    if route.image_formats and image.format not in route.image_formats:
        raise InvalidImageError(
            f"{image.format} images are not accepted by Bedrock "
            f"(accepted: {', '.join(route.image_formats)})"
        )
    if route.max_image_bytes and len(image.data) > route.max_image_bytes:
        raise InvalidImageError(
            f"the image is {len(image.data):,} bytes; Bedrock takes at most "
            f"{route.max_image_bytes:,} per image"
        )
    side = route.max_image_side
    if side and max(image.width, image.height) > side:
        raise InvalidImageError(
            f"the image is {image.width}x{image.height} px; Llama 3.2 on Bedrock takes at most "
            f"{side} px a side and Bedrock does not resize: downscale it first"
        )
    # The declared format is the one sniffed from the bytes: Bedrock refuses a mismatch.
    return {"image": {"format": image.format, "source": {"bytes": image.data}}}


def _inference_config(call: ProviderCall) -> dict[str, Any]:
    request, route = call.request, call.route
    config: dict[str, Any] = {}
    # botocore checks types but no ranges or enums: out-of-range values would reach AWS.
    if call.max_tokens is not None:
        if call.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1")
        limit = route.max_output_tokens
        config["maxTokens"] = min(call.max_tokens, limit) if limit else call.max_tokens
    if request.temperature is not None:
        top = min(1.0, route.max_temperature)
        if not 0.0 <= request.temperature <= top:
            raise InvalidRequestError(f"temperature must be between 0 and {top:g} on Bedrock")
        config["temperature"] = request.temperature
    if request.top_p is not None:
        if not 0.0 <= request.top_p <= 1.0:
            raise InvalidRequestError("top_p must be between 0 and 1 on Bedrock")
        config["topP"] = request.top_p
    if request.stop:
        most = route.max_stop_sequences
        if most is not None and len(request.stop) > most:
            raise InvalidRequestError(f"Bedrock takes at most {most} stop sequences")
        if not all(isinstance(item, str) and item for item in request.stop):
            raise InvalidRequestError("stop sequences must be non-empty strings")
        config["stopSequences"] = list(request.stop)
    return config


def build_converse_request(call: ProviderCall) -> dict[str, Any]:
    """The keyword arguments of ``client.converse`` / ``client.converse_stream`` for one call.

    Validates what botocore does not (ranges, image format and size, image count, the model
    ID), raising before any I/O. ``seed`` has no Converse equivalent and is not sent.
    """
    route = call.route
    model_id = _check_model_id(route)
    if len(call.images) > route.max_images:
        raise UnsupportedFeatureError(
            f"{model_id} takes at most {route.max_images} image(s) per request on Bedrock"
        )
    images = iter(call.images)
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in call.request.messages:
        if message.role == "system":
            system.append({"text": message.text})
            continue
        if isinstance(message.content, str):
            blocks: list[dict[str, Any]] = [{"text": message.content}]
        else:
            # Text first, then the image, as for the other providers.
            blocks = [
                {"text": part.text}
                for part in message.content
                if not isinstance(part, ImagePart) and part.text
            ]
            blocks += [
                _image_block(next(images), route)
                for part in message.content
                if isinstance(part, ImagePart)
            ]
        messages.append({"role": message.role, "content": blocks})
    if not messages or messages[0]["role"] != "user":
        raise InvalidRequestError("a Bedrock conversation must start with a user message")
    kwargs: dict[str, Any] = {"modelId": model_id, "messages": messages}
    if system:
        kwargs["system"] = system
    config = _inference_config(call)
    if config:
        kwargs["inferenceConfig"] = config
    return kwargs


# --- pure functions: responses and errors -----------------------------------------------


def _dict_or_empty(value: object) -> dict[str, Any]:
    # Lenient with what providers send: a missing or mistyped object reads as empty.
    return value if isinstance(value, dict) else {}


def _finish_reason(value: object) -> FinishReason | None:
    return None if value is None else _STOP_REASONS.get(str(value), "other")


def _usage(value: object) -> Usage:
    data = _dict_or_empty(value)
    return Usage(input_tokens=data.get("inputTokens"), output_tokens=data.get("outputTokens"))


def parse_converse(response: Mapping[str, Any], *, model_id: str) -> ProviderResult:
    """A Converse response (as boto3 returns it) as a :class:`ProviderResult`.

    ``details`` carries ``latency_ms`` (``metrics.latencyMs``), the raw ``stop_reason`` and
    AWS's ``request_id``. Raises :class:`MalformedResponseError` when there is no message.
    """
    message = _dict_or_empty(_dict_or_empty(response.get("output")).get("message"))
    content = message.get("content")
    if not isinstance(content, list):
        raise MalformedResponseError(
            "the Converse response has no output message", provider=NAME, model_id=model_id
        )
    text = "".join(
        block["text"]
        for block in content
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    )
    details: dict[str, Any] = {"stop_reason": response.get("stopReason")}
    latency = _dict_or_empty(response.get("metrics")).get("latencyMs")
    if latency is not None:
        details["latency_ms"] = latency
    request_id = _dict_or_empty(response.get("ResponseMetadata")).get("RequestId")
    if request_id:
        details["request_id"] = request_id
    if "usage" not in response:
        details["usage_missing"] = True
    return ProviderResult(
        text=text,
        finish_reason=_finish_reason(response.get("stopReason")),
        usage=_usage(response.get("usage")),
        details=details,
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
    status: the code decides, the shared status table for codes AWS names nowhere. One message
    is read, the on-demand ``ValidationException``, because AWS gives it no code of its own."""
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
    if isinstance(error, bx.ReadTimeoutError | bx.ConnectTimeoutError | ux.TimeoutError):
        return ProviderTimeoutError(f"timed out ({name})", code=name, **kwargs)
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


class ConverseStreamState:
    """The state of one ConverseStream, fed one event dict at a time (no I/O)."""

    __slots__ = ("latency_ms", "model_id", "stop_reason", "stopped", "text", "usage")

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.text: list[str] = []
        self.stopped = False
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.latency_ms: Any = None

    def feed(self, event: Mapping[str, Any]) -> str:
        """Take one event; return its new text ("" if none). Raises on exception events."""
        if "contentBlockDelta" in event:
            piece = _dict_or_empty(_dict_or_empty(event["contentBlockDelta"]).get("delta")).get(
                "text"
            )
            if isinstance(piece, str) and piece:
                self.text.append(piece)
                return piece
            return ""
        if "messageStop" in event:
            self.stopped = True
            self.stop_reason = _dict_or_empty(event["messageStop"]).get("stopReason")
        elif "metadata" in event:
            metadata = _dict_or_empty(event["metadata"])
            self.usage = _usage(metadata.get("usage"))
            self.latency_ms = _dict_or_empty(metadata.get("metrics")).get("latencyMs")
        else:
            # boto3 raises exception events itself; this covers an iterator that does not.
            for key, value in event.items():
                if key.endswith("Exception"):
                    message = str(_dict_or_empty(value).get("message") or key)
                    raise map_error(key, None, message, model_id=self.model_id, extra=value)
        return ""

    def result(self) -> ProviderResult:
        """The final result, or :class:`MalformedResponseError` if ``messageStop`` never came."""
        if not self.stopped:
            raise MalformedResponseError(
                "the stream ended without messageStop: the answer is incomplete",
                provider=NAME,
                model_id=self.model_id,
                code="incomplete_stream",
            )
        details: dict[str, Any] = {"stop_reason": self.stop_reason}
        if self.latency_ms is not None:
            details["latency_ms"] = self.latency_ms
        if self.usage is None:
            details["usage_missing"] = True
        return ProviderResult(
            text="".join(self.text),
            finish_reason=_finish_reason(self.stop_reason),
            usage=self.usage or Usage(),
            details=details,
        )


#: Events llamaroute never reads, passed over without parsing. ``contentBlockStart`` only
#: opens tool-use blocks, which Llama 3.2 does not stream on Bedrock; botocore refuses one
#: whose ``start`` is empty ("must have one and only one member set"), as some Converse
#: servers send for text blocks, and that would fail an answer that is otherwise whole.
_UNREAD_EVENTS = frozenset({"contentBlockStart"})


def iter_events(stream: Any) -> Iterator[dict[str, Any]]:
    """The parsed events of a boto3 ``EventStream``, one per ``next()``.

    Frames are decoded and checked (CRCs) by botocore and parsed by botocore's parser, which
    also raises exception events as ``EventStreamError``; events in :data:`_UNREAD_EVENTS`
    are skipped unparsed. That needs botocore's raw message iterator: where a botocore
    version lacks it, the stream is iterated as it is.
    """
    raw, parse = getattr(stream, "_event_generator", None), getattr(stream, "_parse_event", None)
    if raw is None or parse is None:
        yield from stream
        return
    for message in raw:
        headers = message.headers
        if headers.get(":message-type") == "event" and headers.get(":event-type") in _UNREAD_EVENTS:
            continue
        parsed = parse(message)
        if parsed:
            yield parsed


def close_stream(events: Iterator[Any], stream: Any) -> None:
    """Close the event iterator and the boto3 stream under it (and so the HTTP response)."""
    close = getattr(events, "close", None)
    if close is not None:
        close()
    # Closing the botocore stream closes the HTTP response: the server sees the hang-up.
    stream.close()
