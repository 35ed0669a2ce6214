"""Cost control through the client: whole-call cost, the ledger, budgets, strategies, hedging,
events and quiet logs. Real providers against the three fakes on 127.0.0.1."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llamaroute import (
    AsyncClient,
    BudgetExceededError,
    Client,
    HedgePolicy,
    LlamarouteError,
    RetryPolicy,
    StreamInterruptedError,
    load_catalog,
)
from llamaroute.client import (
    AttemptFailed,
    AttemptStarted,
    BudgetRefused,
    Event,
    FallbackTaken,
    HedgeStarted,
    ResponseReady,
)
from llamaroute.money import SqliteLedger
from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import AWS_KEYS, CANARY_KEY, Fakes, three_providers

NO_SLEEP = RetryPolicy(sleep=lambda seconds: None)


def in_threads(work: Callable[[], None], count: int) -> None:
    """Run ``work`` in ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def client_for(fakes: Fakes, *names: str, **options: Any) -> Client:
    made = three_providers(fakes)
    options.setdefault("retries", NO_SLEEP)
    return Client(providers=[made[name] for name in names], **options)


# --- whole-call cost and the stale-price signal -------------------------------------------------


def test_bedrock_is_priced_from_the_table_exactly(
    three_fakes: Fakes,
) -> None:
    three_fakes[1].script(Step.reply("ok", usage=(1_000_000, 1_000_000)))
    with client_for(three_fakes, "bedrock") as client:
        reply = client.chat("llama-3.2-90b-vision", "hi")
    assert reply.cost is not None
    assert (reply.cost.total, reply.cost.source) == (Decimal("1.44"), "price_table")
    assert reply.total_cost == Decimal("1.44")
    assert client.spend.total == Decimal("1.44")


def test_ollama_costs_zero_not_unknown(
    three_fakes: Fakes,
) -> None:
    with client_for(three_fakes, "ollama") as client:
        reply = client.chat("llama-3.2-3b", "hi")
    assert reply.cost is not None
    assert reply.cost.total == Decimal(0)


def test_a_stale_price_table_is_flagged_once(
    three_fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llamaroute")
    # OpenRouter 3B is 0.0509/0.335 per million in the table: 0.3859 for these counts.
    three_fakes[0].default = Step.reply("ok", usage=(1_000_000, 1_000_000), cost="0.09")
    with client_for(three_fakes, "openrouter") as client:
        first = client.chat("llama-3.2-3b", "hi")
        client.chat("llama-3.2-3b", "again")
    assert first.cost is not None
    assert (first.cost.total, first.cost.source) == (Decimal("0.09"), "provider")
    assert first.price_stale
    check = first.details["price_check"]
    assert (check["provider"], check["price_table"]) == ("0.09", "0.3859")
    assert check["price_source"]  # where the stale table price was read, and when
    assert check["price_checked"]
    stale = [r for r in caplog.records if "looks stale" in r.getMessage()]
    assert len(stale) == 1


def test_a_matching_provider_figure_is_not_stale(
    three_fakes: Fakes,
) -> None:
    three_fakes[0].script(Step.reply("ok", usage=(1_000_000, 1_000_000), cost="0.3859"))
    with client_for(three_fakes, "openrouter") as client:
        assert not client.chat("llama-3.2-3b", "hi").price_stale


def test_a_stream_cut_after_tokens_is_billed_and_recorded(
    three_fakes: Fakes,
) -> None:
    three_fakes[1].script(
        Step(chunks=("a long partial answer " * 20,), drop_after=1, usage=(10, 10))
    )
    with client_for(three_fakes, "bedrock") as client:
        with pytest.raises(StreamInterruptedError) as caught:
            client.stream("llama-3.2-3b", "tell me").read()
        attempt = caught.value.attempts[-1]
        assert attempt.partial
        assert attempt.cost is not None
        assert attempt.cost.source == "estimate"
        assert client.spend.total == attempt.cost.total > 0


# --- the ledger -----------------------------------------------------------------------------


def test_ledger_equals_the_sum_of_responses_under_16_threads(
    three_fakes: Fakes,
) -> None:
    three_fakes[1].default = Step.reply("ok", usage=(1234, 567))
    costs: list[Decimal] = []
    lock = threading.Lock()
    with client_for(three_fakes, "bedrock") as client:

        def work() -> None:
            for _ in range(200):
                reply = client.chat("llama-3.2-3b", "hi")
                assert reply.cost is not None
                with lock:
                    costs.append(reply.cost.total)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(costs) == 3200
        assert client.spend.total == sum(costs, Decimal(0))  # Decimal equality, not approx
        assert client.spend.summary().calls == 3200


def _calls_into(ledger: str, url: str, count: int) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url, **AWS_KEYS)
    with Client(providers=[provider], ledger=ledger) as client:
        for _ in range(count):
            client.chat("llama-3.2-3b", "hi")


