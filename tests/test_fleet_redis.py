"""Fleet state on the real Redis (issue 21): one budget, breakers and rate limits for many
processes, and what happens when Redis goes away. Each test has its own key prefix; the
restart tests kill a private redis-server of their own, never the shared one."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from llamaroute import (
    BudgetExceededError,
    Client,
    ConfigurationError,
    LlamarouteError,
    RateLimitError,
)
from llamaroute.catalog import default_catalog
from llamaroute.fleet import UNIT, RedisBudget, RedisRateLimits, RedisState, open_state
from llamaroute.money import MemoryLedger, SpendEntry
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.routing import BreakerPolicy, Hold, Limit, MemoryRateLimits, RateLimits, Refusal
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from . import _fleet
from ._fleet import MODEL, PLACEHOLDER_KEY, REDIS_URL, PrivateRedis

pytestmark = pytest.mark.skipif(
    not _fleet.answers(6379), reason="needs Redis on 127.0.0.1:6379 (.ci/run starts it)"
)


@pytest.fixture
def prefix() -> Iterator[str]:
    name = _fleet.unique("redis")
    yield name
    _fleet.drop_redis_prefix(REDIS_URL, name)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.kill()


def _route(provider: str = "openrouter"):  # type: ignore[no-untyped-def]
    return next(r for r in default_catalog().resolve(MODEL).routes if r.provider == provider)


def _entry(cost: str, **options: object) -> SpendEntry:
    return SpendEntry("openrouter", MODEL, "m", Decimal(cost), "provider", **options)  # type: ignore[arg-type]


# --- budgets --------------------------------------------------------------------------------


def test_four_processes_of_sixteen_concurrent_calls_never_overspend_one_budget(
    prefix: str,
) -> None:
    # Each call's worst case (64 output tokens) is far above what it really costs, so the
    # budget admits more calls than its worst cases alone would: settlements must free room.
    budget = Decimal("0.00004")
    with FakeOpenRouter(default=Step.reply("a llama", delay=0.05)) as fake, \
            _fleet.spawn_pool(4) as pool:  # fmt: skip
        start = time.time() + 5  # after every process has started
        jobs = [pool.apply_async(_fleet.budget_worker,
                                 (fake.base_url, REDIS_URL, prefix, str(budget), 16, start))
                for _ in range(4)]  # fmt: skip
        results = [job.get(180) for job in jobs]
        hits = fake.hits
    for result in results:
        assert result["others"] == [], result["others"]  # typed refusals only
    costs = [Decimal(cost) for result in results for cost in result["answered"]]
    refused = sum(result["refused"] for result in results)
    assert len(costs) + refused == 64
    assert hits == len(costs)  # nothing refused was sent
    assert sum(costs) <= budget
    assert refused > 0
    assert len(costs) > 0
    # The processes' own ledgers agree with what their replies cost, to the last digit.
    assert sum(Decimal(r["ledger_total"]) for r in results) == sum(costs)
    # Redis's shared total: the same, rounded up by less than a unit per call.
    state = RedisState(REDIS_URL, prefix=prefix)
    spent = int(state.connection.command("GET", state.connection.key("budget", "default",
                                                                     "spent"))) * UNIT  # fmt: skip
    assert sum(costs) <= spent <= sum(costs) + UNIT * len(costs)
    assert state.connection.command("HLEN", state.connection.key("budget", "default", "held")) == 0
    state.close()


@pytest.mark.skipif(not _fleet.answers(5432), reason="needs PostgreSQL on 127.0.0.1:5432")
def test_a_redis_budget_over_a_postgres_ledger_keeps_exact_totals(prefix: str) -> None:
    from llamaroute.money import PostgresLedger

    budget = Decimal("0.00003")
    PostgresLedger(_fleet.PG_URL, schema=prefix).close()  # migrate once before the race
    try:
        with FakeOpenRouter(default=Step.reply("a llama", delay=0.05)) as fake, \
                _fleet.spawn_pool(4) as pool:  # fmt: skip
            start = time.time() + 5
            jobs = [pool.apply_async(_fleet.budget_worker, (fake.base_url, REDIS_URL, prefix,
                                                            str(budget), 16, start, prefix))
                    for _ in range(4)]  # fmt: skip
            results = [job.get(180) for job in jobs]
        for result in results:
            assert result["others"] == [], result["others"]
        costs = [Decimal(cost) for result in results for cost in result["answered"]]
        assert 0 < sum(costs) <= budget
        ledger = PostgresLedger(_fleet.PG_URL, schema=prefix)
        summary = ledger.summary()
        ledger.close()
        assert (summary.total, summary.calls) == (sum(costs), len(costs))  # exact, once each
    finally:
        _fleet.drop_pg_schema(_fleet.PG_URL, prefix)


async def test_the_async_client_takes_the_same_state(
    prefix: str, fake_openrouter: FakeOpenRouter
) -> None:
    from llamaroute import AsyncClient

    async with AsyncClient(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake_openrouter.base_url)],
        state=RedisState(REDIS_URL, prefix=prefix), budget=Decimal("1"), retries=0,
    ) as client:  # fmt: skip
        reply = await client.chat(MODEL, "hi")
        assert client.spend.remaining() == Decimal("1") - reply.total_cost
        assert isinstance(client.spend, RedisBudget)


def test_the_readme_fleet_block_compiles() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Running a fleet") :]
    [block] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    compile(block, "README.md", "exec")
    assert "RedisState(" in block
    assert "postgresql://" in block


def test_reservations_expire_and_keys_carry_ttls(prefix: str) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    ledger = state.budget(MemoryLedger(), Decimal("1"))
    held = ledger.reserve(Decimal("0.6"), "the first")
    with pytest.raises(BudgetExceededError, match=r"0\.4"):
        ledger.reserve(Decimal("0.5"), "the second")
    ledger.settle(held, _entry("0.1"))
    assert ledger.remaining() == Decimal("0.9")
    ledger.settle(held, _entry("0.1"))  # a replay with the same reservation: not counted twice
    assert ledger.total == Decimal("0.2")  # (the records are the wrapped ledger's: it has both)
    assert ledger.remaining() == Decimal("0.9")
    # Breakers, probes, rate windows and latency averages too: every key expires.
    from llamaroute import ProviderError

    health = state.health(BreakerPolicy(failures=1, cooldown=0.01))
    health.record(_route(), ProviderError("down"))
    time.sleep(0.05)
    assert health.admit(_route()) is True  # the probe's key is set
    state.rate_limits().acquire("or-a", Limit(rpm=5, tpm=100), 10)
    state.latency_stats().observe("openrouter:m", 0.5)
    keys = state.connection.command("KEYS", f"llamaroute:{prefix}:*")
    assert len(keys) >= 9  # the budget's, two breakers, their index, a probe, a window, ...
    for key in keys:
        assert state.connection.command("TTL", key) > 0, key
    state.close()


def test_a_lost_total_is_seeded_from_the_ledger(prefix: str) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    inner = MemoryLedger()
    inner.record(_entry("0.7"))
    ledger = state.budget(inner, Decimal("1"))
    with pytest.raises(BudgetExceededError):
        ledger.reserve(Decimal("0.5"), "a call")  # 0.7 already spent, says the ledger
    assert ledger.remaining() == Decimal("0.3")
    state.close()


def test_budgets_fail_closed_while_redis_is_down_and_calls_in_flight_keep_their_answer(
    private_redis: PrivateRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = RedisState(private_redis.url, prefix=prefix, retry_s=0.2)
    with FakeOpenRouter(default=Step.reply("slow", delay=1.0)) as fake, Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)], retries=0,
        state=state, budget=Decimal("1"),
    ) as client:  # fmt: skip
        import threading

        replies = []
        flight = threading.Thread(target=lambda: replies.append(client.chat(MODEL, "hi")))
        flight.start()
        deadline = time.monotonic() + 20
        while fake.hits < 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the request is at the provider (reserved, sent)
        assert flight.is_alive()  # in flight: the answer takes a second
        private_redis.kill()
        flight.join(30)
        assert len(replies) == 1
        assert replies[0].text == "slow"
        assert client.spend.total == replies[0].total_cost  # nor its record
        with caplog.at_level(logging.WARNING, logger="llamaroute"):
            for _ in range(3):
                with pytest.raises(BudgetExceededError, match=r"Redis|budget"):
                    client.chat(MODEL, "hi")
                time.sleep(0.25)
        assert fake.hits == 1  # refused before anything was sent
        assert sum("unreachable" in r.message for r in caplog.records) == 1  # one warning
        assert client.spend.pending == 1  # the settlement waits for Redis
        private_redis.start()  # empty: no persistence
        time.sleep(0.5)
        reply = client.chat(MODEL, "hi again")
        assert client.spend.pending == 0
        # Nothing lost, nothing counted twice: the ledger has both calls; Redis's reseeded
        # total has them too (the replayed settlement added nothing to the seeded total).
        assert client.spend.total == replies[0].total_cost + reply.total_cost
        remaining = client.spend.remaining()
        assert remaining is not None
        assert Decimal("1") - client.spend.total - 2 * UNIT <= remaining
        assert remaining <= Decimal("1") - client.spend.total


@pytest.mark.skipif(not _fleet.answers(5432), reason="needs PostgreSQL on 127.0.0.1:5432")
def test_redis_killed_and_restarted_under_two_busy_processes(
    private_redis: PrivateRedis, prefix: str
) -> None:
    from llamaroute.money import PostgresLedger

    PostgresLedger(_fleet.PG_URL, schema=prefix).close()  # migrate once before the race
    try:
        with FakeOpenRouter(default=Step.reply("yes", delay=0.02)) as fake, \
                _fleet.spawn_pool(2) as pool:  # fmt: skip
            start = time.time() + 5
            jobs = [pool.apply_async(_fleet.restart_worker, (fake.base_url, private_redis.url,
                                                             prefix, prefix, 6.0, start))
                    for _ in range(2)]  # fmt: skip
            time.sleep(max(0.0, start - time.time()) + 2.0)
            private_redis.kill()  # mid-run
            time.sleep(2.0)
            private_redis.start()  # empty
            results = [job.get(180) for job in jobs]
            hits = fake.hits
        for result in results:
            assert result["others"] == [], result["others"]  # typed errors only
            assert result["pending"] == 0  # every settlement reached Redis again
        costs = [Decimal(cost) for result in results for cost in result["answered"]]
        assert sum(result["refused"] for result in results) > 0  # refused while it was down
        assert hits == len(costs)  # nothing refused was sent
        ledger = PostgresLedger(_fleet.PG_URL, schema=prefix)
        summary = ledger.summary()
        ledger.close()
        assert (summary.total, summary.calls) == (sum(costs), len(costs))  # nothing lost
        # Redis's total after the restart: seeded from the ledger, then every later call
        # once. Never below the ledger (a budget cannot be overspent); above it by at most
        # what the 8 calls in flight cost when a settlement from before the loss raised the
        # total to the ledger's (a call recorded there but not yet added), plus rounding.
        state = RedisState(private_redis.url, prefix=prefix)
        spent = state.connection.command("GET", state.connection.key("budget", "default",
                                                                     "spent"))  # fmt: skip
        state.close()
        assert spent is not None
        assert sum(costs) <= int(spent) * UNIT <= sum(costs) + UNIT * len(costs) + 8 * max(costs)
    finally:
        _fleet.drop_pg_schema(_fleet.PG_URL, prefix)


def test_a_budget_may_fail_open(private_redis: PrivateRedis, prefix: str) -> None:
    state = RedisState(private_redis.url, prefix=prefix, budget_fail_open=True, retry_s=0.2)
    with FakeOpenRouter() as fake, Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)], retries=0,
        state=state, budget=Decimal("1"),
    ) as client:  # fmt: skip
        private_redis.kill()
        reply = client.chat(MODEL, "hi")
        assert reply.text
        assert client.spend.total == reply.total_cost


# --- breakers -------------------------------------------------------------------------------


def test_a_breaker_opened_by_one_process_is_respected_by_another(prefix: str) -> None:
    policy = BreakerPolicy(failures=3, cooldown=600)
    with FakeOpenRouter(default=Step.error(500)) as openrouter, FakeOllama() as ollama:
        with Client(
            [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url)],
            state=RedisState(REDIS_URL, prefix=prefix), retries=0, breaker=policy,
        ) as first:  # fmt: skip
            for _ in range(3):
                with pytest.raises(LlamarouteError):
                    first.chat(MODEL, "hi")
        hits = openrouter.hits
        with _fleet.spawn_pool(1) as pool:
            seen = pool.apply(_fleet.breaker_worker,
                              (openrouter.base_url, ollama.url, REDIS_URL, prefix))  # fmt: skip
        assert openrouter.hits == hits  # the other process never tried the open route
    assert seen["provider"] == "ollama"
    route = f"openrouter:{_route().model_id}"
    assert seen["health"][route]["state"] == "open"
    assert seen["health"][route]["times_opened"] == 1


def test_one_probe_fleet_wide_when_the_cooldown_ends(prefix: str) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    health = state.health(BreakerPolicy(failures=3, cooldown=1.0))
    route = _route()
    from llamaroute import ProviderError

    for _ in range(3):
        health.record(route, ProviderError("down"))
    assert health.admit(route) is False
    time.sleep(1.2)  # the cooldown is over: half-open
    with _fleet.spawn_pool(4) as pool:
        start = time.time() + 5  # after every process has started
        jobs = [pool.apply_async(_fleet.probe_worker, (REDIS_URL, prefix, 8, start))
                for _ in range(4)]  # fmt: skip
        admitted = sum(job.get(120) for job in jobs)
    assert admitted == 1  # 32 threads in 4 processes, one probe
    assert health.admit(route) is False  # the probe is in flight elsewhere
    health.record(route, None)  # the probe succeeded (reported by anyone): closed for all
    assert health.admit(route) is True
    assert health.snapshot()[f"openrouter:{route.model_id}"]["state"] == "closed"
    state.close()


def test_breakers_fall_back_to_the_process_while_redis_is_down(
    private_redis: PrivateRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    from llamaroute import ProviderError

    state = RedisState(private_redis.url, prefix=prefix, retry_s=0.2)
    health = state.health(BreakerPolicy(failures=2, cooldown=600))
    route = _route()
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        assert health.admit(route) is True
        health.record(route, ProviderError("down"))
        health.record(route, ProviderError("down"))
        assert health.admit(route) is False  # the process's own breaker opened
    assert sum("unreachable" in r.message for r in caplog.records) == 1
    private_redis.start()
    time.sleep(0.3)
    assert health.admit(route) is True  # Redis answers again: its (empty) state rules
    state.close()


# --- rate limits ----------------------------------------------------------------------------


def test_a_rate_limit_holds_across_processes_on_real_calls(prefix: str) -> None:
    # 4 processes x 5 concurrent calls at one OpenRouter deployment limited to 8 requests a
    # minute, each process its own Client on the same Redis namespace. The calls take well
    # under a second, and each may wait 3 s for a slot, while the first slot frees only a
    # minute after the first admission: so exactly 8 are sent, and the other 12 are refused
    # before sending, with no wait that could let a ninth through.
    rpm, per_process = 8, 5
    with FakeOpenRouter(default=Step.reply("a llama")) as fake, _fleet.spawn_pool(4) as pool:
        start = time.time() + 5  # after every process has started
        jobs = [pool.apply_async(_fleet.rate_limited_worker,
                                 (fake.base_url, f"{REDIS_URL}?prefix={prefix}", rpm,
                                  per_process, 3.0, start)) for _ in range(4)]  # fmt: skip
        results = [job.get(180) for job in jobs]
        hits = fake.hits
    for result in results:
        assert result["others"] == [], result["others"]
    limited = [code for result in results for code in result["limited"]]
    assert hits == rpm  # exactly N reached the provider, fleet-wide
    assert sum(result["answered"] for result in results) == rpm
    assert limited == ["local_rate_limit sent=None"] * (4 * per_process - rpm)
    # The window on Redis holds the N admissions, and expires with them.
    state = RedisState(REDIS_URL, prefix=prefix)
    window = state.connection.key("rate", "holds", "openrouter")
    assert state.connection.command("ZCARD", window) == rpm
    assert 0 < state.connection.command("PTTL", window) <= 61_000
    state.close()


def test_two_deployments_at_n_a_minute_serve_2n_calls_of_two_clients(prefix: str) -> None:
    # Two clients (as two processes would) share each deployment's window: 2N calls between
    # them all succeed, each fake gets exactly N, and the next call is refused unsent.
    rpm = 3
    with FakeOpenRouter() as key_a, FakeOpenRouter() as key_b:

        def client() -> Client:
            deployments = [
                OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=key_a.base_url,
                                   deployment="or-a", rpm=rpm),
                OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=key_b.base_url,
                                   deployment="or-b", rpm=rpm),
            ]  # fmt: skip
            return Client(deployments, state=f"{REDIS_URL}?prefix={prefix}", retries=0,
                          timeout=2.0)  # fmt: skip

        with client() as first, client() as second:
            replies = [(first if i % 2 else second).chat(MODEL, "hi") for i in range(2 * rpm)]
            with pytest.raises(RateLimitError) as refused:
                first.chat(MODEL, "one too many")
        assert (key_a.hits, key_b.hits) == (rpm, rpm)
    assert sorted(reply.attempts[-1].deployment for reply in replies) == ["or-a"] * 3 + ["or-b"] * 3
    assert refused.value.code == "local_rate_limit"
    assert refused.value.status_code is None


def _limits(kind: str, prefix: str) -> Iterator[RateLimits]:
    if kind == "memory":
        yield MemoryRateLimits()
        return
    state = RedisState(REDIS_URL, prefix=prefix)
    yield state.rate_limits()
    state.close()


@pytest.fixture(params=["memory", "redis"])
def limits(request: pytest.FixtureRequest, prefix: str) -> Iterator[RateLimits]:
    yield from _limits(request.param, prefix)


def test_both_rate_limits_keep_one_contract(limits: RateLimits) -> None:
    # The same behaviour in a process and on Redis (the real clock: all of this takes far
    # less than the 60 s window).
    both = Limit(rpm=3, tpm=100)
    first = limits.acquire("a", both, 60)
    assert isinstance(first, Hold)
    over = limits.acquire("a", both, 50)
    assert isinstance(over, Refusal)
    assert "100 tokens/min" in over.reason
    assert 55 < over.wait <= 60  # when the first hold's 60 tokens leave the window
    limits.settle("a", first, 20)  # the real usage: room again
    second = limits.acquire("a", both, 50)
    assert isinstance(second, Hold)
    assert limits.usage("a") == (2, 70)  # type: ignore[attr-defined]
    assert isinstance(limits.acquire("a", both, 10), Hold)
    full = limits.acquire("a", both, 1)
    assert isinstance(full, Refusal)
    assert full.reason == "rate limit: 3 requests/min reached"
    assert 55 < full.wait <= 60
    limits.cancel("a", second)  # never sent: its request and tokens are given back
    assert limits.usage("a") == (2, 30)  # type: ignore[attr-defined]
    assert isinstance(limits.acquire("a", both, 1), Hold)
    never = limits.acquire("a", Limit(rpm=None, tpm=100), 101)
    assert isinstance(never, Refusal)
    assert never.wait == math.inf
    assert isinstance(limits.acquire("b", both, 100), Hold)  # another deployment: its own


def test_redis_holds_are_named_and_their_keys_expire_with_the_window(prefix: str) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    limits = state.rate_limits()
    assert isinstance(limits, RedisRateLimits)
    holds = [limits.acquire("or-a", Limit(rpm=None, tpm=1000), 10) for _ in range(3)]
    assert all(isinstance(hold, Hold) and hold.id for hold in holds)
    assert len({hold.id for hold in holds if isinstance(hold, Hold)}) == 3
    window = state.connection.key("rate", "holds", "or-a")
    tokens = state.connection.key("rate", "tokens", "or-a")
    for key in (window, tokens):
        assert 59_000 < state.connection.command("PTTL", key) <= 61_000
    assert state.connection.command("HGET", tokens, "=sum") == "30"
    state.close()


def test_tokens_per_minute_count_the_real_usage_fleet_wide(prefix: str) -> None:
    # Through the client: the estimate is held, then replaced by the usage the fake reports,
    # in the window another process would read.
    with FakeOpenRouter(default=Step.reply("a llama", usage=(7, 5))) as fake, Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url, tpm=10_000)],
        state=f"{REDIS_URL}?prefix={prefix}", retries=0,
    ) as client:  # fmt: skip
        client.chat(MODEL, "hi", max_tokens=100)
        other = RedisState(REDIS_URL, prefix=prefix)
        assert other.rate_limits().usage("openrouter") == (1, 12)  # type: ignore[attr-defined]
        other.close()


def test_rate_limits_fall_back_to_the_process_while_redis_is_down(
    private_redis: PrivateRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = RedisState(private_redis.url, prefix=prefix, retry_s=0.2)
    limits = state.rate_limits()
    rpm2 = Limit(rpm=2, tpm=None)
    shared = limits.acquire("a", rpm2, 0)
    assert isinstance(shared, Hold)
    assert shared.id
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        # Per process now: a fresh window of its own, and one warning for the outage.
        got = [limits.acquire("a", rpm2, 0) for _ in range(3)]
        limits.cancel("a", shared)  # (lost with the server: nothing to do, nothing raised)
    assert [isinstance(hold, Hold) for hold in got] == [True, True, False]
    assert all(not hold.id for hold in got if isinstance(hold, Hold))  # the process's own
    assert sum("unreachable" in r.message for r in caplog.records) == 1
    local = got[0]
    assert isinstance(local, Hold)
    limits.cancel("a", local)  # a fallback hold is given back where it was counted
    assert isinstance(limits.acquire("a", rpm2, 0), Hold)
    private_redis.start()
    time.sleep(0.3)
    back = limits.acquire("a", rpm2, 0)
    assert isinstance(back, Hold)
    assert back.id  # the server's window again (emptied by the restart)
    state.close()


# --- configuration --------------------------------------------------------------------------


def test_state_urls_and_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="Redis URL"):
        open_state("memcached://127.0.0.1")
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisState(REDIS_URL, prefix="a:b")
    assert type(open_state(None)).__name__ == "FleetState"
    named = open_state("redis://127.0.0.1:6379/0?prefix=billing")
    assert isinstance(named, RedisState)
    assert named.connection.namespace == "llamaroute:billing:"
    named.close()


def test_redis_budget_wraps_the_records_of_any_ledger(prefix: str) -> None:
    inner = MemoryLedger()
    state = RedisState(REDIS_URL, prefix=prefix)
    ledger = state.budget(inner, Decimal("2"))
    assert isinstance(ledger, RedisBudget)
    assert inner.budget is None
    ledger.record(_entry("0.25"))
    assert ledger.summary().total == Decimal("0.25") == inner.total
    assert ledger.remaining() == Decimal("1.75")
    state.close()


def test_the_client_takes_a_state_url(prefix: str) -> None:
    with FakeOpenRouter() as fake, Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
        state=REDIS_URL, budget=Decimal("1"),
    ) as client:  # fmt: skip
        reply = client.chat(MODEL, "hi")
        assert client.spend.remaining() == Decimal("1") - reply.total_cost
        assert f"openrouter:{_route().model_id}" in client.health()
    # (A plain URL uses the default namespace: clean up this test's own keys there.)
    state = RedisState(REDIS_URL)
    for key in state.connection.command("KEYS", "llamaroute:budget:default:*"):
        state.connection.command("DEL", key)
    state.close()


def test_the_ollama_fake_is_used_as_a_second_route() -> None:
    # (A guard for the breaker test above: the fake Ollama serves this model.)
    with FakeOllama() as ollama, Client([OllamaProvider(host=ollama.url)], retries=0) as c:
        assert c.chat(MODEL, "hi").provider == "ollama"


# --- latency for the fastest strategy ---------------------------------------------------------


def test_latency_measured_by_one_client_orders_routes_for_another(prefix: str) -> None:
    slow, fast = Step.reply("slow", delay=0.3), Step.reply("fast")
    with FakeOpenRouter(default=slow) as openrouter, FakeOllama(default=fast) as ollama:
        providers = [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url),
                     OllamaProvider(host=ollama.url)]  # fmt: skip
        with Client(providers, state=RedisState(REDIS_URL, prefix=prefix), retries=0) as first:
            first.chat(MODEL, "hi", providers=["openrouter"])
            first.chat(MODEL, "hi", providers=["ollama"])
        other = [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url),
                 OllamaProvider(host=ollama.url)]  # fmt: skip
        with Client(other, state=RedisState(REDIS_URL, prefix=prefix), retries=0,
                    strategy="fastest") as second:  # fmt: skip
            measured = second.latency()["total"]
            assert measured[f"openrouter:{_route().model_id}"] > 0.3
            assert second.chat(MODEL, "hi").provider == "ollama"  # never measured here
        assert openrouter.hits == 1


def test_latency_falls_back_to_the_process_while_redis_is_down(
    private_redis: PrivateRedis, prefix: str
) -> None:
    stats = RedisState(private_redis.url, prefix=prefix, retry_s=0.2).latency_stats()
    private_redis.kill()
    stats.observe("openrouter:m", 0.25)
    assert stats.latency("openrouter:m") == 0.25


def test_two_clients_on_one_state_object_count_every_hold(prefix: str) -> None:
    # Hold ids are unique per limiter, not per connection: two limiters of one state never
    # overwrite each other's holds.
    state = RedisState(REDIS_URL, prefix=prefix)
    first, second = state.rate_limits(), state.rate_limits()
    rpm4 = Limit(rpm=4, tpm=None)
    got = [limits.acquire("a", rpm4, 0) for limits in (first, second, first, second, first)]
    assert [isinstance(hold, Hold) for hold in got] == [True, True, True, True, False]
    state.close()
