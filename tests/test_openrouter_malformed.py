"""Every malformed OpenRouter answer is a typed llamaroute error, and no call loses its attempts
(issue 15 item 3): explicit bodies and stream chunks, then a hypothesis fuzz of response bodies
through the pure parse functions and through the real client against the fake.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    ChatResponse,
    Client,
    LlamarouteError,
    MalformedResponseError,
    ProviderError,
    StreamInterruptedError,
    Usage,
)
from llamaroute.providers import OpenRouterProvider, ProviderResult
from llamaroute.providers.openrouter import SSEDecoder, StreamParser, parse_response
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY

DEEP = b"[" * 100_000 + b"]" * 100_000


def completion(content: Any = "hi", usage: Any = None, **choice: Any) -> bytes:
    choice = {"message": {"content": content}, "finish_reason": "stop", **choice}
    body = {"id": "gen-1", "model": "m", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body, allow_nan=True).encode()


MALFORMED_BODIES: dict[str, bytes] = {
    "content is a number": completion(5),
    "content is an object": completion({"text": "hi"}),
    "negative prompt_tokens": completion(usage={"prompt_tokens": -3, "completion_tokens": 2}),
    "huge completion_tokens": completion(usage={"prompt_tokens": 1, "completion_tokens": 1e30}),
    "tokens as text": completion(usage={"prompt_tokens": "12"}),
    "tokens as true": completion(usage={"prompt_tokens": True}),
    "usage as text": completion(usage="lots"),
    "finish_reason a number": completion(finish_reason=7),
    "no message": json.dumps({"choices": [{"finish_reason": "stop"}]}).encode(),
    "choices an object": b'{"choices": {"0": {}}}',
    "a list": b"[1, 2]",
    "a string": b'"x"',
    "null": b"null",
    "a number": b"5",
    "empty": b"",
    "not UTF-8": b"\xab\xff",
    "nested 100,000 deep": DEEP,
    "a 5,000-digit number": b'{"choices": ' + b"9" * 5000 + b"}",
    "an HTML page": b"<html><body>Welcome to nginx!</body></html>",
    "error as a number": b'{"error": 42}',
}

#: A reported cost that is not an amount is not fatal (issue 17): the answer is kept and priced
#: from the table, and the cost says why.
REJECTED_COSTS: dict[str, bytes] = {
    "NaN cost": completion(usage={"prompt_tokens": 1, "cost": math.nan}),
    "infinite cost": completion(usage={"prompt_tokens": 1, "cost": math.inf}),
    "1e400 cost": completion().replace(b'"id"', b'"usage":{"prompt_tokens":1,"cost":1e400},"id"'),
    "negative cost": completion(usage={"prompt_tokens": 1, "cost": -0.5}),
    "cost as words": completion(usage={"prompt_tokens": 1, "cost": "a lot"}),
    "cost as a list": completion(usage={"prompt_tokens": 1, "cost": [1]}),
}

MALFORMED_STREAMS: dict[str, bytes] = {
    "content is a number": b'data: {"choices":[{"delta":{"content":5}}]}\n\n',
    "a list": b"data: [1,2]\n\n",
    "null": b"data: null\n\n",
    "negative usage": b'data: {"choices":[],"usage":{"prompt_tokens":-1}}\n\n',
    "NaN cost": b'data: {"choices":[],"usage":{"cost":NaN}}\n\n',
    "choices a string": b'data: {"choices":"x"}\n\n',
    "delta a number": b'data: {"choices":[{"delta":5}]}\n\n',
    "finish_reason a list": b'data: {"choices":[{"delta":{},"finish_reason":[1]}]}\n\n',
    "not UTF-8": b"data: \xab\xff\n\n",
    "nested 100,000 deep": b"data: " + DEEP + b"\n\n",
    "not JSON": b"data: {oops\n\n",
}


def test_malformed_bodies_are_typed_and_keep_their_attempts() -> None:
    untyped: dict[str, str] = {}
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0) as client:
            for name, body in MALFORMED_BODIES.items():
                fake.script(Step(raw_body=body))
                try:
                    client.chat("llama-3.2-3b", "hi")
                    untyped[name] = "accepted"
                except AllProvidersFailedError as error:
                    (attempt,) = error.attempts
                    if attempt.error_type != "MalformedResponseError":
                        untyped[name] = f"{attempt.error_type}: {attempt.error}"
                except Exception as error:
                    untyped[name] = f"{type(error).__module__}.{type(error).__name__}"
    assert untyped == {}


@pytest.mark.parametrize("name", list(REJECTED_COSTS))
def test_a_reported_cost_that_is_not_an_amount_keeps_the_answer(name: str) -> None:
    with FakeOpenRouter(Step(raw_body=REJECTED_COSTS[name])) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0, budget=Decimal(1)) as client:
            reply = client.chat("llama-3.2-3b", "hi")
            assert reply.text == "hi"
            assert reply.cost is not None
            assert reply.cost.source == "price_table"
            assert reply.cost.total >= 0
            assert reply.cost.note is not None
            assert "rejected" in reply.cost.note
            assert "reported_cost_rejected" in reply.details
            # Nothing is held after the call: the reservation was settled with the table cost.
            assert client.spend.remaining() == Decimal(1) - client.spend.total


@pytest.mark.parametrize("text_first", [False, True])
def test_malformed_stream_chunks_are_typed_and_keep_their_attempts(text_first: bool) -> None:
    # Before any text: the call fails with the attempt listed. After some: the stream is
    # interrupted with that text and the attempt.
    head = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n' if text_first else b""
    untyped: dict[str, str] = {}
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0) as client:
            for name, chunk in MALFORMED_STREAMS.items():
                fake.script(Step(raw_body=head + chunk))
                try:
                    client.stream("llama-3.2-3b", "hi").read()
                    untyped[name] = "accepted"
                except (AllProvidersFailedError, StreamInterruptedError) as error:
                    errors = getattr(error, "exceptions", None) or [error.__cause__]
                    if not isinstance(errors[0], MalformedResponseError) or not error.attempts:
                        untyped[name] = repr(errors[0])
                except Exception as error:
                    untyped[name] = f"{type(error).__module__}.{type(error).__name__}"
    assert untyped == {}


# --- fuzz -------------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats() | st.text(max_size=12))  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is mostly well-formed and sometimes anything at all."""
    return st.one_of(valid, valid, JSON)


