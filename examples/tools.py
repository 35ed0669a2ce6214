"""Tool calling: the model asks for a function, you run it, the conversation goes on; with a
fallback from OpenRouter to Ollama in the middle of the loop.

    OPENROUTER_API_KEY=sk-or-v1-... python examples/tools.py   # OpenRouter, Ollama if it fails

Without a key it runs against llamaroute's fake OpenRouter and Ollama on 127.0.0.1, scripted to
show a bad tool call (the model's broken JSON, reported, not raised) and a fallback mid-loop.
"""

from __future__ import annotations

import contextlib
import os

from llamaroute import Client, Message
from llamaroute.providers import OllamaProvider, OpenRouterProvider, Provider
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

MODEL = "llama-3.2-3b"
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fake servers accept any key


def get_weather(city: str, unit: str = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: "c" or "f"
    """
    return f"21 degrees {unit.upper()} and sunny in {city}"


def providers(stack: contextlib.ExitStack[None]) -> list[Provider]:
    if os.environ.get("OPENROUTER_API_KEY"):
        return [OpenRouterProvider(app_title="llamaroute example"), OllamaProvider()]
    print("no OPENROUTER_API_KEY: using the fake OpenRouter and Ollama, answers are scripted\n")
    openrouter = stack.enter_context(FakeOpenRouter(
        Step.tool_call("get_weather", '{"city": "Oslo", "unit": '),  # broken JSON
        Step.tool_call("get_weather", {"city": "Oslo"}, id="call_or_1"),
        Step.error(503),  # OpenRouter fails mid-loop: Ollama carries on
    ))  # fmt: skip
    ollama = stack.enter_context(FakeOllama(Step.reply("It is 21 degrees C and sunny in Oslo.")))
    return [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url),
            OllamaProvider(host=ollama.url)]  # fmt: skip


def main() -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(Client(providers=providers(stack), retries=0))
        history = [Message.user("What is the weather in Oslo?")]
        for _ in range(4):
            reply = client.chat(MODEL, messages=history, tools=[get_weather])
            print(f"-> {reply.provider}: finish_reason {reply.finish_reason}")
            if not reply.tool_calls:
                print(reply.text)
                break
            history.append(Message.assistant(reply.text, tool_calls=reply.tool_calls))
            for call in reply.tool_calls:
                if call.error is not None:
                    kind, raw = call.error.kind, call.raw_arguments
                    print(f"   bad tool call {call.id}: {kind}, raw {raw!r}")
                    result = f"error: {call.error}; call the tool again with valid JSON"
                else:
                    print(f"   {call.name}({call.arguments}) [{call.id}]")
                    result = get_weather(**call.arguments)
                history.append(Message.tool(call.id, result))


if __name__ == "__main__":
    main()
