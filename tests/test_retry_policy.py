"""The retry policy on its own: what is retried, how long it waits, hints, caps, deadlines."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterator

import pytest

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from llamaroute._retry import RetryPolicy

from .conftest import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def policy(clock: Clock, **options: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, async_sleep=clock.async_sleep, clock=clock,
                       rng=random.Random(7), **options)  # type: ignore[arg-type]  # fmt: skip


def run(policy: RetryPolicy, errors: Iterator[Exception], deadline: float | None = None) -> int:
    calls = 0
    for attempt in policy.retrying(deadline):
        with attempt:
            calls += 1
            error = next(errors, None)
            if error is not None:
                raise error
    return calls


def test_retryable_errors_are_retried_up_to_the_budget(clock: Clock) -> None:
    retry = policy(clock, attempts=3)
    assert run(retry, iter([ServerError("a"), ServerError("b")])) == 3
    with pytest.raises(ServerError, match="c"):
        run(retry, iter([ServerError("a"), ServerError("b"), ServerError("c"), ServerError("d")]))
    assert len(clock.slept) == 4  # two waits per run, none after the last attempt


@pytest.mark.parametrize(
    "error",
    [BadRequestError("no"), AuthenticationError("key"),
     ProviderConnectionError("refused", retryable=False), ValueError("a bug")],
)  # fmt: skip
def test_non_retryable_errors_stop_at_once(clock: Clock, error: Exception) -> None:
    with pytest.raises(type(error)):
        run(policy(clock, attempts=5), iter([error]))
    assert clock.slept == []


def test_retry_after_hint_is_slept_exactly(clock: Clock) -> None:
    run(policy(clock), iter([RateLimitError("slow", retry_after=2.5)]))
    assert clock.slept == [2.5]


def test_a_hint_over_the_cap_fails_over_without_sleeping(clock: Clock) -> None:
    with pytest.raises(RateLimitError):
        run(policy(clock, max_retry_after=20), iter([RateLimitError("slow", retry_after=120)]))
    assert clock.slept == []


def test_no_sleep_that_would_end_after_the_deadline(clock: Clock) -> None:
    with pytest.raises(RateLimitError):
        run(policy(clock), iter([RateLimitError("slow", retry_after=5)]), deadline=clock() + 3)
    assert clock.slept == []
    with pytest.raises(ServerError):
        run(policy(clock, base_delay=100, max_delay=100, attempts=10),
            iter([ServerError("x")] * 10), deadline=clock() + 0.001)  # fmt: skip
    assert clock.slept == []


def test_backoff_is_capped_full_jitter() -> None:
    retry = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    for number in (1, 2, 3, 4, 8):
        samples = [retry.backoff(number) for _ in range(10_000)]
        ceiling = min(4.0, 0.5 * 2 ** (number - 1))
        assert max(samples) <= ceiling
        assert min(samples) >= 0
        # Full jitter: uniform on [0, ceiling], so the mean is near half the ceiling.
        assert statistics.fmean(samples) == pytest.approx(ceiling / 2, rel=0.05)
        assert all(a != b for a, b in itertools.pairwise(samples))


async def test_the_async_loop_follows_the_same_rules(clock: Clock) -> None:
    retry = policy(clock, attempts=3)
    errors = iter([RateLimitError("slow", retry_after=1.5), ServerError("x")])
    calls = 0
    async for attempt in retry.async_retrying():
        with attempt:
            calls += 1
            error = next(errors, None)
            if error is not None:
                raise error
    assert calls == 3
    assert clock.slept[0] == 1.5
    assert len(clock.slept) == 2


def test_coerce_from_retries_argument(clock: Clock) -> None:
    default = policy(clock, attempts=3)
    assert RetryPolicy.coerce(None, default) is default
    assert RetryPolicy.coerce(0, default).attempts == 1
    assert RetryPolicy.coerce(4, default).attempts == 5
    assert RetryPolicy.coerce(4, default).sleep == default.sleep
    for bad in (-1, True, 1.5, "2"):
        with pytest.raises(ConfigurationError):
            RetryPolicy.coerce(bad, default)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=0)
