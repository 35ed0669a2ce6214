"""Local first: Llama 3.2 on your own Ollama, OpenRouter only when Ollama is not there.

    ollama pull llama3.2:3b && python examples/chat_local.py          # local, free
    OPENROUTER_API_KEY=sk-or-v1-... python examples/chat_local.py     # cloud if no local Ollama

The check costs one request to Ollama's tag list (short timeouts, cached for 10 s): with nothing
listening it answers "no" at once (tens of milliseconds, most of it building the client). With
neither a local Ollama nor an OpenRouter key, it runs against llamaroute's fake Ollama on
127.0.0.1, so you can see what comes back (the answers are then canned).
"""

from __future__ import annotations

import contextlib
import os
import time

from llamaroute import Client, StreamInterruptedError, get_model
from llamaroute.providers import OllamaProvider, OpenRouterProvider, Provider
from llamaroute.testing import FakeOllama, Step

MODEL = "llama-3.2-3b"


def pick_provider(stack: contextlib.ExitStack[None]) -> Provider:
    local = OllamaProvider()  # $OLLAMA_HOST, else http://127.0.0.1:11434
    stack.callback(local.close)
    route = get_model(MODEL).route("ollama")
    started = time.perf_counter()
    here = local.available(route)
    took = (time.perf_counter() - started) * 1000
    if here:
        print(f"Ollama at {local.host} has {route.model_id} (checked in {took:.1f} ms)\n")
        return local
    print(f"No Ollama with {route.model_id} at {local.host} (checked in {took:.1f} ms)")
    if os.environ.get("OPENROUTER_API_KEY"):
        print("-> using OpenRouter\n")
        return OpenRouterProvider(app_title="llamaroute example")
    print("-> no OPENROUTER_API_KEY either: using the fake Ollama, answers are canned\n")
    fake = stack.enter_context(FakeOllama(default=Step.reply("Llamas hum to each other.")))
    return OllamaProvider(host=fake.url)


def main() -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(Client(providers=[pick_provider(stack)]))

        reply = client.chat(MODEL, "Tell me one fact about llamas.", max_tokens=60)
        print(reply.text)
        print(f"-> {reply.provider} {reply.provider_model_id}, {reply.usage.input_tokens} tokens"
              f" in, {reply.usage.output_tokens} out, {reply.latency_s:.2f} s\n")  # fmt: skip

        try:
            with client.stream(MODEL, "Count from one to five.", max_tokens=40) as stream:
                for chunk in stream:
                    print(chunk.text, end="", flush=True)
            print(f"\n-> finished: {stream.response.finish_reason}")
        except StreamInterruptedError as error:
            print(f"\n-> the stream broke after {len(error.partial_text)} characters: {error}")


if __name__ == "__main__":
    main()
