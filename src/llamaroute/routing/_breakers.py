"""Circuit breakers: stop sending requests to a route (or a whole provider) that keeps failing,
so that calls go to a route that works instead.

Each route has a breaker, and so does each provider (for failures of the provider itself:
refused or dropped connections, timeouts). With several deployments of one provider (two
OpenRouter keys, two Ollama hosts), each deployment has its own: a breaker is keyed by the
candidate's key (``provider:model_id``, ``@deployment`` added for a named deployment) and
the deployment's provider-wide one by ``provider:*`` (``provider:*@deployment``).

By default a breaker opens when, over the last ``window`` seconds, at least ``min_calls``
outcomes were seen and at least ``failure_rate`` of them were the provider's fault (errors
caused by the request, such as a 400, do not count): a failure rate over a window, as
resilience4j and Envoy's outlier detection do, rather than a short run of consecutive failures,
which concurrent calls to a flaky but usable provider produce by chance all the time. A long
run (``failures``, 10 by default) also opens it, so that a dead provider is caught on a client
too quiet to fill the window. Defaults: 50 % of at least 30 outcomes in 30 s, or 10 failures in
a row; a provider failing 30 % of attempts then opens its breaker in about 1 % of 1,000-attempt
runs, one failing every attempt at once.
An open breaker stays open for ``cooldown`` seconds, then lets exactly one probe through
(half-open): success closes it, failure opens it for another cooldown.

A breaker protects by diverting: the client skips an open route only when another route can
take the call. The last route a call has is tried whatever its breaker says, with the full
retry policy, so a breaker never fails a call that had nowhere else to go.

State lives in the client's :class:`Health` object (no module state). All methods take one
lock and never block inside it, so they are safe from threads and from asyncio tasks alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .._exceptions import (
    BadRequestError,
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    UnsupportedFeatureError,
)
from ..catalog import Route
from ._candidate import Candidate

__all__ = ["BreakerPolicy", "BreakerState", "Health"]

BreakerState = Literal["closed", "open", "half_open"]

#: What a breaker is asked about: a plan's candidate (a route on one deployment), or a bare
#: route (its provider's default deployment).
Target = Route | Candidate


@dataclass(frozen=True)
class BreakerPolicy:
    """When breakers open and for how long.

    Attributes:
        failures: also open after this many consecutive failures (``None``: only the rate
            rule), which catches a dead provider on a quiet client; ``0`` turns breakers off
            altogether.
        cooldown: seconds an open breaker stays open before one probe may go through.
        failure_rate: open when at least this share of the window's outcomes failed ...
        min_calls: ... and the window holds at least this many outcomes (fewer prove nothing).
        window: the seconds of recent outcomes the rate is taken over.
    """

    failures: int | None = 10
    cooldown: float = 30.0
    failure_rate: float = 0.5
    min_calls: int = 30
    window: float = 30.0

    def __post_init__(self) -> None:
        if (self.failures is not None and self.failures < 0) or self.cooldown < 0:
            raise ConfigurationError("breaker failures and cooldown must not be negative")
        if not 0 < self.failure_rate <= 1 or self.min_calls < 1 or not self.window > 0:
            raise ConfigurationError(
                "BreakerPolicy needs 0 < failure_rate <= 1, min_calls >= 1 and window > 0"
            )

    @property
    def enabled(self) -> bool:
        """Whether breakers are on (``failures=0`` turns them off)."""
        return self.failures != 0


def counts_against_provider(error: BaseException) -> bool:
    """Whether ``error`` is the provider's fault (and so counts towards opening a breaker)."""
    # A refused feature (a route that takes no tools) says nothing about the route's health,
    # nor does a prompt too long for its window (ContextWindowExceededError, a BadRequestError).
    refused = BadRequestError | UnsupportedFeatureError
    return isinstance(error, ProviderError) and not isinstance(error, refused)


def _provider_wide(error: BaseException) -> bool:
    # The provider as a whole is unreachable or hanging: every route on it is affected.
    return isinstance(error, ProviderConnectionError | ProviderTimeoutError)


_T = TypeVar("_T", Route, Candidate)

#: The window is kept as this many buckets of outcome counts: O(1) memory however busy.
_BUCKETS = 10


