"""The OpenRouter wire format, with no I/O: the request body, the answer and its stream
chunks (errors inside them are mapped by ``_errors.py``).

Facts relied on (OpenRouter's API reference: https://openrouter.ai/docs/api/reference/overview,
``.../streaming`` and ``.../errors-and-debugging``): ``POST {base}/chat/completions`` with a
Bearer key; text before the image; usage asked for both ways (``usage.include`` and
``stream_options.include_usage``); streamed usage comes once, in a last chunk with empty
``choices``; ``: ...`` lines are keep-alives; an error after the first token arrives as a
``data:`` event with a top-level ``error`` and ``finish_reason: "error"`` under HTTP 200;
``usage.cost`` is in USD (with BYOK, only OpenRouter's fee: the upstream's charge is in
``usage.cost_details.upstream_inference_cost``, usage-accounting docs);
``provider.max_price`` takes USD per million prompt and completion tokens and USD per image,
as decimal strings, and is a hard filter (provider-selection docs; the SDKs' ``MaxPrice``).

Lenient with what is optional, strict with what matters: a missing usage or id is fine, but
text, a finish reason or a token count of the wrong type or an impossible value is a
:class:`~llamaroute.MalformedResponseError`, never an error from another library. A reported
cost that is not a finite amount >= 0 is not fatal (the answer is good): it is dropped, with
the reason in ``ProviderResult.cost_problem``, and the client prices the answer from its table.
Bodies are parsed with Decimal numbers, so a cost keeps every digit it was sent with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..._exceptions import MalformedResponseError, ProviderError, ServerError
from ..._pieces import TextPieces
from ..._records import FinishReason, Usage, trusted
from ..._request import ImagePart
from ..._tools import MAX_ARGUMENTS_CHARS, MAX_TOOLS, Tool, ToolCall, make_tool_call
from .._base import ProviderCall, ProviderResult
from .._http import load_json
from ._errors import NAME, error_from_object, map_error
from ._options import apply_options
from ._structured import add_response_format

__all__ = [
    "NAME",
    "StreamParser",
    "amount",
    "build_payload",
    "map_error",
    "parse_response",
    "read_tool_calls",
]

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def _named(name: str | None) -> dict[str, str]:
    # OpenAI's wire carries a participant's name on a message; most messages have none.
    return {} if name is None else {"name": name}


def build_payload(call: ProviderCall, *, stream: bool) -> dict[str, Any]:
    """The ``/chat/completions`` JSON body for one call."""
    images = iter(call.images)
    messages: list[dict[str, Any]] = []
    for message in call.request.messages:
        if message.role == "tool":
            messages.append({"role": "tool", "tool_call_id": message.tool_call_id,
                             "content": message.text})  # fmt: skip
            continue
        if message.tool_calls:
            calls = [{"id": c.id, "type": "function",
                      "function": {"name": c.name, "arguments": c.arguments}}
                     for c in message.tool_calls]  # fmt: skip
            messages.append({"role": "assistant", "content": message.text or None,
                             "tool_calls": calls, **_named(message.name)})  # fmt: skip
            continue
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content,
                             **_named(message.name)})  # fmt: skip
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
                sent = {"url": url} if part.detail is None else {"url": url, "detail": part.detail}
                parts.append({"type": "image_url", "image_url": sent})
        messages.append({"role": message.role, "content": parts, **_named(message.name)})
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
    for name in ("top_k", "frequency_penalty", "presence_penalty"):
        if (value := getattr(request, name)) is not None:
            payload[name] = value
    if call.max_price is not None:
        # The price the budget reservation was computed at, as a hard ceiling: an upstream
        # dearer than the table is refused by OpenRouter (and the call falls back) rather than
        # billing more than was reserved.
        price = call.max_price
        ceiling = {
            "prompt": f"{price.input_per_mtok:f}",
            "completion": f"{price.output_per_mtok:f}",
        }
        if price.image is not None:
            ceiling["image"] = f"{price.image:f}"
        payload.setdefault("provider", {})["max_price"] = ceiling
    if request.tools:
        payload["tools"] = [tool.openai() for tool in request.tools]
        choice = request.tool_choice
        if choice is not None:
            modes = ("auto", "none", "required")
            payload["tool_choice"] = choice if choice in modes else {
                "type": "function", "function": {"name": choice}}  # fmt: skip
        # Only upstreams that honour every parameter sent (tools among them): one that would
        # silently drop the tools is never picked; with none left OpenRouter answers 404 and
        # the call falls back (provider-selection docs, `require_parameters`).
        payload.setdefault("provider", {})["require_parameters"] = True
    add_response_format(call, payload)
    if request.extra:
        apply_options(payload, request.extra.get(NAME))  # last: it merges with what llamaroute set
    return payload


def read_tool_calls(
    value: object, tools: tuple[Tool, ...], model_id: str, redact: Callable[[str], str] = str
) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` of an answer. A list that is not one is malformed; each item
    with missing or wrong fields still becomes a :class:`ToolCall`, with its error."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _malformed(f"tool_calls is a {type(value).__name__}, not a list", model_id)
    calls = []
    for index, item in enumerate(value[:MAX_TOOLS]):
        item = item if isinstance(item, dict) else {}
        function = item.get("function")
        function = function if isinstance(function, dict) else {}
        calls.append(make_tool_call(_scrubbed(item.get("id"), redact),
                                    _scrubbed(function.get("name"), redact),
                                    function.get("arguments"), tools, index))  # fmt: skip
    return tuple(calls)


def _scrubbed(value: object, redact: Callable[[str], str]) -> object:
    # An id or a name is the server's own text: a hostile upstream may echo the key in it.
    return redact(value) if isinstance(value, str) else value


def _with_tools(reason: FinishReason | None, calls: tuple[ToolCall, ...]) -> FinishReason | None:
    # Some upstreams end a tool call with "stop": the answer is a tool call all the same.
    return "tool_calls" if calls and reason in (None, "stop") else reason


#: Bounds past which a figure is corruption, not a count: no call reads or writes 100 million
#: tokens, or costs 100,000 USD.
_MAX_TOKENS = 100_000_000
_MAX_COST = Decimal(100_000)


def _malformed(message: str, model_id: str) -> MalformedResponseError:
    return MalformedResponseError(message, provider=NAME, model_id=model_id)


def _finish_reason(value: object, model_id: str) -> FinishReason | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _malformed(f"finish_reason is a {type(value).__name__}, not a string", model_id)
    return _FINISH_REASONS.get(value, "other")


def _text(value: object, model_id: str) -> str:
    """A message's ``content``: a string, ``null``, or a list of text parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(
        isinstance(part, dict) and isinstance(part.get("text", ""), str) for part in value
    ):
        return "".join(part.get("text", "") for part in value)
    raise _malformed(f"content is a {type(value).__name__}, not text", model_id)


