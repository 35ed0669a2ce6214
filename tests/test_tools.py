"""Tool calling through the real clients against the fakes on 127.0.0.1: definitions, the
OpenRouter (httpx) and Ollama (the ollama package) wires, tool conversations, bad arguments,
capability gating and estimates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from llamaroute import (
    AsyncClient,
    BreakerPolicy,
    Client,
    InvalidRequestError,
    InvalidToolError,
    Message,
    Tool,
    ToolCall,
    ToolCallError,
    UnsupportedFeatureError,
)
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY, Fakes, three_providers


def get_weather(city: str, unit: str = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: "c" or "f"
    """
    return f"20 {unit} in {city}"


class Search(BaseModel):
    """Search the web."""

    query: str = Field(description="what to look for")
    limit: int = 5


LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        },
    },
}


def chat_requests(fake: FakeOpenRouter | FakeOllama) -> list[Any]:
    """The bodies of the chat requests the fake received (not model listings)."""
    return [r.json for r in fake.requests if r.path.endswith(("/chat/completions", "/api/chat"))]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenRouter, FakeOllama]]:
    with FakeOpenRouter() as openrouter, FakeOllama() as ollama:
        yield openrouter, ollama


@pytest.fixture
def both(fakes: tuple[FakeOpenRouter, FakeOllama]) -> Iterator[Client]:
    openrouter, ollama = fakes
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
                 OllamaProvider(host=ollama.url)]  # fmt: skip
    with Client(providers=providers, retries=0) as client:
        yield client


# --- definitions ------------------------------------------------------------------------------


def test_functions_models_and_dicts_become_tools(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    openrouter, _ = fakes
    reply = both.chat("llama-3.2-3b", "weather?", tools=[get_weather, Search, LOOKUP],
                      providers=["openrouter"])  # fmt: skip
    assert reply.tool_calls == ()
    body = chat_requests(openrouter)[0]
    tools = {tool["function"]["name"]: tool["function"] for tool in body["tools"]}
    assert list(tools) == ["get_weather", "Search", "lookup"]
    weather = tools["get_weather"]
    assert weather["description"] == "Get the current weather in a city."
    assert weather["parameters"]["required"] == ["city"]
    assert weather["parameters"]["properties"]["city"]["description"] == "the city's name"
    assert tools["Search"]["parameters"]["properties"]["query"]["type"] == "string"
    assert tools["Search"]["description"] == "Search the web."
    assert tools["lookup"] == LOOKUP["function"]
    # Only upstreams that honour the tools, merged with the budget's max_price when set.
    assert body["provider"]["require_parameters"] is True
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("tools", "match"),
    [
        ([{"type": "function", "function": {"description": "x"}}], "needs a name"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
         "JSON schema object"),
        ([get_weather, get_weather], "two tools are named get_weather"),
        ([get_weather, {"type": "function", "function": {"name": "get_weather"}}], "two tools"),
        ([{"type": "function", "function": {"name": "bad name!"}}], "letters, digits"),
        ([42], "not int"),
        ("get_weather", "must be a list"),
        ([lambda *args: None], r"\*args"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                             "extra": 1}}], "unknown fields"),
    ],
)  # fmt: skip
def test_bad_definitions_raise_before_any_request(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], tools: Any, match: str
) -> None:
    with pytest.raises(InvalidToolError, match=match):
        both.chat("llama-3.2-3b", "hi", tools=tools)
    with pytest.raises(InvalidToolError, match=match):
        both.stream("llama-3.2-3b", "hi", tools=tools)
    assert chat_requests(fakes[0]) == []
    assert chat_requests(fakes[1]) == []


def test_bad_tool_choice_raises_before_any_request(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    with pytest.raises(InvalidToolError, match="tool_choice"):
        both.chat("llama-3.2-3b", "hi", tools=[get_weather], tool_choice="nope")
    with pytest.raises(InvalidToolError, match="needs tools"):
        both.chat("llama-3.2-3b", "hi", tool_choice="auto")
    assert chat_requests(fakes[0]) == []


@pytest.mark.parametrize(
    ("choice", "wire"),
    [("auto", "auto"), ("none", "none"), ("required", "required"),
     ("get_weather", {"type": "function", "function": {"name": "get_weather"}})],
)  # fmt: skip
def test_tool_choice_on_openrouter(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], choice: str, wire: Any
) -> None:
    both.chat("llama-3.2-3b", "hi", tools=[get_weather], tool_choice=choice,
              providers=["openrouter"])  # fmt: skip
    assert chat_requests(fakes[0])[0]["tool_choice"] == wire


