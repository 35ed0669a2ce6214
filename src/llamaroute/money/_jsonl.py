"""Reading JSONL fast: many lines parsed by one ``json.loads`` call, checked line by line.

``json.loads`` per line spends most of its time outside the parser (the call, the encoding
sniff, the decode, the whitespace check). :func:`json_lines` instead joins a batch of lines
into one JSON object whose keys are a random nonce and the line's index,
``{"<nonce>0": line0, "<nonce>1": line1, ...}``, parses it with one call, and takes the values
back only if the keys come out exactly as written, in order. A line that is not one complete
JSON value by itself cannot pass that check: an unclosed bracket swallows the next key (which
then is missing at the top level), an extra value or a stray comma is a syntax error or an
extra key, and no line can forge a key without knowing the nonce, which is drawn for each
call. When a batch fails in any way (a bad line, bytes that are not UTF-8, nesting too deep),
its lines are parsed again one by one, so that each bad line gets its own error, exactly as if
the batch path did not exist.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator

from .._exceptions import InvalidRequestError

__all__ = ["json_lines", "load_line"]

#: Lines parsed per ``json.loads`` call (a few hundred KB of text at most, for typical lines).
BATCH = 1000


def load_line(raw: str | bytes) -> object:
    """One line parsed alone; :class:`~llamaroute.InvalidRequestError` saying what is wrong."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidRequestError(f"not valid JSON: {error.msg} (column {error.colno})") from None
    except UnicodeDecodeError:
        raise InvalidRequestError("not UTF-8 text") from None
    except RecursionError:
        raise InvalidRequestError("nested too deeply to read (arrays or objects)") from None
    except ValueError as error:  # a number too long to convert, for one
        raise InvalidRequestError(f"not valid JSON: {error}") from None


def json_lines(
    lines: Iterable[str | bytes], batch: int = BATCH
) -> Iterator[tuple[int, object | InvalidRequestError]]:
    """``(line number, parsed value or the line's error)`` for each non-blank line (numbers
    count from 1, blank lines included), the same values :func:`load_line` gives."""
    nonce = secrets.token_hex(8)
    keys = [f"{nonce}{index}" for index in range(batch)]
    text_keys = [f',"{key}":' for key in keys]
    text_keys[0] = text_keys[0][1:]
    byte_keys = [key.encode() for key in text_keys]
    numbers: list[int] = []
    pending: list[str | bytes] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        numbers.append(number)
        pending.append(raw)
        if len(pending) == batch:
            yield from _batch(numbers, pending, keys, text_keys, byte_keys)
            numbers, pending = [], []
    if pending:
        yield from _batch(numbers, pending, keys, text_keys, byte_keys)


def _batch(
    numbers: list[int],
    pending: list[str | bytes],
    keys: list[str],
    text_keys: list[str],
    byte_keys: list[bytes],
) -> list[tuple[int, object | InvalidRequestError]]:
    count = len(pending)
    try:
        parts: list[str | bytes] = [""] * (2 * count)
        parts[1::2] = pending
        if isinstance(pending[0], bytes):
            parts[0::2] = byte_keys[:count]
            parsed = json.loads(b"{" + b"".join(parts) + b"}")  # type: ignore[arg-type]
        else:
            parts[0::2] = text_keys[:count]
            parsed = json.loads("{" + "".join(parts) + "}")  # type: ignore[arg-type]
        if list(parsed) == keys[:count]:
            return list(zip(numbers, parsed.values(), strict=True))
    except (ValueError, TypeError, RecursionError):  # parsed again line by line below
        pass
    found: list[tuple[int, object | InvalidRequestError]] = []
    for number, raw in zip(numbers, pending, strict=True):
        try:
            found.append((number, load_line(raw)))
        except InvalidRequestError as error:
            found.append((number, error))
    return found