COUNT = st.integers(min_value=0, max_value=10**6)
USAGE = st.fixed_dictionaries({}, optional={
    "prompt_tokens": either(COUNT), "completion_tokens": either(COUNT),
    "cost": either(st.decimals(min_value=0, max_value=10, places=8).map(float)),
})  # fmt: skip
REASON = st.sampled_from(["stop", "length", "tool_calls", "error", "eos", None])
ERROR = st.fixed_dictionaries({}, optional={
    "code": either(st.sampled_from([400, 404, 429, 502, "model_not_found"])),
    "message": either(st.text(max_size=20)), "param": either(st.just("model")),
    "metadata": either(st.fixed_dictionaries({"error_type": either(st.text(max_size=10))})),
})  # fmt: skip
CHOICE = st.fixed_dictionaries({}, optional={
    "message": either(st.fixed_dictionaries({}, optional={"content": either(st.text())})),
    "delta": either(st.fixed_dictionaries({}, optional={"content": either(st.text())})),
    "finish_reason": either(REASON),
})  # fmt: skip
BODY = st.fixed_dictionaries({}, optional={
    "id": either(st.text(max_size=10)), "model": either(st.text(max_size=10)),
    "choices": either(st.lists(either(CHOICE), max_size=2)), "usage": either(USAGE),
    "error": st.one_of(ERROR, JSON),
})  # fmt: skip
#: Where one bad value does the most harm: a well-formed answer with one field replaced.
PATHS = [("choices", 0, "message", "content"), ("choices", 0, "delta", "content"),
         ("usage", "prompt_tokens"), ("usage", "completion_tokens"), ("usage", "cost"),
         ("choices", 0, "finish_reason"), ("choices", 0, "message"), ("choices", 0, "delta"),
         ("choices", 0), ("choices",), ("usage",), ("id",), ("model",), ("error",)]  # fmt: skip


def mutated(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "gen-1", "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "choices": [{"message": {"content": "hi"}, "delta": {"content": "hi"},
                     "finish_reason": "stop"}],
    }  # fmt: skip
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return body


MUTATED = st.builds(mutated, st.sampled_from(PATHS), JSON)
BODIES = st.one_of(MUTATED, BODY, JSON)
FUZZ = settings(max_examples=200, deadline=None)