def test_two_processes_share_one_sqlite_ledger(tmp_path: Path) -> None:
    ledger = str(tmp_path / "spend.db")
    with FakeBedrock(default=Step.reply("ok", usage=(1000, 100))) as fake:
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_calls_into, args=(ledger, fake.url, 50))
                   for _ in range(2)]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
            assert worker.exitcode == 0
    per_call = Decimal("0.15") * 1100 / 1_000_000  # 3B on Bedrock: 0.15 in and out
    with Client(providers=[], ledger=ledger) as reader:
        assert reader.spend.summary().calls == 100
        assert reader.spend.total == 100 * per_call


# --- budgets ------------------------------------------------------------------------------------


def test_concurrent_calls_never_overspend_the_budget(
    three_fakes: Fakes,
) -> None:
    # Each call's worst case on Bedrock 3B with max_tokens=1000 is reserved before it starts;
    # the provider then bills the (short) prompt and every output token.
    three_fakes[1].default = Step.reply("ok", usage=(20, 1000), delay=0.05)
    budget = Decimal("0.001")
    outcomes: list[str] = []
    lock = threading.Lock()
    with client_for(three_fakes, "bedrock", budget=budget) as client:

        def work() -> None:
            try:
                client.chat("llama-3.2-3b", "x " * 50, max_tokens=1000)
                result = "ok"
            except BudgetExceededError:
                result = "refused"
            with lock:
                outcomes.append(result)

        in_threads(work, 16)
        assert client.spend.total <= budget
        assert "refused" in outcomes
        assert outcomes.count("ok") >= 1
        assert three_fakes[1].hits == outcomes.count("ok")  # refused calls sent nothing
        assert client.spend.remaining() == budget - client.spend.total


def test_a_refused_reservation_is_always_a_budget_refusal(
    three_fakes: Fakes, tmp_path: Path
) -> None:
    # 16 threads x 20 calls share one SQLite budget: a call may pass the plan's check and then
    # find its reservation refused because the others took the budget meanwhile. That is a
    # BudgetExceededError (it used to end as AllProvidersFailedError "circuit open").
    three_fakes[1].default = Step.reply("ok", usage=(20, 1000), delay=0.01)
    budget = Decimal("0.003")
    outcomes: list[str] = []
    lock = threading.Lock()
    ledger = SqliteLedger(tmp_path / "spend.db", budget)
    with client_for(three_fakes, "bedrock", ledger=ledger) as client:

        def work() -> None:
            for _ in range(20):
                try:
                    client.chat("llama-3.2-3b", "x " * 50, max_tokens=1000)
                    result = "ok"
                except Exception as error:  # every outcome is kept, whatever its type
                    result = type(error).__name__
                with lock:
                    outcomes.append(result)

        in_threads(work, 16)
        assert len(outcomes) == 320
        assert set(outcomes) == {"ok", "BudgetExceededError"}, set(outcomes)
        assert client.spend.total <= budget
        assert three_fakes[1].hits == outcomes.count("ok")  # refused calls sent nothing


