"""Budgets and ``max_cost`` are caps against an adversarial provider (issue 17, "judged by"):
a fake OpenRouter whose prices are 10x the table, abandoned streams, emoji prompts, and a
provider that bills every prompt byte as a token. Each test states the figures it measured."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from llamaroute import (
    AllProvidersFailedError,
    BudgetExceededError,
    Catalog,
    Client,
    ModelNotAvailableError,
    RetryPolicy,
)
from llamaroute.providers import BedrockProvider, OpenRouterProvider
from llamaroute.testing import FakeBedrock, FakeOpenRouter, Step

from .conftest import AWS_KEYS, CANARY_KEY

NO_SLEEP = RetryPolicy(sleep=lambda seconds: None)
MODEL = "llama-3.2-3b"
FAMILY = "👨‍👩‍👧‍👦"  # 25 UTF-8 bytes, 15 Llama 3 tokens
PROMPTS = ["hi", FAMILY * 40, "🦙" * 300, "plain words " * 30, "日本語のテキスト" * 20]


def table_price(provider: str) -> tuple[Decimal, Decimal]:
    catalog = Catalog.builtin()
    route = next(r for r in catalog.resolve(MODEL).routes if r.provider == provider)
    price = catalog.price(route)
    assert price is not None
    return price.input_per_mtok, price.output_per_mtok


def _openrouter(fake: FakeOpenRouter) -> OpenRouterProvider:
    return OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)


def _bedrock(fake: FakeBedrock) -> BedrockProvider:
    return BedrockProvider(region="us-east-1", endpoint_url=fake.url, **AWS_KEYS)


def _abandon(client: Client, prompt: str, **options: Any) -> None:
    with client.stream(MODEL, prompt, **options) as stream:
        for index, _ in enumerate(stream):
            if index == 1:
                break


def test_a_tenfold_price_never_overspends_budget_or_max_cost() -> None:
    prompt_price, completion_price = table_price("openrouter")
    tenfold = (prompt_price * 10, completion_price * 10)
    budget, max_cost = Decimal("0.002"), Decimal("0.0004")
    answer = Step(chunks=tuple(f"w{i} " for i in range(30)))
    worst_call = Decimal(0)
    outcomes: dict[str, int] = {}
    with (
        FakeOpenRouter(default=answer, price=tenfold) as openrouter,
        FakeBedrock(default=answer) as bedrock,
        Client(
            [_openrouter(openrouter), _bedrock(bedrock)],
            retries=NO_SLEEP,
            budget=budget,
            strategy="ordered",
        ) as client,  # fmt: skip
    ):
        for turn in range(200):
            prompt = PROMPTS[turn % len(PROMPTS)]
            try:
                if turn % 3 == 0:
                    _abandon(client, prompt, max_tokens=200, max_cost=max_cost)
                    kind = "abandoned"
                elif turn % 3 == 1:
                    reply = client.stream(MODEL, prompt, max_tokens=200, max_cost=max_cost).read()
                    worst_call = max(worst_call, reply.total_cost or Decimal(0))
                    kind = "streamed"
                else:
                    reply = client.chat(MODEL, prompt, max_tokens=200, max_cost=max_cost)
                    worst_call = max(worst_call, reply.total_cost or Decimal(0))
                    kind = "chat"
            except BudgetExceededError:
                kind = "refused"
            except AllProvidersFailedError as error:
                # Bedrock no longer fits the budget left; OpenRouter (cheaper in the table)
                # does, and refuses the ceiling: typed, and nothing billed.
                typed = all(isinstance(e, ModelNotAvailableError) for e in error.exceptions)
                kind = "no route within the price" if typed else repr(error)
            outcomes[kind] = outcomes.get(kind, 0) + 1
            assert client.spend.total <= budget
        spent = client.spend.total
        # What the providers billed: the fake OpenRouter its own figure, Bedrock the ledger's.
        billed = openrouter.billed + client.spend.summary().by_provider.get("bedrock", Decimal(0))
    # OpenRouter refused every attempt (its price is above the reserved one): nothing billed.
    assert openrouter.billed == 0
    assert openrouter.refused == openrouter.hits > 0
    ceilings = {str(r.json["provider"]["max_price"]) for r in openrouter.requests}
    assert ceilings == {str({"prompt": f"{prompt_price:f}", "completion": f"{completion_price:f}"})}
    assert set(outcomes) <= {
        "abandoned",
        "streamed",
        "chat",
        "refused",
        "no route within the price",
    }
    assert outcomes.get("refused", 0) + outcomes.get("no route within the price", 0) > 0
    assert spent <= budget
    assert billed <= budget
    assert worst_call <= max_cost
    print(f"\n10x fake: {outcomes}; spent {spent} of {budget} ({spent / budget:.3f}x); "
          f"dearest call {worst_call} ({worst_call / max_cost:.3f}x max_cost)")  # fmt: skip


def test_a_tenfold_price_with_no_fallback_is_refused_not_billed() -> None:
    tenfold = tuple(price * 10 for price in table_price("openrouter"))
    with (
        FakeOpenRouter(price=tenfold) as openrouter,  # type: ignore[arg-type]
        Client([_openrouter(openrouter)], retries=NO_SLEEP) as client,
    ):
        with pytest.raises(AllProvidersFailedError) as caught:
            client.chat(MODEL, "hi", max_tokens=100, max_cost=Decimal("0.01"))
        assert isinstance(caught.value.exceptions[0], ModelNotAvailableError)
        assert "max_price" in str(caught.value)
        # Without a limit nothing is reserved, so no ceiling is sent: the fake answers.
        assert client.chat(MODEL, "hi", max_tokens=100).cost.total > 0  # type: ignore[union-attr]
    assert openrouter.refused == 1


@pytest.mark.parametrize("prompt", PROMPTS[1:3], ids=["family-emoji", "llama-emoji"])
def test_a_provider_billing_every_prompt_byte_stays_within_the_caps(prompt: str) -> None:
    # The most an honest provider can bill: one token per UTF-8 byte of the prompt, the chat
    # template, and every max_tokens output token, at exactly the table's price.
    price = table_price("openrouter")
    max_tokens = 50
    billed_tokens = (len(prompt.encode()) + 40, max_tokens)
    per_call = (price[0] * billed_tokens[0] + price[1] * billed_tokens[1]) / 1_000_000
    max_cost = per_call * Decimal("1.2")
    budget = per_call * 7 + per_call / 2
    # Honest: no more output tokens than output bytes (every Llama 3 token is >= 1 byte).
    step = Step(chunks=("a " * 13, "b " * 12), usage=billed_tokens)
    refused = 0
    with (
        FakeOpenRouter(default=step, price=price) as openrouter,
        Client([_openrouter(openrouter)], retries=NO_SLEEP, budget=budget) as client,
    ):
        for turn in range(12):
            try:
                if turn % 2:
                    _abandon(client, prompt, max_tokens=max_tokens, max_cost=max_cost)
                else:
                    reply = client.chat(MODEL, prompt, max_tokens=max_tokens, max_cost=max_cost)
                    assert reply.total_cost is not None
                    assert reply.total_cost <= max_cost
            except BudgetExceededError:
                refused += 1
        assert client.spend.total <= budget
    # The fake bills what it generated: the prompt, and the chunks written before the hang-up.
    assert openrouter.billed <= budget, (openrouter.billed, budget)
    assert refused > 0
    print(f"\nbyte-billing fake ({len(prompt.encode())} prompt bytes): billed "
          f"{openrouter.billed / budget:.3f}x the budget; {refused} of 12 refused")  # fmt: skip


def test_a_tenfold_price_that_ignores_max_price_is_learned_from_its_first_answer() -> None:
    # A gateway that bills 10x and ignores provider.max_price: its first answer reports the
    # real cost; from then on the route is reserved for at that price, so the caps hold. The
    # first answer itself cannot be held to max_cost: nothing said the price had moved.
    tenfold = tuple(price * 10 for price in table_price("openrouter"))
    budget, max_cost = Decimal("0.002"), Decimal("0.0004")
    answer = Step(chunks=tuple(f"w{i} " for i in range(30)))
    refused, costs = 0, []
    with (
        FakeOpenRouter(default=answer, price=tenfold, honour_max_price=False) as openrouter,  # type: ignore[arg-type]
        Client([_openrouter(openrouter)], retries=NO_SLEEP, budget=budget) as client,
    ):
        for turn in range(200):
            prompt = PROMPTS[turn % len(PROMPTS)]
            try:
                if turn % 2:
                    _abandon(client, prompt, max_tokens=100, max_cost=max_cost)
                else:
                    reply = client.chat(MODEL, prompt, max_tokens=100, max_cost=max_cost)
                    costs.append(reply.total_cost or Decimal(0))
            except BudgetExceededError:
                refused += 1
        spent = client.spend.total
        later = [r.json["provider"]["max_price"] for r in openrouter.requests[1:]]
    assert refused > 0
    assert spent <= budget
    assert openrouter.billed <= budget
    assert len(costs) > 1
    worst_call = max(costs[1:])
    assert worst_call <= max_cost
    # After the first answer, the ceiling sent is the price seen (10x the table).
    assert later
    assert {Decimal(c["prompt"]) for c in later} == {tenfold[0]}
    print(f"\n10x fake ignoring max_price: billed {openrouter.billed / budget:.3f}x the budget, "
          f"ledger {spent / budget:.3f}x; dearest call {worst_call / max_cost:.3f}x max_cost; "
          f"{refused} of 200 refused")  # fmt: skip
