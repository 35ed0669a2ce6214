"""Circuit breakers: stop sending requests to a route (or a whole provider) that keeps failing.

Each route has a breaker, and so does each provider (for failures of the provider itself:
refused or dropped connections, timeouts). A breaker opens after ``failures`` consecutive
failures that are the provider's fault (errors caused by the request, such as a 400, do not
count), stays open for ``cooldown`` seconds, then lets exactly one probe through (half-open):
success closes it, failure opens it for another cooldown. Open routes are skipped when a call
is planned, at no cost.

State lives in the client's :class:`Health` object (no module state). All methods take one
lock and never block inside it, so they are safe from threads and from asyncio tasks alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._exceptions import (
    BadRequestError,
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from ..catalog._catalog import Route

__all__ = ["BreakerPolicy", "BreakerState", "Health"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When breakers open and for how long. ``failures=0`` turns breakers off."""

    failures: int = 3
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.failures < 0 or self.cooldown < 0:
            raise ConfigurationError("breaker failures and cooldown must not be negative")


def counts_against_provider(error: BaseException) -> bool:
    """Whether ``error`` is the provider's fault (and so counts towards opening a breaker)."""
    return isinstance(error, ProviderError) and not isinstance(error, BadRequestError)


def _provider_wide(error: BaseException) -> bool:
    # The provider as a whole is unreachable or hanging: every route on it is affected.
    return isinstance(error, ProviderConnectionError | ProviderTimeoutError)


@dataclass
class _Breaker:
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float | None = None
    last_failure: float | None = None
    probe_in_flight: bool = False
    times_opened: int = 0


@dataclass
class Health:
    """The breakers of one client. ``snapshot()`` is what ``client.health()`` returns."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    clock: Callable[[], float] = time.monotonic
    _breakers: dict[str, _Breaker] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Keys of the breakers that are not clean (closed, no failure on record). While it is
    #: empty, every route is open to requests and a success changes nothing: the calls of a
    #: healthy client skip the lock and the bookkeeping. Read without the lock: an empty
    #: check that races a failure being recorded is ordered before that failure.
    _troubled: set[str] = field(default_factory=set, init=False, repr=False)

    @staticmethod
    def _keys(route: Route) -> tuple[str, str]:
        return route.pinned, f"{route.provider}:*"

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

    def admit(self, route: Route) -> bool:
        """Whether a request may go to ``route`` now. A ``True`` from a half-open breaker
        reserves its single probe: report the outcome with :meth:`record`."""
        if self.policy.failures == 0 or not self._troubled:
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

    def open_routes(self, routes: Sequence[Route]) -> list[Route]:
        """The routes among ``routes`` that breakers currently keep closed to requests."""
        if self.policy.failures == 0 or not self._troubled:
            return []
        now = self.clock()
        with self._lock:
            return [
                route
                for route in routes
                if not all(self._peek(self._get(key), now) for key in self._keys(route))
            ]

    def longest_failed(self, routes: Sequence[Route]) -> Route:
        """Of ``routes``, the one whose last failure is oldest (the best bet when all are open)."""
        with self._lock:

            def last(route: Route) -> float:
                times = [self._get(key).last_failure for key in self._keys(route)]
                return max((t for t in times if t is not None), default=float("-inf"))

            return min(routes, key=last)

    def record(self, route: Route, error: BaseException | None) -> None:
        """Report an attempt's outcome: ``None`` for success, else the error."""
        if self.policy.failures == 0:
            return
        if error is None and not self._troubled and route.pinned in self._breakers:
            return  # every breaker clean, and this route's already listed by snapshot()
        now = self.clock()
        with self._lock:
            route_key, provider_key = self._keys(route)
            if error is None:
                for key in (route_key, provider_key):
                    breaker = self._get(key)
                    if (
                        breaker.state != "closed"
                        or breaker.failures
                        or breaker.probe_in_flight
                        or breaker.opened_at is not None
                        or breaker.last_failure is not None
                    ):
                        # Reset all but the count of openings (a clean one is left as it is:
                        # the common case, every successful call).
                        self._breakers[key] = _Breaker(times_opened=breaker.times_opened)
                        self._troubled.discard(key)
                return
            if not counts_against_provider(error):
                for key in (route_key, provider_key):
                    self._get(key).probe_in_flight = False
                return
            keys = (route_key, provider_key) if _provider_wide(error) else (route_key,)
            for key in keys:
                self._troubled.add(key)
                self._fail(self._get(key), now)
            if not _provider_wide(error):
                provider = self._get(provider_key)
                provider.probe_in_flight = False
                if provider.state == "half_open":
                    # The provider answered: it is reachable, whatever the route's trouble.
                    self._breakers[provider_key] = _Breaker(times_opened=provider.times_opened)
                    self._troubled.discard(provider_key)

    def release(self, route: Route) -> None:
        """Give back a reserved probe without an outcome (the attempt was cancelled)."""
        with self._lock:
            for key in self._keys(route):
                self._get(key).probe_in_flight = False

    def _fail(self, breaker: _Breaker, now: float) -> None:
        breaker.last_failure = now
        breaker.probe_in_flight = False
        if breaker.state == "half_open":
            self._open(breaker, now)
            return
        breaker.failures += 1
        if breaker.state == "closed" and breaker.failures >= self.policy.failures:
            self._open(breaker, now)

    @staticmethod
    def _open(breaker: _Breaker, now: float) -> None:
        breaker.state = "open"
        breaker.opened_at = now
        breaker.times_opened += 1

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every breaker that has seen traffic: state, consecutive failures, times opened, and
        seconds until an open breaker lets a probe through."""
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
                out[key] = {
                    "state": state,
                    "consecutive_failures": breaker.failures,
                    "times_opened": breaker.times_opened,
                    "retry_in_s": round(retry_in, 3),
                }
            return out