def test_max_cost_skips_routes_and_refuses_with_figures_before_any_call(
    three_fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    with client_for(three_fakes, "openrouter", "bedrock", on_event=events.append) as client:
        # 90B: OpenRouter 0.9/0.9 per M (worst case 0.0018198 USD here), Bedrock 0.72/M
        # (0.00145584); 2000 output tokens at most.
        reply = client.chat("llama-3.2-90b-vision", "hi", max_tokens=2000,
                            max_cost=Decimal("0.0015"))  # fmt: skip
        assert reply.provider == "bedrock"
        assert any(
            isinstance(e, BudgetRefused) and e.route.startswith("openrouter") for e in events
        )
        with pytest.raises(BudgetExceededError, match=r"max_cost 0\.0000001 USD"):
            client.chat("llama-3.2-90b-vision", "hi", max_tokens=2000, max_cost=Decimal("1e-7"))
    assert three_fakes[0].hits == 0


def test_unknown_prices_cannot_be_bounded(tmp_path: Path) -> None:
    # A route of the user's own with no price entry: a budget cannot be kept there.
    mine = tmp_path / "nitro.toml"
    mine.write_text(
        '[[routes]]\nprovider = "openrouter"\nmodel = "llama-3.2-1b"\n'
        'model_id = "meta-llama/llama-3.2-1b-instruct:nitro"\n'
    )
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with (
            Client(providers=[provider], budget=Decimal("10"), catalog=load_catalog(mine)) as c,
            pytest.raises(BudgetExceededError, match="price is unknown"),
        ):
            c.chat("openrouter:meta-llama/llama-3.2-1b-instruct:nitro", "hi")
        assert fake.hits == 0


def test_an_eu_bedrock_call_is_bounded_and_priced_at_its_source_region() -> None:
    with FakeBedrock() as fake:
        fake.script(Step.reply("ok", usage=(1_000_000, 1_000_000)))
        provider = BedrockProvider(region="eu-west-1", endpoint_url=fake.url, **AWS_KEYS)
        with Client(providers=[provider], budget=Decimal("10")) as client:
            reply = client.chat("llama-3.2-3b", "hi")
        assert fake.hits == 1
    # eu-west-1's 3B price: 0.17 / 0.17 per million tokens.
    assert reply.cost is not None
    assert reply.cost.total == Decimal("0.34")


# --- strategies ---------------------------------------------------------------------------------


def test_cheapest_puts_free_local_first_then_by_price(
    three_fakes: Fakes,
) -> None:
    with client_for(three_fakes, "bedrock", "openrouter", "ollama", strategy="cheapest") as client:
        assert client.chat("llama-3.2-3b", "hi").provider == "ollama"
        # Without the local route: Bedrock 3B (0.15/M) beats OpenRouter 3B (0.0509/M in but
        # 0.335/M out) for a short prompt and the default 256-token expected answer.
        assert client.chat("llama-3.2-3b", "hi", providers=["openrouter", "bedrock"]).provider == (
            "bedrock"
        )


def test_cheapest_skips_a_local_route_whose_model_is_missing(
    three_fakes: Fakes,
) -> None:
    with FakeOllama(models=["llama3.2:1b"]) as ollama:
        made = three_providers(three_fakes)
        made["ollama"] = OllamaProvider(host=ollama.url)
        with Client(providers=list(made.values()), strategy="cheapest") as client:
            reply = client.chat("llama-3.2-3b", "hi")
        assert reply.provider == "bedrock"  # the cheaper priced route (0.15/M)
        assert [r.path for r in ollama.requests] == ["/api/tags"]  # probed, never called


def test_fastest_learns_from_real_calls(
    three_fakes: Fakes,
) -> None:
    # Well above Bedrock's first call, which includes building the boto3 client (~0.2 s, and
    # several times that on a loaded 2-core machine).
    three_fakes[0].default = Step(delay=1.5)
    with client_for(three_fakes, "openrouter", "bedrock", strategy="fastest") as client:
        first = client.chat("llama-3.2-3b", "hi")
        assert first.provider == "openrouter"  # no data yet: configured order
        client.chat("llama-3.2-3b", "hi", providers=["bedrock"])  # measure the other one
        picked = [client.chat("llama-3.2-3b", "hi").provider for _ in range(3)]
    assert picked == ["bedrock"] * 3
    assert set(client.latency()["total"]) == {
        "openrouter:meta-llama/llama-3.2-3b-instruct", "bedrock:us.meta.llama3-2-3b-instruct-v1:0",
    }  # fmt: skip


def test_local_first_costs_no_waiting_when_ollama_is_down(
    three_fakes: Fakes, refused_port: int
) -> None:
    made = three_providers(three_fakes)
    made["ollama"] = OllamaProvider(host=f"http://127.0.0.1:{refused_port}")
    with Client(providers=[made["openrouter"], made["ollama"]], strategy="local_first") as client:
        started = time.perf_counter()
        reply = client.chat("llama-3.2-3b", "hi")
        elapsed = time.perf_counter() - started
    assert reply.provider == "openrouter"
    assert [a.provider for a in reply.attempts] == ["openrouter"]  # Ollama was never tried
    assert elapsed < 1.0
    with client_for(three_fakes, "openrouter", "ollama", strategy="local_first") as client:
        assert client.chat("llama-3.2-3b", "hi").provider == "ollama"


def test_a_custom_strategy(three_fakes: Fakes) -> None:
    def reverse(request: Any, candidates: Any, stats: Any) -> list[Any]:
        return list(reversed(candidates))

    with client_for(three_fakes, "openrouter", "bedrock", strategy=reverse) as client:
        assert client.chat("llama-3.2-3b", "hi").provider == "bedrock"
        assert client.chat("llama-3.2-3b", "hi", strategy="ordered").provider == "openrouter"


# --- hedging ----------------------------------------------------------------------------------


async def test_a_stalled_first_route_is_hedged_and_its_connection_closed(
    three_fakes: Fakes,
) -> None:
    three_fakes[0].default = Step(delay=5)  # OpenRouter stalls
    made = three_providers(three_fakes)
    events: list[Event] = []
    async with AsyncClient(providers=[made["openrouter"], made["bedrock"]], on_event=events.append,
                           hedge=HedgePolicy(delay=0.3, max_share=1.0)) as client:  # fmt: skip
        started = time.perf_counter()
        reply = await client.chat("llama-3.2-3b", "hi")
        elapsed = time.perf_counter() - started
        hedged_at = time.monotonic()
    assert reply.provider == "bedrock"
    assert 0.3 <= elapsed < 1.3  # the hedge delay plus the second route's latency
    assert three_fakes[0].wait_closed(hedged_at - elapsed, timeout=1.0) is not None
    outcomes = sorted((a.provider, a.outcome) for a in reply.attempts)
    assert outcomes == [("bedrock", "ok"), ("openrouter", "cancelled")]
    cancelled = next(a for a in reply.attempts if a.outcome == "cancelled")
    assert cancelled.cost is not None  # the prompt was likely billed: accounted for
    assert reply.cost is not None
    assert reply.total_cost == reply.cost.total + cancelled.cost.total
    assert any(isinstance(e, HedgeStarted) for e in events)


async def test_hedges_are_capped_to_a_share_of_calls(
    three_fakes: Fakes,
) -> None:
    three_fakes[0].default = Step(delay=0.5)
    made = three_providers(three_fakes)
    events: list[Event] = []
    async with AsyncClient(providers=[made["openrouter"], made["bedrock"]], on_event=events.append,
                           hedge=HedgePolicy(delay=0.05, max_share=0.25)) as client:  # fmt: skip
        for _ in range(8):
            await client.chat("llama-3.2-3b", "hi")
    assert sum(isinstance(e, HedgeStarted) for e in events) == 2  # 25 % of 8 calls


async def test_a_first_route_that_fails_before_the_hedge_delay_still_falls_back(
    three_fakes: Fakes,
) -> None:
    # The hedge never started, so the second route has not been tried: the call must go on to
    # it, exactly as it would without hedging (it used to skip it and fail).
    three_fakes[0].default = Step(status=503)
    made = three_providers(three_fakes)
    events: list[Event] = []
    hedge = HedgePolicy(delay=0.5, max_share=1.0)
    async with AsyncClient(providers=[made["openrouter"], made["bedrock"]], on_event=events.append,
                           hedge=hedge, retries=0) as client:  # fmt: skip
        reply = await client.chat("llama-3.2-3b", "hi")
    assert reply.provider == "bedrock"
    assert [(a.provider, a.outcome) for a in reply.attempts] == [
        ("openrouter", "error"),
        ("bedrock", "ok"),
    ]
    assert three_fakes[0].hits == 1
    assert three_fakes[1].hits == 1
    assert not any(isinstance(e, HedgeStarted) for e in events)
    fallbacks = [e for e in events if isinstance(e, FallbackTaken)]  # told as without hedging
    assert [(e.from_route.split(":")[0], e.to_route.split(":")[0]) for e in fallbacks] == [
        ("openrouter", "bedrock")
    ]


# --- events and logs ----------------------------------------------------------------------------


def test_events_tell_the_story_of_a_call(
    three_fakes: Fakes,
) -> None:
    events: list[Event] = []
    three_fakes[0].script(Step.error(429, retry_after=1), Step.error(503), Step.error(503))
    with client_for(three_fakes, "openrouter", "bedrock", on_event=events.append) as client:
        client.chat("llama-3.2-3b", "hi")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["AttemptStarted", "AttemptFailed", "AttemptStarted", "AttemptFailed",
                     "AttemptStarted", "AttemptFailed", "FallbackTaken", "AttemptStarted",
                     "ResponseReady"]  # fmt: skip
    waits = [e.retry_in for e in events if isinstance(e, AttemptFailed)]
    assert waits[0] == 1.0
    assert waits[-1] is None
    fallback = next(e for e in events if isinstance(e, FallbackTaken))
    assert fallback.to_route.startswith("bedrock:")
    assert isinstance(events[0], AttemptStarted)
    assert isinstance(events[-1], ResponseReady)


def test_a_failing_handler_never_breaks_a_call(
    three_fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    with client_for(three_fakes, "openrouter", on_event=broken) as client:
        assert client.chat("llama-3.2-3b", "hi").text
    assert any("on_event handler failed" in r.getMessage() for r in caplog.records)


def test_logs_are_quiet_and_never_carry_prompts(
    three_fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "PII-CANARY Jane Doe 555-0100"
    three_fakes[0].script(Step.error(503))
    with client_for(three_fakes, "openrouter", "bedrock") as client:
        client.chat("llama-3.2-3b", canary)
        client.stream("llama-3.2-3b", canary).read()
    ours = [r for r in caplog.records if r.name.startswith("llamaroute")]
    assert all(r.levelno < logging.INFO for r in ours), [r.getMessage() for r in ours]
    assert not any(canary in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert not any(canary in r.getMessage() for r in ours)


def test_errors_stay_typed(three_fakes: Fakes) -> None:
    with client_for(three_fakes, "openrouter") as client, pytest.raises(LlamarouteError):
        client.chat("llama-3.2-3b", "hi", max_cost=0.5)  # type: ignore[arg-type]
