"""The Ollama wire format, with no I/O: the ``ollama`` client's call arguments, its answers
and stream lines, and the context size to ask for. (What the client raises is mapped to
llamaroute's errors in ``_mapping.py``.)

Facts relied on (Ollama's API reference: https://docs.ollama.com/api/chat, ``.../streaming``,
``.../usage`` and ``.../errors``): ``POST /api/chat`` takes images as base64 without a
``data:`` prefix, ``options.num_predict`` (output cap) and ``options.num_ctx`` (context size;
the server default changed from 2048 to 4096 to memory-based); streams are NDJSON ending with a
``done: true`` line carrying ``done_reason``, ``prompt_eval_count`` / ``eval_count`` (absent
when 0) and durations in ns; errors are ``{"error": "..."}`` with the status, or a last
``{"error": ...}`` line under HTTP 200 mid-stream.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import ollama
import pydantic

from ..._exceptions import InvalidImageError, MalformedResponseError, UnsupportedFeatureError
from ..._records import FinishReason, Usage
from ..._request import ChatRequest
from ..._tools import MAX_TOOLS, Tool, ToolCall, make_tool_call
from ...images import MAX_TILES, POSITIONS_PER_TILE, PreparedImage
from .._base import ProviderCall, ProviderResult, with_schema_instruction
from .._http import check_base_url
from ._options import apply_options

__all__ = [
    "DEFAULT_HOST",
    "MAX_COUNT",
    "NAME",
    "FirstCall",
    "build_request",
    "estimate_num_ctx",
    "first_call_number",
    "normalise_host",
    "parse_response",
    "read_tool_calls",
    "split_credentials",
]

NAME = "ollama"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434

#: ``num_ctx`` bounds. Too small a context silently drops the oldest messages (Ollama trims to
#: fit); too large only costs memory. Sizes are powers of two because the server reloads the
#: model whenever ``num_ctx`` changes, so few distinct sizes mean few reloads.
MIN_NUM_CTX = 2048
#: Tokens kept free for the answer when the request sets no ``max_tokens``.
ANSWER_ALLOWANCE = 2048
#: Chat template tokens per message (header ids, role, end of turn) plus a safety margin.
_PER_MESSAGE = 8
_MARGIN = 256

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
#: The ollama client's response models, read through their field dict (see _fields).
_MODELS = (ollama.ChatResponse, ollama.Message)


def normalise_host(host: str) -> str:
    """``host`` as a full URL: a bare ``host[:port]`` (the usual ``OLLAMA_HOST`` form) gets
    ``http://`` and port 11434, as the ollama client and server read it."""
    host = host.strip()
    if "://" not in host:
        bare = host.rstrip("/")
        if not bare or bare.startswith(":"):
            bare = "127.0.0.1" + bare
        if bare.rsplit("]", 1)[-1].count(":") == 0:
            bare = f"{bare}:{DEFAULT_PORT}"
        host = f"http://{bare}"
    return check_base_url(host, what="Ollama host")


def split_credentials(host: str) -> tuple[str, str | None, tuple[str, ...]]:
    """``host`` without a ``user:password@`` part; that part as the value of a Basic
    ``Authorization`` header (``None`` if there was none), and every form of it to scrub from
    text (the header value, ``user:password``, the password).

    An Ollama behind a reverse proxy with basic auth is often written this way; the ollama
    client would silently drop the credentials, and a URL that holds them ends up in messages
    and logs. So they leave the URL and travel as a header, like an API key.
    """
    scheme, sep, rest = host.strip().partition("://")
    if not sep:
        scheme, rest = "", host.strip()
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return host, None, ()
    user, _, password = (unquote(part) for part in userinfo.partition(":"))
    pair = f"{user}:{password}"
    token = base64.b64encode(pair.encode()).decode()
    clean = (f"{scheme}://" if sep else "") + hostport + slash + path
    # A user name alone is no secret (and scrubbing a short one would mangle every message
    # that happens to contain it): the password is, in each form it can be echoed in.
    forms = (token, pair, password, userinfo) if password else (token,)
    return clean, f"Basic {token}", tuple(value for value in forms if len(value) >= 4)