def test_tool_choice_none_leaves_the_tools_out_on_ollama(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    both.chat("llama-3.2-3b", "hi", tools=[get_weather], tool_choice="none",
              providers=["ollama"])  # fmt: skip
    both.chat("llama-3.2-3b", "hi", tools=[get_weather], providers=["ollama"])
    first, second = chat_requests(fakes[1])
    assert not first.get("tools")
    assert second["tools"][0]["function"]["name"] == "get_weather"


# --- tool calls in answers --------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openrouter", "ollama"])
def test_tool_calls_are_parsed(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], provider: str
) -> None:
    fake = fakes[0] if provider == "openrouter" else fakes[1]
    fake.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="call_abc"))
    reply = both.chat("llama-3.2-3b", "weather in Oslo?", tools=[get_weather],
                      providers=[provider])  # fmt: skip
    assert reply.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert isinstance(call, ToolCall)
    assert (call.name, call.arguments, call.error) == ("get_weather", {"city": "Oslo"}, None)
    assert json.loads(call.raw_arguments) == {"city": "Oslo"}
    # OpenRouter's id is kept; Ollama issues none: call_<n>, n counting the conversation's calls.
    assert call.id == ("call_abc" if provider == "openrouter" else "call_0")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [('{"city": "Os', "invalid_json"), ("[1, 2]", "not_an_object"), ('{"town": "Oslo"}',
     "schema_mismatch"), ('{"city": 5}', "schema_mismatch")],
)  # fmt: skip
def test_bad_arguments_are_marked_never_raised(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], raw: str, kind: str
) -> None:
    fakes[0].script(Step.tool_call("get_weather", raw))
    reply = both.chat("llama-3.2-3b", "weather?", tools=[get_weather], providers=["openrouter"])
    [call] = reply.tool_calls
    assert isinstance(call.error, ToolCallError)
    assert call.error.kind == kind
    assert call.raw_arguments == raw == call.error.raw_arguments
    assert not call.ok


def test_hostile_tool_calls_stay_typed(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    fakes[0].script(
        Step(text="", tool_calls=({"name": None, "arguments": "{}"},), finish_reason="tool_calls"),
        Step.tool_call("lookup", "x" * 2_000_000),
        Step.tool_call("unknown_tool", {"a": 1}),
        Step.tool_call("lookup", {"word": 7}),
    )
    kinds = []
    for _ in range(4):
        reply = both.chat("llama-3.2-3b", "hi", tools=[LOOKUP], providers=["openrouter"])
        kinds.append(reply.tool_calls[0].error.kind)  # type: ignore[union-attr]
    assert kinds == ["malformed", "too_large", "unknown_tool", "schema_mismatch"]


def test_a_tool_calls_field_of_the_wrong_type_is_malformed(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    body = {"id": "gen-1", "choices": [{"finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": "oops"}}]}  # fmt: skip
    fakes[0].script(Step(raw_body=json.dumps(body).encode(), content_type="application/json"))
    fakes[1].script(Step.tool_call("lookup", {"word": "hi"}))
    reply = both.chat("llama-3.2-3b", "hi", tools=[LOOKUP])  # falls back to Ollama
    assert reply.provider == "ollama"
    assert reply.attempts[0].error_type == "MalformedResponseError"


# --- conversations ----------------------------------------------------------------------------


def _conversation(as_dicts: bool) -> list[Any]:
    if as_dicts:
        return [
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_7", "type":
             "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_7", "content": {"temp": 20}},
        ]  # fmt: skip
    call = ToolCall("call_7", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}')
    return [Message.user("weather in Oslo?"), Message.assistant(tool_calls=[call]),
            Message.tool("call_7", {"temp": 20})]  # fmt: skip


