"""The SSE decoder: comments, multi-line data, blank-line dispatch, end-of-stream flush, and
bytes split anywhere, with caps on a line and an event."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamaroute.providers.openrouter import SSEDecoder, SSEEvent, SSEOverflow


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


EXPECTED = [
    '{"choices":[{"delta":{"content":"Hé"}}]}',
    '{"choices":\n[{"delta":{"content":"llo"}}]}',
    "[DONE]",
]


def decode_bytes(pieces: list[bytes], **caps: int) -> list[str]:
    decoder = SSEDecoder(**caps)
    events = [event for piece in pieces for event in decoder.feed_bytes(piece)]
    return [event.data for event in [*events, *decoder.end()]]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut for cut in cuts if 0 < cut < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.booleans(),
)
def test_any_split_across_reads_gives_the_same_events(
    cuts: list[int], newline: bytes, bom: bool
) -> None:
    # A CRLF cut between its CR and its LF is one line end, not two (which would end an event
    # early); a multi-byte character cut in two is still one character; a byte-order mark,
    # itself cut, is dropped.
    data = (b"\xef\xbb\xbf" if bom else b"") + STREAM.replace(b"\r\n", newline)
    assert decode_bytes(split(data, cuts)) == EXPECTED


def test_httpx_line_splitting_agrees() -> None:
    decoder = httpx._decoders.LineDecoder()  # what httpx's iter_lines runs on
    text = httpx._decoders.TextDecoder("utf-8")
    lines = decoder.decode(text.decode(STREAM)) + decoder.flush()
    assert [event.data for event in decode(lines)] == EXPECTED == decode_bytes([STREAM])


def test_a_last_line_without_its_end_still_counts() -> None:
    assert decode_bytes([b"data: [DO", b"NE]"]) == ["[DONE]"]


def test_a_line_over_the_cap_fails_before_it_is_held_whole() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    decoder.feed_bytes(b"data: " + b"x" * 900)
    with pytest.raises(SSEOverflow) as caught:
        decoder.feed_bytes(b"x" * 200)  # still no line end: refused while partial
    assert caught.value.what == "line"
    assert caught.value.limit == 1000
    with pytest.raises(SSEOverflow):
        SSEDecoder(max_line_bytes=10).feed_bytes(b"data: 0123456789\n")


def test_an_event_over_the_cap_fails_even_in_short_lines() -> None:
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=1000)
    for _ in range(19):  # one event, never dispatched: 19 x 51 bytes fit
        decoder.feed_bytes(b"data: " + b"y" * 50 + b"\n")
    with pytest.raises(SSEOverflow) as caught:
        decoder.feed_bytes(b"data: " + b"y" * 50 + b"\n")
    assert caught.value.what == "event"
    # Comments and dispatched events do not add up.
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=100)
    for _ in range(100):
        assert decoder.feed_bytes(b": keep-alive\n\ndata: " + b"z" * 50 + b"\n\n")


def test_lines_must_be_utf8_but_comments_are_not_decoded() -> None:
    assert decode_bytes([b": \xff\xfe keep-alive\n\n", b"data: ok\n\n"]) == ["ok"]
    with pytest.raises(UnicodeDecodeError):
        decode_bytes([b"data: \xab\xff\n\n"])


_LINES = st.lists(
    st.one_of(
        st.just(""),
        st.builds(lambda text: f"data: {text}", st.text(max_size=8)),
        st.builds(lambda text: f"data:{text}", st.text(max_size=8)),
        st.builds(lambda name: f"event: {name}", st.sampled_from(["message", "error", "x"])),
        st.just(": keep-alive"),
        st.just("retry: 10"),
    ).filter(lambda line: "\n" not in line and "\r" not in line),
    max_size=20,
)


@given(_LINES)
def test_whole_lines_in_one_read_decode_as_they_do_a_byte_at_a_time(lines: list[str]) -> None:
    # One read of whole LF-ended lines takes the decoder's fast path; a byte at a time never
    # does (every line is held, then ended). Both must give the same events and names.
    data = "".join(f"{line}\n" for line in lines).encode()

    def events(pieces: list[bytes]) -> list[SSEEvent]:
        decoder = SSEDecoder(max_line_bytes=64, max_event_bytes=256)
        found = [event for piece in pieces for event in decoder.feed_bytes(piece)]
        return [*found, *decoder.end()]

    assert events([data]) == events([data[n : n + 1] for n in range(len(data))])
