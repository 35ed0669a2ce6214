"""Server-Sent Events, decoded with no I/O: the streaming format of OpenAI-compatible APIs such
as OpenRouter's.

:class:`SSEDecoder` turns raw bytes (:meth:`SSEDecoder.feed_bytes`, in whatever pieces the
network delivers them) or already split lines (:meth:`SSEDecoder.feed`) into
:class:`SSEEvent` objects. Fed bytes, it holds at most one line and one event in memory and
refuses anything longer than its caps with :class:`SSEOverflow`, so a server that sends a
50 MB line costs at most the cap, not 50 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent", "SSEOverflow"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``data`` (lines joined with ``\\n``) and ``event`` name."""

    data: str
    event: str = "message"


class SSEOverflow(ValueError):
    """A line or an event is longer than the decoder's cap (``what`` says which)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"an SSE {what} is longer than {limit} bytes")
        self.what = what
        self.limit = limit


class SSEDecoder:
    """Incremental Server-Sent Events parser.

    Follows the WHATWG rules that matter here: lines end with CRLF, LF or CR (a CRLF split
    across two reads is one line end); ``:`` lines are comments (OpenRouter's
    ``: OPENROUTER PROCESSING`` keep-alives); several ``data:`` lines make one event joined
    with newlines; a blank line ends the event; one space after the colon is dropped; unknown
    fields are ignored; a leading byte-order mark is dropped.

    ``max_line_bytes`` caps one line and ``max_event_bytes`` the data of one event (``None``:
    no cap). Lines must be UTF-8: :meth:`feed_bytes` raises ``UnicodeDecodeError`` otherwise
    (comment lines are skipped without being decoded).
    """

    __slots__ = (
        "_after_cr",
        "_data",
        "_data_bytes",
        "_event",
        "_max_event",
        "_max_line",
        "_partial",
        "_partial_bytes",
        "_started",
    )

    def __init__(
        self, *, max_line_bytes: int | None = None, max_event_bytes: int | None = None
    ) -> None:
        self._data: list[str] = []
        self._data_bytes = 0
        self._event = "message"
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._partial: list[bytes] = []  # the start of a line whose end has not arrived
        self._partial_bytes = 0
        self._after_cr = False  # the last piece ended in CR: a LF starting the next is its end
        self._started = False

    def feed(self, line: str) -> SSEEvent | None:
        """Take one line (its line end removed); return the event it completes, if any."""
        if not line:
            return self.flush()
        if line[0] == ":":
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            if self._max_event is not None:
                self._data_bytes += len(value) + 1
                if self._data_bytes > self._max_event:
                    raise SSEOverflow("event", self._max_event)
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
        self._data_bytes = 0
        self._event = "message"
        return event

    def feed_bytes(self, data: bytes) -> list[SSEEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        if not self._started:
            head = b"".join((*self._partial, data)) if self._partial else data
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._partial, self._partial_bytes = [head], len(head)  # a mark, perhaps
                return []
            self._started = True
            self._partial, self._partial_bytes = [], 0
            data = head.removeprefix(_BOM)
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return []
        if data[-1:] == b"\n" and not self._partial and b"\r" not in data:
            return self._whole_lines(data)
        self._after_cr = data[-1:] == b"\r"
        lines = data.splitlines(keepends=True)
        events: list[SSEEvent] = []
        last = len(lines) - 1
        for index, piece in enumerate(lines):
            ended = piece[-1:] in (b"\n", b"\r")
            if not ended and index == last:
                self._hold(piece)
                break
            if self._partial:
                self._partial.append(piece)
                piece = b"".join(self._partial)
                self._partial, self._partial_bytes = [], 0
            event = self._line(piece.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[SSEEvent]:
        """The end of the stream: the last line, even with no line end, and the pending
        event."""
        events: list[SSEEvent] = []
        if self._partial:
            line, self._partial, self._partial_bytes = b"".join(self._partial), [], 0
            if self._started or not _BOM.startswith(line):
                event = self._line(line)
                if event is not None:
                    events.append(event)
        if (event := self.flush()) is not None:
            events.append(event)
        return events

    def _whole_lines(self, data: bytes) -> list[SSEEvent]:
        """:meth:`feed_bytes` for the usual read: whole lines ending in LF, no CR, nothing
        held from before. They are split once, and ``data:`` lines are taken in place (the
        same steps as :meth:`_line` and :meth:`feed`, without their calls)."""
        events: list[SSEEvent] = []
        max_line = self._max_line
        for line in data[:-1].split(b"\n"):
            if not line:
                if (event := self.flush()) is not None:
                    events.append(event)
            elif line[:6] == b"data: ":
                if max_line is not None and len(line) > max_line:
                    raise SSEOverflow("line", max_line)
                value = line[6:].decode("utf-8")
                if self._max_event is not None:
                    self._data_bytes += len(value) + 1
                    if self._data_bytes > self._max_event:
                        raise SSEOverflow("event", self._max_event)
                self._data.append(value)
            elif (event := self._line(line)) is not None:
                events.append(event)
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_bytes += len(piece)
        if self._max_line is not None and self._partial_bytes > self._max_line:
            raise SSEOverflow("line", self._max_line)

    def _line(self, line: bytes) -> SSEEvent | None:
        if self._max_line is not None and len(line) > self._max_line:
            raise SSEOverflow("line", self._max_line)
        if line[:1] == b":":
            return None  # a comment: not decoded, so not even its bytes can fail
        return self.feed(line.decode("utf-8"))
