"""What llamaroute relies on in tenacity (``pyproject.toml``: ``tenacity>=9.0``), pinned.

``RetryPolicy`` drives tenacity only through its documented API: ``Retrying`` and
``AsyncRetrying`` built with ``retry``/``stop``/``wait``/``sleep``/``reraise``/``before_sleep``,
iterated, each attempt a ``with attempt:`` block (the client's driver enters and exits the
attempt itself, across a ``yield``); callbacks read ``RetryCallState.attempt_number``,
``.outcome`` and ``.next_action.sleep``, and the policy notes its per-attempt decision on the
state. A tenacity release that changes any of this fails here, by name, before the retry tests
fail in a less obvious way.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import tenacity

from llamaroute import RetryPolicy, ServerError


def test_the_names_llamaroute_uses_are_public() -> None:
    for name in ("Retrying", "AsyncRetrying", "AttemptManager", "RetryCallState"):
        assert name in tenacity.__all__ or hasattr(tenacity, name), name
    assert callable(tenacity.retry_if_exception)


def test_a_loop_yields_attempts_that_are_context_managers_and_reraises_the_last_error() -> None:
    slept: list[float] = []
    heard: list[tuple[int, float]] = []
    loop = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda error: isinstance(error, ServerError)),
        stop=lambda state: state.attempt_number >= 3,
        wait=lambda state: 0.25 * state.attempt_number,
        sleep=slept.append,
        reraise=True,
        before_sleep=lambda state: heard.append((state.attempt_number, state.next_action.sleep)),
    )
    attempts = iter(loop)
    for number in (1, 2, 3):
        attempt = next(attempts)
        assert isinstance(attempt, tenacity.AttemptManager)
        attempt.__enter__()  # as the driver does, with a yield between enter and exit
        error = ServerError(f"boom {number}")
        assert attempt.__exit__(type(error), error, None)  # swallowed: tenacity decides
    with pytest.raises(ServerError, match="boom 3"):  # reraise=True: the last error itself
        next(attempts)
    assert slept == [0.25, 0.5]
    assert heard == [(1, 0.25), (2, 0.5)]


def test_the_callbacks_see_the_attempts_outcome_and_may_note_on_the_state() -> None:
    seen: list[tuple[int, str]] = []

    def wait(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None
        seen.append((state.attempt_number, str(state.outcome.exception())))
        state.llamaroute_note = state.attempt_number  # type: ignore[attr-defined]
        return 0.0

    def stop(state: tenacity.RetryCallState) -> bool:
        return bool(state.llamaroute_note >= 2)  # type: ignore[attr-defined]

    def fail_every_time() -> None:
        for attempt in tenacity.Retrying(wait=wait, stop=stop, sleep=lambda _: None, reraise=True):
            with attempt:
                raise ServerError(f"try {attempt.retry_state.attempt_number}")

    with pytest.raises(ServerError, match="try 2"):
        fail_every_time()
    assert seen == [(1, "try 1"), (2, "try 2")]


def test_the_async_loop_works_the_same_way() -> None:
    async def main() -> int:
        calls = 0
        async for attempt in tenacity.AsyncRetrying(
            stop=lambda state: state.attempt_number >= 2,
            sleep=lambda _: asyncio.sleep(0),
            reraise=True,
        ):
            with attempt:
                calls += 1
                if calls == 1:
                    raise ServerError("once")
        return calls

    assert asyncio.run(main()) == 2


@pytest.mark.parametrize("first", ["wait", "stop"])
def test_the_policy_decides_once_per_attempt_whichever_callback_tenacity_asks_first(
    first: str,
) -> None:
    # Tenacity 9 asks `wait` before `stop`; older releases asked `stop` first. Either way the
    # two must agree, on one jittered draw.
    loop = RetryPolicy(attempts=3, base_delay=1.0, rng=random.Random(7)).retrying()
    state = tenacity.RetryCallState(loop, None, (), {})
    error = ServerError("boom")
    state.set_exception((ServerError, error, None))
    if first == "stop":
        stopped, waited = loop.stop(state), loop.wait(state)
    else:
        waited, stopped = loop.wait(state), loop.stop(state)
    assert not stopped
    assert waited == RetryPolicy(base_delay=1.0, rng=random.Random(7)).backoff(1)
    state.prepare_for_next_attempt()
    state.prepare_for_next_attempt()  # attempt 3 of 3 failed: give the route up
    state.set_exception((ServerError, error, None))
    if first == "stop":
        stopped, waited = loop.stop(state), loop.wait(state)
    else:
        waited, stopped = loop.wait(state), loop.stop(state)
    assert stopped
    assert waited == 0.0