@pytest.mark.parametrize("as_dicts", [False, True])
def test_conversation_on_openrouter(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], as_dicts: bool
) -> None:
    reply = both.chat("llama-3.2-3b", messages=_conversation(as_dicts), tools=[get_weather],
                      providers=["openrouter"])  # fmt: skip
    assert reply.text
    _, assistant, tool = chat_requests(fakes[0])[0]["messages"]
    function = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    calls = [{"id": "call_7", "type": "function", "function": function}]
    assert assistant == {"role": "assistant", "content": None, "tool_calls": calls}
    assert tool == {"role": "tool", "tool_call_id": "call_7", "content": '{"temp": 20}'}


@pytest.mark.parametrize("as_dicts", [False, True])
def test_conversation_on_ollama(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], as_dicts: bool
) -> None:
    both.chat("llama-3.2-3b", messages=_conversation(as_dicts), tools=[get_weather],
              providers=["ollama"])  # fmt: skip
    _, assistant, tool = chat_requests(fakes[1])[0]["messages"]
    assert assistant["tool_calls"] == [{"function": {"name": "get_weather",
                                                     "arguments": {"city": "Oslo"}}}]  # fmt: skip
    # Ollama names the tool, found through the assistant turn's call with that id.
    assert (tool["role"], tool["tool_name"], tool["content"]) == ("tool", "get_weather",
                                                                  '{"temp": 20}')  # fmt: skip


def test_fallback_mid_conversation_keeps_ids(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    openrouter, ollama = fakes
    # Turn 1 on OpenRouter: its id comes back. Turn 2: OpenRouter fails, Ollama answers the
    # same conversation, mapping the tool result through that id; its own call gets call_1.
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="or-9"), Step.error(503))
    ollama.script(Step.tool_call("get_weather", {"city": "Rome"}))
    first = both.chat("llama-3.2-3b", "weather in Oslo and Rome?", tools=[get_weather])
    assert first.provider == "openrouter"
    assert first.tool_calls[0].id == "or-9"
    history = [Message.user("weather in Oslo and Rome?"),
               Message.assistant(tool_calls=first.tool_calls),
               Message.tool("or-9", "20 c")]  # fmt: skip
    second = both.chat("llama-3.2-3b", messages=history, tools=[get_weather])
    assert second.provider == "ollama"
    assert [call.id for call in second.tool_calls] == ["call_1"]
    sent = chat_requests(ollama)[0]["messages"]
    assert sent[2] == {"role": "tool", "content": "20 c", "tool_name": "get_weather"}
    # The next turn back on OpenRouter carries both ids as they were issued.
    third = [*history, Message.assistant(tool_calls=second.tool_calls),
             Message.tool("call_1", "25 c")]  # fmt: skip
    both.chat("llama-3.2-3b", messages=third, tools=[get_weather], providers=["openrouter"])
    ids = [m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])]
           for m in chat_requests(openrouter)[-1]["messages"][1:]]  # fmt: skip
    assert ids == [["or-9"], "or-9", ["call_1"], "call_1"]


def test_a_tool_result_must_answer_an_earlier_call(both: Client) -> None:
    with pytest.raises(InvalidRequestError, match="no earlier assistant"):
        both.chat("llama-3.2-3b", messages=[Message.user("hi"), Message.tool("x", "r")])


# --- gating -----------------------------------------------------------------------------------


