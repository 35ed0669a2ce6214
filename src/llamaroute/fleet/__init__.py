"""Layer between the client and routing: state shared by a fleet of processes
(``Client(state="redis://host:6379/0")``): circuit breakers, budget reservations, the
deployments' ``rpm``/``tpm`` sliding windows and the ``fastest`` strategy's latency averages
on Redis, each with a per-process fallback while Redis is down.

Nothing here imports ``redis`` until a Redis URL is opened. Without ``state=`` a client keeps
all of this in its own memory, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._exceptions import ConfigurationError
from ..money import Ledger
from ..routing import BreakerPolicy, Health, LatencyStats, MemoryRateLimits, RateLimits
from ._budget import UNIT, RedisBudget
from ._rate import RedisRateLimits

if TYPE_CHECKING:
    from ._connection import RedisConnection

__all__ = [
    "UNIT",
    "FleetState",
    "RedisBudget",
    "RedisRateLimits",
    "RedisState",
    "open_state",
]


class FleetState:
    """Where a client keeps its breakers, budget and rate limits: this base keeps them in the
    process (the default)."""

    def health(self, policy: BreakerPolicy, clock: Callable[[], float]) -> Health:
        """The circuit breakers."""
        return Health(policy, clock=clock)

    def budget(self, ledger: Ledger) -> Ledger:
        """``ledger`` with the budget kept where this state keeps it."""
        return ledger

    def rate_limits(self, clock: Callable[[], float] = time.monotonic) -> RateLimits:
        """The per-deployment ``rpm``/``tpm`` windows (``acquire(deployment, Limit, tokens)``;
        ``clock``: the client's monotonic clock)."""
        return MemoryRateLimits(clock)

    def latency_stats(self) -> LatencyStats:
        """The latency averages the ``fastest`` strategy orders routes by."""
        return LatencyStats()

    def close(self) -> None:
        """Release connections."""


class RedisState(FleetState):
    """Fleet state on Redis.

    Args:
        url: ``redis://[:password@]host:6379/db`` (``rediss://`` for TLS).
        prefix: namespaces the keys (``llamaroute:<prefix>:...``), e.g. one per application.
        budget_fail_open: while Redis is unreachable, let calls with a budget through
            unchecked (default: refuse them with :class:`~llamaroute.BudgetExceededError`).
        socket_timeout: seconds a Redis command may take (short: a dead Redis must not hang
            calls).
        retry_s: after a failure, how long Redis is left alone before it is tried again.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        budget_fail_open: bool = False,
        socket_timeout: float = 0.5,
        retry_s: float = 1.0,
    ) -> None:
        from ._connection import RedisConnection

        self.connection: RedisConnection = RedisConnection(
            url, prefix=prefix, socket_timeout=socket_timeout, retry_s=retry_s
        )
        self.budget_fail_open = budget_fail_open

    def __repr__(self) -> str:
        return f"<RedisState {self.connection.url!r} keys={self.connection.namespace}*>"

    def health(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> Health:
        from ._breakers import RedisHealth

        return RedisHealth(self.connection, policy, clock)

    def budget(self, ledger: Ledger, budget: Decimal | None = None) -> Ledger:
        return RedisBudget(self.connection, ledger, budget, fail_open=self.budget_fail_open)

    def rate_limits(self, clock: Callable[[], float] = time.monotonic) -> RateLimits:
        return RedisRateLimits(self.connection, clock)

    def latency_stats(self) -> LatencyStats:
        from ._latency import RedisLatencyStats

        return RedisLatencyStats(self.connection)

    def close(self) -> None:
        self.connection.close()


def open_state(state: FleetState | str | None) -> FleetState:
    """The state for ``Client(state=...)``: in memory (``None``), a Redis URL (its
    ``?prefix=myapp`` namespaces the keys), or a :class:`FleetState` (such as
    :class:`RedisState` with options)."""
    if state is None:
        return FleetState()
    if isinstance(state, FleetState):
        return state
    if isinstance(state, str) and state.startswith(("redis://", "rediss://", "unix://")):
        url, prefix = _split_prefix(state)
        return RedisState(url, prefix=prefix)
    raise ConfigurationError(
        f"state= takes a Redis URL ('redis://127.0.0.1:6379/0') or a RedisState, not {state!r}"
    )


def _split_prefix(url: str) -> tuple[str, str]:
    """A Redis URL's own ``prefix=`` query parameter (the key namespace, so that one URL can
    say it all, as a gateway's config does), and the URL without it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if not prefixes:
        return url, ""
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefixes[-1]
