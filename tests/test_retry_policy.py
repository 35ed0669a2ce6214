"""The retry policy on its own: what is retried, how long it waits, hints, caps, deadlines."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Callable, Iterator

import pytest

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ProviderConnectionError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)

from .conftest import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def policy(clock: Clock, **options: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, async_sleep=clock.async_sleep, clock=clock,
                       rng=random.Random(7), **options)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture(params=["attempt_loop", "retrying"])
def loop(request: pytest.FixtureRequest) -> str:
    # The clients use attempt_loop() (a bare first attempt, then tenacity's loop seeded with its
    # failure); retrying() is tenacity's loop from the start. Both must follow every rule.
    return str(request.param)


def run(
    policy: RetryPolicy,
    errors: Iterator[Exception],
    deadline: float | None = None,
    loop: str = "attempt_loop",
    before_sleep: Callable[[BaseException, float], None] | None = None,
) -> int:
    calls = 0
    for attempt in getattr(policy, loop)(deadline, None, before_sleep):
        with attempt:
            calls += 1
            error = next(errors, None)
            if error is not None:
                raise error
    return calls


def test_retryable_errors_are_retried_up_to_the_budget(clock: Clock, loop: str) -> None:
    retry = policy(clock, attempts=3)
    assert run(retry, iter([ServerError("a"), ServerError("b")]), loop=loop) == 3
    with pytest.raises(ServerError, match="c"):
        run(
            retry,
            iter([ServerError("a"), ServerError("b"), ServerError("c"), ServerError("d")]),
            loop=loop,
        )
    assert len(clock.slept) == 4  # two waits per run, none after the last attempt


@pytest.mark.parametrize(
    "error",
    [BadRequestError("no"), AuthenticationError("key"),
     ProviderConnectionError("refused", retryable=False), ValueError("a bug")],
)  # fmt: skip
def test_non_retryable_errors_stop_at_once(clock: Clock, error: Exception, loop: str) -> None:
    with pytest.raises(type(error)):
        run(policy(clock, attempts=5), iter([error]), loop=loop)
    assert clock.slept == []


def test_retry_after_hint_is_slept_exactly(clock: Clock, loop: str) -> None:
    run(policy(clock), iter([RateLimitError("slow", retry_after=2.5)]), loop=loop)
    assert clock.slept == [2.5]


def test_a_hint_over_the_cap_fails_over_without_sleeping(clock: Clock, loop: str) -> None:
    with pytest.raises(RateLimitError):
        run(
            policy(clock, max_retry_after=20),
            iter([RateLimitError("slow", retry_after=120)]),
            loop=loop,
        )
    assert clock.slept == []


def test_no_sleep_that_would_end_after_the_deadline(clock: Clock, loop: str) -> None:
    with pytest.raises(RateLimitError):
        run(
            policy(clock),
            iter([RateLimitError("slow", retry_after=5)]),
            deadline=clock() + 3,
            loop=loop,
        )
    assert clock.slept == []
    with pytest.raises(ServerError):
        run(policy(clock, base_delay=100, max_delay=100, attempts=10),
            iter([ServerError("x")] * 10), deadline=clock() + 0.001, loop=loop)  # fmt: skip
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


async def test_the_async_loop_follows_the_same_rules(clock: Clock, loop: str) -> None:
    retry = policy(clock, attempts=3)
    errors = iter([RateLimitError("slow", retry_after=1.5), ServerError("x")])
    calls = 0
    attempts = retry.async_attempt_loop() if loop == "attempt_loop" else retry.async_retrying()
    async for attempt in attempts:
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


def test_a_first_attempt_that_succeeds_builds_no_tenacity_loop(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    original = RetryPolicy.retrying

    def spy(self: RetryPolicy, *args: object, **options: object) -> object:
        built.append("loop")
        return original(self, *args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(RetryPolicy, "retrying", spy)
    assert run(policy(clock), iter([])) == 1
    assert built == []
    assert run(policy(clock), iter([ServerError("once")])) == 2
    assert built == ["loop"]


async def test_the_async_attempts_stop_after_a_first_success(clock: Clock) -> None:
    calls = 0
    async for attempt in policy(clock).async_attempt_loop():
        with attempt:
            calls += 1
    assert calls == 1
    assert clock.slept == []


def test_waits_and_before_sleep_count_the_bare_first_attempt(clock: Clock) -> None:
    # The seeded loop numbers the bare attempt 1: the first retry's backoff ceiling is
    # base_delay, the second's twice that, and before_sleep hears each failure once.
    seen: list[tuple[str, float]] = []
    retry = policy(clock, attempts=3, base_delay=1.0, max_delay=100.0)
    errors = iter([ServerError("a"), ServerError("b")])
    calls = run(retry, errors, before_sleep=lambda error, wait: seen.append((str(error), wait)))
    assert calls == 3
    assert [message for message, _ in seen] == ["a", "b"]
    assert [wait for _, wait in seen] == clock.slept
    same = RetryPolicy(base_delay=1.0, max_delay=100.0, rng=random.Random(7))
    assert clock.slept == [same.backoff(1), same.backoff(2)]