@dataclass
class _Breaker:
    state: BreakerState = "closed"
    failures: int = 0  # consecutive
    opened_at: float | None = None
    last_failure: float | None = None
    probe_in_flight: bool = False
    times_opened: int = 0
    # The failure-rate window: slot ``n % _BUCKETS`` holds [bucket number n, outcomes,
    # failures]; a slot left from an older bucket is reused (and emptied) when its turn comes.
    slots: list[list[int]] = field(default_factory=lambda: [[-1, 0, 0] for _ in range(_BUCKETS)])

    def count(self, bucket: int, failed: bool) -> None:
        slot = self.slots[bucket % _BUCKETS]
        if slot[0] != bucket:
            slot[0], slot[1], slot[2] = bucket, 0, 0
        slot[1] += 1
        if failed:
            slot[2] += 1

    def rate(self, oldest: int) -> tuple[int, int]:
        """Outcomes and failures in the buckets from ``oldest`` on."""
        outcomes = failed = 0
        for number, seen, bad in self.slots:
            if number >= oldest:
                outcomes += seen
                failed += bad
        return outcomes, failed

    def forget(self) -> None:
        for slot in self.slots:
            slot[0], slot[1], slot[2] = -1, 0, 0


@dataclass
class Health:
    """The breakers of one client. ``snapshot()`` is what ``client.health()`` returns."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    clock: Callable[[], float] = time.monotonic
    _breakers: dict[str, _Breaker] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Keys of the breakers that are not closed. While it is empty, every route is open to
    #: requests: admission skips the lock. Read without the lock: an empty check that races
    #: a breaker opening is ordered before that opening.
    _troubled: set[str] = field(default_factory=set, init=False, repr=False)

    _names: dict[str, tuple[str, str]] = field(default_factory=dict, init=False, repr=False)

    def _keys(self, target: Target) -> tuple[str, str]:
        # The route's and its deployment's breaker names, built once per candidate key.
        if isinstance(target, Candidate):
            key, route = target.key, target.route
        else:
            key, route = target.pinned, target
        names = self._names.get(key)
        if names is None:
            wide = f"{route.provider}:*"
            if key != route.pinned:  # a named deployment: "provider:model@name"
                wide += key[len(route.pinned) :]
            names = self._names[key] = (key, wide)
        return names

    def _get(self, key: str) -> _Breaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = _Breaker()
        return breaker

    def _admits(self, breaker: _Breaker, now: float) -> bool:
        if breaker.state == "closed":
            return True
        if breaker.state == "open":
            assert breaker.opened_at is not None
            if now - breaker.opened_at < self.policy.cooldown:
                return False
            breaker.state = "half_open"
            breaker.probe_in_flight = False
        # Half-open: exactly one probe at a time.
        if breaker.probe_in_flight:
            return False
        breaker.probe_in_flight = True
        return True

    def admit(self, route: Target) -> bool:
        """Whether a request may go to ``route`` now. A ``True`` from a half-open breaker
        reserves its single probe: report the outcome with :meth:`record`."""
        if not self.policy.enabled or not self._troubled:
            return True
        now = self.clock()
        with self._lock:
            route_key, provider_key = self._keys(route)
            route_breaker, provider_breaker = self._get(route_key), self._get(provider_key)
            if not self._peek(provider_breaker, now) or not self._peek(route_breaker, now):
                return False
            return self._admits(provider_breaker, now) and self._admits(route_breaker, now)

    def _peek(self, breaker: _Breaker, now: float) -> bool:
        # Would this breaker admit a request? (No state change: checked before reserving.)
        if breaker.state == "closed":
            return True
        if breaker.state == "open":
            assert breaker.opened_at is not None
            return now - breaker.opened_at >= self.policy.cooldown
        return not breaker.probe_in_flight

    def open_routes(self, routes: Sequence[_T]) -> list[_T]:
        """The routes among ``routes`` that breakers currently keep closed to requests."""
        if not self.policy.enabled or not self._troubled:
            return []
        now = self.clock()
        with self._lock:
            return [
                route
                for route in routes
                if not all(self._peek(self._get(key), now) for key in self._keys(route))
            ]

    def longest_failed(self, routes: Sequence[_T]) -> _T:
        """Of ``routes``, the one whose last failure is oldest (the best bet when all are open)."""
        with self._lock:

            def last(route: _T) -> float:
                times = [self._get(key).last_failure for key in self._keys(route)]
                return max((t for t in times if t is not None), default=float("-inf"))

            return min(routes, key=last)

    def record(self, route: Target, error: BaseException | None) -> None:
        """Report an attempt's outcome: ``None`` for success, else the error."""
        if not self.policy.enabled:
            return
        now = self.clock()
        bucket = int(now * _BUCKETS / self.policy.window)
        route_key, provider_key = self._keys(route)
        if error is None and not self._troubled:
            # Every breaker closed: a success only adds to the counts, and the lock is not
            # worth its cost on every call. (Two threads may then race on one count and lose
            # it: that only nudges a rate taken over dozens of outcomes.)
            for key in (route_key, provider_key):
                breaker = self._breakers.get(key)
                if breaker is None:
                    with self._lock:
                        breaker = self._get(key)
                breaker.count(bucket, False)
                breaker.failures = 0
            return
        with self._lock:
            if error is None:
                for key in (route_key, provider_key):
                    breaker = self._get(key)
                    breaker.count(bucket, False)
                    breaker.failures = 0
                    if breaker.state != "closed" or breaker.probe_in_flight:
                        self._close(key, breaker)
                return
            if not counts_against_provider(error):
                for key in (route_key, provider_key):
                    self._get(key).probe_in_flight = False
                return
            wide = _provider_wide(error)
            for key in (route_key, provider_key) if wide else (route_key,):
                self._fail(key, self._get(key), now, bucket)
            if not wide:
                provider = self._get(provider_key)
                provider.count(bucket, False)  # the provider itself answered
                provider.probe_in_flight = False
                if provider.state == "half_open":
                    # The provider answered: it is reachable, whatever the route's trouble.
                    self._close(provider_key, provider)

    def release(self, route: Target) -> None:
        """Give back a reserved probe without an outcome (the attempt was cancelled)."""
        with self._lock:
            for key in self._keys(route):
                self._get(key).probe_in_flight = False

    def _fail(self, key: str, breaker: _Breaker, now: float, bucket: int) -> None:
        breaker.last_failure = now
        breaker.probe_in_flight = False
        breaker.count(bucket, True)
        breaker.failures += 1
        if breaker.state == "half_open":
            self._open(key, breaker, now)
            return
        if breaker.state != "closed":
            return
        policy = self.policy
        outcomes, failed = breaker.rate(bucket - _BUCKETS + 1)
        by_rate = outcomes >= policy.min_calls and failed >= policy.failure_rate * outcomes
        in_a_row = policy.failures is not None and breaker.failures >= policy.failures
        if by_rate or in_a_row:
            self._open(key, breaker, now)

    def _open(self, key: str, breaker: _Breaker, now: float) -> None:
        breaker.state = "open"
        breaker.opened_at = now
        breaker.times_opened += 1
        breaker.forget()  # a fresh window once it closes again
        self._troubled.add(key)

    def _close(self, key: str, breaker: _Breaker) -> None:
        # Reset all but the count of openings and the window of outcomes.
        self._breakers[key] = _Breaker(times_opened=breaker.times_opened, slots=breaker.slots)
        self._troubled.discard(key)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every breaker that has seen traffic: state, consecutive failures, the failure rate
        over the window (``None`` below ``min_calls`` outcomes), times opened, and seconds
        until an open breaker lets a probe through."""
        now = self.clock()
        with self._lock:
            out: dict[str, dict[str, object]] = {}
            for key, breaker in sorted(self._breakers.items()):
                state: BreakerState = breaker.state
                retry_in = 0.0
                if state == "open" and breaker.opened_at is not None:
                    retry_in = max(0.0, self.policy.cooldown - (now - breaker.opened_at))
                    if retry_in == 0.0:
                        state = "half_open"
                outcomes, failed = breaker.rate(
                    int(now * _BUCKETS / self.policy.window) - _BUCKETS + 1
                )
                rate = failed / outcomes if outcomes >= self.policy.min_calls else None
                out[key] = {
                    "state": state,
                    "consecutive_failures": breaker.failures,
                    "failure_rate": None if rate is None else round(rate, 3),
                    "times_opened": breaker.times_opened,
                    "retry_in_s": round(retry_in, 3),
                }
            return out