def test_tools_skip_routes_that_cannot_take_them(three_fakes: Fakes) -> None:
    _openrouter, bedrock, ollama = three_fakes
    providers = three_providers(three_fakes)
    order = [providers["bedrock"], providers["ollama"], providers["openrouter"]]
    with Client(providers=order, retries=0) as client:
        # Bedrock 3B takes no tools (catalog), Ollama 3B does: 0 requests to Bedrock.
        reply = client.chat("llama-3.2-3b", "hi", tools=[get_weather])
        assert reply.provider == "ollama"
        skipped = reply.details["skipped_routes"]
        assert skipped["bedrock:us.meta.llama3-2-3b-instruct-v1:0"].startswith("takes no tools")
        # Ollama's llama3.2-vision takes no tools: skipped, OpenRouter answers.
        vision = client.chat("llama-3.2-11b-vision", "hi", tools=[get_weather],
                             providers=["ollama", "openrouter"])  # fmt: skip
        assert vision.provider == "openrouter"
        # Bedrock 11B takes tools on Converse: the first route, it answers.
        served = client.chat("llama-3.2-11b-vision", "hi", tools=[get_weather])
        assert served.provider == "bedrock"
    assert bedrock.hits == 1
    [config] = bedrock.tool_configs
    assert config is not None
    assert config["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert [body["model"] for body in chat_requests(ollama)] == ["llama3.2:3b"]


def test_the_plan_says_why_routes_were_skipped(three_fakes: Fakes) -> None:
    providers = three_providers(three_fakes)
    with (
        Client(providers=list(providers.values())) as client,
        pytest.raises(UnsupportedFeatureError) as caught,
    ):
        client.stream("llama-3.2-11b-vision", "hi", tools=[get_weather],
                      providers=["bedrock", "ollama"])  # fmt: skip
    text = str(caught.value)
    assert "streams no tool calls" in text  # Bedrock
    assert "takes no tools" in text
    assert "does not support tools" in text
    assert "llama-3.2-11b-vision on openrouter" in text  # what would work
    assert three_fakes[1].hits == 0
    assert chat_requests(three_fakes[2]) == []


def test_a_tools_stream_on_bedrock_is_skipped_before_sending(three_fakes: Fakes) -> None:
    providers = three_providers(three_fakes)
    both = [providers["bedrock"], providers["openrouter"]]
    with Client(providers=both) as client:
        stream = client.stream("llama-3.2-90b-vision", "hi", tools=[get_weather])
        assert "".join(chunk.text for chunk in stream)
        reasons = stream.response.details["skipped_routes"]
    assert stream.response.provider == "openrouter"
    assert reasons == {"bedrock:us.meta.llama3-2-90b-instruct-v1:0":
                       "streams no tool calls (catalog: PROVIDERS.md, Facts 2026-12-07, Tools "
                       "(Bedrock Converse, Llama 3.2))"}  # fmt: skip
    with Client(providers=[providers["bedrock"]]) as client:
        with pytest.raises(UnsupportedFeatureError, match="streams no tool calls") as caught:
            client.stream("llama-3.2-90b-vision", "hi", tools=[get_weather])
        assert "call chat() instead" in str(caught.value)
        with pytest.raises(UnsupportedFeatureError, match="takes no tools"):
            client.chat("llama-3.2-1b", "hi", tools=[get_weather])
    assert three_fakes[1].hits == 0


def test_ollama_refusing_tools_is_typed_not_retried_and_falls_back(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    openrouter, ollama = fakes
    ollama.script(Step.error(400, message="registry.ollama.ai/library/llama3.2:3b does not "
                                          "support tools"))  # fmt: skip
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}))
    reply = both.chat("llama-3.2-3b", "hi", tools=[get_weather], providers=["ollama", "openrouter"],
                      retries=3)  # fmt: skip
    assert reply.provider == "openrouter"
    assert len(chat_requests(ollama)) == 1  # not retried
    assert reply.attempts[0].error_type == "ProviderUnsupportedFeatureError"


def test_ollama_refusal_alone_is_an_unsupported_feature_error(
    fakes: tuple[FakeOpenRouter, FakeOllama],
) -> None:
    _, ollama = fakes
    ollama.script(Step.error(400, message="llama3.2:3b does not support tools"))
    with (
        Client(providers=[OllamaProvider(host=ollama.url)]) as client,
        pytest.raises(Exception) as caught,
    ):
        client.chat("llama-3.2-3b", "hi", tools=[get_weather])
    errors = getattr(caught.value, "exceptions", (caught.value,))
    assert all(isinstance(error, UnsupportedFeatureError) for error in errors)


# --- estimates --------------------------------------------------------------------------------


def test_tool_schemas_count_as_input(both: Client) -> None:
    import llamaroute

    bare = llamaroute.estimate("llama-3.2-3b", "weather?", providers="openrouter")[0]
    tooled = llamaroute.estimate("llama-3.2-3b", "weather?", providers="openrouter",
                                 tools=[get_weather, Search, LOOKUP])[0]  # fmt: skip
    assert tooled.input_tokens > bare.input_tokens + 50
    mine = both.estimate("llama-3.2-3b", "weather?", tools=[get_weather])
    assert mine[0].input_tokens > both.estimate("llama-3.2-3b", "weather?")[0].input_tokens


# --- async ------------------------------------------------------------------------------------


