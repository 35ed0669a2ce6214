"""Streamed tool calls through the real clients against the fakes: OpenRouter's split
``delta.tool_calls`` fragments assembled, Ollama's ``message.tool_calls`` lines collected, and
the stream's final response carrying them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamaroute import AsyncClient, Client, LlamarouteError, Tool, ToolCall, ToolCallError
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.providers import ollama as ollama_wire
from llamaroute.providers import openrouter as openrouter_wire
from llamaroute.providers.openrouter import StreamParser
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY
from .test_tools import LOOKUP, get_weather

Pair = tuple[FakeOpenRouter, FakeOllama]


@pytest.fixture
def fakes() -> Iterator[Pair]:
    with FakeOpenRouter() as openrouter, FakeOllama() as ollama:
        yield openrouter, ollama


@pytest.fixture
def both(fakes: Pair) -> Iterator[Client]:
    openrouter, ollama = fakes
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
                 OllamaProvider(host=ollama.url)]  # fmt: skip
    with Client(providers=providers, retries=0) as client:
        yield client


TWO_CALLS = (
    {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}, "id": "call_a"},
    {"name": "lookup", "arguments": {"word": "fjord"}, "id": "call_b"},
)


@pytest.mark.parametrize("provider", ["openrouter", "ollama"])
def test_streamed_tool_calls_reach_the_final_response(
    both: Client, fakes: Pair, provider: str
) -> None:
    fake = fakes[0] if provider == "openrouter" else fakes[1]
    fake.script(Step(text="Let me check.", tool_calls=TWO_CALLS, finish_reason="tool_calls"))
    stream = both.stream("llama-3.2-3b", "weather?", tools=[get_weather, LOOKUP],
                         providers=[provider])  # fmt: skip
    text = "".join(chunk.text for chunk in stream)
    reply = stream.response
    assert text == reply.text == "Let me check."
    assert reply.finish_reason == "tool_calls"
    assert [(c.name, c.arguments, c.error) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Oslo", "unit": "c"}, None),
        ("lookup", {"word": "fjord"}, None),
    ]
    ids = [c.id for c in reply.tool_calls]
    assert ids == (["call_a", "call_b"] if provider == "openrouter" else ["call_0", "call_1"])


def test_openrouter_fragments_are_split_over_many_chunks(fakes: Pair, both: Client) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("get_weather", {"city": "Reykjavik", "unit": "f"}))
    stream = both.stream("llama-3.2-3b", "hi", tools=[get_weather], providers=["openrouter"])
    list(stream)
    [call] = stream.response.tool_calls
    assert call.arguments == {"city": "Reykjavik", "unit": "f"}
    assert chat_body(openrouter)["provider"] == {"require_parameters": True}


def chat_body(fake: FakeOpenRouter) -> dict[str, object]:
    body = [r.json for r in fake.requests if r.path.endswith("/chat/completions")][-1]
    assert isinstance(body, dict)
    return body


def test_parser_assembles_fragments_with_id_and_name_only_first() -> None:
    parser = StreamParser("m", tools=())
    arguments = json.dumps({"city": "Oslo", "unit": "c"})
    frames = [{"index": 0, "id": "call_x", "type": "function",
               "function": {"name": "get_weather", "arguments": ""}}]  # fmt: skip
    frames += [{"index": 0, "function": {"arguments": arguments[i : i + 3]}}
               for i in range(0, len(arguments), 3)]  # fmt: skip
    for frame in frames:
        parser.feed(json.dumps({"choices": [{"delta": {"tool_calls": [frame]}}]}))
    parser.feed(json.dumps({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}))
    parser.feed("[DONE]")
    result = parser.result()
    assert len(frames) > 5
    [call] = result.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_x", "get_weather",
                                                    {"city": "Oslo", "unit": "c"})  # fmt: skip
    assert result.finish_reason == "tool_calls"


def test_streamed_bad_json_ends_typed_with_the_raw_text(fakes: Pair, both: Client) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("get_weather", '{"city": "Oslo"'))
    stream = both.stream("llama-3.2-3b", "hi", tools=[get_weather], providers=["openrouter"])
    list(stream)
    [call] = stream.response.tool_calls
    assert call.error is not None
    assert call.error.kind == "invalid_json"
    assert call.raw_arguments == '{"city": "Oslo"'


@pytest.mark.parametrize(
    "fragment",
    [{"index": "zero"}, {"index": -1}, "not an object", {"index": 0, "function": "f"}],
)
def test_hostile_fragments_are_malformed(fragment: object) -> None:
    from llamaroute import MalformedResponseError

    parser = StreamParser("m")
    with pytest.raises(MalformedResponseError):
        parser.feed(json.dumps({"choices": [{"delta": {"tool_calls": [fragment]}}]}))


async def test_async_streams_collect_tool_calls(fakes: Pair) -> None:
    openrouter, ollama = fakes
    openrouter.script(Step(text="", tool_calls=TWO_CALLS, finish_reason="tool_calls"))
    ollama.script(Step(text="", tool_calls=TWO_CALLS, finish_reason="tool_calls"))
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
                 OllamaProvider(host=ollama.url)]  # fmt: skip
    async with AsyncClient(providers=providers) as client:
        for name in ("openrouter", "ollama"):
            stream = client.stream("llama-3.2-3b", "hi", tools=[get_weather, LOOKUP],
                                   providers=[name])  # fmt: skip
            async for _ in stream:
                pass
            assert [c.name for c in stream.response.tool_calls] == ["get_weather", "lookup"]


# --- hostile tool calls, fuzzed -----------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip
CALL = st.fixed_dictionaries(
    {},
    optional={"id": JSON, "type": JSON, "index": JSON,
              "function": st.fixed_dictionaries({}, optional={"name": JSON, "arguments": JSON})
              | JSON},
)  # fmt: skip
TOOLS = (Tool.from_dict(LOOKUP),)


def _checked(calls: tuple[object, ...]) -> None:
    for call in calls:
        assert isinstance(call, ToolCall)
        assert call.error is None or isinstance(call.error, ToolCallError)
        assert isinstance(call.arguments, dict)
        assert isinstance(call.raw_arguments, str)


@settings(max_examples=300, deadline=None)
@given(st.lists(CALL, max_size=4) | JSON)
def test_openrouter_tool_calls_never_raise_foreign_errors(value: object) -> None:
    body = {"choices": [{"finish_reason": "tool_calls",
                         "message": {"content": None, "tool_calls": value}}]}  # fmt: skip
    try:
        result = openrouter_wire.parse_response(body, model_id="m", tools=TOOLS)
    except LlamarouteError:
        return
    _checked(result.tool_calls)
    parser = openrouter_wire.StreamParser("m", tools=TOOLS)
    try:
        parser.feed(json.dumps({"choices": [{"delta": {"tool_calls": value}}]}))
        parser.feed(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
        parser.feed("[DONE]")
        _checked(parser.result().tool_calls)
    except LlamarouteError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(CALL, max_size=4) | JSON)
def test_ollama_tool_calls_never_raise_foreign_errors(value: object) -> None:
    body = {"model": "m", "done": True, "message": {"role": "assistant", "content": "",
                                                    "tool_calls": value}}  # fmt: skip
    try:
        result = ollama_wire.parse_response(body, model_id="m", tools=TOOLS)
    except LlamarouteError:
        return
    _checked(result.tool_calls)
