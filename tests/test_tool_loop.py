"""``client.run``: the tool loop, through the real clients against the fakes on 127.0.0.1 (the
OpenRouter and Ollama wires, plain and streamed): rounds, tool results and errors on the wire,
async tools, the round limit, totals and fallback in the middle of the loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from llamaroute import (
    AsyncClient,
    ChatResponse,
    Client,
    Cost,
    InvalidRequestError,
    InvalidToolError,
    Message,
    RunResult,
    ToolExecutionError,
    ToolLoopError,
)
from llamaroute.providers import OllamaProvider, OpenRouterProvider, Provider
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY

MODEL = "llama-3.2-3b"
Pair = tuple[FakeOpenRouter, FakeOllama]
CALLS: list[dict[str, Any]] = []


def get_weather(city: str, unit: str = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: "c" or "f"
    """
    CALLS.append({"city": city, "unit": unit})
    return f"20 {unit} in {city}"


def forecast(city: str, days: int) -> dict[str, Any]:
    """A forecast for the next days."""
    return {"city": city, "days": days, "sky": ["sun"] * days}


def explode(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no station in {city}")


async def slow_weather(city: str) -> str:
    """Get the weather, asynchronously."""
    await asyncio.sleep(0)
    return f"async 18 c in {city}"


def chat_bodies(fake: FakeOpenRouter | FakeOllama) -> list[Any]:
    return [r.json for r in fake.requests if r.path.endswith(("/chat/completions", "/api/chat"))]


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


@pytest.fixture
def fakes() -> Iterator[Pair]:
    with FakeOpenRouter() as openrouter, FakeOllama() as ollama:
        yield openrouter, ollama


def providers(fakes: Pair) -> list[Provider]:
    openrouter, ollama = fakes
    return [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
            OllamaProvider(host=ollama.url)]  # fmt: skip


@pytest.fixture
def client(fakes: Pair) -> Iterator[Client]:
    with Client(providers=providers(fakes), retries=0) as client:
        yield client


def weather_script(fake: FakeOpenRouter | FakeOllama) -> None:
    fake.script(
        Step.tool_call("get_weather", {"city": "Oslo"}, id="call_w1"),
        Step.reply("It is 20 degrees in Oslo."),
    )


def assert_weather_wire(body: dict[str, Any]) -> None:
    assistant, tool = body["messages"][-2:]
    assert assistant["role"] == "assistant"
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_w1"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert tool == {"role": "tool", "tool_call_id": "call_w1", "content": "20 c in Oslo"} | (
        {"name": "get_weather"} if "name" in tool else {}
    )


# --- the loop ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_weather_loop_two_rounds(client: Client, fakes: Pair, stream: bool) -> None:
    openrouter, _ = fakes
    weather_script(openrouter)
    result = client.run(MODEL, "Weather in Oslo?", tools=[get_weather], stream=stream,
                        providers=["openrouter"])  # fmt: skip
    assert isinstance(result, RunResult)
    assert result.text == "It is 20 degrees in Oslo."
    assert result.response is result.rounds[-1]
    assert len(result.rounds) == 2
    assert result.tool_errors == 0
    assert CALLS == [{"city": "Oslo", "unit": "c"}]
    first, second = chat_bodies(openrouter)
    assert first.get("stream", False) is stream
    assert second.get("stream", False) is stream
    assert first["messages"] == [{"role": "user", "content": "Weather in Oslo?"}]
    assert_weather_wire(second)
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert result.messages[2].tool_call_id == "call_w1"


@pytest.mark.parametrize("stream", [False, True])
async def test_weather_loop_async(fakes: Pair, stream: bool) -> None:
    openrouter, _ = fakes
    weather_script(openrouter)
    async with AsyncClient(providers=providers(fakes), retries=0) as client:
        result = await client.run(MODEL, "Weather in Oslo?", tools=[get_weather],
                                  stream=stream, providers=["openrouter"])  # fmt: skip
    assert result.text == "It is 20 degrees in Oslo."
    assert len(result.rounds) == 2
    assert CALLS == [{"city": "Oslo", "unit": "c"}]
    assert_weather_wire(chat_bodies(openrouter)[1])


async def test_async_tools_are_awaited_and_sync_ones_run_in_a_thread(fakes: Pair) -> None:
    _, ollama = fakes
    threads: list[str] = []

    def where(city: str) -> str:
        """Which thread ran the tool."""
        threads.append(threading.current_thread().name)
        return city

    ollama.script(
        Step.tool_call("slow_weather", {"city": "Bergen"}),
        Step.tool_call("where", {"city": "Bergen"}),
        Step.reply("18 degrees."),
    )
    async with AsyncClient(providers=providers(fakes), retries=0) as client:
        result = await client.run(MODEL, "Weather?", tools=[slow_weather, where],
                                  providers=["ollama"])  # fmt: skip
    assert result.text == "18 degrees."
    assert len(result.rounds) == 3
    assert threads
    assert threads[0] != threading.main_thread().name
    second = chat_bodies(ollama)[1]
    assert second["messages"][-1]["content"] == "async 18 c in Bergen"
    assert second["messages"][-1]["role"] == "tool"


