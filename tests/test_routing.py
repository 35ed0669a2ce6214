"""Retries, fallback, circuit breakers and deadlines through the client, over real sockets.

Routing is provider-agnostic, so these tests use two fake OpenRouter servers: the second is
reached through ``SecondProvider``, a test double that registers OpenRouter's wire code under
the ``ollama`` name (so the catalog's Ollama routes go to it). The chaos suite runs the three
real providers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    BreakerPolicy,
    Client,
    DeadlineExceededError,
    ProviderConnectionError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    StreamInterruptedError,
)
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY, Clock


class SecondProvider(OpenRouterProvider):
    """Test double: the OpenRouter wire code under another provider's name."""

    name: ClassVar[str] = "ollama"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenRouter, FakeOpenRouter]]:
    with FakeOpenRouter() as first, FakeOpenRouter(default=Step.reply("from second")) as second:
        yield first, second


def policy(clock: Clock, attempts: int = 3, **options: object) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=clock.sleep, async_sleep=clock.async_sleep,
                       clock=clock, rng=random.Random(3), **options)  # type: ignore[arg-type]  # fmt: skip


def make_client(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock, **options: object
) -> Client:
    first, second = fakes
    providers = [
        OpenRouterProvider(api_key=CANARY_KEY, base_url=first.base_url),
        SecondProvider(api_key=CANARY_KEY, base_url=second.base_url),
    ]
    options.setdefault("retries", policy(clock))
    return Client(providers=providers, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock) -> Iterator[Client]:
    with make_client(fakes, clock) as client:
        yield client


# --- retries and fallback ---------------------------------------------------------------------


def test_server_errors_are_retried_then_fall_back_with_exact_counts(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    first, second = fakes
    first.script(*[Step.error(503)] * 3)
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.text == "from second"
    assert reply.provider == "ollama"
    assert (first.hits, second.hits) == (3, 1)  # the configured attempts, no hidden retries
    assert [(a.provider, a.outcome, a.status_code) for a in reply.attempts] == [
        ("openrouter", "error", 503), ("openrouter", "error", 503), ("openrouter", "error", 503),
        ("ollama", "ok", None),
    ]  # fmt: skip
    assert len(clock.slept) == 2  # two backoffs between three attempts, none before fallback


def test_retry_after_is_honoured_exactly(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    fakes[0].script(Step.error(429, retry_after=4), Step.error(503, retry_after="1.5"))
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.provider == "openrouter"
    assert clock.slept == [4.0, 1.5]
    assert [a.retry_after for a in reply.attempts] == [4.0, 1.5, None]


def test_a_hint_over_the_cap_fails_over_now(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    fakes[0].script(Step.error(429, retry_after=120))
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.provider == "ollama"
    assert clock.slept == []
    assert fakes[0].hits == 1


@pytest.mark.parametrize("status", [400, 413, 422])
def test_bad_requests_neither_retry_nor_fall_back(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter], status: int
) -> None:
    fakes[0].script(Step.error(status, "invalid_request"))
    with pytest.raises(BadRequestError):
        client.chat("llama-3.2-3b", "hi")
    assert (fakes[0].hits, fakes[1].hits) == (1, 0)


@pytest.mark.parametrize("status", [401, 402, 403])
def test_account_problems_fall_back_without_retry_and_warn(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter], status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="llamaroute")
    fakes[0].script(Step.error(status))
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.provider == "ollama"
    assert fakes[0].hits == 1
    assert any("falling back" in record.getMessage() for record in caplog.records)


def test_model_not_available_falls_back(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    fakes[0].script(Step.error(404, "no_endpoints"))
    assert client.chat("llama-3.2-3b", "hi").provider == "ollama"
    assert fakes[0].hits == 1


def test_refused_port_falls_back_at_once(fakes: tuple[FakeOpenRouter, FakeOpenRouter],
                                         clock: Clock) -> None:  # fmt: skip
    dead = FakeOpenRouter().start()
    url = dead.base_url
    dead.stop()  # nothing listens there now
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=url),
                 SecondProvider(api_key=CANARY_KEY, base_url=fakes[1].base_url)]  # fmt: skip
    with Client(providers=providers, retries=policy(clock)) as client:
        started = time.perf_counter()
        reply = client.chat("llama-3.2-3b", "hi")
        elapsed = time.perf_counter() - started
    assert reply.provider == "ollama"
    assert [a.error_type for a in reply.attempts] == ["ProviderConnectionError", None]
    assert clock.slept == []
    assert elapsed < 1.0


