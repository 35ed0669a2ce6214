"""Several deployments of one provider in one client (issue 19, part 4): two OpenRouter keys,
two Ollama hosts, Bedrock in two regions; each with its own breaker, its own requests- and
tokens-per-minute limits (enforced before sending), and spread by the ordered, least_busy or
weighted strategy. Every test runs the real providers against the fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llamaroute import (
    AsyncClient,
    BreakerPolicy,
    ChatResponse,
    Client,
    ConfigurationError,
    RateLimitError,
    RetryPolicy,
)
from llamaroute.events import FallbackTaken
from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider
from llamaroute.routing import (
    Hold,
    LatencyStats,
    Limit,
    MemoryRateLimits,
    Refusal,
    apply_strategy,
    candidate,
)
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import AWS_KEYS, CANARY_KEY, Clock

MODEL = "llama-3.2-3b"
OTHER_KEY = "second-placeholder-not-a-key"  # distinctive: asserted absent from output


def _policy(clock: Clock, attempts: int = 1) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=0.01, clock=clock, sleep=clock.sleep,
                       async_sleep=clock.async_sleep)  # fmt: skip


class Caller:
    """A sync or an async client (its calls run on one event loop of its own), to run one
    test body through both."""

    def __init__(self, mode: str, providers: list[Any], **options: Any) -> None:
        self.mode = mode
        self.runner = asyncio.Runner() if mode == "async" else None
        self.client: Client | AsyncClient = (
            Client(providers, **options) if mode == "sync" else AsyncClient(providers, **options)
        )

    def ask(self, **options: Any) -> ChatResponse:
        if self.runner is None:
            assert isinstance(self.client, Client)
            return self.client.chat(MODEL, "hi", **options)
        assert isinstance(self.client, AsyncClient)
        return self.runner.run(self.client.chat(MODEL, "hi", **options))

    def __enter__(self) -> Caller:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.runner is None:
            assert isinstance(self.client, Client)
            self.client.close()
        else:
            assert isinstance(self.client, AsyncClient)
            self.runner.run(self.client.aclose())
            self.runner.close()


@pytest.fixture
def two_limited_fakes() -> Iterator[tuple[FakeOpenRouter, FakeOpenRouter]]:
    """Two fake OpenRouter endpoints that answer 3 requests each, then 429 to anything more:
    a 429 reaching either would show in the attempts."""
    replies = [Step.reply("ok")] * 3
    with (
        FakeOpenRouter(*replies, default=Step.error(429, retry_after=60)) as first,
        FakeOpenRouter(*replies, default=Step.error(429, retry_after=60)) as second,
    ):
        yield first, second


# --- configuration ----------------------------------------------------------------------------


def test_two_deployments_of_one_provider_need_distinct_names(fake_openrouter: Any) -> None:
    url = fake_openrouter.base_url
    first = OpenRouterProvider(api_key=CANARY_KEY, base_url=url)
    second = OpenRouterProvider(api_key=OTHER_KEY, base_url=url)
    with pytest.raises(ConfigurationError, match=r"configured twice.*deployment=") as caught:
        Client([first, second])
    assert CANARY_KEY not in str(caught.value)
    assert OTHER_KEY not in str(caught.value)
    named = OpenRouterProvider(api_key=OTHER_KEY, base_url=url, deployment="team-b")
    with Client([first, named]) as client:
        assert list(client.providers) == ["openrouter", "team-b"]
        assert client.providers["team-b"].deployment == "team-b"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"deployment": ""}, "deployment="),
        ({"deployment": "has space"}, "deployment="),
        ({"deployment": "a:b"}, "deployment="),
        ({"deployment": 7}, "deployment="),
        ({"rpm": 0}, "rpm="),
        ({"rpm": True}, "rpm="),
        ({"rpm": 1.5}, "rpm="),
        ({"tpm": -1}, "tpm="),
        ({"weight": 0}, "weight="),
        ({"weight": math.inf}, "weight="),
        ({"weight": "2"}, "weight="),
    ],
)
def test_bad_deployment_settings_are_typed_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OpenRouterProvider(api_key=CANARY_KEY, base_url="http://127.0.0.1:9/api/v1", **options)
    with pytest.raises(ConfigurationError, match=message):
        OllamaProvider(host="http://127.0.0.1:9", **options)
    with pytest.raises(ConfigurationError, match=message):
        BedrockProvider(region="us-east-1", endpoint_url="http://127.0.0.1:9", **AWS_KEYS,
                        **options)  # fmt: skip


def test_a_deployment_may_not_take_another_providers_name(fake_openrouter: Any) -> None:
    confusing = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url,
                                   deployment="ollama")  # fmt: skip
    with pytest.raises(ConfigurationError, match="another provider's name"):
        Client([confusing, OllamaProvider(host="http://127.0.0.1:9")])


def test_unknown_names_in_a_calls_providers_are_typed_errors(fake_openrouter: Any) -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url,
                                  deployment="team-a")  # fmt: skip
    with Client([provider]) as client, pytest.raises(ConfigurationError, match="team-z"):
        client.chat(MODEL, "hi", providers=["team-z"])
    assert fake_openrouter.hits == 0


def test_repr_and_attempts_name_the_deployment_and_no_secret(fake_openrouter: Any) -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url,
                                  deployment="team-a", rpm=60, tpm=10_000, weight=2)  # fmt: skip
    text = repr(provider)
    assert "team-a" in text
    assert "rpm=60" in text
    assert "weight=2" in text
    assert CANARY_KEY not in text
    with Client([provider]) as client:
        reply = client.chat(MODEL, "hi")
        assert [a.deployment for a in reply.attempts] == ["team-a"]
        assert CANARY_KEY not in reply.model_dump_json()
        assert CANARY_KEY not in repr(client)
        assert CANARY_KEY not in repr(reply.attempts)


def test_one_deployment_reads_as_before(client: Client) -> None:
    reply = client.chat(MODEL, "hi")
    assert reply.attempts[0].deployment == "openrouter"
    assert set(client.health()) == {f"openrouter:{reply.provider_model_id}", "openrouter:*"}


# --- rate limits --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_keys_at_n_per_minute_serve_2n_calls_without_a_429(
    mode: str, two_limited_fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    first, second = two_limited_fakes
    clock = Clock()  # no time passes: all 2N calls fall in one minute
    providers = [
        OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url, deployment="key-a", rpm=3),
        OpenRouterProvider(api_key=OTHER_KEY, base_url=second.base_url, deployment="key-b", rpm=3),
    ]
    with Caller(mode, providers, retries=_policy(clock, attempts=3)) as caller:
        replies = [caller.ask() for _ in range(6)]
        # The 7th call in the same minute: both at their limit, no slot within its 10 s: a
        # typed error with the wait, and nothing sent.
        with pytest.raises(RateLimitError) as caught:
            caller.ask(timeout=10)
    assert all(r.text == "ok" for r in replies)
    assert (first.hits, second.hits) == (3, 3)  # 6 calls, 0 answered 429, 0 lost
    every = [attempt for reply in replies for attempt in reply.attempts]
    assert [a.outcome for a in every] == ["ok"] * 6
    assert [a.deployment for a in every] == ["key-a"] * 3 + ["key-b"] * 3
    # The keys went where they belong: each fake saw only its own.
    assert {r.headers["authorization"] for r in first.requests} == {f"Bearer {CANARY_KEY}"}
    assert {r.headers["authorization"] for r in second.requests} == {f"Bearer {OTHER_KEY}"}
    error = caught.value
    assert error.code == "local_rate_limit"
    assert error.status_code is None
    assert error.retry_after == pytest.approx(60.0)
    assert "3 requests/min" in str(error)
    assert "key-a" in str(error)
    assert CANARY_KEY not in str(error)
    assert OTHER_KEY not in str(error)
    assert (first.hits, second.hits) == (3, 3)
    assert clock.slept == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_last_deployment_at_its_limit_waits_for_a_slot_within_the_timeout(
    mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    clock = Clock()
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url, rpm=2)
    with Caller(mode, [provider], retries=_policy(clock)) as caller:
        caller.ask()
        clock.now += 15  # the second call 15 s later
        caller.ask()
        reply = caller.ask(timeout=90)  # the first leaves the window at t+60: wait 45 s
        assert clock.slept == [pytest.approx(45.0)]
        assert reply.text
        assert fake_openrouter.hits == 3
        reply = caller.ask(timeout=30)  # the second leaves 15 s later: that fits in 30 s
        assert clock.slept[-1] == pytest.approx(15.0)
        assert fake_openrouter.hits == 4
        with pytest.raises(RateLimitError, match=r"no slot frees in 45\.0 s"):
            caller.ask(timeout=30)
        assert fake_openrouter.hits == 4
        caller.ask()  # no timeout at all: it waits (at most the 60 s window)
        assert clock.slept[-1] == pytest.approx(45.0)
    assert fake_openrouter.hits == 5


def test_tokens_per_minute_count_the_estimate_then_the_real_usage(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_openrouter.script(Step.reply("ok", usage=(12, 3)), Step.reply("ok", usage=(12, 3)))
    clock = Clock()
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url,
                                  tpm=1000)  # fmt: skip
    limits = MemoryRateLimits(clock=clock)
    with Client([provider], retries=_policy(clock), rate_limits=limits) as client:
        client.chat(MODEL, "hi", max_tokens=600)
        # Counted at ~600 + the prompt while in flight; 15 once the answer said so. Without
        # the correction the second call (another ~600) would not fit in 1000.
        assert limits.usage("openrouter") == (1, 15)
        client.chat(MODEL, "hi", max_tokens=600)
        assert limits.usage("openrouter") == (2, 30)
        # A request larger than the whole limit can never be sent: said at once.
        with pytest.raises(RateLimitError, match="exceed 1000 tokens/min") as caught:
            client.chat(MODEL, "hi", max_tokens=2000)
        assert caught.value.retry_after is None
    assert fake_openrouter.hits == 2
    assert clock.slept == []


def test_a_deployment_at_its_limit_is_skipped_with_the_reason(fake_openrouter: Any) -> None:
    clock = Clock()
    url = fake_openrouter.base_url
    providers = [
        OpenRouterProvider(api_key=CANARY_KEY, base_url=url, deployment="small", rpm=1),
        OpenRouterProvider(api_key=OTHER_KEY, base_url=url, deployment="big"),
    ]
    with Client(providers, retries=_policy(clock)) as client:
        assert client.chat(MODEL, "hi").attempts[0].deployment == "small"
        second = client.chat(MODEL, "hi")
        assert second.attempts[0].deployment == "big"
        assert second.details["skipped"] == [
            f"openrouter:{second.provider_model_id}@small (rate limit: 1 requests/min reached)"
        ]
        assert client.chat(MODEL, "hi", providers=["small", "big"]).attempts[0].deployment == "big"
    assert fake_openrouter.hits == 3


def test_memory_rate_limits_slide_and_say_when_a_slot_frees() -> None:
    clock = Clock()
    limits = MemoryRateLimits(clock=clock)
    both = Limit(rpm=2, tpm=100)
    first = limits.acquire("a", both, 40)
    assert isinstance(first, Hold)
    clock.now += 10
    assert isinstance(limits.acquire("a", both, 40), Hold)
    refused = limits.acquire("a", both, 1)
    assert isinstance(refused, Refusal)
    assert refused.wait == pytest.approx(50.0)
    assert refused.reason == "rate limit: 2 requests/min reached"
    assert isinstance(limits.acquire("b", both, 1), Hold)  # another deployment: its own window
    clock.now += 50  # the first leaves the window
    tokens = limits.acquire("a", both, 70)
    assert isinstance(tokens, Refusal)
    assert tokens.reason == "rate limit: 100 tokens/min reached"
    assert tokens.wait == pytest.approx(10.0)  # when the second's 40 leave
    assert limits.usage("a") == (1, 40)
    limits.settle("a", first, 0)  # already out of the window: nothing to correct
    assert limits.usage("a") == (1, 40)
    held = limits.acquire("a", both, 20)
    assert isinstance(held, Hold)
    assert limits.usage("a") == (2, 60)
    limits.cancel("a", held)  # never sent
    assert limits.usage("a") == (1, 40)
    never = limits.acquire("a", Limit(None, 100), 101)
    assert isinstance(never, Refusal)
    assert never.wait == math.inf


def test_memory_rate_limits_are_exact_under_threads() -> None:
    limits = MemoryRateLimits()  # the real clock: 200 acquisitions take far less than 60 s
    granted: list[object] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        for _ in range(25):
            got = limits.acquire("a", Limit(rpm=50, tpm=None), 1)
            if isinstance(got, Hold):
                granted.append(got)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50
    assert limits.usage("a") == (50, 50)


# --- breakers per deployment ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_deployment_down_opens_its_own_breaker_and_the_other_serves(
    mode: str, fake_openrouter: FakeOpenRouter, refused_port: int
) -> None:
    down = OpenRouterProvider(api_key=CANARY_KEY, base_url=f"http://127.0.0.1:{refused_port}/v1",
                              deployment="down")  # fmt: skip
    up = OpenRouterProvider(api_key=OTHER_KEY, base_url=fake_openrouter.base_url,
                            deployment="up")  # fmt: skip
    events: list[Any] = []
    with Caller(mode, [down, up], retries=0, breaker=BreakerPolicy(failures=2),
                on_event=events.append) as caller:  # fmt: skip
        replies = [caller.ask() for _ in range(5)]
        health = caller.client.health()
    model_id = replies[0].provider_model_id
    fallbacks = [(e.from_route, e.to_route) for e in events if isinstance(e, FallbackTaken)]
    assert fallbacks == [(f"openrouter:{model_id}@down", f"openrouter:{model_id}@up")] * 2
    assert all(r.attempts[-1].deployment == "up" and r.text for r in replies)
    assert fake_openrouter.hits == 5
    # Two failures opened "down"; the later calls went straight to "up".
    assert [len(r.attempts) for r in replies] == [2, 2, 1, 1, 1]
    assert replies[0].attempts[0].deployment == "down"
    assert replies[0].attempts[0].error_type == "ProviderConnectionError"
    assert health[f"openrouter:{model_id}@down"]["state"] == "open"
    assert health["openrouter:*@down"]["state"] == "open"
    assert health[f"openrouter:{model_id}@up"]["state"] == "closed"
    assert health["openrouter:*@up"]["state"] == "closed"
    assert CANARY_KEY not in repr(health)
    assert CANARY_KEY not in repr(replies)


# --- spreading: least_busy and weighted ---------------------------------------------------------


def _two_slow_fakes() -> tuple[FakeOpenRouter, FakeOpenRouter]:
    slow = Step.reply("ok", delay=2.0)  # long enough that 4 calls overlap, however loaded
    return FakeOpenRouter(default=slow), FakeOpenRouter(default=slow)


def _wait_for(condition: Any, seconds: float = 10.0) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.005)


def test_least_busy_spreads_concurrent_calls_over_threads() -> None:
    first, second = _two_slow_fakes()
    with first, second:
        providers = [
            OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url, deployment="a"),
            OpenRouterProvider(api_key=OTHER_KEY, base_url=second.base_url, deployment="b"),
        ]
        with Client(providers, strategy="least_busy") as client:
            used: list[str] = []
            threads = []
            for started in range(1, 5):
                thread = threading.Thread(
                    target=lambda: used.append(client.chat(MODEL, "hi").attempts[0].deployment)
                )
                thread.start()
                threads.append(thread)
                # The next call starts once this one is in flight (the fakes have it).
                _wait_for(lambda n=started: first.hits + second.hits >= n)  # type: ignore[misc]
            for thread in threads:
                thread.join()
            assert sorted(used) == ["a", "a", "b", "b"]
            assert (first.hits, second.hits) == (2, 2)
            # With nothing in flight, the order is the configured one.
            assert client.chat(MODEL, "hi").attempts[0].deployment == "a"


async def test_least_busy_spreads_concurrent_async_calls() -> None:
    first, second = _two_slow_fakes()
    with first, second:
        providers = [
            OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url, deployment="a"),
            OpenRouterProvider(api_key=OTHER_KEY, base_url=second.base_url, deployment="b"),
        ]
        async with AsyncClient(providers, strategy="least_busy") as client:
            tasks = []
            for started in range(1, 5):
                tasks.append(asyncio.create_task(client.chat(MODEL, "hi")))
                while first.hits + second.hits < started:
                    await asyncio.sleep(0.005)
            replies = await asyncio.gather(*tasks)
        assert sorted(r.attempts[0].deployment for r in replies) == ["a", "a", "b", "b"]
        assert (first.hits, second.hits) == (2, 2)


def test_weighted_orders_candidates_in_proportion_to_weight() -> None:
    heavy = OpenRouterProvider(api_key=CANARY_KEY, base_url="http://127.0.0.1:9/v1",
                               deployment="heavy", weight=3)  # fmt: skip
    light = OpenRouterProvider(api_key=OTHER_KEY, base_url="http://127.0.0.1:9/v1",
                               deployment="light")  # fmt: skip
    from llamaroute.catalog import default_catalog

    route = default_catalog().resolve(MODEL).routes[-1]
    candidates = [candidate(route, light), candidate(route, heavy)]
    rng = random.Random(19)
    firsts = [
        apply_strategy(
            "weighted",
            None,
            candidates,
            LatencyStats(),
            shape=lambda: None,  # type: ignore[arg-type]
            catalog=default_catalog(),
            rng=rng,
        )[0].deployment
        for _ in range(4000)
    ]
    share = firsts.count("heavy") / len(firsts)
    assert 0.72 < share < 0.78  # 3 / (3 + 1), seeded
    assert {c.key for c in candidates} == {f"{route.pinned}@light", f"{route.pinned}@heavy"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_weighted_spreads_calls_by_weight(mode: str) -> None:
    with FakeOpenRouter() as first, FakeOpenRouter() as second:
        providers = [
            OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url, deployment="a",
                               weight=1),
            OpenRouterProvider(api_key=OTHER_KEY, base_url=second.base_url, deployment="b",
                               weight=4),
        ]  # fmt: skip
        with Caller(mode, providers, strategy="weighted", rng=random.Random(5)) as caller:
            for _ in range(100):
                caller.ask()
        assert first.hits + second.hits == 100
        assert 65 <= second.hits <= 95  # 80 expected, seeded


# --- Ollama hosts and Bedrock regions -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_ollama_hosts_in_one_client(mode: str, refused_port: int) -> None:
    with FakeOllama() as gpu1, FakeOllama() as gpu2:
        providers = [
            OllamaProvider(host=gpu1.url, deployment="gpu-1"),
            OllamaProvider(host=gpu2.url, deployment="gpu-2"),
        ]
        with Caller(mode, providers) as caller:
            assert caller.ask().attempts[0].deployment == "gpu-1"
            assert caller.ask(providers=["gpu-2"]).attempts[0].deployment == "gpu-2"
            both = caller.ask(providers=["ollama"])  # the provider: each host, in order
            assert both.attempts[0].deployment == "gpu-1"
        assert (gpu1.hits, gpu2.hits) == (2, 1)
    # One host down: the other serves.
    with FakeOllama() as gpu2:
        providers = [
            OllamaProvider(host=f"http://127.0.0.1:{refused_port}", deployment="gpu-1"),
            OllamaProvider(host=gpu2.url, deployment="gpu-2"),
        ]
        with Caller(mode, providers, retries=0) as caller:
            reply = caller.ask()
        assert [a.deployment for a in reply.attempts] == ["gpu-1", "gpu-2"]
        assert reply.attempts[-1].outcome == "ok"
        assert gpu2.hits == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_bedrock_in_two_regions_is_priced_per_region(mode: str) -> None:
    with FakeBedrock(default=Step.reply("hi", usage=(1_000_000, 1_000_000))) as fake:
        providers = [
            BedrockProvider(region="eu-west-1", endpoint_url=fake.url, deployment="eu-west",
                            **AWS_KEYS),
            BedrockProvider(region="eu-central-1", endpoint_url=fake.url,
                            deployment="eu-central", **AWS_KEYS),
        ]  # fmt: skip
        with Caller(mode, providers) as caller:
            west = caller.ask(providers=["eu-west"])
            central = caller.ask(providers=["eu-central"])
            spent = caller.client.spend.total
        assert west.provider_model_id == central.provider_model_id  # one route, two regions
        assert west.attempts[0].deployment == "eu-west"
        assert central.attempts[0].deployment == "eu-central"
        # 1M tokens in and out at the catalog's regional prices: 0.17 and 0.19 USD per MTok.
        assert west.cost is not None
        assert central.cost is not None
        assert west.cost.total == Decimal("0.34")
        assert central.cost.total == Decimal("0.38")
        assert spent == Decimal("0.72")
        assert fake.hits == 2


def test_cheapest_prices_each_bedrock_region_for_itself() -> None:
    with FakeBedrock() as fake:
        providers = [
            BedrockProvider(region="eu-central-1", endpoint_url=fake.url,
                            deployment="eu-central", **AWS_KEYS),
            BedrockProvider(region="eu-west-1", endpoint_url=fake.url, deployment="eu-west",
                            **AWS_KEYS),
        ]  # fmt: skip
        with Client(providers) as client:
            # eu-west-1 bills the eu. profile at 0.17 USD/MTok, eu-central-1 at 0.19.
            assert client.chat(MODEL, "hi").attempts[0].deployment == "eu-central"
            cheap = client.chat(MODEL, "hi", strategy="cheapest")
            assert cheap.attempts[0].deployment == "eu-west"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streams_take_the_next_deployment_at_the_limit(mode: str) -> None:
    with FakeOpenRouter() as first, FakeOpenRouter() as second:
        clock = Clock()
        providers = [
            OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url, deployment="a",
                               rpm=1),
            OpenRouterProvider(api_key=OTHER_KEY, base_url=second.base_url, deployment="b",
                               rpm=1),
        ]  # fmt: skip

        async def read_async(client: AsyncClient) -> list[str | None]:
            used = []
            for _ in range(2):
                async with client.stream(MODEL, "hi") as stream:
                    text = "".join([chunk.text async for chunk in stream])
                    assert text
                used.append(stream.response.attempts[-1].deployment)
            with pytest.raises(RateLimitError):
                async with client.stream(MODEL, "hi", timeout=5) as stream:
                    [chunk async for chunk in stream]
            return used

        with Caller(mode, providers, retries=_policy(clock)) as caller:
            if isinstance(caller.client, Client):
                used: list[str | None] = []
                for _ in range(2):
                    with caller.client.stream(MODEL, "hi") as stream:
                        assert "".join(chunk.text for chunk in stream)
                    used.append(stream.response.attempts[-1].deployment)
                with (
                    pytest.raises(RateLimitError),
                    caller.client.stream(MODEL, "hi", timeout=5) as stream,
                ):
                    list(stream)
            else:
                assert caller.runner is not None
                used = caller.runner.run(read_async(caller.client))
        assert used == ["a", "b"]
        assert (first.hits, second.hits) == (1, 1)


def test_estimate_prices_the_deployments_a_call_would_use() -> None:
    providers = [
        BedrockProvider(region="eu-west-1", deployment="eu-west", **AWS_KEYS),
        BedrockProvider(region="eu-central-1", deployment="eu-central", **AWS_KEYS),
    ]
    with Client(providers) as client:
        [west] = client.estimate(MODEL, "hello there", providers=["eu-west"])
        [central] = client.estimate(MODEL, "hello there", providers=["eu-central"])
        [both] = client.estimate(MODEL, "hello there")  # one route: the first region's price
    assert west.expected is not None
    assert central.expected is not None
    assert float(central.expected / west.expected) == pytest.approx(19 / 17)
    assert both.expected == west.expected
