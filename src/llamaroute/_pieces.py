"""A stream's text kept as it arrives, at about its own size in memory.

A stream is capped by its bytes on the wire (``max_stream_bytes``), but a hostile server can
send a million one-word chunks: kept as a million ``str`` objects (~50 bytes of header each,
and a pointer in every list that holds them), the text would weigh more than the wire bytes
that carried it, and a 64 MB stream cap would allow well over 128 MB of memory.
:class:`TextPieces` joins every ``BLOCK`` pieces into one string as they come, so the text
costs about its length plus one object per block.
"""

from __future__ import annotations

__all__ = ["TextPieces"]

#: Pieces joined into one string at a time: each piece is copied once more, and a block's
#: overhead is shared by this many pieces.
BLOCK = 256


_append = list.append


class TextPieces(list[str]):
    """A list of text pieces whose older pieces are joined into blocks; ``"".join()`` of it
    is the text, in order, as for a plain list."""

    __slots__ = ("_loose",)

    def __init__(self) -> None:
        super().__init__()
        self._loose = 0  # pieces appended since the last block was made

    def append(self, piece: str) -> None:
        _append(self, piece)  # (list's own method: no super() object per piece)
        self._loose += 1
        if self._loose >= BLOCK:
            self[-BLOCK:] = ["".join(self[-BLOCK:])]
            self._loose = 0