async def test_async_tool_calls(fakes: tuple[FakeOpenRouter, FakeOllama]) -> None:
    openrouter, ollama = fakes
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}))
    ollama.script(Step.tool_call("get_weather", {"city": "Rome"}))
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
                 OllamaProvider(host=ollama.url)]  # fmt: skip
    async with AsyncClient(providers=providers) as client:
        first = await client.chat("llama-3.2-3b", "hi", tools=[get_weather])
        second = await client.chat("llama-3.2-3b", "hi", tools=[get_weather],
                                   providers=["ollama"])  # fmt: skip
    assert first.tool_calls[0].arguments == {"city": "Oslo"}
    assert second.tool_calls[0].arguments == {"city": "Rome"}


def test_tool_from_its_parts() -> None:
    tool = Tool("f", "does f", {"type": "object", "properties": {}})
    function = {"name": "f", "description": "does f",
                "parameters": {"type": "object", "properties": {}}}  # fmt: skip
    assert tool.openai() == {"type": "function", "function": function}
    with pytest.raises(InvalidToolError):
        Tool("", "x")


def test_require_parameters_is_merged_with_the_budget_ceiling(
    fakes: tuple[FakeOpenRouter, FakeOllama],
) -> None:
    from decimal import Decimal

    openrouter, _ = fakes
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url)
    with Client(providers=[provider], budget=Decimal(5)) as client:
        client.chat("llama-3.2-3b", "hi", tools=[get_weather])
        client.chat("llama-3.2-3b", "hi")
    with_tools, without = chat_requests(openrouter)
    assert with_tools["provider"]["require_parameters"] is True
    assert set(with_tools["provider"]["max_price"]) >= {"prompt", "completion"}
    assert without["provider"] == {"max_price": with_tools["provider"]["max_price"]}
    assert "tools" not in without


def test_a_refused_feature_does_not_open_the_breaker(
    fakes: tuple[FakeOpenRouter, FakeOllama],
) -> None:
    openrouter, ollama = fakes
    refusal = Step.error(400, message="llama3.2:3b does not support tools")
    ollama.script(*[refusal] * 4)
    providers = [OllamaProvider(host=ollama.url),
                 OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url)]  # fmt: skip
    with Client(providers=providers, retries=0, breaker=BreakerPolicy(failures=3)) as client:
        for _ in range(4):  # refused by Ollama each time, answered by OpenRouter
            assert client.chat("llama-3.2-3b", "hi", tools=[get_weather]).provider == "openrouter"
        # Ollama's route is healthy for what it can do: not skipped as if broken.
        assert client.chat("llama-3.2-3b", "hi").provider == "ollama"
    assert len(chat_requests(ollama)) == 5


def test_tool_schemas_raise_the_budget_reservation() -> None:
    from llamaroute import ChatRequest
    from llamaroute.money import request_token_ceiling

    bare = ChatRequest.create("llama-3.2-3b", "weather?")
    tooled = ChatRequest.create("llama-3.2-3b", "weather?", tools=[get_weather, Search])
    schemas = json.dumps([tool.openai() for tool in tooled.tools], indent=4)
    # Every byte of the schemas as the template writes them, and the template's instructions.
    assert request_token_ceiling(tooled) >= request_token_ceiling(bare) + len(schemas) + 60


def test_the_catalog_records_tool_support_with_sources() -> None:
    import llamaroute

    for spec in llamaroute.models():
        for route in spec.routes:
            assert route.tools_source, route.pinned
            assert route.tools or not route.tools_streaming, route.pinned
            if route.provider == "openrouter":  # safe with require_parameters; no upstream promised
                assert route.tools
                assert route.tools_streaming
                assert "tools" in route.unconfirmed
            if route.provider == "ollama":
                assert route.tools == route.tools_streaming == (not spec.vision)
            if route.provider == "bedrock":
                assert route.tools == spec.vision
                assert not route.tools_streaming