def well_formed(result: ProviderResult) -> None:
    """What a parse that succeeded must give: values the client can use as they are."""
    assert isinstance(result.text, str)
    assert result.finish_reason in (None, "stop", "length", "tool_calls", "content_filter", "other")
    assert result.cost is None or (result.cost.is_finite() and result.cost >= 0)
    ChatResponse(text=result.text, model="llama-3.2-3b", provider="openrouter",
                 provider_model_id="m", finish_reason=result.finish_reason,
                 usage=result.usage)  # fmt: skip


@FUZZ
@given(BODIES)
def test_fuzzed_bodies_parse_or_raise_a_provider_error(body: Any) -> None:
    try:
        result = parse_response(body, model_id="m")
    except ProviderError:
        return
    well_formed(result)


CHUNK = st.one_of(MUTATED, BODY, JSON).map(lambda chunk: json.dumps(chunk))
CHUNKS = st.lists(CHUNK | st.text(max_size=8) | st.just("[DONE]"), max_size=5)


@FUZZ
@given(CHUNKS)
def test_fuzzed_stream_chunks_parse_or_raise_a_provider_error(chunks: list[str]) -> None:
    parser = StreamParser("m")
    try:
        for data in chunks:
            assert isinstance(parser.feed(data), str)
        result = parser.result()
    except ProviderError:
        return
    well_formed(result)


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_fuzzed_stream_bytes_decode_or_raise_a_known_error(pieces: list[bytes]) -> None:
    decoder = SSEDecoder(max_line_bytes=64, max_event_bytes=128)
    parser = StreamParser("m")
    try:
        for piece in [*pieces, None]:
            events = decoder.end() if piece is None else decoder.feed_bytes(piece)
            for event in events:
                parser.feed(event.data)
    except (ProviderError, ValueError):  # SSEOverflow and UnicodeDecodeError: ValueErrors,
        return  # which the provider turns into MalformedResponseError (tested above)


STREAM_BODIES = st.lists(st.one_of(MUTATED, BODY, JSON), max_size=4).map(
    lambda chunks: b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
) | st.binary(max_size=80)


def test_fuzzed_answers_through_the_client_are_typed() -> None:
    """A sample of the same answers, sent by the fake to the real client, sync and async."""
    seen: list[str] = []
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0) as client:

            @settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
            @given(st.one_of(MUTATED.map(lambda body: json.dumps(body).encode()),
                             BODIES.map(lambda body: json.dumps(body).encode()),
                             st.binary(max_size=80)), STREAM_BODIES)  # fmt: skip
            def one(body: bytes, sse: bytes) -> None:
                fake.script(Step(raw_body=body), Step(raw_body=sse))
                for run in (lambda: client.chat("llama-3.2-3b", "hi"),
                            lambda: client.stream("llama-3.2-3b", "hi").read()):  # fmt: skip
                    try:
                        reply = run()
                    except LlamarouteError as error:
                        seen.append(type(error).__name__)
                        kept = getattr(error, "attempts", None)
                    else:
                        seen.append("ok")
                        kept = reply.attempts
                    assert kept, seen[-1]  # every ending keeps the call's attempts

            one()
    assert len(seen) >= 40


async def test_fuzz_sample_through_the_async_client() -> None:
    bodies = [*MALFORMED_BODIES.values()][:8]
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        async with AsyncClient([provider], retries=0) as client:
            for body in bodies:
                fake.script(Step(raw_body=body))
                with pytest.raises(AllProvidersFailedError) as caught:
                    await client.chat("llama-3.2-3b", "hi")
                assert isinstance(caught.value.exceptions[0], MalformedResponseError), body
                assert len(caught.value.attempts) == 1


_COUNTS = [{}, {"prompt_tokens": 7}, {"prompt_tokens": 12.0, "completion_tokens": 3},
           {"completion_tokens": None}]  # fmt: skip


@pytest.mark.parametrize("counts", _COUNTS)
def test_the_usage_the_wire_builds_is_the_one_validation_builds(counts: dict[str, Any]) -> None:
    # The counts are checked by the wire and then not validated again (_records.trusted):
    # the record must equal the validating constructor's, set fields and dumps included.
    body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": counts}  # fmt: skip
    built = parse_response(body, model_id="m").usage
    checked = Usage(
        input_tokens=int(counts.get("prompt_tokens") or 0),
        output_tokens=int(counts.get("completion_tokens") or 0),
    )
    assert built == checked
    assert built.model_fields_set == checked.model_fields_set
    assert built.model_dump_json(exclude_unset=True) == checked.model_dump_json(exclude_unset=True)
    assert list(built.__dict__) == list(checked.__dict__)