def estimate_num_ctx(call: ProviderCall) -> int:
    """A context size that holds the request and its answer (a power of two, at least 2048,
    at most the route's context window).

    A cheap over-estimate, not a tokenizer: three characters a token (English runs near four),
    a few template tokens per message, 1601 positions per 560 px image tile (four tiles while
    the size is unknown), ``max_tokens`` (or :data:`ANSWER_ALLOWANCE`) for the answer.
    """
    messages = call.request.messages
    characters = sum(len(message.text) for message in messages)
    images = sum((image.tiles or MAX_TILES) * POSITIONS_PER_TILE for image in call.images)
    answer = call.max_tokens if call.max_tokens is not None else ANSWER_ALLOWANCE
    needed = math.ceil(characters / 3) + _PER_MESSAGE * len(messages) + images + answer + _MARGIN
    size = MIN_NUM_CTX
    while size < needed:
        size *= 2
    return max(MIN_NUM_CTX, min(size, call.route.context_window))


def _image_bytes(image: PreparedImage) -> bytes:
    if image.data is None:
        raise InvalidImageError(
            f"Ollama needs the image bytes, not a URL ({image.url}): its API does not fetch "
            "images; fetch it first, or pass the file or the bytes"
        )
    return image.data


def build_request(
    call: ProviderCall,
    *,
    stream: bool,
    model: str | None = None,
    keep_alive: float | str | None = None,
    num_ctx: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``ollama.Client.chat`` for one call.

    ``model`` is the tag to send (default: the route's ID); ``num_ctx`` a fixed context size
    (default: :func:`estimate_num_ctx`). Images travel as raw bytes, which the ollama client
    encodes to base64 without a ``data:`` prefix; a base64 *string* would first be probed as a
    file path by the client, and re-decoded to check it.
    """
    if len(call.images) > 1:
        raise UnsupportedFeatureError(
            "Ollama's Llama 3.2 Vision takes one image per request; this request has "
            f"{len(call.images)}"
        )
    images = iter(call.images)  # in order of appearance, as the client loaded them
    messages: list[dict[str, Any]] = []
    request = call.request
    for message in request.messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text}
        if attached := [_image_bytes(next(images)) for _ in message.images]:
            entry["images"] = attached
        if message.tool_calls:
            # Ollama takes arguments as an object; ids are llamaroute's own (Ollama has none).
            entry["tool_calls"] = [{"function": {"name": c.name, "arguments": _object(c.arguments)}}
                                   for c in message.tool_calls]  # fmt: skip
        if message.role == "tool":
            # Ollama names the tool, not the call: found through the assistant turn's calls.
            entry["tool_name"] = message.name or request.tool_name(message.tool_call_id or "")
        messages.append(entry)
    options = {"num_ctx": num_ctx or estimate_num_ctx(call), "num_predict": call.max_tokens,
               "temperature": request.temperature, "top_p": request.top_p,
               "stop": list(request.stop) or None, "seed": request.seed,
               "top_k": request.top_k, "presence_penalty": request.presence_penalty,
               "frequency_penalty": request.frequency_penalty}  # fmt: skip
    kwargs: dict[str, Any] = {
        "model": model or call.route.model_id,
        "messages": messages,
        "stream": stream,
        "options": {name: value for name, value in options.items() if value is not None},
    }
    if keep_alive is not None:
        kwargs["keep_alive"] = keep_alive
    if (schema := request.response_format) is not None:
        if call.route.structured_output_mechanism == "format":
            kwargs["format"] = schema.schema  # Ollama's structured outputs: the JSON schema
        elif (instruction := with_schema_instruction(call, None)) is not None:
            messages.insert(0, {"role": "system", "content": instruction})
    # Ollama has no tool_choice: "none" leaves the tools out, any other choice sends them and
    # the model decides.
    if request.tools and request.tool_choice != "none":
        kwargs["tools"] = [_ollama_tool(tool) for tool in request.tools]
    if request.extra:
        apply_options(kwargs, request.extra.get(NAME), call.route)
    return kwargs


def _ollama_tool(tool: Tool) -> dict[str, Any]:
    """The tool as the ollama client keeps it: its property model has only ``type``,
    ``items``, ``description`` and ``enum``, so an optional value (``anyOf`` with null)
    becomes a list of types, and a nested object's fields are written into its description
    (the arguments are still checked against the whole schema when they come back)."""
    wire = tool.openai()
    parameters = dict(wire["function"]["parameters"])
    properties = parameters.get("properties")
    if isinstance(properties, dict):
        parameters["properties"] = {name: _property(spec) for name, spec in properties.items()}
    wire["function"]["parameters"] = parameters
    return wire


def _property(spec: object) -> object:
    if not isinstance(spec, dict):
        return spec
    options = spec.get("anyOf")
    if isinstance(options, list):
        kinds = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(kinds) == 1:
            nullable = len(kinds) < len(options)
            spec = {**{k: v for k, v in spec.items() if k != "anyOf"}, **kinds[0]}
            if nullable and isinstance(spec.get("type"), str):
                spec["type"] = [spec["type"], "null"]
    if spec.get("type") == "object" and isinstance(spec.get("properties"), dict):
        fields = json.dumps(spec["properties"], separators=(",", ":"))
        spec = {**spec, "description": f"{spec.get('description', '')} fields: {fields}".strip()}
    return spec


def _object(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}  # arguments the model wrote badly, sent back as none
    return value if isinstance(value, dict) else {}


def first_call_number(request: ChatRequest) -> int:
    """The ``n`` of the first ``call_<n>`` id for this answer's tool calls: one past the
    conversation's earlier calls, and past any earlier ``call_<n>`` id (another provider's, in
    a conversation that fell back to Ollama), so ids never repeat within a conversation and
    the same conversation always gets the same ids."""
    ids = [call.id for message in request.messages for call in message.tool_calls]
    numbers = [i[5:] for i in ids if i.startswith("call_") and len(i) < 15]
    taken = [int(n) + 1 for n in numbers if n.isascii() and n.isdigit()]
    return max([len(ids), *taken])


#: The ``n`` of the first synthesised ``call_<n>`` id, or what computes it: it depends on the
#: whole conversation, so the provider passes a function, called only for an answer that has
#: tool calls (most have none).
FirstCall = int | Callable[[], int]


def read_tool_calls(
    items: object, tools: tuple[Tool, ...], first: FirstCall, model_id: str
) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` (dicts or the client's models) as :class:`ToolCall` objects with
    synthesised ``call_<n>`` ids; an item of the wrong shape is a call with its error."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _malformed(f"message.tool_calls is {_kind(items)}, not a list", model_id)
    if not items:
        return ()
    if not isinstance(first, int):
        first = first()
    calls = []
    for offset, item in enumerate(items[:MAX_TOOLS]):
        function = _get(item, "function")
        calls.append(make_tool_call(None, _get(function, "name"), _get(function, "arguments"),
                                    tools, first + offset))  # fmt: skip
    return tuple(calls)


def _get(value: object, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, pydantic.BaseModel):
        field = getattr(value, key, None)
        # The client's models turn an arguments object into its own mapping type.
        return dict(field) if isinstance(field, Mapping) else field
    return None


#: The largest token count believed: far above any context window, far below what would
#: overflow a ledger's integer column. A count past it, negative or not a whole number is a
#: broken server, and the answer is refused rather than billed from it.
MAX_COUNT = 10**9


def _malformed(why: str, model_id: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"the Ollama server sent an answer that cannot be read: {why}",
        provider=NAME,
        model_id=model_id,
    )


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _fields(value: object, what: str, model_id: str) -> Mapping[str, Any]:
    """An object of the answer as a mapping: the ollama client's own models as their field
    dict (their ``.get()`` tests for and reads each attribute by name: a dozen per answer),
    a plain dict as it is; anything else is a malformed answer."""
    if type(value) in _MODELS:
        return vars(value)
    if isinstance(value, Mapping):
        return value
    raise _malformed(f"{what} is {_kind(value)}, not an object", model_id)


def _count(value: object, name: str, model_id: str) -> int:
    # The counts are omitempty on the server: absent (or null) means 0.
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12.0: what a JSON encoder may write for 12
    if type(value) is not int:
        raise _malformed(f"{name} is {_kind(value)}, not a token count", model_id)
    if not 0 <= value <= MAX_COUNT:
        why = "negative" if value < 0 else f"above {MAX_COUNT:,}"
        raise _malformed(f"{name} is {why}", model_id)
    return value


def _optional_str(value: object, name: str, model_id: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _malformed(f"{name} is {_kind(value)}, not a string", model_id)


def _done(value: object, model_id: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _malformed(f"done is {_kind(value)}, not true or false", model_id)


def _result(
    final: object,
    text: str,
    model_id: str,
    redact: Callable[[str], str],
    calls: tuple[ToolCall, ...] = (),
) -> ProviderResult:
    final = _fields(final, "the answer", model_id)
    usage = Usage(
        input_tokens=_count(final.get("prompt_eval_count"), "prompt_eval_count", model_id),
        output_tokens=_count(final.get("eval_count"), "eval_count", model_id),
    )
    details: dict[str, Any] = {}
    if final.get("eval_count") is None:
        details["usage_missing"] = True  # priced as an estimate, never as 0 tokens
    for name in _DURATIONS:
        # Timings only inform: one that is not a sane number is left out, not fatal.
        value = final.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e18:
            details[f"{name}_s"] = value / 1e9  # nanoseconds on the wire; NaN fails the test
    reason = _optional_str(final.get("done_reason"), "done_reason", model_id)
    if reason:
        details["done_reason"] = redact(reason[:100])
    model = _optional_str(final.get("model"), "model", model_id)
    finish = _FINISH_REASONS.get(reason or "stop", "other")
    return ProviderResult(
        text=text,
        # Servers before done_reason existed ended every answer the same way: "stop"; Ollama
        # ends a tool call with "stop" too.
        finish_reason="tool_calls" if calls and finish == "stop" else finish,
        tool_calls=calls,
        usage=usage,
        # Local inference has no bill; the price table (or the user's own local cost) says 0.
        cost=None,
        # What the server says answered: its own text, so scrubbed of the provider's secrets.
        served_model=redact(model[:200]) if model else None,
        details=details,
    )


def _content(chunk: Mapping[str, Any], model_id: str) -> str:
    message = chunk.get("message")
    if message is None:
        return ""
    content = _fields(message, "message", model_id).get("content")
    return _optional_str(content, "message.content", model_id) or ""


def parse_response(
    body: object,
    *,
    model_id: str,
    redact: Callable[[str], str] = str,
    tools: tuple[Tool, ...] = (),
    first_call: FirstCall = 0,
) -> ProviderResult:
    """A non-streaming ``/api/chat`` answer (a dict or the client's ``ChatResponse``).

    Anything that is not an answer of the documented shape (a field of the wrong type, a
    negative or absurd token count, no message) raises :class:`MalformedResponseError`.
    ``redact`` scrubs the provider's secrets from the server's own strings kept in the result
    (``served_model``, ``details``).
    """
    fields = _fields(body, "the answer", model_id)
    if fields.get("message") is None:
        raise _malformed("it has no message", model_id)
    text = _content(fields, model_id)
    if _done(fields.get("done"), model_id) is False:
        raise MalformedResponseError(
            "the response says it is not done: the answer is incomplete",
            provider=NAME,
            model_id=model_id,
            code="incomplete_stream",
        )
    items = _get(fields.get("message"), "tool_calls")
    calls = read_tool_calls(items, tools, first_call, model_id)
    return _result(fields, text, model_id, redact, calls)
