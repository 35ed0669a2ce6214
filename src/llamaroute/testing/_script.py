"""What a fake provider server answers and what it records, as plain data (no I/O).

:class:`Step` is one scripted answer (a success, an HTTP error or a stream fault),
:class:`StreamPlan` how a wire format lays out a streamed answer in frames, and
:class:`RecordedRequest` one request as the fake received it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest", "Step", "StreamPlan", "is_fault"]

_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-amz-security-token", "x-amz-content-sha256", "cookie"}
)


@dataclass(frozen=True)
class Step:
    """One scripted response. Every field has a harmless default: ``Step()`` is a success.

    Success: ``text`` (or explicit stream ``chunks``), ``usage`` as ``(input, output)``
    tokens, ``cost`` (a provider-reported USD string, where the wire format has one),
    ``finish_reason``.

    Failure before any body: ``status`` >= 400 with ``error_type`` / ``message`` rendered in
    the provider's error format, ``retry_after`` (seconds, or any header text), extra
    ``headers``, ``delay`` before the headers, ``reset_after=0`` (TCP reset instead of an
    answer).

    Stream faults, after N content chunks: ``cut_after`` (the body ends cleanly but early: no
    finish, no end marker), ``drop_after`` (the connection closes mid-body), ``reset_after``
    (TCP reset), ``error_after`` (the provider's mid-stream error event), ``malformed_after``
    (a chunk that is not valid JSON; ``0`` on a non-streamed call: a truncated JSON body),
    ``omit_end`` (everything but the final end marker, e.g. no ``data: [DONE]``),
    ``chunk_delay`` between chunks.

    Tool calls: ``tool_calls`` (see :meth:`tool_call`), each ``{"name", "arguments", "id"?}``;
    arguments as an object or as raw text. OpenRouter streams them as ``delta.tool_calls``
    fragments (id and name in the first only, the arguments split over several chunks),
    Ollama as one ``message.tool_calls`` line before the last.

    Wire details for parser tests: ``crlf`` line endings, ``multiline_data`` (an event's
    JSON split over several ``data:`` lines), ``split_writes`` (every byte its own TCP write).

    Hostile servers: ``raw_body`` (a 200 whose body is exactly these bytes, streamed or not,
    with ``content_type`` if given); ``trickle`` (the body, or every stream frame, sent one
    byte at a time, this many seconds apart); ``endless`` (these bytes sent again and again,
    ``chunk_delay`` apart, until the client hangs up: at once for a non-streamed answer, after
    ``endless_after`` content chunks in a stream; e.g. ``b": keep-alive\n\n"``).
    """

    text: str | None = None
    chunks: tuple[str, ...] | None = None
    usage: tuple[int, int] | None = None
    cost: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    error_type: str | None = None
    message: str | None = None
    retry_after: float | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    drop_after: int | None = None
    reset_after: int | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    omit_end: bool = False
    crlf: bool = False
    multiline_data: bool = False
    split_writes: bool = False
    raw_body: bytes | None = None
    content_type: str | None = None
    trickle: float = 0.0
    endless: bytes | None = None
    endless_after: int = 0
    tool_calls: tuple[Mapping[str, Any], ...] | None = None

    @classmethod
    def reply(cls, text: str, **options: Any) -> Step:
        """A successful answer with this text (streamed word by word when streaming)."""
        return cls(text=text, **options)

    @classmethod
    def structured(cls, value: Any, *, fenced: bool = False, **options: Any) -> Step:
        """A structured answer: ``value`` (a dict, a list, or a pydantic model instance) as
        JSON text, on any of the three wires, plain or streamed; ``fenced`` wraps it in a
        Markdown code fence, as small models often do."""
        dump = getattr(value, "model_dump_json", None)
        text = dump() if callable(dump) else json.dumps(value)
        return cls(text=f"```json\n{text}\n```" if fenced else text, **options)

    @classmethod
    def tool_call(cls, name: str, arguments: Any = None, **options: Any) -> Step:
        """An answer that calls one tool. ``arguments`` is an object, or text sent exactly as
        given (bad JSON included); ``id=`` sets the call's id where the wire has ids. For more
        calls in one answer pass ``tool_calls=({"name", "arguments", "id"?}, ...)``."""
        call: dict[str, Any] = {"name": name, "arguments": {} if arguments is None else arguments}
        if "id" in options:
            call["id"] = options.pop("id")
        options.setdefault("text", "")
        return cls(tool_calls=(call,), finish_reason="tool_calls", **options)

    @classmethod
    def error(
        cls,
        status: int,
        error_type: str | None = None,
        message: str | None = None,
        **options: Any,
    ) -> Step:
        """An HTTP error in the provider's own error format."""
        return cls(status=status, error_type=error_type, message=message, **options)

    @property
    def is_error(self) -> bool:
        """Whether this step answers with an HTTP error status."""
        return self.status >= 400

    @property
    def error_headers(self) -> dict[str, str]:
        """The headers of this step's error answer: its own, plus ``Retry-After`` if set."""
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received. ``headers`` keeps the real values (lower-cased names);
    ``repr()`` hides credentials."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        return (
            f"RecordedRequest({self.method} {self.path}, headers={shown}, {len(self.body)} bytes)"
        )


@dataclass
class StreamPlan:
    """How a wire format renders one streamed answer, as raw frames (bytes on the wire).

    ``preamble`` goes first (keep-alive comments), ``content`` holds one frame per text chunk
    (the unit ``cut_after`` and friends count), ``closing`` the finish / usage / end frames;
    ``end_marker`` is how many trailing ``closing`` frames ``omit_end`` leaves out.
    """

    content: list[bytes]
    closing: list[bytes]
    preamble: list[bytes] = field(default_factory=list)
    end_marker: int = 1
    error_frame: bytes = b""
    malformed_frame: bytes = b'data: {"choices": [{"delta": {"content": "tr\n\n'


def is_fault(step: Step) -> bool:
    """Whether ``step`` injects a fault into its answer (a cut, drop, reset, error event,
    malformed chunk, missing end marker, raw or endless body, or a trickle)."""
    faults = (step.cut_after, step.drop_after, step.reset_after, step.error_after,
              step.malformed_after, step.raw_body, step.endless)  # fmt: skip
    return any(value is not None for value in faults) or step.omit_end or step.trickle > 0