def test_results_that_are_not_text_go_as_json(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    # "3" for an int: the tool's pydantic model converts it before the call.
    openrouter.script(Step.tool_call("forecast", '{"city": "Oslo", "days": "3"}', id="c1"),
                      Step.reply("Sunny."))  # fmt: skip
    result = client.run(MODEL, "Forecast?", tools=[forecast], providers=["openrouter"])
    tool = chat_bodies(openrouter)[1]["messages"][-1]
    assert json.loads(tool["content"]) == {"city": "Oslo", "days": 3, "sky": ["sun"] * 3}
    assert result.tool_errors == 0


def test_tool_choice_applies_to_the_first_round_only(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    weather_script(openrouter)
    client.run(MODEL, "Weather?", tools=[get_weather], tool_choice="required",
               providers=["openrouter"])  # fmt: skip
    first, second = chat_bodies(openrouter)
    assert first["tool_choice"] == "required"
    assert "tool_choice" not in second


def test_system_and_earlier_messages_are_kept(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    weather_script(openrouter)
    history = [Message.user("Hi"), {"role": "assistant", "content": "Hello!"}]
    result = client.run(MODEL, "Weather?", messages=history, system="Be brief.",
                        tools=[get_weather], providers=["openrouter"])  # fmt: skip
    for body in chat_bodies(openrouter):
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["messages"][1:4] == [{"role": "user", "content": "Hi"},
                                         {"role": "assistant", "content": "Hello!"},
                                         {"role": "user", "content": "Weather?"}]  # fmt: skip
    assert len(result.messages) == 6  # the system prompt is an option, not a message


# --- errors -----------------------------------------------------------------------------------


def test_a_tool_exception_goes_back_as_an_error_result(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("explode", {"city": "Oslo"}, id="c1"),
                      Step.reply("Sorry, no data."))  # fmt: skip
    result = client.run(MODEL, "Weather?", tools=[explode], providers=["openrouter"])
    assert result.text == "Sorry, no data."
    assert result.tool_errors == 1
    tool = chat_bodies(openrouter)[1]["messages"][-1]
    assert tool["tool_call_id"] == "c1"
    assert json.loads(tool["content"]) == {"error": "ValueError: no station in Oslo"}


async def test_raise_tool_errors_raises_typed(fakes: Pair) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("explode", {"city": "Oslo"}, id="c1"), Step.reply("x"))
    async with AsyncClient(providers=providers(fakes), retries=0) as client:
        with pytest.raises(ToolExecutionError, match="explode") as caught:
            await client.run(MODEL, "Weather?", tools=[explode], raise_tool_errors=True,
                             providers=["openrouter"])  # fmt: skip
    error = caught.value
    assert (error.tool_name, error.tool_call_id) == ("explode", "c1")
    assert isinstance(error.__cause__, ValueError)
    assert len(error.rounds) == 1
    assert len(error.attempts) == 1
    assert len(chat_bodies(openrouter)) == 1  # nothing sent after the failure


def test_raise_tool_errors_sync(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("explode", {"city": "Oslo"}, id="c9"))
    with pytest.raises(ToolExecutionError) as caught:
        client.run(MODEL, "Weather?", tools=[explode], raise_tool_errors=True,
                   providers=["openrouter"])  # fmt: skip
    assert caught.value.tool_call_id == "c9"
    assert [m.role for m in caught.value.messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    "arguments", ['{"city": "Oslo", "unit": ', '["Oslo"]', '{"unit": "f"}'],
    ids=["invalid_json", "not_an_object", "schema_mismatch"],
)  # fmt: skip
def test_bad_arguments_go_back_without_calling(client: Client, fakes: Pair, arguments: str) -> None:
    openrouter, _ = fakes
    openrouter.script(
        Step.tool_call("get_weather", arguments, id="bad1"),
        Step.tool_call("get_weather", {"city": "Oslo"}, id="good1"),
        Step.reply("20 degrees."),
    )
    result = client.run(MODEL, "Weather?", tools=[get_weather], providers=["openrouter"])
    assert CALLS == [{"city": "Oslo", "unit": "c"}]  # the bad call was never made
    assert result.tool_errors == 1
    assert len(result.rounds) == 3
    second = chat_bodies(openrouter)[1]
    tool = second["messages"][-1]
    assert tool["tool_call_id"] == "bad1"
    error = json.loads(tool["content"])["error"]
    assert "call the tool again" in error
    assert result.rounds[0].tool_calls[0].error is not None


def test_an_unknown_tool_goes_back_as_an_error(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    openrouter.script(Step.tool_call("launch_rockets", {}, id="u1"), Step.reply("ok"))
    result = client.run(MODEL, "Go", tools=[get_weather], providers=["openrouter"])
    assert result.tool_errors == 1
    assert not CALLS
    assert "error" in json.loads(chat_bodies(openrouter)[1]["messages"][-1]["content"])


def test_max_rounds_raises_with_every_round(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    openrouter.script(*[Step.tool_call("get_weather", {"city": "Oslo"}, id=f"c{n}")
                        for n in range(5)])  # fmt: skip
    with pytest.raises(ToolLoopError, match="max_rounds=3") as caught:
        client.run(MODEL, "Weather?", tools=[get_weather], max_rounds=3,
                   providers=["openrouter"])  # fmt: skip
    error = caught.value
    assert len(error.rounds) == 3
    assert len(error.attempts) == 3
    assert len(chat_bodies(openrouter)) == 3
    assert len(CALLS) == 3
    assert error.messages[-1].role == "tool"
    assert error.messages[-1].tool_call_id == "c2"


class Schema(BaseModel):
    city: str


async def _async_tool(city: str) -> str:
    return city


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"tools": [_async_tool]}, InvalidToolError, "AsyncClient.run"),
        ({"tools": [Schema]}, InvalidToolError, "Python function"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, InvalidToolError,
         "Python function"),
        ({"tools": []}, InvalidToolError, "needs tools"),
        ({"tools": [get_weather], "max_rounds": 0}, InvalidToolError, "max_rounds"),
        ({"tools": [get_weather], "max_rounds": True}, InvalidToolError, "max_rounds"),
        ({"tools": [get_weather], "prompt": None}, InvalidRequestError, None),
        ({"tools": [get_weather], "response_format": Schema}, InvalidRequestError,
         "response_format"),
    ],
)  # fmt: skip
def test_bad_input_raises_before_any_request(
    client: Client, fakes: Pair, options: dict[str, Any], error: type[Exception], match: str | None
) -> None:
    openrouter, _ = fakes
    options = {"prompt": "hi", **options}
    with pytest.raises(error, match=match):
        client.run(MODEL, **options)
    assert chat_bodies(openrouter) == []


