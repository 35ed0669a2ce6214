"""OpenAI's chat-completions wire, both ways, as plain data (no I/O): a request body into the
arguments of ``AsyncClient.chat``, and a :class:`~llamaroute.ChatResponse` or a stream's
pieces into OpenAI's ``chat.completion`` and ``chat.completion.chunk`` objects.

Only what llamaroute can honour is accepted; anything else that would change the answer
(``n`` > 1, ``logprobs``) is a 400 that says so, rather than being silently ignored.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidRequestError
from .._response import ChatResponse
from .._tools import ToolCall

__all__ = [
    "ChatArguments",
    "chunk",
    "completion",
    "completion_id",
    "content",
    "error_body",
    "parse_chat",
    "tool_call_delta",
    "usage_chunk",
]

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "other": "stop",
}
#: Fields the openai SDK may send that do not change a Llama answer here; they are accepted
#: and not passed on.
_IGNORED = frozenset(
    {
        "parallel_tool_calls",
        "metadata",
        "store",
        "service_tier",
        "modalities",
        "prediction",
        "reasoning_effort",
        "stream_options",
        "user",
        "stream",
        "logit_bias",
        "top_logprobs",
        "web_search_options",
        "verbosity",
    }
)


class ChatArguments:
    """A parsed request: ``model``, the keyword arguments for ``AsyncClient.chat`` /
    ``stream``, and what the gateway itself needs (``stream``, ``include_usage``, ``user``)."""

    __slots__ = ("include_usage", "kwargs", "max_tokens", "model", "stream", "user")

    def __init__(
        self,
        model: str,
        kwargs: dict[str, Any],
        *,
        stream: bool,
        include_usage: bool,
        user: str | None,
        max_tokens: int | None,
    ) -> None:
        self.model = model
        self.kwargs = kwargs
        self.stream = stream
        self.include_usage = include_usage
        self.user = user
        self.max_tokens = max_tokens


def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    error = InvalidRequestError(message)
    error.param = param  # type: ignore[attr-defined]
    return error


def parse_chat(body: object) -> ChatArguments:
    """The request body of ``POST /v1/chat/completions`` as llamaroute arguments; a body that
    is not a valid request raises :class:`InvalidRequestError` (a 400)."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model is required (a model key such as llama-3.2-3b)", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty array", "messages")
    kwargs: dict[str, Any] = {"messages": [_message(m, i) for i, m in enumerate(messages)]}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    for name, value in (
        ("max_tokens", max_tokens),
        ("temperature", body.get("temperature")),
        ("top_p", body.get("top_p")),
        ("seed", body.get("seed")),
    ):
        if value is not None:
            kwargs[name] = value
    if isinstance(kwargs.get("temperature"), int) and not isinstance(kwargs["temperature"], bool):
        kwargs["temperature"] = float(kwargs["temperature"])
    if isinstance(kwargs.get("top_p"), int) and not isinstance(kwargs["top_p"], bool):
        kwargs["top_p"] = float(kwargs["top_p"])
    stop = body.get("stop")
    if stop is not None:
        kwargs["stop"] = stop
    if body.get("n") not in (None, 1):
        raise _bad("n: only one choice per request is supported (n=1)", "n")
    if body.get("logprobs"):
        raise _bad("logprobs are not available on the Llama routes", "logprobs")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise _bad(f"{name} is not supported by this gateway yet", name)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools must be an array", "tools")
        if tools:
            kwargs["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None and tools:
        kwargs["tool_choice"] = _tool_choice(choice)
    schema = _response_format(body.get("response_format"))
    if schema is not None:
        kwargs["response_format"] = schema
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("user must be a string", "user")
    return ChatArguments(
        model,
        kwargs,
        stream=stream,
        include_usage=include_usage,
        user=user,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
    )


def _message(message: object, index: int) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise _bad(f"messages[{index}] must be an object", f"messages[{index}]")
    role = message.get("role")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    content = message.get("content")
    if isinstance(content, list):
        parts = [_part(part, index) for part in content]
        if role != "user":
            # Text parts of system, assistant and tool messages: their text, joined.
            out["content"] = "".join(str(part.get("text", "")) for part in parts)
        else:
            out["content"] = parts
    elif content is not None or "content" in message:
        out["content"] = content
    for name in ("tool_calls", "tool_call_id"):
        if message.get(name) is not None:
            out[name] = message[name]
    if role == "tool" and isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _part(part: object, index: int) -> dict[str, Any]:
    where = f"messages[{index}].content"
    if not isinstance(part, dict):
        raise _bad(f"{where}: each part must be an object", where)
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url.startswith(("data:", "https://", "http://")):
            # Never a file path: a client must not make the gateway read its own files.
            raise _bad(f"{where}: image_url.url must be a data: or http(s):// URL", where)
        return {"type": "image", "image": url}
    raise _bad(f"{where}: unsupported part type {kind!r} (text and image_url are)", where)


def _tool_choice(choice: object) -> str:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            return name
    raise _bad(
        "tool_choice must be 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}",
        "tool_choice",
    )


def _response_format(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("response_format must be an object", "response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _bad(
                "response_format.json_schema.schema must be a JSON schema object", "response_format"
            )
        return schema
    raise _bad(
        f"response_format.type {kind!r}: use text, json_object or json_schema", "response_format"
    )


# --- answers ------------------------------------------------------------------------------


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id."""
    return "chatcmpl-" + secrets.token_hex(12)


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.raw_arguments or "{}"},
        }
        for call in calls
    ]


def content(response: ChatResponse) -> str:
    """The answer's text as sent: for structured output, the validated JSON."""
    if response.parsed is not None and not hasattr(response.parsed, "model_dump_json"):
        # Structured output: the validated JSON, not the model's raw text (which may be
        # wrapped in a code fence).
        return json.dumps(response.parsed, ensure_ascii=False)
    return response.text


def _usage(response: ChatResponse) -> dict[str, int]:
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def completion(response: ChatResponse, model: str, cid: str) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": content(response)}
    if response.tool_calls:
        message["tool_calls"] = _tool_calls(response.tool_calls)
        message["content"] = message["content"] or None
    finish = _FINISH.get(response.finish_reason or "stop", "stop")
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(response),
        "system_fingerprint": None,
    }


def chunk(
    cid: str, model: str, created: int, delta: Mapping[str, Any], finish: str | None = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}],
    }


def tool_call_delta(response: ChatResponse) -> dict[str, Any]:
    """The final answer's tool calls as one delta (each with its index)."""
    calls = _tool_calls(response.tool_calls)
    return {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}


def finish_reason(response: ChatResponse) -> str:
    """OpenAI's name for why the answer ended."""
    return _FINISH.get(response.finish_reason or "stop", "stop")


def usage_chunk(cid: str, model: str, created: int, response: ChatResponse) -> dict[str, Any]:
    """The last chunk of a stream with ``include_usage``: no choices, the usage."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": _usage(response),
    }


def error_body(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
