"""Server-Sent Events, decoded from lines (no I/O): the streaming format of OpenAI-compatible
APIs such as OpenRouter's."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``data`` (lines joined with ``\\n``) and ``event`` name."""

    data: str
    event: str = "message"


class SSEDecoder:
    """Incremental Server-Sent Events parser over decoded lines (line endings removed).

    Follows the WHATWG rules that matter here: ``:`` lines are comments (OpenRouter's
    ``: OPENROUTER PROCESSING`` keep-alives), several ``data:`` lines make one event joined
    with newlines, a blank line ends the event, one space after the colon is dropped, and
    unknown fields are ignored. Splitting bytes into lines (CRLF, chunks split across reads) is
    left to httpx's ``iter_lines``.
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = "message"

    def feed(self, line: str) -> SSEEvent | None:
        """Take one line; return the event it completes, if any."""
        if not line:
            return self.flush()
        if line[0] == ":":
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def flush(self) -> SSEEvent | None:
        """The pending event, if any (at a blank line, or at the end of the stream)."""
        if not self._data:
            self._event = "message"
            return None
        event = SSEEvent("\n".join(self._data), self._event)
        self._data = []
        self._event = "message"
        return event
