"""Tools and structured output on Bedrock, through real boto3 (signing, JSON and Document
parsing) against FakeBedrock on 127.0.0.1: the toolConfig sent, toolUse blocks read into
ToolCalls, a whole tool conversation on the wire, a fallback mid-conversation from OpenRouter
with the ids kept, the stream gate, Bedrock's refusal of tool use, and response_format by tool
use on 90B."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from llamaroute import (
    AsyncClient,
    Client,
    Message,
    ProviderUnsupportedFeatureError,
    UnsupportedFeatureError,
)
from llamaroute.testing import FakeBedrock, Step

from .conftest import AWS_KEYS, Fakes, three_providers

VISION = "llama-3.2-90b-vision"
PROFILE = "us.meta.llama3-2-90b-instruct-v1:0"


def get_weather(city: str, unit: str = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: "c" or "f"
    """
    return f"20 {unit} in {city}"


class Invoice(BaseModel):
    vendor: str
    total: float
    items: list[str]


GOOD = {"vendor": "ACME", "total": 12.5, "items": ["bolts", "nuts"]}


def converse_bodies(fake: FakeBedrock) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path.endswith(("/converse", "/converse-stream"))]


@pytest.fixture
def bedrock_client(three_fakes: Fakes) -> Iterator[Client]:
    providers = three_providers(three_fakes)
    with Client(providers=[providers["bedrock"]], retries=0) as client:
        yield client


def test_tool_config_is_sent_in_converse_shape(bedrock_client: Client, three_fakes: Fakes) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step.reply("No tool needed."))
    reply = bedrock_client.chat(VISION, "hi", tools=[get_weather], tool_choice="auto")
    assert reply.text == "No tool needed."
    assert reply.tool_calls == ()
    (config,) = bedrock.tool_configs
    assert config == {
        "tools": [{"toolSpec": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "inputSchema": {"json": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "the city's name"},
                    "unit": {"type": "string", "default": "c", "description": '"c" or "f"'},
                },
                "required": ["city"],
            }},
        }}],
        "toolChoice": {"auto": {}},
    }  # fmt: skip


def test_required_choice_is_auto_plus_an_instruction(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    # Llama takes toolChoice auto only: "required" and a named tool become an instruction.
    bedrock = three_fakes[1]
    bedrock.script(Step.tool_call("get_weather", {"city": "Oslo"}), Step.reply("ok"))
    bedrock_client.chat(VISION, "hi", tools=[get_weather], tool_choice="required")
    bedrock_client.chat(VISION, "hi", tools=[get_weather], tool_choice="get_weather")
    first, second = converse_bodies(bedrock)
    assert first["toolConfig"]["toolChoice"] == {"auto": {}}
    assert "calling one (or more) of the tools" in first["system"][0]["text"]
    assert "calling the tool get_weather" in second["system"][0]["text"]
    # tool_choice="none": no toolConfig (Converse has no "none"), the tools are not offered.
    bedrock.script(Step.reply("plain"))
    bedrock_client.chat(VISION, "hi", tools=[get_weather], tool_choice="none")
    assert bedrock.tool_configs[-1] is None


def test_tool_call_is_parsed_with_the_shared_helper(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step(tool_calls=(
        {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "tooluse_Ab1"},
        {"name": "get_weather", "arguments": {"city": "Rome", "unit": "f"}, "id": "tooluse_Cd2"},
    ), finish_reason="tool_calls", text="Let me check."))  # fmt: skip
    reply = bedrock_client.chat(VISION, "weather in Oslo and Rome?", tools=[get_weather])
    assert reply.finish_reason == "tool_calls"
    assert reply.text == "Let me check."
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("tooluse_Ab1", "get_weather", {"city": "Oslo"}),
        ("tooluse_Cd2", "get_weather", {"city": "Rome", "unit": "f"}),
    ]
    assert all(call.ok for call in reply.tool_calls)
    assert json.loads(reply.tool_calls[1].raw_arguments) == {"city": "Rome", "unit": "f"}


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        ('{"city": "Oslo"', "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ({"town": "x"}, "schema_mismatch"),
        ("x" * 1_000_001, "too_large"),
    ],
    ids=["bad-json", "not-object", "schema", "huge"],
)
def test_bad_tool_input_is_marked_with_the_raw_text(
    bedrock_client: Client, three_fakes: Fakes, arguments: Any, kind: str
) -> None:
    three_fakes[1].script(Step.tool_call("get_weather", arguments, id="tooluse_x"))
    reply = bedrock_client.chat(VISION, "hi", tools=[get_weather])  # never raises
    (call,) = reply.tool_calls
    assert call.error is not None
    assert call.error.kind == kind
    assert call.arguments == ({} if kind != "schema_mismatch" else arguments)
    if isinstance(arguments, str):
        assert call.raw_arguments == arguments[:1000] if kind == "too_large" else arguments
    else:
        assert json.loads(call.raw_arguments) == arguments


