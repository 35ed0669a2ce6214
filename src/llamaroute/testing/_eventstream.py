"""A small encoder for the AWS binary event-stream framing (``application/vnd.amazon.eventstream``).

botocore ships the decoder (``botocore.eventstream``); the fake Bedrock needs the other half.
One message on the wire::

    total length (uint32) | headers length (uint32) | prelude CRC32 (of the first 8 bytes)
    headers | payload | message CRC32 (of everything before it)

All integers are big-endian; CRCs are CRC-32 (IEEE), as ``zlib.crc32`` computes. A header is
its name length (uint8), the name, a value type (``7`` = string), the value length (uint16)
and the value. Only string headers are needed for Bedrock's events and exceptions.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["corrupt", "encode_message", "event_frame", "exception_frame"]

_STRING = 7
_PRELUDE = struct.Struct(">II")


def _headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and a raw ``payload``, CRCs correct."""
    encoded = _headers(headers)
    total = _PRELUDE.size + 4 + len(encoded) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def event_frame(event_type: str, payload: Any) -> bytes:
    """A JSON event (``:message-type: event``), as ConverseStream sends them."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, _json(payload))


def exception_frame(exception_type: str, payload: Any) -> bytes:
    """An in-stream exception (``:message-type: exception``, lowerCamel ``:exception-type``),
    which botocore raises as ``EventStreamError`` while the caller iterates."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, _json(payload))


def corrupt(frame: bytes) -> bytes:
    """``frame`` with one payload byte flipped: the prelude still reads, the message CRC fails."""
    damaged = bytearray(frame)
    damaged[-5] ^= 0xFF  # the last payload byte, just before the message CRC
    return bytes(damaged)
