"""Fleet-wide sliding-window rate limits on Redis, with the per-process window as fallback."""

from __future__ import annotations

import itertools
import math

from ..routing import MemoryRateLimiter
from ..routing._windows import check_limit
from ._connection import RedisConnection, RedisDown
from ._scripts import RATE

__all__ = ["RedisRateLimiter"]


class RedisRateLimiter:
    """:class:`~llamaroute.routing.RateLimiter` over Redis: one sliding window per key for
    the whole fleet (a sorted set of admissions, trimmed and checked by one Lua script with
    the server's clock; the key expires with its window).

    While Redis is unreachable, each process falls back to its own window
    (:class:`~llamaroute.routing.MemoryRateLimiter`; one warning per outage), so a fleet of N
    may then admit up to N times the limit.
    """

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._local = MemoryRateLimiter()
        self._ids = itertools.count()

    def try_acquire(
        self, key: str, limit: int, window_s: float, cost: int = 1
    ) -> tuple[bool, float]:
        """As :meth:`~llamaroute.routing.RateLimiter.try_acquire`, fleet-wide."""
        check_limit(limit, window_s, cost)
        if cost > limit:
            return False, math.inf
        unique = f"{self._redis.token}.{next(self._ids)}"
        try:
            taken, wait_ms = self._redis.run(
                "rate", RATE, [self._redis.key("rate", key)],
                [limit, max(1, round(window_s * 1000)), cost, unique],
            )  # fmt: skip
        except RedisDown:
            return self._local.try_acquire(key, limit, window_s, cost)
        return bool(taken), 0.0 if taken else int(wait_ms) / 1000