def _tokens(data: Mapping[str, Any], key: str, model_id: str) -> int:
    value = data.get(key)
    if value is None:
        return 0  # omitted or null: none counted
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)  # "12.0" (the body is parsed with Decimal numbers)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKENS:
        raise _malformed(f"usage.{key} is not a token count: {str(value)[:40]}", model_id)
    return value


def amount(value: object, what: str) -> tuple[Decimal | None, str | None]:
    """A reported USD amount, exact (the body is parsed with Decimal numbers), or why it is
    not one. A bad figure is not fatal: the answer is good, and the table can price it."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None, f"{what} is {type(value).__name__}, not a number"
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        return None, f"{what} is not a number"  # (its text is not quoted: it may echo a key)
    if not amount.is_finite():
        return None, f"{what} is not finite ({amount})"
    if amount < 0:
        return None, f"{what} is negative"
    if amount > _MAX_COST:
        return None, f"{what} is over {_MAX_COST} USD"
    return amount, None


def _object(value: object, what: str, model_id: str) -> dict[str, Any]:
    """An optional JSON object: ``{}`` when absent or null; any other type is malformed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _malformed(f"{what} is a {type(value).__name__}, not an object", model_id)
    return value


def _label(value: object, redact: Callable[[str], str]) -> str | None:
    """A descriptive string field (id, model, provider): kept when it is a string (redacted:
    a hostile upstream may echo the key in it), ignored otherwise."""
    return redact(value) if isinstance(value, str) and value else None