def test_a_whole_tool_conversation_on_the_wire(bedrock_client: Client, three_fakes: Fakes) -> None:
    bedrock = three_fakes[1]
    bedrock.script(
        Step(tool_calls=({"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "tu-1"},
                         {"name": "get_weather", "arguments": {"city": "Rome"}, "id": "tu-2"}),
             finish_reason="tool_calls"),
        Step.reply("Oslo 20 c, Rome 25 c."),
    )  # fmt: skip
    first = bedrock_client.chat(VISION, "weather in Oslo and Rome?", tools=[get_weather])
    history = [Message.user("weather in Oslo and Rome?"),
               Message.assistant(tool_calls=first.tool_calls),
               Message.tool("tu-1", {"temp": 20}), Message.tool("tu-2", "25 c"),
               Message.user("Answer briefly.")]  # fmt: skip
    final = bedrock_client.chat(VISION, messages=history, tools=[get_weather])
    assert final.text == "Oslo 20 c, Rome 25 c."
    assert final.finish_reason == "stop"
    sent = converse_bodies(bedrock)[1]
    # Alternating roles; both results in one user turn; the user's text after the results
    # inside the last one (Llama takes no text beside tool results in a turn).
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "tu-1", "name": "get_weather", "input": {"city": "Oslo"}}},
        {"toolUse": {"toolUseId": "tu-2", "name": "get_weather", "input": {"city": "Rome"}}},
    ]
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tu-1", "content": [{"json": {"temp": 20}}]}},
        {"toolResult": {"toolUseId": "tu-2",
                        "content": [{"text": "25 c"}, {"text": "Answer briefly."}]}},
    ]  # fmt: skip
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_tool_blocks_without_tools_still_get_a_tool_config(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    # Converse refuses toolUse/toolResult blocks with no toolConfig: the called tools are
    # declared (open schema) when the caller does not pass tools= again.
    bedrock = three_fakes[1]
    bedrock.script(Step.reply("done"))
    history = [Message.user("hi"),
               Message.assistant(tool_calls=[{"id": "x" * 100, "name": "get_weather",
                                              "arguments": {"city": "Oslo"}}]),
               Message.tool("x" * 100, "20 c")]  # fmt: skip
    assert bedrock_client.chat(VISION, messages=history).text == "done"
    (body,) = converse_bodies(bedrock)
    assert body["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
    ]
    # An id Converse would refuse (over 64 characters) is digested, the same on both sides.
    use = body["messages"][1]["content"][0]["toolUse"]["toolUseId"]
    result = body["messages"][2]["content"][0]["toolResult"]["toolUseId"]
    assert use == result
    assert len(use) <= 64


def test_fallback_mid_conversation_from_openrouter_keeps_ids(three_fakes: Fakes) -> None:
    openrouter, bedrock, _ = three_fakes
    providers = three_providers(three_fakes)
    # Turn 1 on OpenRouter (its id "or-9"); turn 2: OpenRouter fails with 503, Bedrock 90B
    # answers the same conversation with the tool result mapped through "or-9".
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="or-9"), Step.error(503))
    bedrock.script(Step.tool_call("get_weather", {"city": "Rome"}, id="tooluse_b1"))
    with Client(providers=[providers["openrouter"], providers["bedrock"]], retries=0) as client:
        first = client.chat(VISION, "weather in Oslo and Rome?", tools=[get_weather])
        assert (first.provider, first.tool_calls[0].id) == ("openrouter", "or-9")
        history = [Message.user("weather in Oslo and Rome?"),
                   Message.assistant(tool_calls=first.tool_calls),
                   Message.tool("or-9", "20 c")]  # fmt: skip
        second = client.chat(VISION, messages=history, tools=[get_weather])
        assert second.provider == "bedrock"
        assert second.attempts[0].outcome != "ok"
        assert [call.id for call in second.tool_calls] == ["tooluse_b1"]
        # Back on OpenRouter, both ids go as they were issued.
        third = [*history, Message.assistant(tool_calls=second.tool_calls),
                 Message.tool("tooluse_b1", "25 c")]  # fmt: skip
        openrouter.script(Step.reply("Oslo 20, Rome 25."))
        assert client.chat(VISION, messages=third, tools=[get_weather]).provider == "openrouter"
    sent = converse_bodies(bedrock)[0]["messages"]
    assert sent[1]["content"][0]["toolUse"]["toolUseId"] == "or-9"
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == "or-9"
    last = [r.json for r in openrouter.requests if r.path.endswith("/chat/completions")][-1]
    ids = [m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])]
           for m in last["messages"][1:]]  # fmt: skip
    assert ids == [["or-9"], "or-9", ["tooluse_b1"], "tooluse_b1"]


