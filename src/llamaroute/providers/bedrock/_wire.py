"""The Converse wire format for the Bedrock provider, with no I/O and no boto3 import at load.

Request building and validation (what botocore does not check), and response and
stream-event parsing, strict about everything an answer is made of: a wrong type, a negative,
non-integral or absurd token count, text that is not valid Unicode, a non-object where an
object belongs, each is a :class:`MalformedResponseError` (code ``malformed_answer``). Error
mapping is in ``_mapping.py``.

Facts relied on (the Converse API reference,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html, and
https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html): Llama 3.2
is served only through ``us.`` / ``eu.`` inference profiles (a bare ``meta.`` ID fails with an
on-demand ``ValidationException``); images go as raw bytes whose declared ``format`` must match
the bytes; usage arrives in the final ``metadata`` event; exceptions inside a stream surface as
``EventStreamError`` with lowerCamel codes; botocore checks no ranges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..._exceptions import (
    ConfigurationError,
    InvalidImageError,
    InvalidRequestError,
    MalformedResponseError,
    UnsupportedFeatureError,
)
from ..._pieces import TextPieces
from ..._records import FinishReason, Usage
from ..._request import ImagePart
from ...catalog import Route
from ...images import PreparedImage
from .._base import ProviderCall, ProviderResult
from ._mapping import NAME, map_error
from ._options import apply_options, check_sampling
from ._tools import add_message, answer_tool, read_tool_uses, tool_config, tool_instruction

__all__ = [
    "MAX_TOKEN_COUNT",
    "NAME",
    "ConverseStreamState",
    "build_converse_request",
    "close_stream",
    "iter_events",
    "next_text",
    "parse_converse",
]

#: The largest token count an answer may report: far above any Llama 3.2 call (128K context),
#: far below what would make a cost absurd. A larger count is a malformed answer.
MAX_TOKEN_COUNT = 10_000_000

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


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


def build_converse_request(call: ProviderCall, *, stream: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``client.converse`` / ``client.converse_stream`` for one call.

    Validates what botocore does not (ranges, image format and size, image count, the model
    ID), raising before any I/O. ``seed`` has no Converse equivalent and is not sent.
    """
    route = call.route
    model_id = _check_model_id(route)
    check_sampling(call.request, model_id)
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
        if message.role == "tool":
            add_message(messages, message, [])
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
        add_message(messages, message, blocks)
    if not messages or messages[0]["role"] != "user":
        raise InvalidRequestError("a Bedrock conversation must start with a user message")
    kwargs: dict[str, Any] = {"modelId": model_id, "messages": messages}
    # response_format: by tool use where the route has it (a call, not a stream, with no tools
    # of the caller's own: see _tools.py), else the schema as an instruction.
    if (config := tool_config(call, stream=stream)) is not None:
        kwargs["toolConfig"] = config
    if (instruction := tool_instruction(call, stream=stream)) is not None:
        system.append({"text": instruction})
    schema = call.request.response_format
    if schema is not None and answer_tool(call, stream=stream) is None:
        system.append({"text": schema.instruction()})  # "instructions", or "tool" unused here
    if system:
        kwargs["system"] = system
    config = _inference_config(call)
    if config:
        kwargs["inferenceConfig"] = config
    if call.request.extra:
        apply_options(kwargs, call.request.extra.get(NAME), stream=stream)
    return kwargs


# --- pure functions: responses ----------------------------------------------------------

#: What an AWS request ID (a UUID) and a stop reason look like; anything else is left out of
#: ``details``, where an upstream's echo of a secret would be shown to the caller (AWS keys
#: and tokens are base64, which has no dashes).
_REQUEST_ID = re.compile(r"(?=.{8,64}$)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")
_STOP_WORD = re.compile(r"[a-z_]{1,64}")


def _malformed(what: str, model_id: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"malformed Bedrock answer: {what}",
        provider=NAME, model_id=model_id, code="malformed_answer",
    )  # fmt: skip


def _object(value: object, what: str, model_id: str) -> Mapping[str, Any]:
    """``value`` if it is an object; ``{}`` if it is missing; else malformed."""
    if type(value) is dict:  # what botocore gives, checked first: this runs for every event
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _malformed(f"{what} is {type(value).__name__}, not an object", model_id)
    return value


def _text(value: object, what: str, model_id: str) -> str:
    if not isinstance(value, str):
        raise _malformed(f"{what} is {type(value).__name__}, not a string", model_id)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, sent as a JSON \ud800 escape
            raise _malformed(f"{what} is not valid Unicode", model_id) from None
    return value


def _count(value: object, what: str, model_id: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"{what} is {value!r:.40}, not a whole number", model_id)
    if not 0 <= value <= MAX_TOKEN_COUNT:
        raise _malformed(f"{what} is {value:.3g}, outside 0..{MAX_TOKEN_COUNT:,}", model_id)
    return value


def _usage(value: object, model_id: str) -> Usage:
    data = _object(value, "usage", model_id)
    return Usage(
        input_tokens=_count(data.get("inputTokens"), "usage.inputTokens", model_id),
        output_tokens=_count(data.get("outputTokens"), "usage.outputTokens", model_id),
    )


def _stop_reason(value: object, model_id: str) -> str | None:
    return None if value is None else _text(value, "stopReason", model_id)


