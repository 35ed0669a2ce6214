"""Chat and stream with Llama 3.2 on OpenRouter.

    OPENROUTER_API_KEY=sk-or-v1-... python examples/chat_openrouter.py

Without OPENROUTER_API_KEY it runs against llamaroute's fake OpenRouter on 127.0.0.1, so you
can see what comes back without an account (the answers are then canned).
"""

from __future__ import annotations

import contextlib
import os

from llamaroute import Client, StreamInterruptedError
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step


def main() -> None:
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENROUTER_API_KEY"):
            provider = OpenRouterProvider(app_title="llamaroute example")
        else:
            print("(no OPENROUTER_API_KEY: using the fake OpenRouter, answers are canned)\n")
            fake = stack.enter_context(
                FakeOpenRouter(default=Step.reply("Llamas hum to each other.", cost="0.0000021"))
            )
            provider = OpenRouterProvider(api_key="sk-or-v1-example", base_url=fake.base_url)
        client = stack.enter_context(Client(providers=[provider]))

        reply = client.chat("llama-3.2-3b", "Tell me one fact about llamas.", max_tokens=60)
        print(reply.text)
        print(f"-> {reply.provider} {reply.provider_model_id}, {reply.usage.total_tokens} tokens,"
              f" cost {reply.cost.total if reply.cost else 'unknown'} USD"
              f" ({reply.cost.source if reply.cost else 'no price'})\n")  # fmt: skip

        try:
            with client.stream("llama-3.2-1b", "Count from one to five.", max_tokens=40) as stream:
                for chunk in stream:
                    print(chunk.text, end="", flush=True)
            print(f"\n-> finished: {stream.response.finish_reason}, "
                  f"{stream.response.usage.output_tokens} tokens out")  # fmt: skip
        except StreamInterruptedError as error:
            print(f"\n-> the stream broke after {len(error.partial_text)} characters: {error}")


if __name__ == "__main__":
    main()