def test_ollama_synthesised_ids_work_on_bedrock(bedrock_client: Client, three_fakes: Fakes) -> None:
    bedrock = three_fakes[1]
    # A toolUse with an id that is not a string still becomes a call, with call_<n> counting
    # on from the conversation's calls (here one: call_1).
    bedrock.script(Step(tool_calls=({"name": "get_weather", "arguments": {"city": "Rome"},
                                     "id": 7},), finish_reason="tool_calls"))  # fmt: skip
    history = [Message.user("hi"),
               Message.assistant(tool_calls=[{"id": "call_0", "name": "get_weather",
                                              "arguments": '{"city": "Oslo"}'}]),
               Message.tool("call_0", "20 c")]  # fmt: skip
    reply = bedrock_client.chat(VISION, messages=history, tools=[get_weather])
    assert [call.id for call in reply.tool_calls] == ["call_1"]
    assert reply.tool_calls[0].arguments == {"city": "Rome"}
    sent = converse_bodies(bedrock)[0]["messages"]
    assert sent[1]["content"][0]["toolUse"]["toolUseId"] == "call_0"
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == "call_0"


def test_a_tools_stream_on_bedrock_is_skipped_before_sending(three_fakes: Fakes) -> None:
    openrouter, bedrock, _ = three_fakes
    providers = three_providers(three_fakes)
    with Client(providers=[providers["bedrock"], providers["openrouter"]]) as client:
        stream = client.stream(VISION, "hi", tools=[get_weather])
        assert "".join(chunk.text for chunk in stream)
    assert stream.response.provider == "openrouter"
    reason = stream.response.details["skipped_routes"][f"bedrock:{PROFILE}"]
    assert reason.startswith("streams no tool calls")
    assert bedrock.hits == 0
    assert openrouter.hits >= 1


@pytest.mark.parametrize(
    "message",
    ["This model doesn't support tool use.",
     "This model doesn't support the toolConfig.toolChoice.any field. Remove "
     "toolConfig.toolChoice.any and try again."],
    ids=["tool-use", "tool-choice"],
)  # fmt: skip
def test_bedrock_refusing_tool_use_is_typed_not_retried_and_falls_back(
    three_fakes: Fakes, message: str
) -> None:
    openrouter, bedrock, _ = three_fakes
    providers = three_providers(three_fakes)
    bedrock.script(Step.error(400, "ValidationException", message))
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}))
    with Client(providers=[providers["bedrock"], providers["openrouter"]], retries=3) as client:
        reply = client.chat(VISION, "hi", tools=[get_weather])
    assert reply.provider == "openrouter"
    assert bedrock.hits == 1  # not retried
    assert reply.attempts[0].error_type == "ProviderUnsupportedFeatureError"
    assert reply.tool_calls[0].arguments == {"city": "Oslo"}
    # Alone, the refusal is an UnsupportedFeatureError (a ProviderError too).
    bedrock.script(Step.error(400, "ValidationException", message))
    with (
        Client(providers=[providers["bedrock"]], retries=3) as alone,
        pytest.raises(Exception) as caught,
    ):
        alone.chat(VISION, "hi", tools=[get_weather])
    errors = getattr(caught.value, "exceptions", (caught.value,))
    assert all(isinstance(error, ProviderUnsupportedFeatureError) for error in errors)
    assert all(isinstance(error, UnsupportedFeatureError) for error in errors)
    assert bedrock.hits == 2


