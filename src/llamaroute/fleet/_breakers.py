"""Circuit breakers shared by a fleet on Redis.

:class:`RedisHealth` has :class:`~llamaroute.routing.Health`'s methods and policy, with each
breaker's state on Redis (a hash per breaker, updated by Lua scripts with the server's clock),
so a breaker opened by one process is open for all of them, and when its cooldown ends exactly
one probe goes through fleet-wide (the probe is a key set ``NX`` with a TTL, so a prober that
dies frees it). While Redis is unreachable, every method falls back to this process's own
breakers (the inherited in-memory :class:`Health`), with one warning per outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..routing import BreakerPolicy, Health
from ..routing._breakers import _BUCKETS, _T, BreakerState, Target, counts_against_provider
from ._connection import RedisConnection, RedisDown
from ._scripts import ADMIT, PEEK, RECORD

__all__ = ["RedisHealth"]

#: How long a probe may hold the half-open breaker before another process may try (seconds),
#: at least: a probe that never reports (its process died) must not keep a route shut.
PROBE_TTL_S = 120.0


class RedisHealth(Health):
    """Breakers on Redis for a fleet; :class:`Health`'s own (per process) as the fallback."""

    def __init__(
        self,
        connection: RedisConnection,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(policy or BreakerPolicy(), clock)
        self._redis = connection
        self._index = connection.key("breakers")
        # Breakers live long enough to outlast a cooldown and a window, then expire unused.
        self._ttl_s = max(3_600, round(2 * (self.policy.cooldown + self.policy.window)))
        self._probe_ms = round(1000 * max(PROBE_TTL_S, self.policy.cooldown))

    def _pair(self, key: str) -> list[str]:
        return [self._redis.key("breaker", key), self._redis.key("probe", key)]

    def _route_keys(self, route: Target) -> list[str]:
        route_key, provider_key = self._keys(route)
        return [*self._pair(provider_key), *self._pair(route_key)]

    def admit(self, route: Target) -> bool:
        if not self.policy.enabled:
            return True
        try:
            answer = self._redis.run(
                "admit", ADMIT, self._route_keys(route),
                [round(self.policy.cooldown * 1000), self._probe_ms, self._redis.token],
            )  # fmt: skip
        except RedisDown:
            return super().admit(route)
        return bool(answer)

    def _peek_all(self, routes: Sequence[Target]) -> list[list[Any]]:
        keys = [key for route in routes for key in self._route_keys(route)]
        answer = self._redis.run("peek", PEEK, keys, [round(self.policy.cooldown * 1000)])
        pairs = [answer[i : i + 2] for i in range(0, len(answer), 2)]
        return [pairs[i : i + 2] for i in range(0, len(pairs), 2)]  # per route: 2 breakers

    def open_routes(self, routes: Sequence[_T]) -> list[_T]:
        if not self.policy.enabled or not routes:
            return []
        try:
            peeks = self._peek_all(routes)
        except RedisDown:
            return super().open_routes(routes)
        return [route for route, pair in zip(routes, peeks, strict=True)
                if not all(int(admits) for admits, _ in pair)]  # fmt: skip

    def longest_failed(self, routes: Sequence[_T]) -> _T:
        try:
            peeks = self._peek_all(routes)
        except RedisDown:
            return super().longest_failed(routes)
        last = {id(route): max(int(at) for _, at in pair)
                for route, pair in zip(routes, peeks, strict=True)}  # fmt: skip
        return min(routes, key=lambda route: last[id(route)])

    def record(self, route: Target, error: BaseException | None) -> None:
        if not self.policy.enabled:
            return
        if error is None:
            actions = ["ok", "ok"]
        elif not counts_against_provider(error):
            actions = ["release", "release"]
        elif self._provider_wide(error):
            actions = ["fail", "fail"]
        else:
            actions = ["answered", "fail"]  # the provider answered; the route failed
        try:
            self._run_record(route, actions)
        except RedisDown:
            super().record(route, error)

    @staticmethod
    def _provider_wide(error: BaseException) -> bool:
        from ..routing._breakers import _provider_wide

        return _provider_wide(error)

    def _run_record(self, route: Target, actions: list[str]) -> None:
        policy = self.policy
        self._redis.run(
            "record", RECORD, [*self._route_keys(route), self._index],
            [round(policy.cooldown * 1000), round(policy.window * 1000), _BUCKETS,
             policy.min_calls, policy.failure_rate, policy.failures or 0, self._redis.token,
             self._ttl_s, *actions],
        )  # fmt: skip

    def release(self, route: Target) -> None:
        if not self.policy.enabled:
            return
        try:
            self._run_record(route, ["release", "release"])
        except RedisDown:
            super().release(route)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """As :meth:`Health.snapshot`, for every breaker the fleet has used recently (this
        process's own while Redis is unreachable)."""
        try:
            names = self._redis.command("ZRANGE", self._index, 0, -1)
            rows = [(name, self._redis.command("HGETALL", name)) for name in names]
            now_s, now_us = self._redis.command("TIME")
        except RedisDown:
            return super().snapshot()
        now = int(now_s) * 1000 + int(now_us) // 1000
        prefix = self._redis.key("breaker", "")
        policy = self.policy
        oldest = now * _BUCKETS // round(policy.window * 1000) - _BUCKETS + 1
        out: dict[str, dict[str, object]] = {}
        for name, fields in sorted(rows):
            if not fields:
                continue  # expired
            state: BreakerState = "closed"
            retry_in = 0.0
            if fields.get("state") == "open":
                state = "open"
                retry_in = max(0.0, policy.cooldown - (now - int(fields["opened_at"])) / 1000)
                if retry_in == 0.0:
                    state = "half_open"
            outcomes = failed = 0
            for slot in range(_BUCKETS):
                if int(fields.get(f"b{slot}n", -1)) >= oldest:
                    outcomes += int(fields.get(f"b{slot}o", 0))
                    failed += int(fields.get(f"b{slot}f", 0))
            rate = failed / outcomes if outcomes >= policy.min_calls else None
            out[name.removeprefix(prefix)] = {
                "state": state,
                "consecutive_failures": int(fields.get("failures", 0)),
                "failure_rate": None if rate is None else round(rate, 3),
                "times_opened": int(fields.get("times_opened", 0)),
                "retry_in_s": round(retry_in, 3),
            }
        return out
