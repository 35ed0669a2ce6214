"""The clients' attempt loop (``RetryPolicy.attempt_loop``) follows tenacity's loop
(``RetryPolicy.retrying``) step for step: same attempts, waits, hooks and final error."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from llamaroute import BadRequestError, ProviderConnectionError, RateLimitError, ServerError
from llamaroute._retry import RetryPolicy


class Recorder:
    """A fake clock and sleep, and a log of every hook call."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.log: list[tuple[str, object]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def policy(self, **options: Any) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, async_sleep=self.async_sleep, clock=self.clock,
                           rng=random.Random(3), **options)  # fmt: skip

    def hooks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_deadline": lambda: self.log.append(("deadline", None)),
            "before_sleep": lambda error, wait: self.log.append(("before", (str(error), wait))),
        }


SCENARIOS: list[tuple[str, list[Exception], dict[str, Any], float | None]] = [
    ("success at once", [], {}, None),
    ("two retries then success", [ServerError("a"), RateLimitError("b", retry_after=1.5)], {},
     None),
    ("out of attempts", [ServerError("a")] * 5, {"attempts": 3}, None),
    ("not retryable", [BadRequestError("bad")], {}, None),
    ("refused: not retryable", [ProviderConnectionError("no", retryable=False)], {}, None),
    ("a bug is not retried", [ValueError("bug")], {}, None),
    ("hint over the cap", [RateLimitError("slow", retry_after=99)], {"max_retry_after": 5}, None),
    ("deadline stops the wait", [RateLimitError("slow", retry_after=5)] * 2, {}, 3.0),
    ("backoff under a deadline", [ServerError("x")] * 6,
     {"attempts": 6, "base_delay": 1.0, "max_delay": 2.0}, 4.0),
]  # fmt: skip


def drive(loop: Iterable[Any], errors: list[Exception], log: list[tuple[str, object]]) -> None:
    pending = iter(errors)
    for attempt in loop:
        with attempt:
            log.append(("attempt", None))
            error = next(pending, None)
            if error is not None:
                raise error


def outcome(run: Callable[[], None], recorder: Recorder) -> list[tuple[str, object]]:
    try:
        run()
        recorder.log.append(("result", "ok"))
    except Exception as error:
        recorder.log.append(("raised", (type(error).__name__, str(error))))
    return recorder.log


@pytest.mark.parametrize(("errors", "options", "budget"),
                         [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])  # fmt: skip
def test_the_attempt_loop_matches_tenacity(
    errors: list[Exception], options: dict[str, Any], budget: float | None
) -> None:
    logs = []
    for build in ("retrying", "attempt_loop"):
        recorder = Recorder()
        policy = recorder.policy(**options)
        deadline = None if budget is None else recorder.now + budget
        loop = getattr(policy, build)(deadline, **recorder.hooks())
        logs.append(outcome(lambda: drive(loop, errors, recorder.log), recorder))  # noqa: B023
    assert logs[0] == logs[1]
    assert logs[0][-1][0] in ("result", "raised")


@pytest.mark.parametrize(("errors", "options", "budget"),
                         [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])  # fmt: skip
async def test_the_async_attempt_loop_matches_tenacity(
    errors: list[Exception], options: dict[str, Any], budget: float | None
) -> None:
    logs = []
    for build in ("async_retrying", "attempt_loop"):
        recorder = Recorder()
        policy = recorder.policy(**options)
        deadline = None if budget is None else recorder.now + budget
        loop = getattr(policy, build)(deadline, **recorder.hooks())
        pending = iter(errors)
        try:
            async for attempt in loop:
                with attempt:
                    recorder.log.append(("attempt", None))
                    error = next(pending, None)
                    if error is not None:
                        raise error
            recorder.log.append(("result", "ok"))
        except Exception as error:
            recorder.log.append(("raised", (type(error).__name__, str(error))))
        logs.append(recorder.log)
    assert logs[0] == logs[1]


def test_a_return_inside_the_loop_ends_it() -> None:
    recorder = Recorder()

    def first_success() -> int:
        for attempt in recorder.policy().attempt_loop():
            with attempt:
                return 42
        raise AssertionError("unreachable")

    assert first_success() == 42
    assert recorder.log == []
