"""Per-deployment rate limits shared by a fleet on Redis, with the process's own as fallback.

:class:`RedisRateLimits` is :class:`~llamaroute.routing.RateLimits` (what the client asks
before each attempt on a deployment with ``rpm=`` or ``tpm=``) with each deployment's sliding
window on Redis: one Lua script per admission trims the window, checks requests and tokens
per minute against it, and counts the hold, atomically and by the server's clock, so N
processes together never exceed a deployment's limits. Settling (the real usage replaces the
estimate) and cancelling (the budget refused the attempt after admission) are one script
each, finding the hold by its id.

While Redis is unreachable, admissions fall back to this process's own windows
(:class:`~llamaroute.routing.MemoryRateLimits`), with the connection's one warning per
outage: a fleet of N may then admit up to N times a limit. A hold admitted by the fallback
(no id) is settled there too.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from contextlib import suppress

from ..routing import (
    WINDOW,
    Hold,
    Limit,
    MemoryRateLimits,
    Refusal,
    oversized,
    requests_reached,
    tokens_reached,
)
from ._connection import RedisConnection, RedisDown
from ._scripts import RATE_ACQUIRE, RATE_CANCEL, RATE_SETTLE, RATE_USAGE

__all__ = ["RedisRateLimits"]

_WINDOW_MS = round(WINDOW * 1000)


class RedisRateLimits:
    """:class:`~llamaroute.routing.RateLimits` on Redis, for a fleet (see the module).

    ``clock`` is the fallback's monotonic clock (a client passes its retry policy's); the
    shared windows run on the Redis server's clock.
    """

    def __init__(
        self, connection: RedisConnection, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = connection
        self._clock = clock
        self._local = MemoryRateLimits(clock)
        # Hold ids: random per limiter (two clients may share one connection), then a count.
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count(1)
        self._keys: dict[str, list[str]] = {}

    def _keys_of(self, deployment: str) -> list[str]:
        keys = self._keys.get(deployment)
        if keys is None:
            # "holds"/"tokens" before the name: no deployment's keys can be another's.
            keys = [self._redis.key("rate", "holds", deployment),
                    self._redis.key("rate", "tokens", deployment)]  # fmt: skip
            self._keys[deployment] = keys
        return keys

    def acquire(self, deployment: str, limit: Limit, tokens: int) -> Hold | Refusal:
        if limit.tpm is not None and tokens > limit.tpm:
            return oversized(tokens, limit.tpm)  # never fits: no need to ask Redis
        hold_id = f"{self._id_prefix}.{next(self._ids)}"  # unique across the fleet
        rpm = "" if limit.rpm is None else limit.rpm
        tpm = "" if limit.tpm is None else limit.tpm
        try:
            taken, wait_ms, kind = self._redis.run(
                "rate_acquire", RATE_ACQUIRE, self._keys_of(deployment),
                [rpm, tpm, tokens, _WINDOW_MS, hold_id],
            )  # fmt: skip
        except RedisDown:
            return self._local.acquire(deployment, limit, tokens)
        if taken:
            return Hold(self._clock(), tokens, hold_id)
        wait = max(int(wait_ms), 0) / 1000
        if kind == "rpm" and limit.rpm is not None:
            return requests_reached(limit.rpm, wait)
        return tokens_reached(limit.tpm or 0, wait)

    def settle(self, deployment: str, hold: Hold, tokens: int) -> None:
        if not hold.id:  # admitted by the fallback while Redis was down
            self._local.settle(deployment, hold, tokens)
            return
        hold.tokens = tokens
        # Redis down: the estimate (which leans high) counts until the hold leaves the window.
        with suppress(RedisDown):
            self._redis.run("rate_settle", RATE_SETTLE, self._keys_of(deployment),
                            [hold.id, tokens, _WINDOW_MS])  # fmt: skip

    def cancel(self, deployment: str, hold: Hold) -> None:
        if not hold.id:
            self._local.cancel(deployment, hold)
            return
        # Redis down: the hold counts until it leaves the window, on the safe side.
        with suppress(RedisDown):
            self._redis.run("rate_cancel", RATE_CANCEL, self._keys_of(deployment), [hold.id])

    def usage(self, deployment: str) -> tuple[int, int]:
        """The requests and tokens counted against ``deployment`` in the current window,
        fleet-wide (this process's own while Redis is unreachable)."""
        try:
            count, tokens = self._redis.run("rate_usage", RATE_USAGE, self._keys_of(deployment),
                                            ["", "", "", _WINDOW_MS])  # fmt: skip
        except RedisDown:
            return self._local.usage(deployment)
        return int(count), int(tokens)