def test_every_route_failing_raises_one_group_listing_every_attempt(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    fakes[0].script(*[Step.error(503)] * 3)
    fakes[1].script(Step.error(429), Step.error(429), Step.error(401))
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat("llama-3.2-3b", "hi")
    group = caught.value
    assert [type(e) for e in group.exceptions] == [ServerError] * 3 + [
        RateLimitError, RateLimitError, AuthenticationError
    ]  # fmt: skip
    assert [(a.provider, a.status_code) for a in group.attempts] == [
        ("openrouter", 503), ("openrouter", 503), ("openrouter", 503),
        ("ollama", 429), ("ollama", 429), ("ollama", 401),
    ]  # fmt: skip
    assert all(a.elapsed_s > 0 for a in group.attempts)
    assert "6 attempt(s) failed" in str(group)


def test_per_call_provider_order_and_retries(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    reply = client.chat("llama-3.2-3b", "hi", providers=["ollama", "openrouter"])
    assert reply.provider == "ollama"
    fakes[1].script(Step.error(503))
    reply = client.chat("llama-3.2-3b", "hi", providers=["ollama", "openrouter"], retries=0)
    assert reply.provider == "openrouter"


def test_fallback_can_be_turned_off_or_customised(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    with make_client(fakes, clock, fallback=False) as client:
        fakes[0].script(*[Step.error(503)] * 3)
        with pytest.raises(ServerError):
            client.chat("llama-3.2-3b", "hi")
    only_connection = lambda error: isinstance(error, ProviderConnectionError)  # noqa: E731
    with make_client(fakes, clock, fallback=only_connection) as client:
        fakes[0].script(*[Step.error(503)] * 3)
        with pytest.raises(ServerError):
            client.chat("llama-3.2-3b", "hi")
    assert fakes[1].hits == 0


# --- streams ----------------------------------------------------------------------------------


def test_stream_falls_back_before_the_first_chunk(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    fakes[0].script(*[Step(chunks=("x",), error_after=0)] * 3)
    response = client.stream("llama-3.2-3b", "hi").read()
    assert response.text == "from second"
    assert [a.outcome for a in response.attempts] == ["error", "error", "error", "ok"]


def test_stream_never_splices_after_the_first_chunk(
    client: Client, fakes: tuple[FakeOpenRouter, FakeOpenRouter]
) -> None:
    fakes[0].script(Step(chunks=("The", " answer"), drop_after=1))
    with pytest.raises(StreamInterruptedError) as caught:
        client.stream("llama-3.2-3b", "hi").read()
    assert caught.value.partial_text == "The"
    assert fakes[1].hits == 0
    assert caught.value.attempts[-1].partial


# --- circuit breakers -------------------------------------------------------------------------


def test_breaker_opens_skips_then_probes_once(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    first = fakes[0]
    with make_client(fakes, clock, retries=policy(clock, attempts=1),
                     breaker=BreakerPolicy(failures=3, cooldown=30)) as client:  # fmt: skip
        first.script(*[Step.error(500)] * 3)
        for _ in range(3):
            assert client.chat("llama-3.2-3b", "hi").provider == "ollama"
        assert first.hits == 3
        for _ in range(5):  # open: no request reaches the first provider
            reply = client.chat("llama-3.2-3b", "hi")
            assert reply.provider == "ollama"
            assert len(reply.attempts) == 1
        assert first.hits == 3
        assert client.health()["openrouter:meta-llama/llama-3.2-3b-instruct"]["state"] == "open"
        clock.now += 30  # the cooldown passes: exactly one probe, which succeeds
        assert client.chat("llama-3.2-3b", "hi").provider == "openrouter"
        assert first.hits == 4
        assert client.health()["openrouter:meta-llama/llama-3.2-3b-instruct"]["state"] == "closed"


def test_request_errors_do_not_open_breakers(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    with make_client(fakes, clock, breaker=BreakerPolicy(failures=2)) as client:
        for _ in range(4):
            fakes[0].script(Step.error(400))
            with pytest.raises(BadRequestError):
                client.chat("llama-3.2-3b", "hi")
        assert client.chat("llama-3.2-3b", "hi").provider == "openrouter"


def test_when_every_breaker_is_open_the_oldest_failure_is_tried(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    first, second = fakes
    with make_client(fakes, clock, retries=policy(clock, attempts=1),
                     breaker=BreakerPolicy(failures=1, cooldown=60)) as client:  # fmt: skip
        first.script(Step.error(500))
        second.script(Step.error(500))
        with pytest.raises(AllProvidersFailedError):
            client.chat("llama-3.2-3b", "hi")  # first fails at t=100, second right after
        clock.now += 1
        first.script(Step.error(500))
        with pytest.raises(AllProvidersFailedError, match="every route's circuit breaker"):
            client.chat("llama-3.2-3b", "hi")
        assert (first.hits, second.hits) == (2, 1)  # the oldest failure was tried, and only it
        reply = client.chat("llama-3.2-3b", "hi")
        assert reply.provider == "ollama"
        assert reply.details["all_breakers_open"] is True


# --- deadlines --------------------------------------------------------------------------------


@pytest.fixture
def real_time_fakes() -> Iterator[tuple[FakeOpenRouter, FakeOpenRouter]]:
    with FakeOpenRouter(default=Step(delay=5)) as slow, FakeOpenRouter(
        default=Step.reply("fast fallback")
    ) as fast:  # fmt: skip
        yield slow, fast


def real_time_client(fakes: tuple[FakeOpenRouter, FakeOpenRouter], **options: object) -> Client:
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=fakes[0].base_url),
                 SecondProvider(api_key=CANARY_KEY, base_url=fakes[1].base_url)]  # fmt: skip
    return Client(providers=providers, **options)  # type: ignore[arg-type]


def test_a_hanging_provider_leaves_time_for_the_fallback(
    real_time_fakes: tuple[FakeOpenRouter, FakeOpenRouter],
) -> None:
    with real_time_client(real_time_fakes) as client:
        started = time.perf_counter()
        reply = client.chat("llama-3.2-3b", "hi", timeout=2)
        elapsed = time.perf_counter() - started
    assert reply.text == "fast fallback"
    assert elapsed < 2.25
    assert reply.attempts[0].error_type == "ProviderTimeoutError"


def test_nothing_answers_in_time(real_time_fakes: tuple[FakeOpenRouter, FakeOpenRouter]) -> None:
    real_time_fakes[1].default = Step(delay=5)
    with real_time_client(real_time_fakes) as client:
        started = time.perf_counter()
        with pytest.raises(DeadlineExceededError) as caught:
            client.chat("llama-3.2-3b", "hi", timeout=1)
        elapsed = time.perf_counter() - started
    assert elapsed < 1.25
    assert [a.provider for a in caught.value.attempts] == ["openrouter", "ollama"]
    assert "1 s timeout ran out" in str(caught.value)


def test_no_backoff_sleep_runs_past_the_deadline(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    with make_client(fakes, clock) as client:
        fakes[0].script(Step.error(429, retry_after=5))
        reply = client.chat("llama-3.2-3b", "hi", timeout=3)
    assert clock.slept == []
    assert reply.provider == "ollama"


# --- async ------------------------------------------------------------------------------------


@pytest.fixture
async def aclient(
    fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> AsyncIterator[AsyncClient]:
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=fakes[0].base_url),
                 SecondProvider(api_key=CANARY_KEY, base_url=fakes[1].base_url)]  # fmt: skip
    async with AsyncClient(providers=providers, retries=policy(clock)) as client:
        yield client


async def test_async_retry_and_fallback_match_sync(
    aclient: AsyncClient, fakes: tuple[FakeOpenRouter, FakeOpenRouter], clock: Clock
) -> None:
    fakes[0].script(Step.error(429, retry_after=2), Step.error(503), Step.error(503))
    reply = await aclient.chat("llama-3.2-3b", "hi")
    assert reply.provider == "ollama"
    assert (fakes[0].hits, fakes[1].hits) == (3, 1)
    assert clock.slept[0] == 2.0
    fakes[0].script(*[Step(chunks=("x",), error_after=0)] * 3)
    async with aclient.stream("llama-3.2-3b", "hi") as stream:
        text = "".join([chunk.text async for chunk in stream])
    assert text == "from second"


async def test_async_deadline_is_a_hard_bound(
    real_time_fakes: tuple[FakeOpenRouter, FakeOpenRouter],
) -> None:
    slow, fast = real_time_fakes
    providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=slow.base_url),
                 SecondProvider(api_key=CANARY_KEY, base_url=fast.base_url)]  # fmt: skip
    async with AsyncClient(providers=providers) as client:
        started = time.perf_counter()
        reply = await client.chat("llama-3.2-3b", "hi", timeout=2)
        elapsed = time.perf_counter() - started
    assert reply.text == "fast fallback"
    assert elapsed < 2.25