# --- totals and fallback ----------------------------------------------------------------------


def test_cost_is_summed_and_attempts_concatenated(client: Client, fakes: Pair) -> None:
    openrouter, _ = fakes
    weather_script(openrouter)
    result = client.run(MODEL, "Weather?", tools=[get_weather], providers=["openrouter"])
    costs = [r.cost.total for r in result.rounds if r.cost is not None]
    assert len(costs) == 2
    assert result.cost == sum(costs)
    assert result.cost > 0
    assert result.total_cost == sum(r.total_cost or 0 for r in result.rounds)
    assert result.attempts == result.rounds[0].attempts + result.rounds[1].attempts


def test_cost_is_none_when_a_round_is_unpriced() -> None:
    priced = ChatResponse(text="", model=MODEL, provider="p", provider_model_id="m",
                          cost=Cost(total=Decimal("0.1"), source="provider"),
                          total_cost=Decimal("0.1"))  # fmt: skip
    unpriced = ChatResponse(text="x", model=MODEL, provider="p", provider_model_id="m")
    result = RunResult(unpriced, (priced, unpriced), ())
    assert result.cost is None
    assert result.total_cost is None
    assert RunResult(priced, (priced, priced), ()).cost == Decimal("0.2")


def test_fallback_mid_loop_keeps_the_conversation(client: Client, fakes: Pair) -> None:
    openrouter, ollama = fakes
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="call_or_1"),
                      Step.error(503))  # fmt: skip
    ollama.script(Step.reply("It is 20 degrees in Oslo."))
    result = client.run(MODEL, "Weather in Oslo?", tools=[get_weather])
    assert result.text == "It is 20 degrees in Oslo."
    assert [r.provider for r in result.rounds] == ["openrouter", "ollama"]
    assert [a.provider for a in result.attempts] == ["openrouter", "openrouter", "ollama"]
    # The round that failed over sent the same conversation to both providers.
    failed = chat_bodies(openrouter)[1]["messages"]
    assert failed[-1]["tool_call_id"] == "call_or_1"
    assert failed[-1]["content"] == "20 c in Oslo"
    [body] = chat_bodies(ollama)
    assistant, tool = body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather",
                                                      "arguments": {"city": "Oslo"}}  # fmt: skip
    assert tool == {"role": "tool", "content": "20 c in Oslo", "tool_name": "get_weather"}
    ids = [m.tool_calls[0].id for m in result.messages if m.tool_calls]
    assert ids == ["call_or_1"] == [m.tool_call_id for m in result.messages if m.role == "tool"]


def test_ollama_ids_never_repeat_another_providers(client: Client, fakes: Pair) -> None:
    openrouter, ollama = fakes
    # OpenRouter's ids happen to have Ollama's synthesised form: Ollama's must not repeat them.
    openrouter.script(Step.tool_call("get_weather", {"city": "Oslo"}, id="call_7"),
                      Step.error(503))  # fmt: skip
    ollama.script(Step.tool_call("get_weather", {"city": "Bergen"}), Step.reply("Done."))
    result = client.run(MODEL, "Weather?", tools=[get_weather])
    ids = [call.id for reply in result.rounds for call in reply.tool_calls]
    assert ids == ["call_7", "call_8"]
    assert [m.tool_call_id for m in result.messages if m.role == "tool"] == ids
