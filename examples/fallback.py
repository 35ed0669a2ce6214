"""Retries, fallback, a circuit breaker and a deadline, with every attempt shown.

    python examples/fallback.py                                   # offline, scripted faults
    OPENROUTER_API_KEY=sk-or-v1-... OLLAMA_HOST=127.0.0.1:11434 python examples/fallback.py

Without credentials it runs against llamaroute's fake OpenRouter, Bedrock and Ollama on
127.0.0.1, scripted to fail the way real providers do (a 429 with Retry-After, a 503, a
connection reset, a provider that never answers), through the real provider code (httpx,
boto3, the ollama client). With OPENROUTER_API_KEY, AWS credentials or OLLAMA_HOST set, it
calls the providers the environment configures instead, and shows whatever really happens.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

from llamaroute import (
    AllProvidersFailedError,
    Attempt,
    BreakerPolicy,
    Client,
    LlamarouteError,
    RetryPolicy,
)
from llamaroute.providers import AWS_CREDENTIAL_ENV, Provider, discover
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

MODEL = "llama-3.2-3b"
QUESTION = "In one sentence: why do llamas hum?"


def show(attempts: Sequence[Attempt]) -> None:
    """One line per request sent: where, what came back, how long it took, what it cost."""
    for number, a in enumerate(attempts, 1):
        outcome = a.outcome if a.error_type is None else f"{a.outcome}: {a.error_type}"
        status = f"HTTP {a.status_code}" if a.status_code else "-"
        hint = f"retry-after {a.retry_after:g} s" if a.retry_after is not None else "-"
        cost = f"{a.cost.total} USD" if a.cost is not None else "no cost"
        print(f"  {number}. {a.provider:<10} {a.model_id:<34} {outcome:<31} {status:<9}"
              f" {hint:<18} {a.elapsed_s * 1000:6.0f} ms  {cost}")  # fmt: skip


def ask(client: Client, title: str, **options: Any) -> None:
    print(f"\n{title}")
    started = time.perf_counter()
    try:
        reply = client.chat(MODEL, QUESTION, max_tokens=60, **options)
    except AllProvidersFailedError as error:  # DeadlineExceededError too
        print(f"-> {type(error).__name__} after {time.perf_counter() - started:.2f} s: {error}")
        show(error.attempts)
        return
    except LlamarouteError as error:
        print(f"-> {type(error).__name__}: {error}")
        return
    print(f"-> {reply.provider} answered in {time.perf_counter() - started:.2f} s:"
          f" {reply.text.strip()!r}")  # fmt: skip
    show(reply.attempts)


def breakers(client: Client) -> None:
    print("\nclient.health():")
    for key, state in client.health().items():
        print(f"  {key:<52} {state['state']:<9} consecutive failures"
              f" {state['consecutive_failures']}, opened {state['times_opened']}x,"
              f" retry in {state['retry_in_s']} s")  # fmt: skip


Fakes = tuple[FakeOpenRouter, FakeBedrock, FakeOllama]


def offline(stack: contextlib.ExitStack[bool | None]) -> tuple[list[Provider], Fakes]:
    """The three fakes, scripted, and the real provider classes pointed at them."""
    from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider

    openrouter = stack.enter_context(FakeOpenRouter(
        # Rate limited with a hint, then a 503, then the connection reset: three attempts.
        Step.error(429, retry_after=0.3), Step.error(503), Step(reset_after=0),
        default=Step.reply("OpenRouter: llamas hum to stay in touch with the herd."),
    ))  # fmt: skip
    bedrock = stack.enter_context(FakeBedrock(
        Step.error(500),  # one failure, then the retry works
        default=Step.reply("Bedrock: humming is how a llama mother calls her cria."),
    ))  # fmt: skip
    ollama = stack.enter_context(
        FakeOllama(
            default=Step.reply("Ollama: a hum means a llama is calm, curious or a little worried.")
        )
    )
    providers: list[Provider] = [
        OpenRouterProvider(api_key="sk-or-v1-example", base_url=openrouter.base_url),
        BedrockProvider(region="us-east-1", endpoint_url=bedrock.url,
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example"),
        OllamaProvider(host=ollama.url),
    ]  # fmt: skip
    return providers, (openrouter, bedrock, ollama)


def main() -> None:
    real = bool(os.environ.get("OPENROUTER_API_KEY") or os.environ.get("OLLAMA_HOST")
                or any(os.environ.get(name) for name in AWS_CREDENTIAL_ENV))  # fmt: skip
    with contextlib.ExitStack() as stack:
        fakes: Fakes | None = None
        if real:
            providers = discover()
            print(f"(real providers from the environment: {[p.name for p in providers]})")
        else:
            print("(no credentials: the fake OpenRouter, Bedrock and Ollama, scripted to fail)")
            providers, fakes = offline(stack)
        client = stack.enter_context(Client(
            providers=providers,
            # Three attempts per route, short backoff; a Retry-After up to 2 s is honoured.
            retries=RetryPolicy(attempts=3, base_delay=0.1, max_delay=1.0, max_retry_after=2.0),
            # A route that fails 3 times in a row is skipped for 5 s, then probed once.
            breaker=BreakerPolicy(failures=3, cooldown=5.0),
        ))  # fmt: skip

        ask(client, "1. Retry, then fall back (offline: OpenRouter fails three times, Bedrock"
                    " once):")  # fmt: skip
        breakers(client)
        ask(client, "2. Once a breaker is open, its route is skipped at no cost:")

        # The offline run makes Bedrock hang, then Ollama too; a real run just asks.
        order = ["bedrock", "ollama"] if fakes else None
        if fakes:
            fakes[1].default = Step(delay=30)
        ask(client, "3. A deadline, timeout=1 for the whole call (offline: Bedrock hangs and"
                    " gets its share, Ollama answers):", timeout=1.0, providers=order)  # fmt: skip
        if fakes:
            fakes[2].default = Step(delay=30)
            ask(client, "4. Nothing answers within timeout=1:", timeout=1.0, providers=order)


if __name__ == "__main__":
    main()