def _usage(data: Mapping[str, Any], model_id: str) -> tuple[Usage, Decimal | None, str | None]:
    """The token counts, the cost (USD) and why a reported cost was not usable, if so.

    On a BYOK call (``is_byok: true``) ``cost`` is only OpenRouter's fee: the upstream's
    charge, ``cost_details.upstream_inference_cost``, is added. (Non-BYOK calls carry that
    field too, equal to ``cost``: it is added only for BYOK.)"""
    counts = {"input_tokens": _tokens(data, "prompt_tokens", model_id),
              "output_tokens": _tokens(data, "completion_tokens", model_id)}  # fmt: skip
    usage = trusted(Usage, counts, counts.keys())  # counts _tokens checked: not validated again
    cost, problem = amount(data.get("cost"), "usage.cost")
    if cost is not None and data.get("is_byok") is True:
        details = data.get("cost_details")
        upstream, trouble = amount(
            details.get("upstream_inference_cost") if isinstance(details, dict) else None,
            "usage.cost_details.upstream_inference_cost",
        )
        if upstream is None:
            return usage, None, trouble or "a BYOK call without its upstream_inference_cost"
        cost += upstream
    return usage, cost, problem


def _in_body_error(
    body: Mapping[str, Any], model_id: str, redact: Callable[[str], str]
) -> ProviderError | None:
    """The error a 200 body (or a stream chunk) carries in ``error``, if any."""
    error = body.get("error")
    if error is None:
        return None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        return _malformed(f"error is a {type(error).__name__}, not an object", model_id)
    return error_from_object(error, model_id=model_id, status=None, headers={}, redact=redact)


def parse_response(
    body: Any, *, model_id: str, redact: Callable[[str], str] = str, tools: tuple[Tool, ...] = ()
) -> ProviderResult:
    """A non-streaming ``chat.completion`` body as a :class:`ProviderResult`.

    Raises the mapped error for an ``error`` object or ``finish_reason: "error"`` in a 200
    body, and :class:`MalformedResponseError` when there is no answer in it or a field that
    matters (text, finish reason, usage, cost) has the wrong type or an impossible value.
    ``redact`` scrubs the key from the strings kept (id, model, provider).
    """
    if not isinstance(body, dict):
        raise _malformed("response body is not a JSON object", model_id)
    if (error := _in_body_error(body, model_id, redact)) is not None:
        raise error
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed("response has no choices", model_id)
    choice = choices[0]
    if choice.get("finish_reason") == "error":
        raise ServerError(
            "the upstream provider failed (finish_reason: error)",
            provider=NAME,
            model_id=model_id,
            code="finish_reason_error",
        )
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _malformed("the choice has no message object", model_id)
    usage, cost, problem = _usage(_object(body.get("usage"), "usage", model_id), model_id)
    calls = read_tool_calls(message.get("tool_calls"), tools, model_id, redact)
    return ProviderResult(
        text=_text(message.get("content"), model_id),
        finish_reason=_with_tools(_finish_reason(choice.get("finish_reason"), model_id), calls),
        tool_calls=calls,
        usage=usage,
        cost=cost,
        cost_problem=problem,
        served_model=_label(body.get("model"), redact),
        details=_details(body, redact),
    )


