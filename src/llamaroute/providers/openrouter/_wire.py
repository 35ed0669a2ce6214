"""The OpenRouter wire format, with no I/O: the request body, the answer and its stream
chunks, and the one mapping from OpenRouter's errors to llamaroute's.

Facts relied on (OpenRouter's API reference: https://openrouter.ai/docs/api/reference/overview,
``.../streaming`` and ``.../errors-and-debugging``): ``POST {base}/chat/completions`` with a
Bearer key; text before the image; usage asked for both ways (``usage.include`` and
``stream_options.include_usage``); streamed usage comes once, in a last chunk with empty
``choices``; ``: ...`` lines are keep-alives; an error after the first token arrives as a
``data:`` event with a top-level ``error`` and ``finish_reason: "error"`` under HTTP 200;
``usage.cost`` is in USD; ``error.metadata.error_type`` is the stable field to branch on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..._exceptions import MalformedResponseError, ProviderError, ServerError
from ..._records import FinishReason, Usage
from ..._request import ImagePart
from .._base import ProviderCall, ProviderResult
from .._errors import ErrorRule, parse_retry_after, status_rule
from .._http import load_json

__all__ = [
    "NAME",
    "StreamParser",
    "build_payload",
    "map_error",
    "parse_response",
]

NAME = "openrouter"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def build_payload(call: ProviderCall, *, stream: bool) -> dict[str, Any]:
    """The ``/chat/completions`` JSON body for one call."""
    images = iter(call.images)
    messages: list[dict[str, Any]] = []
    for message in call.request.messages:
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
            continue
        # Text first, then the image: OpenRouter's recommendation for vision prompts.
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": part.text}
            for part in message.content
            if not isinstance(part, ImagePart)
        ]
        for part in message.content:
            if isinstance(part, ImagePart):
                image = next(images)
                url = image.data_url() if image.is_fetched else image.url
                parts.append({"type": "image_url", "image_url": {"url": url}})
        messages.append({"role": message.role, "content": parts})
    request = call.request
    payload: dict[str, Any] = {
        "model": call.route.model_id,
        "messages": messages,
        # Current docs say usage (with cost) is always returned and these flags are no-ops;
        # older behaviour and some third parties need them. Sending both does no harm.
        "usage": {"include": True},
    }
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    if call.max_tokens is not None:
        payload["max_tokens"] = call.max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.seed is not None:
        payload["seed"] = request.seed
    return payload


def _finish_reason(value: object) -> FinishReason | None:
    if value is None:
        return None
    return _FINISH_REASONS.get(str(value), "other")


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _dict_or_empty(value: object) -> dict[str, Any]:
    # Lenient with what providers send: a missing or mistyped object reads as empty.
    return value if isinstance(value, dict) else {}


def _usage(data: Mapping[str, Any]) -> tuple[Usage, Decimal | None]:
    return (
        Usage(
            input_tokens=data.get("prompt_tokens") or 0,
            output_tokens=data.get("completion_tokens") or 0,
        ),
        _decimal(data.get("cost")),
    )


def parse_response(body: Any, *, model_id: str) -> ProviderResult:
    """A non-streaming ``chat.completion`` body as a :class:`ProviderResult`.

    Raises the mapped error for an ``error`` object or ``finish_reason: "error"`` in a 200
    body, and :class:`MalformedResponseError` when there is no answer in it.
    """
    if not isinstance(body, dict):
        raise MalformedResponseError(
            "response body is not a JSON object", provider=NAME, model_id=model_id
        )
    if isinstance(body.get("error"), dict):
        raise _error_from_object(body["error"], model_id=model_id, status=None, headers={})
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponseError("response has no choices", provider=NAME, model_id=model_id)
    choice = choices[0]
    if choice.get("finish_reason") == "error":
        raise ServerError(
            "the upstream provider failed (finish_reason: error)",
            provider=NAME,
            model_id=model_id,
            code="finish_reason_error",
        )
    message = _dict_or_empty(choice.get("message"))
    usage, cost = _usage(body.get("usage") or {})
    return ProviderResult(
        text=message.get("content") or "",
        finish_reason=_finish_reason(choice.get("finish_reason")),
        usage=usage,
        cost=cost,
        served_model=body.get("model"),
        details=_details(body),
    )


def _details(body: Mapping[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if body.get("id"):
        details["generation_id"] = body["id"]
    if body.get("provider"):
        details["upstream_provider"] = body["provider"]
    return details


def map_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model_id: str,
    redact: Callable[[str], str] = str,
) -> ProviderError:
    """The llamaroute error for an OpenRouter HTTP error response.

    Branches on the HTTP status and ``error.metadata.error_type`` (never on message text).
    """
    error: dict[str, Any] = {}
    try:
        parsed = load_json(body, provider=NAME, model_id=model_id, what="error body")
    except MalformedResponseError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
    if not error.get("message"):
        text = body[:200].decode("utf-8", "replace").strip()
        error = {**error, "message": text or f"HTTP {status}"}
    return _error_from_object(
        error, model_id=model_id, status=status, headers=headers, redact=redact
    )


def _error_from_object(
    error: Mapping[str, Any],
    *,
    model_id: str,
    status: int | None,
    headers: Mapping[str, str],
    redact: Callable[[str], str] = str,
) -> ProviderError:
    metadata = _dict_or_empty(error.get("metadata"))
    error_type = metadata.get("error_type") or _dict_or_empty(error.get("availability")).get("code")
    code = error.get("code")
    if status is None:
        # Mid-stream and in-body errors carry their HTTP-like status in error.code.
        status = code if isinstance(code, int) and not isinstance(code, bool) else None
    message = redact(str(error.get("message") or "request failed"))
    if status is not None and 300 <= status < 400:
        # Never followed: the Authorization header must not travel to another host. Whatever
        # the body says, the redirect is the failure.
        error_type = None
        message = (
            f"the API answered with a redirect (HTTP {status}), which llamaroute does not follow"
            " so that the key stays with OpenRouter: check base_url"
        )
    rule, message = _classify(status, str(error_type or ""), metadata, message)
    return rule.build(
        message,
        provider=NAME,
        model_id=model_id,
        status_code=status,
        code=str(error_type) if error_type else None,
        # OpenRouter may send Retry-After on 503 as well as 429: keep it whatever the status.
        retry_after=parse_retry_after(headers),
        retryable=False if headers.get("x-should-retry", "").lower() == "false" else None,
    )


#: The ``error.metadata.error_type`` (or ``error.availability.code``) values that name a failure
#: more precisely than a status can (they also come with no status at all, mid-stream), each with
#: the HTTP status OpenRouter documents for it: the type maps as that status does in the shared
#: table. ``model_not_found`` comes as a 400 but means what a 404 means. Source:
#: https://openrouter.ai/docs/api/reference/errors-and-debugging
_ERROR_TYPE_STATUS: dict[str, int] = {
    "authentication": 401, "payment_required": 402,
    "not_found": 404, "no_endpoints": 404, "model_not_found": 404,
    "rate_limit_exceeded": 429, "timeout": 504,
    "server": 500, "provider_unavailable": 502, "provider_overloaded": 503,
}  # fmt: skip

#: What a status says to the user, beyond the server's own message.
_PREFIXES = {
    401: "OpenRouter rejected the API key: ",
    402: "the OpenRouter account or key is out of credits (a billing problem, not an outage;"
    " add credits at https://openrouter.ai/settings/credits): ",
    403: "not permitted: ",
    404: "OpenRouter has no available endpoint for this model: ",
}


def _classify(
    status: int | None, error_type: str, metadata: Mapping[str, Any], message: str
) -> tuple[ErrorRule, str]:
    """The rule and the message for one error: the shared status table, read at the status the
    error type stands for when OpenRouter sent a known one."""
    if status == 403 and (metadata.get("reasons") or metadata.get("flagged_input")):
        # Moderation flagged the input: the request itself is the problem, as in a 400.
        return status_rule(400), f"flagged by moderation: {message}"
    meant = _ERROR_TYPE_STATUS.get(error_type, status)
    if status is None and error_type and meant is None:
        # A type we do not know, with no status: OpenRouter refused the request as it is.
        meant = 400
    return status_rule(meant), _PREFIXES.get(meant or 0, "") + message


class StreamParser:
    """The state of one OpenRouter stream, fed one SSE event at a time (no I/O)."""

    __slots__ = (
        "cost",
        "done",
        "finish_reason",
        "generation_id",
        "model_id",
        "served_model",
        "text",
        "usage",
    )  # fmt: skip

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.text: list[str] = []
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.cost: Decimal | None = None
        self.served_model: str | None = None
        self.generation_id: str | None = None
        self.done = False

    def feed(self, data: str) -> str:
        """Take one event's data; return its new text ("" if none). Raises on error events."""
        if self.done:
            return ""
        if data == "[DONE]":
            self.done = True
            return ""
        chunk = load_json(data, provider=NAME, model_id=self.model_id, what="stream chunk")
        if not isinstance(chunk, dict):
            raise MalformedResponseError(
                "stream chunk is not a JSON object", provider=NAME, model_id=self.model_id
            )
        if isinstance(chunk.get("error"), dict):
            raise _error_from_object(
                chunk["error"], model_id=self.model_id, status=None, headers={}
            )
        if self.generation_id is None:
            self.generation_id = chunk.get("id")
            self.served_model = chunk.get("model")
        if isinstance(chunk.get("usage"), dict):
            self.usage, self.cost = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if not choices:
            return ""
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason == "error":
            raise ServerError(
                "the upstream provider failed mid-stream (finish_reason: error)",
                provider=NAME,
                model_id=self.model_id,
                code="finish_reason_error",
            )
        if reason is not None:
            self.finish_reason = _finish_reason(reason)
        delta = choice.get("delta") or {}
        piece = delta.get("content") or ""
        if piece:
            self.text.append(piece)
        return str(piece)

    def result(self) -> ProviderResult:
        """The final result, or :class:`MalformedResponseError` if the stream was cut short.

        ``data: [DONE]`` is the end marker: without it the stream is not known to be whole
        (the usage chunk comes just before it), even when a finish reason has arrived.
        """
        if self.finish_reason is None or not self.done:
            markers = (("a finish reason", self.finish_reason is not None), ("[DONE]", self.done))
            missing = [name for name, seen in markers if not seen]
            raise MalformedResponseError(
                f"the stream ended without {' or '.join(missing)}: the answer may be incomplete",
                provider=NAME,
                model_id=self.model_id,
                code="incomplete_stream",
            )
        details: dict[str, Any] = {}
        if self.generation_id:
            details["generation_id"] = self.generation_id
        if self.usage is None:
            details["usage_missing"] = True
        return ProviderResult(
            text="".join(self.text),
            finish_reason=self.finish_reason,
            usage=self.usage or Usage(),
            cost=self.cost,
            served_model=self.served_model,
            details=details,
        )
