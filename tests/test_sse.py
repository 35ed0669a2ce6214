"""The SSE decoder: comments, multi-line data, blank-line dispatch, end-of-stream flush."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from llamaroute.providers.openrouter import SSEDecoder, SSEEvent


def decode(lines: list[str]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    if (tail := decoder.flush()) is not None:
        events.append(tail)
    return events


def test_comments_are_skipped() -> None:
    assert decode([": OPENROUTER PROCESSING", "", 'data: {"a":1}', ""]) == [SSEEvent('{"a":1}')]


def test_several_data_lines_make_one_event() -> None:
    assert decode(['data: {"a":', "data: 1}", ""]) == [SSEEvent('{"a":\n1}')]


def test_one_leading_space_only_is_dropped_and_fields_are_kept() -> None:
    events = decode(["event: ping", "data:  two spaces", "id: 7", "retry: 10", "", "data:x", ""])
    assert events == [SSEEvent(" two spaces", "ping"), SSEEvent("x")]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(["", "", ": keep-alive", ""]) == []


def test_an_event_without_its_blank_line_is_flushed_at_the_end() -> None:
    assert decode(["data: [DONE]"]) == [SSEEvent("[DONE]")]


STREAM = (
    ": OPENROUTER PROCESSING\r\n\r\n"
    'data: {"choices":[{"delta":{"content":"Hé"}}]}\r\n\r\n'
    'data: {"choices":\r\ndata: [{"delta":{"content":"llo"}}]}\r\n\r\n'
    "data: [DONE]\r\n\r\n"
).encode()


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_any_split_across_reads_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    decoder = httpx._decoders.LineDecoder()  # what httpx's iter_lines runs on
    text = httpx._decoders.TextDecoder("utf-8")
    lines: list[str] = []
    for piece in pieces:
        lines += decoder.decode(text.decode(piece))
    lines += decoder.decode(text.flush()) + decoder.flush()
    data = [event.data for event in decode(lines)]
    assert data == [
        '{"choices":[{"delta":{"content":"Hé"}}]}',
        '{"choices":\n[{"delta":{"content":"llo"}}]}',
        "[DONE]",
    ]
