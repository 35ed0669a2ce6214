"""A tool-using agent in one call: ``client.run`` runs your Python functions for the model,
round after round, and falls back across providers when one fails in the middle.

    OPENROUTER_API_KEY=sk-or-v1-... python examples/tools_agent.py   # OpenRouter, then Ollama

Without a key it runs against llamaroute's fake OpenRouter and Ollama on 127.0.0.1, scripted to
show a tool that raises (the error goes back to the model, not up your stack), two calls in one
answer, and OpenRouter failing from round 3 on, where Ollama carries on with the same
conversation. ``AsyncClient.run`` is the same with ``await``, and also takes async functions.
"""

from __future__ import annotations

import contextlib
import os

from llamaroute import Client, ToolLoopError
from llamaroute.providers import OllamaProvider, OpenRouterProvider, Provider
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

MODEL = "llama-3.2-3b"
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fake servers accept any key
STATIONS = {"oslo": 21, "bergen": 14}


def get_weather(city: str, unit: str = "c") -> dict[str, object]:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: "c" or "f"
    """
    celsius = STATIONS.get(city.lower())
    if celsius is None:
        raise LookupError(f"no weather station in {city}")
    degrees = celsius if unit == "c" else round(celsius * 9 / 5 + 32)
    return {"city": city, "degrees": degrees, "unit": unit, "sky": "sunny"}


def compare(a: float, b: float) -> str:
    """Say which of two temperatures is warmer and by how much."""
    return f"{'first' if a >= b else 'second'} is warmer by {abs(a - b):g} degrees"


def providers(stack: contextlib.ExitStack[None]) -> list[Provider]:
    if os.environ.get("OPENROUTER_API_KEY"):
        return [OpenRouterProvider(app_title="llamaroute example"), OllamaProvider()]
    print("no OPENROUTER_API_KEY: using the fake OpenRouter and Ollama, answers are scripted\n")
    openrouter = stack.enter_context(FakeOpenRouter(
        Step.tool_call("get_weather", {"city": "Trondheim"}, id="call_1"),  # the tool raises
        Step(tool_calls=({"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_2"},
                         {"name": "get_weather", "arguments": {"city": "Bergen"}, "id": "call_3"}),
             finish_reason="tool_calls"),
        Step.error(503), Step.error(503),  # OpenRouter is down from round 3: Ollama carries on
    ))  # fmt: skip
    ollama = stack.enter_context(FakeOllama(
        Step.tool_call("compare", {"a": 21, "b": 14}),
        Step.reply("Oslo is warmer: 21 C and sunny, against 14 C in Bergen. "
                   "Trondheim has no weather station."),
    ))  # fmt: skip
    return [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url),
            OllamaProvider(host=ollama.url)]  # fmt: skip


def main() -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(Client(providers=providers(stack), retries=0))
        try:
            result = client.run(
                MODEL, "Is it warmer in Oslo, Bergen or Trondheim right now?",
                tools=[get_weather, compare], max_rounds=6, max_tokens=300,
            )  # fmt: skip
        except ToolLoopError as error:
            print(f"gave up after {len(error.rounds)} rounds; cost so far in error.rounds")
            return
        for number, reply in enumerate(result.rounds, 1):
            calls = ", ".join(f"{c.name}({c.arguments}) [{c.id}]" for c in reply.tool_calls)
            print(f"round {number} -> {reply.provider}: {calls or 'final answer'}")
        for message in result.messages:
            if message.role == "tool":
                print(f"   result for {message.tool_call_id}: {message.content}")
        print(f"\n{result.text}")
        tried = ", ".join(f"{a.provider}{'' if a.error is None else ' (failed)'}"
                          for a in result.attempts)  # fmt: skip
        print(f"\n{len(result.rounds)} rounds, {len(result.attempts)} attempts ({tried})")
        print(f"tool errors sent back to the model: {result.tool_errors}; cost ${result.cost}")


if __name__ == "__main__":
    main()
