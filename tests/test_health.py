"""Circuit breakers on their own: open after K failures, cooldown, one half-open probe."""

from __future__ import annotations

import threading

import pytest

from llamaroute import (
    BadRequestError,
    BreakerPolicy,
    ProviderConnectionError,
    ServerError,
    get_model,
)
from llamaroute.routing import Health

ROUTE = get_model("llama-3.2-3b").route("openrouter")
OTHER = get_model("llama-3.2-1b").route("openrouter")
LOCAL = get_model("llama-3.2-3b").route("ollama")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(BreakerPolicy(failures=3, cooldown=30), clock=clock)


def test_opens_after_k_consecutive_failures_and_probes_once(health: Health, clock: Clock) -> None:
    for _ in range(2):
        assert health.admit(ROUTE)
        health.record(ROUTE, ServerError("boom"))
    assert health.admit(ROUTE)
    health.record(ROUTE, ServerError("boom"))
    assert not health.admit(ROUTE)
    assert health.open_routes([ROUTE, OTHER]) == [ROUTE]
    clock.now += 29.9
    assert not health.admit(ROUTE)
    clock.now += 0.2
    assert health.admit(ROUTE)  # the one half-open probe
    assert not health.admit(ROUTE)  # nobody else while it is out
    health.record(ROUTE, None)
    assert health.admit(ROUTE)
    assert health.snapshot()[ROUTE.pinned]["state"] == "closed"


def test_a_failed_probe_reopens_for_another_cooldown(health: Health, clock: Clock) -> None:
    for _ in range(3):
        health.record(ROUTE, ServerError("boom"))
    clock.now += 30
    assert health.admit(ROUTE)
    health.record(ROUTE, ServerError("still down"))
    assert not health.admit(ROUTE)
    clock.now += 30
    assert health.admit(ROUTE)
    assert health.snapshot()[ROUTE.pinned]["times_opened"] == 2


def test_success_resets_the_count(health: Health) -> None:
    for _ in range(2):
        health.record(ROUTE, ServerError("boom"))
    health.record(ROUTE, None)
    for _ in range(2):
        health.record(ROUTE, ServerError("boom"))
    assert health.admit(ROUTE)


def test_request_errors_do_not_count(health: Health) -> None:
    for _ in range(10):
        health.record(ROUTE, BadRequestError("your fault"))
    assert health.admit(ROUTE)
    assert health.open_routes([ROUTE]) == []


def test_connection_failures_open_the_whole_provider(health: Health) -> None:
    for _ in range(3):
        health.record(ROUTE, ProviderConnectionError("refused"))
    assert not health.admit(OTHER)  # another model on the same provider
    assert health.admit(LOCAL)  # another provider
    assert health.snapshot()["openrouter:*"]["state"] == "open"


def test_model_failures_open_only_that_route(health: Health) -> None:
    for _ in range(3):
        health.record(ROUTE, ServerError("model broken"))
    assert not health.admit(ROUTE)
    assert health.admit(OTHER)


def test_released_probe_is_available_again(health: Health, clock: Clock) -> None:
    for _ in range(3):
        health.record(ROUTE, ServerError("boom"))
    clock.now += 30
    assert health.admit(ROUTE)
    health.release(ROUTE)
    assert health.admit(ROUTE)


def test_longest_failed_picks_the_oldest_failure(health: Health, clock: Clock) -> None:
    health.record(OTHER, ServerError("x"))
    clock.now += 5
    health.record(ROUTE, ServerError("x"))
    assert health.longest_failed([ROUTE, OTHER]) == OTHER


def test_disabled_breakers_admit_everything(clock: Clock) -> None:
    health = Health(BreakerPolicy(failures=0), clock=clock)
    for _ in range(10):
        health.record(ROUTE, ServerError("x"))
    assert health.admit(ROUTE)


def test_thread_safety_opens_once_with_consistent_counts(clock: Clock) -> None:
    health = Health(BreakerPolicy(failures=3, cooldown=30), clock=clock)
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                if health.admit(ROUTE):
                    health.record(ROUTE, ServerError("down"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = health.snapshot()[ROUTE.pinned]
    assert errors == []
    assert state["state"] == "open"
    assert state["times_opened"] == 1
    assert state["consecutive_failures"] == 3


def test_a_healthy_client_skips_the_bookkeeping_and_still_lists_its_routes(
    health: Health, clock: Clock
) -> None:
    # While every breaker is closed, admit and open_routes take a lock-free fast path (a
    # failure on record does not leave it: only an open breaker does); it must come back after
    # a route recovers, and never hide a route from snapshot().
    assert health.admit(ROUTE)
    health.record(ROUTE, None)
    assert set(health.snapshot()) == {ROUTE.pinned, "openrouter:*"}
    assert health._troubled == set()
    health.record(LOCAL, ServerError("boom"))
    assert health._troubled == set()
    health.record(ROUTE, None)  # another route's success does not clear LOCAL's count
    assert health.snapshot()[LOCAL.pinned]["consecutive_failures"] == 1
    health.record(LOCAL, None)
    assert health._troubled == set()
    assert health.snapshot()[LOCAL.pinned]["consecutive_failures"] == 0
    for _ in range(3):
        health.record(ROUTE, ProviderConnectionError("down"))
    # A connection failure opens the provider's breaker too: its other routes wait as well.
    assert health.open_routes([ROUTE, OTHER, LOCAL]) == [ROUTE, OTHER]
    assert not health.admit(OTHER)
    clock.now += 30
    assert health.admit(ROUTE)
    health.record(ROUTE, None)
    assert health._troubled == set()
    assert health.open_routes([ROUTE, OTHER]) == []