def _finish_reason(value: str | None) -> FinishReason | None:
    return None if value is None else _STOP_REASONS.get(value, "other")


def _latency(metrics: object) -> float | None:
    # Diagnostic only: a latency that is not a finite, non-negative number is left out.
    value = metrics.get("latencyMs") if isinstance(metrics, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _details(stop_reason: str | None, latency: float | None) -> dict[str, Any]:
    shown = stop_reason if stop_reason is None or _STOP_WORD.fullmatch(stop_reason) else "other"
    details: dict[str, Any] = {"stop_reason": shown}
    if latency is not None:
        details["latency_ms"] = latency
    return details


def parse_converse(
    response: Mapping[str, Any], *, model_id: str, call: ProviderCall | None = None
) -> ProviderResult:
    """A Converse response (as boto3 returns it) as a :class:`ProviderResult`.

    ``details`` carries ``latency_ms`` (``metrics.latencyMs``), the raw ``stop_reason`` and
    AWS's ``request_id``. Raises :class:`MalformedResponseError` when there is no message, or
    when any part of the answer has the wrong type or an impossible value. ``toolUse`` blocks
    become ``tool_calls`` (checked against ``call``'s tools), except the call of the answer
    tool of a structured-output request, whose input is the answer's text.
    """
    response = _object(response, "the answer", model_id)
    message = _object(_object(response.get("output"), "output", model_id).get("message"),
                      "output.message", model_id)  # fmt: skip
    content = message.get("content")
    if not isinstance(content, list):
        raise MalformedResponseError(
            "the Converse response has no output message", provider=NAME, model_id=model_id
        )
    parts, uses = [], []
    for block in content:
        block = _object(block, "a content block", model_id)
        if "text" in block:
            parts.append(_text(block["text"], "a content block's text", model_id))
        elif "toolUse" in block:
            uses.append(_object(block["toolUse"], "a toolUse block", model_id))
    calls = read_tool_uses(uses, call)
    stop_reason = _stop_reason(response.get("stopReason"), model_id)
    finish = _finish_reason(stop_reason)
    answer = answer_tool(call) if call is not None else None
    if answer is not None and (given := [c for c in calls if c.name == answer]):
        # Structured output by tool use: the tool's input is the answer (checked, and repaired
        # if need be, by the client as any answer's text).
        parts, calls, finish = [given[0].raw_arguments], (), "stop"
    details = _details(stop_reason, _latency(response.get("metrics")))
    metadata = response.get("ResponseMetadata")
    request_id = metadata.get("RequestId") if isinstance(metadata, Mapping) else None
    if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id):
        details["request_id"] = request_id
    if "usage" not in response:
        details["usage_missing"] = True
    return ProviderResult(
        text="".join(parts),
        finish_reason="tool_calls" if calls and finish in (None, "stop") else finish,
        usage=_usage(response.get("usage"), model_id),
        details=details,
        tool_calls=calls,
    )


class ConverseStreamState:
    """The state of one ConverseStream, fed one event dict at a time (no I/O)."""

    __slots__ = ("latency_ms", "model_id", "stop_reason", "stopped", "text", "usage")

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.text = TextPieces()
        self.stopped = False
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.latency_ms: float | None = None

    def feed(self, event: Mapping[str, Any]) -> str:
        """Take one event; return its new text ("" if none). Raises on exception events and
        on a malformed event (:class:`MalformedResponseError`)."""
        model_id = self.model_id
        if type(event) is not dict and not isinstance(event, Mapping):
            raise _malformed(f"a stream event is {type(event).__name__}, not an object", model_id)
        if "contentBlockDelta" in event:
            block = _object(event["contentBlockDelta"], "contentBlockDelta", model_id)
            piece = _object(block.get("delta"), "contentBlockDelta.delta", model_id).get("text")
            if piece is None:  # a delta of another kind (tool use, reasoning)
                return ""
            piece = _text(piece, "a delta's text", model_id)
            if piece:
                self.text.append(piece)
            return piece
        if "messageStop" in event:
            stop = _object(event["messageStop"], "messageStop", model_id)
            self.stop_reason = _stop_reason(stop.get("stopReason"), model_id)
            self.stopped = True
        elif "metadata" in event:
            metadata = _object(event["metadata"], "metadata", model_id)
            self.usage = _usage(metadata.get("usage"), model_id)
            self.latency_ms = _latency(metadata.get("metrics"))
        else:
            # boto3 raises exception events itself; this covers an iterator that does not.
            for key, value in event.items():
                if isinstance(key, str) and key.endswith("Exception"):
                    body = value if isinstance(value, Mapping) else {}
                    message = str(body.get("message") or key)
                    raise map_error(key, None, message, model_id=model_id, extra=body)
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
        details = _details(self.stop_reason, self.latency_ms)
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


def next_text(events: Iterator[Mapping[str, Any]], state: ConverseStreamState) -> str | None:
    """Read events until one brings text (returned) or the stream ends (``None``)."""
    for event in events:
        if piece := state.feed(event):
            return piece
    return None


def close_stream(events: Iterator[Any], stream: Any) -> None:
    """Close the event iterator and the boto3 stream under it (and so the HTTP response)."""
    close = getattr(events, "close", None)
    if close is not None:
        close()
    # Closing the botocore stream closes the HTTP response: the server sees the hang-up.
    stream.close()
