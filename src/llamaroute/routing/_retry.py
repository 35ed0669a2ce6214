"""The retry policy: when to send the same request to the same route again, and how long to wait.

One :class:`RetryPolicy` builds both the sync and the async tenacity loops, so the two clients
retry identically. The rules:

* only errors marked ``retryable`` are retried; everything else ends the route at once;
* waits are exponential with full jitter (``uniform(0, min(cap, base * 2**n))``), so a crowd of
  clients does not retry in step;
* a server hint (``Retry-After``, ``retry-after-ms``, ``x-amz-retry-after``) replaces the
  computed wait when it is at most ``max_retry_after``; a longer hint means "fail over now",
  not "sleep";
* no wait starts that would end after the call's deadline: the route is given up instead.

Sleep, clock and randomness are injectable, so tests never really sleep.

The clients loop with :meth:`RetryPolicy.attempt_loop`: the first attempt on a route runs bare,
and only when it fails with a retryable error does a tenacity loop start, whose attempt 1
replays that failure. Every wait, stop and retry decision is still tenacity's, applying this
policy, and tenacity is driven only through its documented API (``Retrying``/``AsyncRetrying``
iterated, each attempt a ``with attempt:`` block); a call that succeeds first time (nearly all
of them) does not pay the ~20 us that building and driving a tenacity loop costs.

Tenacity is imported on first use, not at ``import llamaroute``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, ProviderError

if TYPE_CHECKING:  # tenacity is imported on first use, by the functions that build its loops
    from tenacity import AsyncRetrying, AttemptManager, RetryCallState, Retrying

__all__ = ["RetryPolicy"]

# Where an attempt's decision (its number, and the wait or None to stop) is kept between
# tenacity's wait and stop callbacks.
_DECIDED = "llamaroute_decided"


def _hint(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, ProviderError) else None


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try one route, and how to wait in between.

    Attributes:
        attempts: total attempts per route (1 = no retries).
        base_delay: the first backoff ceiling, in seconds.
        max_delay: the cap on any computed backoff.
        max_retry_after: the longest server hint llamaroute will sleep for; a longer one moves
            on to the next route at once.
        sleep, async_sleep, clock, rng: injectable for tests.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(
        default=asyncio.sleep, repr=False, compare=False
    )
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("retry attempts must be at least 1 (1 means no retries)")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigurationError("retry delays must not be negative")

    @classmethod
    def coerce(cls, value: RetryPolicy | int | None, default: RetryPolicy) -> RetryPolicy:
        """A policy from ``retries=``: a policy, a number of retries (0 = none), or ``None``."""
        if value is None:
            return default
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError("retries= takes a RetryPolicy or a number of retries >= 0")
        return RetryPolicy(
            attempts=value + 1,
            base_delay=default.base_delay,
            max_delay=default.max_delay,
            max_retry_after=default.max_retry_after,
            sleep=default.sleep,
            async_sleep=default.async_sleep,
            clock=default.clock,
            rng=default.rng,
        )

    def backoff(self, retry_number: int) -> float:
        """The jittered wait before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return self.rng.uniform(0.0, ceiling)

    def wait_before_retry(
        self, error: BaseException, attempt_number: int, deadline: float | None
    ) -> float | None:
        """Seconds to wait before sending attempt ``attempt_number + 1`` to the same route, or
        ``None`` when the route should be given up now (not retryable, out of attempts, a hint
        over the cap, or a wait that would pass the deadline)."""
        if not isinstance(error, ProviderError) or not error.retryable:
            return None
        if attempt_number >= self.attempts:
            return None
        hint = _hint(error)
        if hint is not None:
            if hint > self.max_retry_after:
                return None
            wait = hint
        else:
            wait = self.backoff(attempt_number)
        if deadline is not None and self.clock() + wait >= deadline:
            return None
        return wait

    def _next_wait(
        self,
        error: BaseException,
        attempt_number: int,
        deadline: float | None,
        on_deadline: Callable[[], None] | None,
    ) -> float | None:
        """The wait before the next attempt, or ``None`` to stop; ``on_deadline`` is called
        when only the deadline stops it."""
        seconds = self.wait_before_retry(error, attempt_number, None)
        if seconds is not None and deadline is not None and self.clock() + seconds >= deadline:
            seconds = None
            if on_deadline is not None:
                on_deadline()
        return seconds

    # Tenacity asks a loop's `wait` and its `stop` about each failed attempt (9.x asks `wait`
    # first; tenacity does not document the order). Both must see the same jittered value, so
    # whichever is asked first decides for that attempt, the decision is noted on the attempt's
    # RetryCallState, and the other reads it. tests/test_retry_policy.py pins what this needs.
    def _callbacks(
        self, deadline: float | None, on_deadline: Callable[[], None] | None
    ) -> tuple[Callable[[RetryCallState], float], Callable[[RetryCallState], bool]]:
        """The loop's ``wait`` and ``stop`` callbacks: the wait before the next attempt, and
        whether to give the route up (:meth:`_next_wait` says ``None``)."""

        def decide(state: RetryCallState) -> float | None:
            decided: tuple[int, float | None] | None = getattr(state, _DECIDED, None)
            if decided is not None and decided[0] == state.attempt_number:
                return decided[1]
            error = state.outcome.exception() if state.outcome else None
            seconds = None
            if error is not None:
                seconds = self._next_wait(error, state.attempt_number, deadline, on_deadline)
            setattr(state, _DECIDED, (state.attempt_number, seconds))
            return seconds

        def wait(state: RetryCallState) -> float:
            return decide(state) or 0.0

        def stop(state: RetryCallState) -> bool:
            return decide(state) is None

        return wait, stop

    def retrying(
        self,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> Retrying:
        """A tenacity loop for one route (``for attempt in policy.retrying(): with attempt:``).

        ``on_deadline`` is called when a retry is given up because its wait would pass
        ``deadline`` (as opposed to running out of attempts); ``before_sleep`` with the error
        and the wait, before each retry. ``sleep`` replaces the policy's own: the clients'
        I/O-free driver passes one that only notes the wait, and sleeps itself.
        """
        from tenacity import Retrying, retry_if_exception

        wait, stop = self._callbacks(deadline, on_deadline)
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            stop=stop,
            wait=wait,
            sleep=self.sleep if sleep is None else sleep,
            reraise=True,
            before_sleep=_before_sleep(before_sleep),
        )

    def attempt_loop(
        self,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> Attempts:
        """The attempts on one route: a bare first one, then :meth:`retrying`'s loop if it
        failed with a retryable error (arguments as for :meth:`retrying`)."""
        return Attempts(self, (deadline, on_deadline, before_sleep), sleep)

    def retries_after(
        self,
        failure: ProviderError,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> Iterator[AttemptManager]:
        """The retries that follow a bare first attempt that failed with ``failure``: a
        :meth:`retrying` loop whose attempt 1 replays that failure, so that tenacity records it
        as its own and decides on it; the attempts it yields are the retries (none when it gives
        up: then it raises the last error). Arguments as for :meth:`retrying`."""
        loop = iter(self.retrying(deadline, on_deadline, before_sleep, sleep=sleep))
        with next(loop):
            raise failure  # attempt 1, as it happened
        return loop

    def async_attempt_loop(
        self,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
    ) -> AsyncAttempts:
        """The async twin of :meth:`attempt_loop`, over :meth:`async_retrying`."""
        return AsyncAttempts(self, (deadline, on_deadline, before_sleep))

    def async_retrying(
        self,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
    ) -> AsyncRetrying:
        """The async twin of :meth:`retrying`, with the same rules."""
        from tenacity import AsyncRetrying, retry_if_exception

        wait, stop = self._callbacks(deadline, on_deadline)
        return AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            stop=stop,
            wait=wait,
            sleep=self.async_sleep,
            reraise=True,
            before_sleep=_before_sleep(before_sleep),
        )


class _FirstAttempt:
    """The first attempt on a route, run outside tenacity: a retryable error is kept for the
    tenacity loop to decide on; anything else (success aside) propagates as it would from it."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: ProviderError | None = None

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if isinstance(error, ProviderError) and error.retryable:
            self.error = error
            return True
        return False


class Attempts:
    """``for attempt in policy.attempt_loop(...): with attempt: ...`` (see the module docstring).

    Yields a bare first attempt; only after a retryable failure does it start a tenacity loop,
    through tenacity's documented API alone (``for attempt in Retrying(...)`` and
    ``with attempt:``): that loop's attempt 1 replays the failure, so tenacity records it as
    its own, and every later attempt is tenacity's.
    """

    __slots__ = ("_args", "_first", "_policy", "_sleep")

    def __init__(
        self, policy: RetryPolicy, args: tuple[Any, ...], sleep: Callable[[float], None] | None
    ) -> None:
        self._policy, self._args, self._sleep, self._first = policy, args, sleep, _FirstAttempt()

    def __iter__(self) -> Iterator[_FirstAttempt | AttemptManager]:
        yield self._first
        failure = self._first.error
        if failure is not None:
            yield from self._policy.retries_after(failure, *self._args, sleep=self._sleep)


class AsyncAttempts:
    """The async twin of :class:`Attempts` (``async for attempt in ...``): an iterator class,
    not an async generator, so a caller that returns from inside the loop leaves nothing for
    the event loop to finalise."""

    __slots__ = ("_args", "_first", "_loop", "_policy", "_started")

    def __init__(self, policy: RetryPolicy, args: tuple[Any, ...]) -> None:
        self._policy, self._args, self._first = policy, args, _FirstAttempt()
        self._started = False
        self._loop: AsyncRetrying | None = None

    def __aiter__(self) -> AsyncAttempts:
        return self

    async def __anext__(self) -> _FirstAttempt | AttemptManager:
        if not self._started:
            self._started = True
            return self._first
        if self._loop is None:
            failure = self._first.error
            if failure is None:
                raise StopAsyncIteration
            self._loop = aiter(self._policy.async_retrying(*self._args))
            with await anext(self._loop):
                raise failure  # attempt 1, as it happened: tenacity records it
        return await anext(self._loop)


def _before_sleep(
    callback: Callable[[BaseException, float], None] | None,
) -> Callable[[RetryCallState], None] | None:
    if callback is None:
        return None

    def hook(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None and state.next_action is not None:
            callback(error, state.next_action.sleep)

    return hook
