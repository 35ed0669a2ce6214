"""Latency estimates for the ``fastest`` strategy, shared by a fleet on Redis.

Every process adds its measurements to one moving average per route (a Lua script updates
it atomically, with the same ``alpha`` as :class:`~llamaroute.routing.LatencyStats`), and
reads the fleet's figures back at most once per ``refresh_s`` (one ``HGETALL``), so ordering
routes costs no round trip per call. A route measured by one process is ordered by all.
Percentiles (for hedging) stay per process. While Redis is unreachable, the process's own
averages are used.
"""

from __future__ import annotations

import time

from ..routing import LatencyStats
from ._connection import RedisConnection, RedisDown

__all__ = ["RedisLatencyStats"]

#: How long the fleet's averages live without a new measurement (seconds).
KEY_TTL_S = 3_600

# KEYS: the averages (hash). ARGV: field, seconds, alpha, ttl s
_OBSERVE = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local value = tonumber(ARGV[2])
if previous then
  value = tonumber(ARGV[3]) * value + (1 - tonumber(ARGV[3])) * tonumber(previous)
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', value))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


class RedisLatencyStats(LatencyStats):
    """:class:`LatencyStats` whose averages are the fleet's (see the module docstring)."""

    def __init__(self, connection: RedisConnection, *, refresh_s: float = 1.0) -> None:
        super().__init__()
        self._redis = connection
        self._key = connection.key("latency")
        self._refresh_s = refresh_s
        self._fleet: dict[str, float] = {}
        self._read_at = float("-inf")

    def observe(self, route: str, seconds: float, *, first_token: bool = False) -> None:
        super().observe(route, seconds, first_token=first_token)
        field = f"first_token:{route}" if first_token else f"total:{route}"
        # Sent with the next round trip (the breaker's record, usually): no round trip of
        # its own. While Redis is down, this process's own average has it.
        self._redis.run_later("latency", _OBSERVE, [self._key],
                              [field, f"{seconds:.6f}", self.alpha, KEY_TTL_S])  # fmt: skip

    def _fleet_figures(self) -> dict[str, float] | None:
        now = time.monotonic()
        if now - self._read_at >= self._refresh_s:
            try:
                answer = self._redis.command("HGETALL", self._key)
            except RedisDown:
                return None
            self._fleet = {str(k): float(v) for k, v in dict(answer).items()}
            self._read_at = now
        return self._fleet

    def latency(self, route: str, *, first_token: bool = False) -> float | None:
        fleet = self._fleet_figures()
        if fleet is None:
            return super().latency(route, first_token=first_token)
        if first_token and f"first_token:{route}" in fleet:
            return fleet[f"first_token:{route}"]
        found = fleet.get(f"total:{route}")
        return found if found is not None else super().latency(route, first_token=first_token)

    def snapshot(self) -> dict[str, dict[str, float]]:
        fleet = self._fleet_figures()
        if fleet is None:
            return super().snapshot()
        out: dict[str, dict[str, float]] = {"total": {}, "first_token": {}}
        for field, value in fleet.items():
            kind, _, route = field.partition(":")
            out.setdefault(kind, {})[route] = value
        return out
