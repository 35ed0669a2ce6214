"""A stream's bytes as SSE events, under the stream's caps (no I/O)."""

from __future__ import annotations

from ..._exceptions import MalformedResponseError
from .._reading import BodyReader, too_large
from .._sse import SSEDecoder, SSEEvent, SSEOverflow
from ._errors import NAME

__all__ = ["stream_events"]


def stream_events(
    decoder: SSEDecoder, reader: BodyReader, raw: bytes | None, model_id: str
) -> list[SSEEvent]:
    """The events completed by ``raw`` (``None``: the end of the stream)."""
    try:
        if raw is None:
            return decoder.end()
        pieces = reader.feed(raw)
        if type(pieces) is tuple:  # an uncompressed body: the bytes as they came
            return decoder.feed_bytes(pieces[0])
        events: list[SSEEvent] = []
        for piece in pieces:
            events.extend(decoder.feed_bytes(piece))
        return events
    except SSEOverflow as overflow:
        what = f"a line or event of the stream ({overflow.what})"
        raise too_large(NAME, model_id, what, overflow.limit) from None
    except UnicodeDecodeError:
        raise MalformedResponseError(
            "the stream is not UTF-8 text", provider=NAME, model_id=model_id
        ) from None