def test_other_validation_errors_stay_bad_requests(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    three_fakes[1].script(Step.error(400, "ValidationException", "Malformed input request"))
    with pytest.raises(Exception) as caught:
        bedrock_client.chat(VISION, "hi", tools=[get_weather])
    errors = getattr(caught.value, "exceptions", (caught.value,))
    assert [type(error).__name__ for error in errors] == ["BadRequestError"]


# --- structured output by tool use ---------------------------------------------------------


def test_structured_output_on_90b_by_tool_use(bedrock_client: Client, three_fakes: Fakes) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step.tool_call("Invoice", GOOD, id="tooluse_inv"))
    reply = bedrock_client.chat(VISION, "Read the invoice.", response_format=Invoice)
    assert reply.parsed == Invoice(**GOOD)
    assert json.loads(reply.text) == GOOD
    assert reply.tool_calls == ()  # the answer tool is the answer, not a call to run
    assert reply.finish_reason == "stop"
    (body,) = converse_bodies(bedrock)
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {
            "name": "Invoice",
            "description": "Give the answer: call this with the answer as its arguments.",
            "inputSchema": {"json": Invoice.model_json_schema()},
        }}],
        "toolChoice": {"auto": {}},  # Llama takes no forced choice: auto plus an instruction
    }  # fmt: skip
    system = body["system"][0]["text"]
    assert "calling the tool Invoice exactly once" in system
    assert "JSON Schema" in system


def test_structured_output_by_tool_use_is_repaired(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step.tool_call("Invoice", {"vendor": "ACME", "total": "twelve"}),
                   Step.tool_call("Invoice", GOOD))  # fmt: skip
    reply = bedrock_client.chat(VISION, "Read it.", response_format=Invoice)
    assert reply.parsed == Invoice(**GOOD)
    assert len(reply.attempts) == 2
    repair = converse_bodies(bedrock)[1]
    assert repair["toolConfig"]["tools"][0]["toolSpec"]["name"] == "Invoice"
    quoted = repair["messages"][1]
    assert quoted["role"] == "assistant"
    assert "twelve" in quoted["content"][0]["text"]
    assert "not valid JSON for the required schema" in repair["messages"][2]["content"][0]["text"]


def test_structured_output_answered_as_text_still_parses(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    # The tool is offered with auto: a model that writes the JSON as text is read as well.
    three_fakes[1].script(Step.structured(GOOD, fenced=True))
    reply = bedrock_client.chat(VISION, "Read it.", response_format=Invoice)
    assert reply.parsed == Invoice(**GOOD)


def test_structured_output_small_models_and_streams_use_instructions(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step.structured(GOOD), Step.structured(GOOD))
    small = bedrock_client.chat("llama-3.2-3b", "Read it.", response_format=Invoice)
    assert small.parsed == Invoice(**GOOD)
    with bedrock_client.stream(VISION, "Read it.", response_format=Invoice) as stream:
        assert json.loads("".join(chunk.text for chunk in stream)) == GOOD
    assert stream.response.parsed == Invoice(**GOOD)
    assert bedrock.tool_configs == [None, None]
    for body in converse_bodies(bedrock):
        assert "JSON Schema" in body["system"][0]["text"]


def test_structured_output_with_own_tools_goes_as_instructions(
    bedrock_client: Client, three_fakes: Fakes
) -> None:
    bedrock = three_fakes[1]
    bedrock.script(Step.structured(GOOD))
    reply = bedrock_client.chat(VISION, "Read it.", tools=[get_weather], response_format=Invoice)
    assert reply.parsed == Invoice(**GOOD)
    (config,) = bedrock.tool_configs
    assert config is not None
    assert [t["toolSpec"]["name"] for t in config["tools"]] == ["get_weather"]


async def test_async_tools_and_structured_output(three_fakes: Fakes) -> None:
    bedrock = three_fakes[1]
    providers = three_providers(three_fakes)
    bedrock.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="tooluse_a"),
                   Step.tool_call("Invoice", GOOD))  # fmt: skip
    async with AsyncClient(providers=[providers["bedrock"]], retries=0) as client:
        called = await client.chat(VISION, "hi", tools=[get_weather])
        shaped = await client.chat(VISION, "Read it.", response_format=Invoice)
    assert called.tool_calls[0].id == "tooluse_a"
    assert shaped.parsed == Invoice(**GOOD)


def test_fake_bedrock_refuses_what_bedrock_refuses(three_fakes: Fakes) -> None:
    import boto3

    bedrock = three_fakes[1]
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=bedrock.url, **AWS_KEYS
    )
    use = {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}
    result = {"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}
    cases = [
        [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [use]},
         {"role": "user", "content": [result]}],  # no toolConfig
        [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [use]},
         {"role": "user", "content": [result, {"text": "and"}]}],  # mixed turn
    ]  # fmt: skip
    config = [None, {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]}]
    for messages, tools in zip(cases, config, strict=True):
        extra = {"toolConfig": tools} if tools else {}
        with pytest.raises(client.exceptions.ValidationException):
            client.converse(modelId=PROFILE, messages=messages, **extra)
    client.close()
