"""Every malformed Bedrock answer is a typed llamaroute error: wrong types, negative, NaN or
absurd counts, missing fields, non-object JSON, invalid UTF-8, corrupt or strange frames; through
the pure wire functions (fuzzed with hypothesis) and through the real provider, boto3 and a
hostile FakeBedrock (some fuzzed too). Nothing from botocore, json or the codecs escapes, and a
call that ends this way keeps its attempts.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamaroute import (
    AsyncClient,
    ChatRequest,
    Client,
    LlamarouteError,
    MalformedResponseError,
    ProviderError,
    get_model,
)
from llamaroute.providers import ProviderCall, ProviderResult
from llamaroute.providers.bedrock import (
    MAX_TOKEN_COUNT,
    BedrockProvider,
    ConverseStreamState,
    map_error,
    parse_converse,
)
from llamaroute.testing import FakeBedrock, RawReply, Step

from .conftest import AWS_KEYS, provider_chat, provider_stream

TEXT = get_model("llama-3.2-3b").route("bedrock", region="us-east-1")
EVENT = FakeBedrock.event
START = EVENT("messageStart", {"role": "assistant"})
DELTA = EVENT("contentBlockDelta", {"delta": {"text": "hi"}, "contentBlockIndex": 0})
STOP = EVENT("messageStop", {"stopReason": "end_turn"})


def call() -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", "Hello"), TEXT, timeout=5)


def answer(**fields: Any) -> dict[str, Any]:
    """A well-formed Converse answer, with ``fields`` replaced."""
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
        "metrics": {"latencyMs": 5},
    }
    body.update(fields)
    return body


def message(*blocks: Any) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": list(blocks)}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


@pytest.fixture(scope="module")
def provider(fake: FakeBedrock) -> Iterator[BedrockProvider]:
    made = BedrockProvider(region="us-east-1", endpoint_url=fake.url, **AWS_KEYS)
    yield made
    made.close()


# --- the wire functions -------------------------------------------------------------------------

BAD_ANSWERS = {
    "not an object": [1, 2],
    "output not an object": answer(output=5),
    "message not an object": answer(output={"message": "hi"}),
    "no content": answer(output={"message": {"role": "assistant"}}),
    "content not a list": answer(output={"message": {"content": "hi"}}),
    "block not an object": answer(output=message("hi")),
    "text not a string": answer(output=message({"text": 5})),
    "text a lone surrogate": answer(output=message({"text": "\ud800"})),
    "usage not an object": answer(usage=[3, 1]),
    "negative inputTokens": answer(usage={"inputTokens": -1, "outputTokens": 1}),
    "NaN outputTokens": answer(usage={"inputTokens": 1, "outputTokens": math.nan}),
    "infinite inputTokens": answer(usage={"inputTokens": math.inf}),
    "huge inputTokens": answer(usage={"inputTokens": 10**30}),
    "fractional outputTokens": answer(usage={"outputTokens": 1.5}),
    "boolean outputTokens": answer(usage={"outputTokens": True}),
    "string inputTokens": answer(usage={"inputTokens": "12"}),
    "stopReason not a string": answer(stopReason=5),
}  # fmt: skip


@pytest.mark.parametrize("body", list(BAD_ANSWERS))
def test_a_malformed_answer_is_a_malformed_response_error(body: str) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_converse(BAD_ANSWERS[body], model_id="m")
    assert caught.value.provider == "bedrock"


def test_lenient_where_nothing_is_lost() -> None:
    # Missing usage reads as unknown, integral floats as counts, a bad latency is left out,
    # other block kinds are passed over; echoes that could carry a secret stay out of details.
    result = parse_converse(
        answer(usage={"inputTokens": 3.0}, metrics={"latencyMs": "soon"},
               output=message({"toolUse": {}}, {"text": "ok"}), stopReason="Secret/Value+=",
               ResponseMetadata={"RequestId": "AKIACANARY0123456789"}),
        model_id="m",
    )  # fmt: skip
    assert (result.text, result.usage.input_tokens, result.usage.output_tokens) == ("ok", 3, 0)
    assert result.details == {"stop_reason": "other"}
    assert result.finish_reason == "other"
    assert parse_converse(answer(usage=None), model_id="m").usage.input_tokens == 0
    assert "usage_missing" in parse_converse({"output": message()}, model_id="m").details
    top = parse_converse(answer(usage={"inputTokens": MAX_TOKEN_COUNT}), model_id="m")
    assert top.usage.input_tokens == MAX_TOKEN_COUNT


BAD_EVENTS = [
    [1, 2],
    {"contentBlockDelta": 5},
    {"contentBlockDelta": {"delta": [1]}},
    {"contentBlockDelta": {"delta": {"text": 5}}},
    {"contentBlockDelta": {"delta": {"text": "\udfff"}}},
    {"messageStop": {"stopReason": ["end_turn"]}},
    {"metadata": {"usage": {"inputTokens": -4}}},
    {"metadata": {"usage": {"outputTokens": math.nan}}},
    {"metadata": "usage"},
]


@pytest.mark.parametrize("event", BAD_EVENTS, ids=repr)
def test_a_malformed_stream_event_is_a_malformed_response_error(event: Any) -> None:
    with pytest.raises(MalformedResponseError):
        ConverseStreamState("m").feed(event)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
#: Values in the places the parser reads, so that the fuzz reaches past the first check.
COUNT = st.none() | st.integers() | st.floats() | st.booleans() | st.text(max_size=5)
BLOCK = JSON | st.fixed_dictionaries({"text": JSON}) | st.fixed_dictionaries({"text": st.text()})
SHAPED_ANSWER = st.fixed_dictionaries(
    {"output": JSON | st.fixed_dictionaries({"message": JSON | st.fixed_dictionaries(
        {"content": JSON | st.lists(BLOCK, max_size=3)})})},
    optional={"usage": JSON | st.fixed_dictionaries({"inputTokens": COUNT, "outputTokens": COUNT}),
              "stopReason": JSON, "metrics": JSON, "ResponseMetadata": JSON},
)  # fmt: skip
SHAPED_EVENT = st.one_of(
    JSON,
    st.fixed_dictionaries({"contentBlockDelta": JSON | st.fixed_dictionaries(
        {"delta": JSON | st.fixed_dictionaries({"text": JSON})})}),
    st.fixed_dictionaries({"messageStop": JSON | st.fixed_dictionaries({"stopReason": JSON})}),
    st.fixed_dictionaries({"metadata": JSON | st.fixed_dictionaries(
        {"usage": JSON | st.fixed_dictionaries({"inputTokens": COUNT, "outputTokens": COUNT}),
         "metrics": JSON})}),
    st.dictionaries(st.text(max_size=8).map(lambda s: s + "Exception"), JSON, max_size=1),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, SHAPED_ANSWER))
def test_fuzz_parse_converse_only_succeeds_or_raises_malformed(body: Any) -> None:
    try:
        result = parse_converse(body, model_id="m")
    except MalformedResponseError:
        return
    assert isinstance(result, ProviderResult)
    assert isinstance(result.text, str)
    assert 0 <= result.usage.input_tokens <= MAX_TOKEN_COUNT
    json.dumps(result.details)  # plain data only


@settings(max_examples=200, deadline=None)
@given(st.lists(SHAPED_EVENT, max_size=6))
def test_fuzz_stream_events_only_give_text_or_llamaroute_errors(events: list[Any]) -> None:
    state = ConverseStreamState("m")
    try:
        for event in events:
            assert isinstance(state.feed(event), str)
        result = state.result()
    except ProviderError:  # malformed, or an exception event mapped by its code
        return
    assert result.text == "".join(state.text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.none() | st.integers(0, 999), st.text(max_size=40), JSON)
def test_fuzz_map_error_always_gives_a_provider_error(
    code: str, status: int | None, text: str, extra: Any
) -> None:
    error = map_error(code, status, text, model_id="m",
                      extra=extra if isinstance(extra, dict) else None)  # fmt: skip
    assert isinstance(error, ProviderError)


# --- through the provider, boto3 and a hostile server -------------------------------------------

BAD_BODIES = {
    "invalid UTF-8": b"\xab\xff",
    "a JSON array": b"[1,2]",
    "empty": b"",
    "null": b"null",
    "a number": b"5",
    "a string": b'"text"',
    "an HTML page": b"<html><body>502 Bad Gateway</body></html>",
    "truncated JSON": b'{"output": {"message": {"content": [{"te',
    "nested 100,000 deep": b"[" * 100_000,
    "output a number": json.dumps(answer(output=5)).encode(),
    "text a number": json.dumps(answer(output=message({"text": 5}))).encode(),
    "negative inputTokens": json.dumps(answer(usage={"inputTokens": -1})).encode(),
    "NaN inputTokens": b'{"output": {"message": {"content": []}}, "usage": {"inputTokens": NaN}}',
    "huge outputTokens": json.dumps(answer(usage={"outputTokens": 10**40})).encode(),
    "a lone surrogate": b'{"output": {"message": {"content": [{"text": "\\ud800"}]}}}',
}  # fmt: skip


@pytest.mark.parametrize("body", list(BAD_BODIES))
async def test_a_malformed_converse_body_is_typed(
    provider: BedrockProvider, fake: FakeBedrock, sync_or_async: str, body: str
) -> None:
    fake.script(RawReply(body=BAD_BODIES[body], length=len(BAD_BODIES[body])))
    with pytest.raises(MalformedResponseError) as caught:
        await provider_chat(provider, sync_or_async, call())
    assert caught.value.provider == "bedrock"


def frame(payload: bytes, event_type: str = "contentBlockDelta", **headers: str) -> bytes:
    return FakeBedrock.frame({":event-type": event_type, ":content-type": "application/json",
                              ":message-type": "event", **headers}, payload)  # fmt: skip


def unknown_header_type() -> bytes:
    # A header whose value type byte (42) does not exist in the event-stream encoding.
    headers = b"\x0b:event-type" + b"\x2a" + b"\x00\x01x"
    total = 12 + len(headers) + 2 + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + b"{}"
    return body + struct.pack(">I", zlib.crc32(body))


BAD_STREAMS = {
    "invalid UTF-8 payload": frame(b"\xab\xff"),
    "array payload": frame(b"[1,2]"),
    "delta text a number": frame(b'{"delta": {"text": 5}}'),
    "negative usage": EVENT("metadata", {"usage": {"inputTokens": -1}}),
    "stopReason a list": EVENT("messageStop", {"stopReason": ["x"]}),
    "exception payload not JSON": FakeBedrock.frame(
        {":exception-type": "throttlingException", ":message-type": "exception"}, b"\xff"),
    "unknown header type": unknown_header_type(),
    "frame shorter than its prelude": struct.pack(">II", 4, 0) + b"\0" * 12,
    "headers longer than the frame": struct.pack(">II", 20, 400) + b"\0" * 12,
    "bad prelude checksum": struct.pack(">III", 32, 0, 0) + b"\0" * 20,
    "random bytes": bytes(range(256)) * 4,
}  # fmt: skip


@pytest.mark.parametrize("body", list(BAD_STREAMS))
async def test_a_malformed_event_stream_is_typed(
    provider: BedrockProvider, fake: FakeBedrock, sync_or_async: str, body: str
) -> None:
    fake.script(RawReply(body=START + DELTA + BAD_STREAMS[body] + STOP))
    with pytest.raises(ProviderError) as caught:
        await provider_stream(provider, sync_or_async, call())
    expected = ProviderError if body == "exception payload not JSON" else MalformedResponseError
    assert isinstance(caught.value, expected)


def test_a_malformed_answer_ends_the_call_with_its_attempts(fake: FakeBedrock) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=fake.url, **AWS_KEYS)
    fake.script(*[RawReply(body=b"\xab\xff", length=2)] * 3)
    with Client(providers=[provider], retries=2) as client, pytest.raises(LlamarouteError) as sync:
        client.chat("llama-3.2-3b", "Hello")
    fake.script(*[RawReply(body=b"[1,2]", length=5)] * 3)
    with (
        Client(providers=[provider], retries=2) as client,
        pytest.raises(LlamarouteError) as streamed,
        client.stream("llama-3.2-3b", "Hello") as stream,
    ):
        list(stream)
    for caught in (sync, streamed):
        attempts = caught.value.attempts  # type: ignore[attr-defined]
        assert len(attempts) == 3  # malformed answers are retried, and every attempt is kept
        assert {a.error_type for a in attempts} == {"MalformedResponseError"}


async def test_a_malformed_answer_ends_an_async_call_with_its_attempts(fake: FakeBedrock) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=fake.url, **AWS_KEYS)
    fake.script(*[RawReply(body=b"\xab\xff", length=2)] * 2)
    async with AsyncClient(providers=[provider], retries=1) as client:
        with pytest.raises(LlamarouteError) as caught:
            await client.chat("llama-3.2-3b", "Hello")
    assert len(caught.value.attempts) == 2  # type: ignore[attr-defined]


BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    SHAPED_ANSWER.map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_fuzz_converse_bodies_through_the_provider(
    provider: BedrockProvider, fake: FakeBedrock, body: bytes
) -> None:
    fake.script(RawReply(body=body, length=len(body)))
    try:
        result = provider.chat(call())
    except LlamarouteError:
        return
    assert isinstance(result.text, str)


FRAMES = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda kind, payload: frame(json.dumps(payload).encode(), kind),
              st.sampled_from(["contentBlockDelta", "messageStop", "metadata", "messageStart",
                               "contentBlockStart", "somethingNew"]), JSON),
    st.builds(lambda kind, payload: frame(payload, kind),
              st.sampled_from(["contentBlockDelta", "metadata"]), st.binary(max_size=32)),
    SHAPED_EVENT.map(lambda event: frame(json.dumps(event).encode(), next(iter(event), "x"))
                     if isinstance(event, dict) else b""),
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(FRAMES, max_size=5))
def test_fuzz_event_streams_through_the_provider(
    provider: BedrockProvider, fake: FakeBedrock, frames: list[bytes]
) -> None:
    fake.script(RawReply(body=START + b"".join(frames) + STOP))
    try:
        items = list(provider.stream(call()))
    except LlamarouteError:
        return
    assert isinstance(items[-1], ProviderResult)
    assert "".join(i for i in items[:-1]) == items[-1].text


def test_a_good_answer_after_the_fuzz_still_works(
    provider: BedrockProvider, fake: FakeBedrock
) -> None:
    fake.script(Step.reply("still fine"), Step.reply("still fine"))
    assert provider.chat(call()).text == "still fine"
    assert list(provider.stream(call()))[-1].text == "still fine"