def test_no_openrouter_upstream_with_tools_falls_back(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    openrouter, ollama = fakes
    # With require_parameters, OpenRouter answers 404 when no upstream of the slug takes tools.
    message = "No endpoints found that support tool use."
    openrouter.script(Step.error(404, error_type="not_found", message=message))
    ollama.script(Step.tool_call("get_weather", {"city": "Oslo"}))
    reply = both.chat("llama-3.2-3b", "hi", tools=[get_weather])
    assert reply.provider == "ollama"
    assert reply.attempts[0].error_type == "ModelNotAvailableError"
    assert reply.tool_calls[0].arguments == {"city": "Oslo"}


def test_schemas_are_made_plain_and_fit_ollamas_tool_model(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama]
) -> None:
    class Address(BaseModel):
        street: str

    class Ship(BaseModel):
        """Ship a parcel."""

        title: str
        to: Address
        note: str | None = None

    both.chat("llama-3.2-3b", "hi", tools=[Ship], providers=["openrouter"])
    both.chat("llama-3.2-3b", "hi", tools=[Ship], providers=["ollama"])
    on_openrouter = chat_requests(fakes[0])[0]["tools"][0]["function"]["parameters"]
    on_ollama = chat_requests(fakes[1])[0]["tools"][0]["function"]["parameters"]
    # $refs inlined, generated titles gone, a parameter named "title" kept.
    assert "$defs" not in on_openrouter
    assert on_openrouter["properties"]["to"]["properties"] == {"street": {"type": "string"}}
    assert on_openrouter["properties"]["title"] == {"type": "string"}
    # Ollama's client keeps only type/items/description/enum per property.
    assert on_ollama["properties"]["note"] == {"type": ["string", "null"]}
    assert on_ollama["properties"]["to"]["type"] == "object"
    assert '"street"' in on_ollama["properties"]["to"]["description"]
    # The arguments are still checked against the whole model.
    fakes[1].script(Step.tool_call("Ship", {"title": "t", "to": {"road": "x"}}))
    reply = both.chat("llama-3.2-3b", "hi", tools=[Ship], providers=["ollama"])
    assert reply.tool_calls[0].error is not None
    assert reply.tool_calls[0].error.kind == "schema_mismatch"


def test_a_recursive_model_is_refused() -> None:
    class Node(BaseModel):
        child: Node | None = None

    Node.model_rebuild()
    with pytest.raises(InvalidToolError, match="recursive"):
        Tool.from_model(Node)


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_echoed_in_a_tool_call_id_is_scrubbed(
    both: Client, fakes: tuple[FakeOpenRouter, FakeOllama], stream: bool
) -> None:
    fakes[0].script(Step.tool_call("lookup", {"word": "x"}, id=f"call_{CANARY_KEY}"))
    if stream:
        streamed = both.stream("llama-3.2-3b", "hi", tools=[LOOKUP], providers=["openrouter"])
        list(streamed)
        reply = streamed.response
    else:
        reply = both.chat("llama-3.2-3b", "hi", tools=[LOOKUP], providers=["openrouter"])
    assert CANARY_KEY not in repr(reply)
    assert reply.tool_calls[0].arguments == {"word": "x"}


def test_client_estimates_leave_out_routes_that_cannot_take_the_tools(three_fakes: Fakes) -> None:
    providers = three_providers(three_fakes)
    with Client(providers=list(providers.values())) as client:
        plain = client.estimate("llama-3.2-11b-vision", "hi")
        tooled = client.estimate("llama-3.2-11b-vision", "hi", tools=[get_weather])
    assert {e.provider for e in plain} == {"openrouter", "bedrock", "ollama"}
    assert {e.provider for e in tooled} == {"openrouter", "bedrock"}
    reasons = {skip.provider: skip.reason for skip in tooled.skipped}
    assert "bedrock" not in reasons
    assert reasons["ollama"].startswith("takes no tools")


def test_a_function_or_model_is_described_once_and_an_unhashable_one_each_time() -> None:
    from llamaroute import ChatRequest

    def tools_of(*items: object) -> tuple[Any, ...]:
        return ChatRequest.create("llama-3.2-3b", "weather?", tools=list(items)).tools

    first, second = tools_of(get_weather, Search), tools_of(get_weather, Search)
    assert first[0] is second[0]  # the same Tool: its schema was built once
    assert first[1] is second[1]

    class Directory:  # unhashable, so its bound methods are too: described each time
        __hash__ = None  # type: ignore[assignment]

        def lookup(self, city: str) -> str:
            """Look a city up."""
            return city

    one, two = tools_of(Directory().lookup)[0], tools_of(Directory().lookup)[0]
    assert one == two
    assert one is not two
    assert one.parameters["properties"]["city"]["type"] == "string"
