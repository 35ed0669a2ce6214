"""Sliding-window rate limits: the interface a limiter offers, and the per-process one.

A limit is ``limit`` units (requests, or tokens) per ``window_s`` seconds, over a *sliding*
window: at any instant, the units admitted in the last ``window_s`` seconds never exceed
``limit``. ``try_acquire`` either takes ``cost`` units now or says how long until they would
fit; it never waits. The fleet-wide twin on Redis (``llamaroute.fleet``) has the same
interface, so the per-deployment limits can use either.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .._exceptions import ConfigurationError

__all__ = ["MemoryRateLimiter", "RateLimiter", "check_limit"]


@runtime_checkable
class RateLimiter(Protocol):
    """Takes units from named sliding windows."""

    def try_acquire(
        self, key: str, limit: int, window_s: float, cost: int = 1
    ) -> tuple[bool, float]:
        """Take ``cost`` units from ``key``'s window of ``limit`` units per ``window_s``
        seconds if they fit now: ``(True, 0.0)``; else ``(False, seconds until they would
        fit)``, taking nothing. A ``cost`` above ``limit`` can never fit: ``(False, inf)``."""
        ...


def check_limit(limit: int, window_s: float, cost: int) -> None:
    """Refuse nonsense with a :class:`~llamaroute.ConfigurationError`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"a rate limit must be an int >= 1, not {limit!r}")
    if not isinstance(window_s, int | float) or not window_s > 0:
        raise ConfigurationError(f"a rate window must be > 0 seconds, not {window_s!r}")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ConfigurationError(f"a rate-limit cost must be an int >= 0, not {cost!r}")


#: Windows untouched for this many of their own lengths are forgotten: memory stays flat.
_IDLE_WINDOWS = 2


class MemoryRateLimiter:
    """Sliding windows in this process's memory (thread-safe; a log of (time, cost) per key,
    trimmed to the window on every use, and idle keys forgotten)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[tuple[float, int]]] = {}
        self._sums: dict[str, int] = {}
        self._last_used: dict[str, tuple[float, float]] = {}  # key -> (time, window)
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def try_acquire(
        self, key: str, limit: int, window_s: float, cost: int = 1
    ) -> tuple[bool, float]:
        check_limit(limit, window_s, cost)
        if cost > limit:
            return False, float("inf")
        now = self._clock()
        with self._lock:
            log = self._logs.setdefault(key, deque())
            used = self._sums.get(key, 0)
            while log and log[0][0] <= now - window_s:
                used -= log.popleft()[1]
            if used + cost <= limit:
                if cost:
                    log.append((now, cost))
                self._sums[key] = used + cost
                self._last_used[key] = (now, window_s)
                self._sweep(now)
                return True, 0.0
            self._sums[key] = used
            # The oldest entries leave the window first: wait until enough of them have.
            freed, wait = 0, window_s
            for at, units in log:
                freed += units
                if used - freed + cost <= limit:
                    wait = at + window_s - now
                    break
            return False, max(wait, 0.0)

    def _sweep(self, now: float) -> None:
        # (Lock held.) At most once a second, forget keys idle for a couple of windows.
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        idle = [k for k, (at, w) in self._last_used.items() if now - at > _IDLE_WINDOWS * w]
        for key in idle:
            del self._last_used[key]
            self._logs.pop(key, None)
            self._sums.pop(key, None)
