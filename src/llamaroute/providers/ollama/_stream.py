"""An Ollama stream read line by line, with no I/O: its text as it comes and its final
answer (the shapes themselves are checked in ``_wire.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ollama

from ..._exceptions import MalformedResponseError
from ..._pieces import TextPieces
from ..._tools import MAX_TOOLS, Tool
from .._base import ProviderResult
from ._wire import (
    NAME,
    FirstCall,
    _content,
    _done,
    _fields,
    _get,
    _kind,
    _malformed,
    _result,
    read_tool_calls,
)

__all__ = ["StreamState"]


#: The fields of a stream line that carries only text, and of its message.
_DELTA_LINE = frozenset(("model", "created_at", "message", "done"))
_DELTA_MESSAGE = frozenset(("role", "content"))


def _plain_text_delta(line: dict[str, Any]) -> str | None:
    """The text of a stream line that is a plain text delta (``done: false``, a message
    with a role and a string or null content, a model name and a time), with every field
    exactly of the type the client's ``ChatResponse`` requires, so that building the model
    would change nothing and refuse nothing; ``None`` for any other line."""
    message = line.get("message")
    if (
        line.get("done") is False
        and type(message) is dict
        and line.keys() <= _DELTA_LINE
        and message.keys() <= _DELTA_MESSAGE
        and type(message.get("role")) is str
        and type(line.get("model", "")) is str
        and type(line.get("created_at", "")) is str
    ):
        content = message.get("content")
        if type(content) is str:
            return content
        if content is None:
            return ""
    return None


class StreamState:
    """The state of one Ollama stream, fed one parsed NDJSON line at a time (no I/O)."""

    __slots__ = ("build", "final", "first_call", "model_id", "parts", "redact", "tool_items",
                 "tools")  # fmt: skip

    def __init__(
        self,
        model_id: str,
        redact: Callable[[str], str] = str,
        tools: tuple[Tool, ...] = (),
        first_call: FirstCall = 0,
        build: Callable[..., object] | None = None,
    ) -> None:
        #: What a line given as a dict is built into, unless it is a plain text delta: the
        #: provider passes the client's ``ChatResponse``, so that every other line is checked
        #: (and coerced) as the client checks it, its errors mapped as the client's are.
        #: ``None``: the dict is read as it is, every field checked here.
        self.build = build
        self.model_id = model_id
        self.redact = redact
        self.tools = tools
        self.first_call = first_call
        self.tool_items: list[object] = []  # tool calls, as they came (since Ollama 0.8)
        self.parts = TextPieces()
        self.final: object | None = None

    def feed(self, chunk: object) -> str:
        """Take one line; return its new text ("" if none). The ``done: true`` line completes
        the answer (:attr:`final`); the caller still reads the response to its end. A line
        of the wrong shape raises :class:`MalformedResponseError` (or, for a dict line that
        ``build`` refuses, that model's own error, which the provider maps as it maps the
        client's)."""
        if type(chunk) is dict:
            # A line as the client decoded it (the provider's own request asks for dicts). A
            # plain text delta, every field exactly of its model type, is taken as it is;
            # any other line goes through ``build`` (the client's model), if given.
            piece = _plain_text_delta(chunk)
            if piece is not None:
                if piece:
                    self.parts.append(piece)
                return piece
            if self.build is not None:
                chunk = self.build(**chunk)
        if type(chunk) is ollama.ChatResponse:
            # The client's own model (every line of a stream), already type-checked by it:
            # its fields read directly, not through its .get(), which tests and reads each one
            # by name (~1 us a chunk).
            message, done = chunk.message, chunk.done
            # Its content is a str or None: "" for none.
            piece = (message.content or "") if message is not None else ""
            items = message.tool_calls if message is not None else None
        else:
            fields = _fields(chunk, "a stream line", self.model_id)
            piece, done = _content(fields, self.model_id), _done(fields.get("done"), self.model_id)
            items = _get(fields.get("message"), "tool_calls")
        if items:
            if not isinstance(items, list):
                raise _malformed(f"message.tool_calls is {_kind(items)}, not a list", self.model_id)
            self.tool_items.extend(items[: MAX_TOOLS - len(self.tool_items)])
        if piece:
            self.parts.append(piece)
        if done:
            self.final = chunk
        return piece

    def result(self) -> ProviderResult:
        """The final result, or :class:`MalformedResponseError` if ``done: true`` never came."""
        if self.final is None:
            raise MalformedResponseError(
                "the stream ended without a done: true line: the answer is incomplete",
                provider=NAME,
                model_id=self.model_id,
                code="incomplete_stream",
            )
        calls = read_tool_calls(self.tool_items, self.tools, self.first_call, self.model_id)
        return _result(self.final, "".join(self.parts), self.model_id, self.redact, calls)
