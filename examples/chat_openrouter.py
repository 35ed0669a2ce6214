"""Chat and stream with Llama 3.2 on OpenRouter.

    OPENROUTER_API_KEY=sk-or-v1-... python examples/chat_openrouter.py

Without OPENROUTER_API_KEY it runs against llamaroute's fake OpenRouter on 127.0.0.1, so you
can see what comes back without an account (the answers are then canned).

llamaroute logs a warning when the cost OpenRouter reports differs from its price table (the
table is dated, OpenRouter's prices move). A warning written to stderr while an answer is
streamed to stdout would land in the middle of the text, so this script holds llamaroute's
warnings and prints them after the answer.
"""

from __future__ import annotations

import contextlib
import logging
import os

from llamaroute import Client, StreamInterruptedError
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step


class HeldWarnings(logging.Handler):
    """Keeps the ``llamaroute`` logger's warnings to print between answers, not inside one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(record.getMessage())

    def flush(self) -> None:
        for message in self.held:
            print(f"   (llamaroute: {message})")
        self.held.clear()


def main() -> None:
    warnings = HeldWarnings()
    logger = logging.getLogger("llamaroute")
    logger.addHandler(warnings)
    try:
        run(warnings)
    finally:
        logger.removeHandler(warnings)


def run(warnings: HeldWarnings) -> None:
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
              f" ({reply.cost.source if reply.cost else 'no price'})")  # fmt: skip
        warnings.flush()
        print()

        try:
            with client.stream("llama-3.2-1b", "Count from one to five.", max_tokens=40) as stream:
                for chunk in stream:
                    print(chunk.text, end="", flush=True)
            print(f"\n-> finished: {stream.response.finish_reason}, "
                  f"{stream.response.usage.output_tokens} tokens out")  # fmt: skip
        except StreamInterruptedError as error:
            print(f"\n-> the stream broke after {len(error.partial_text)} characters: {error}")
        warnings.flush()  # after the streamed text, never inside it


if __name__ == "__main__":
    main()