def _details(body: Mapping[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if generation := _label(body.get("id"), redact):
        details["generation_id"] = generation
    if upstream := _label(body.get("provider"), redact):
        details["upstream_provider"] = upstream
    return details


class StreamParser:
    """The state of one OpenRouter stream, fed one SSE event at a time (no I/O).

    ``redact`` scrubs the key from the strings kept (the generation id, the served model).
    """

    __slots__ = (
        "cost",
        "cost_problem",
        "done",
        "finish_reason",
        "generation_id",
        "model_id",
        "redact",
        "served_model",
        "text",
        "tool_parts",
        "tools",
        "usage",
    )  # fmt: skip

    def __init__(
        self, model_id: str, redact: Callable[[str], str] = str, tools: tuple[Tool, ...] = ()
    ) -> None:
        self.model_id = model_id
        self.tools = tools
        # Tool-call fragments by index: [id, name, argument pieces, characters so far].
        self.tool_parts: dict[int, list[Any]] = {}
        self.redact = redact
        self.text = TextPieces()
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.cost: Decimal | None = None
        self.cost_problem: str | None = None
        self.served_model: str | None = None
        self.generation_id: str | None = None
        self.done = False

    def feed(self, data: str) -> str:
        """Take one event's data; return its new text ("" if none). Raises on error events
        and, as :class:`MalformedResponseError`, on chunks that are not what the wire format
        says (not a JSON object, a field of the wrong type)."""
        if self.done:
            return ""
        if data == "[DONE]":
            self.done = True
            return ""
        model_id = self.model_id
        chunk = load_json(data, provider=NAME, model_id=model_id, what="stream chunk",
                          decimals=True)  # fmt: skip
        if not isinstance(chunk, dict):
            raise _malformed("stream chunk is not a JSON object", model_id)
        if "error" in chunk and (error := _in_body_error(chunk, model_id, self.redact)) is not None:
            raise error
        if self.generation_id is None:
            self.generation_id = _label(chunk.get("id"), self.redact)
            self.served_model = _label(chunk.get("model"), self.redact)
        usage = chunk.get("usage")
        if usage is not None:
            self.usage, self.cost, self.cost_problem = _usage(
                _object(usage, "usage", model_id), model_id
            )
        choices = chunk.get("choices")
        if not choices:
            return ""
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise _malformed("stream chunk choices are not a list of objects", model_id)
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason == "error":
            raise ServerError(
                "the upstream provider failed mid-stream (finish_reason: error)",
                provider=NAME,
                model_id=model_id,
                code="finish_reason_error",
            )
        if reason is not None:
            self.finish_reason = _finish_reason(reason, model_id)
        if type(delta := choice.get("delta")) is not dict:  # (tested in line: every chunk)
            delta = _object(delta, "delta", model_id)
        if delta.get("tool_calls") is not None:
            self._tool_fragments(delta["tool_calls"])
        if type(piece := delta.get("content")) is not str:
            piece = _text(piece, model_id)
        if piece:
            self.text.append(piece)
        return piece

    def _tool_fragments(self, fragments: object) -> None:
        """One chunk's ``delta.tool_calls``: the id and name come in a call's first fragment,
        its arguments split over any number of them, each tagged with the call's ``index``."""
        if not isinstance(fragments, list):
            raise _malformed("delta.tool_calls is not a list", self.model_id)
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                raise _malformed("a delta.tool_calls item is not an object", self.model_id)
            index = fragment.get("index", position)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_TOOLS:
                raise _malformed("a tool call fragment has no usable index", self.model_id)
            entry = self.tool_parts.setdefault(index, [None, None, [], 0])
            function = _object(fragment.get("function"), "function", self.model_id)
            if entry[0] is None and isinstance(fragment.get("id"), str):
                entry[0] = fragment["id"]
            name = function.get("name")
            if isinstance(name, str) and name:
                entry[1] = name if entry[1] is None else entry[1]
            arguments = function.get("arguments")
            if isinstance(arguments, str) and entry[3] <= MAX_ARGUMENTS_CHARS:
                entry[2].append(arguments)  # past the cap only counted: too_large when read
                entry[3] += len(arguments)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls assembled from the fragments so far."""
        return tuple(
            make_tool_call(
                _scrubbed(call_id, self.redact),
                _scrubbed(name, self.redact),
                "".join(pieces),
                self.tools,
                index,
            )
            for index, (call_id, name, pieces, _) in sorted(self.tool_parts.items())
        )

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
        calls = self.tool_calls()
        return ProviderResult(
            text="".join(self.text),
            finish_reason=_with_tools(self.finish_reason, calls),
            tool_calls=calls,
            usage=self.usage or Usage(),
            cost=self.cost,
            cost_problem=self.cost_problem,
            served_model=self.served_model,
            details=details,
        )
