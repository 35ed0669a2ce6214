"""Routing strategies: the order in which a call tries its routes (no I/O except the local
availability probe, which is cached by the provider).

* ``ordered`` (default): the configured provider order.
* ``cheapest``: by the request's expected cost (free local routes first, unknown prices last).
* ``fastest``: by a moving estimate of each route's latency (time to first token for streams),
  learned from this client's real calls; routes with no data yet keep their configured order
  after the measured ones, so each gets measured once.
* ``local_first``: local routes first when their probe says the server and model are there;
  a local route whose probe says no is dropped, so a missing server costs no waiting.
* ``least_busy``: the deployment with the fewest of this client's calls in flight first
  (ties keep the configured order): spreads concurrent calls over several keys or hosts.
* ``weighted``: a random order, each candidate first in proportion to its deployment's
  ``weight`` (then second among the rest, and so on): spreads calls by share, e.g. 3:1.
* any callable ``(request, candidates, stats) -> candidates``.

``least_busy`` and ``weighted`` order every candidate of the call, across providers too; to
spread over the deployments of one provider only, pass ``providers=["openrouter"]``.
"""

from __future__ import annotations

import random
import statistics
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, TypeAlias

from .._exceptions import ConfigurationError
from .._request import ChatRequest
from ..catalog import Catalog, Route
from ..money import RequestShape, estimate_shape
from ._candidate import Candidate

__all__ = ["HedgePolicy", "LatencyStats", "Strategy", "StrategyName", "apply_strategy"]

StrategyName = Literal["ordered", "cheapest", "fastest", "local_first", "least_busy", "weighted"]


@dataclass
class LatencyStats:
    """A moving average (EWMA) of each route's latency, by candidate key
    (``provider:model_id``, with ``@deployment`` for a named deployment), and the calls each
    has in flight (for ``least_busy``).

    ``alpha`` weighs the newest sample; thread-safe. ``first_token`` tracks time to the first
    chunk of streams, ``total`` the whole call.
    """

    alpha: float = 0.3
    window: int = 200
    _total: dict[str, float] = field(default_factory=dict, init=False)
    _first_token: dict[str, float] = field(default_factory=dict, init=False)
    _recent: dict[str, deque[float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _busy: dict[str, int] = field(default_factory=dict, init=False)

    def started(self, key: str) -> None:
        """One more attempt in flight on ``key``."""
        with self._lock:
            self._busy[key] = self._busy.get(key, 0) + 1

    def ended(self, key: str) -> None:
        """One attempt on ``key`` ended (answered, failed or cancelled)."""
        with self._lock:
            left = self._busy.get(key, 0) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)

    def busy(self, key: str) -> int:
        """The attempts in flight on ``key`` now."""
        return self._busy.get(key, 0)

    def observe(self, route: str, seconds: float, *, first_token: bool = False) -> None:
        """Add one measurement for ``route``."""
        with self._lock:
            table = self._first_token if first_token else self._total
            previous = table.get(route)
            table[route] = seconds if previous is None else (
                self.alpha * seconds + (1 - self.alpha) * previous
            )  # fmt: skip
            if not first_token:
                recent = self._recent.get(route)
                if recent is None:  # (not setdefault: that builds a deque on every call)
                    recent = self._recent[route] = deque(maxlen=self.window)
                recent.append(seconds)

    def percentile(self, route: str, share: float) -> float | None:
        """The ``share`` quantile (0.9 = p90) of ``route``'s recent latencies, or ``None``
        with fewer than 10 samples."""
        with self._lock:
            samples = list(self._recent.get(route, ()))
        if len(samples) < 10:
            return None
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return cuts[min(98, max(0, round(share * 100) - 1))]

    def latency(self, route: str, *, first_token: bool = False) -> float | None:
        """The current estimate for ``route`` (``None`` until it has been measured)."""
        with self._lock:
            if first_token and route in self._first_token:
                return self._first_token[route]
            return self._total.get(route)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every estimate, for inspection."""
        with self._lock:
            return {"total": dict(self._total), "first_token": dict(self._first_token)}


@dataclass(frozen=True)
class HedgePolicy:
    """Opt-in hedging for ``AsyncClient``: if the first route has not answered after a delay,
    start the second route as well, take the first success and cancel the other.

    Attributes:
        delay: seconds to wait before hedging.
        percentile: if set (e.g. 0.9), wait the first route's p90 latency instead, once it
            has enough samples (``delay`` until then).
        max_share: at most this share of calls may hedge (a hedge can double a call's cost).
    """

    delay: float = 1.0
    percentile: float | None = None
    max_share: float = 0.05

    def __post_init__(self) -> None:
        if not self.delay > 0 or not 0 <= self.max_share <= 1:
            raise ConfigurationError("HedgePolicy needs delay > 0 and 0 <= max_share <= 1")
        if self.percentile is not None and not 0 < self.percentile < 1:
            raise ConfigurationError("HedgePolicy.percentile is a share, e.g. 0.9 for p90")

    def wait_for(self, route: str, stats: LatencyStats) -> float:
        """How long to give ``route`` before starting the hedge."""
        if self.percentile is not None:
            learned = stats.percentile(route, self.percentile)
            if learned is not None:
                return learned
        return self.delay


Strategy: TypeAlias = Callable[
    [ChatRequest, Sequence[Candidate], LatencyStats], Sequence[Candidate]
]
"""A custom strategy: takes the request, the candidates in configured order and the latency
stats; returns the candidates to try, in order (it may drop some)."""


def apply_strategy(
    strategy: StrategyName | Strategy,
    request: ChatRequest,
    candidates: Sequence[Candidate],
    stats: LatencyStats,
    *,
    shape: Callable[[], RequestShape],
    catalog: Catalog,
    streaming: bool = False,
    rng: random.Random | None = None,
) -> list[Candidate]:
    """``candidates`` in the order ``strategy`` wants them tried. ``shape`` builds the
    request's token shape lazily (only ``cheapest`` needs it); ``rng`` is ``weighted``'s
    random source (the client's own, seedable)."""
    if callable(strategy):
        ordered = list(strategy(request, candidates, stats))
        unknown = [c for c in ordered if c not in candidates]
        if unknown:
            raise ConfigurationError("a custom strategy may only reorder or drop the candidates")
        return ordered
    if strategy == "ordered":
        return list(candidates)
    if strategy == "cheapest":
        return _cheapest(candidates, shape(), catalog)
    if strategy == "fastest":
        return _fastest(candidates, stats, streaming)
    if strategy == "local_first":
        return _local_first(candidates)
    if strategy == "least_busy":
        return _least_busy(candidates, stats)
    if strategy == "weighted":
        return _weighted(candidates, rng or random.Random())
    raise ConfigurationError(
        f"unknown strategy {strategy!r}: use ordered, cheapest, fastest, local_first, "
        "least_busy, weighted or a callable"
    )


def _cheapest(
    candidates: Sequence[Candidate], shape: RequestShape, catalog: Catalog
) -> list[Candidate]:
    # Each candidate priced for its deployment's region (Bedrock in two regions: two prices).
    by_region: dict[str | None, dict[Route, None]] = {}
    for candidate in candidates:
        by_region.setdefault(candidate.provider.region, {})[candidate.route] = None
    expected: dict[tuple[str, str, str | None], Decimal | None] = {}
    for region, routes in by_region.items():
        for estimate in estimate_shape(shape, routes, catalog=catalog, region=region):
            expected[estimate.provider, estimate.model_id, region] = estimate.expected

    def key(item: tuple[int, Candidate]) -> tuple[int, Decimal, int]:
        index, candidate = item
        route = candidate.route
        cost = expected.get((route.provider, route.model_id, candidate.provider.region))
        # Unknown prices go last; a local route that is down is no bargain.
        down = candidate.provider.local and candidate.provider.available(candidate.route) is False
        if cost is None or down:
            return (1, Decimal(0), index)
        return (0, cost, index)

    return [candidate for _, candidate in sorted(enumerate(candidates), key=key)]


def _fastest(
    candidates: Sequence[Candidate], stats: LatencyStats, streaming: bool
) -> list[Candidate]:
    def key(item: tuple[int, Candidate]) -> tuple[int, float, int]:
        index, candidate = item
        seconds = stats.latency(candidate.key, first_token=streaming)
        return (1, 0.0, index) if seconds is None else (0, seconds, index)

    return [candidate for _, candidate in sorted(enumerate(candidates), key=key)]


def _local_first(candidates: Sequence[Candidate]) -> list[Candidate]:
    local = [c for c in candidates if c.provider.local]
    remote = [c for c in candidates if not c.provider.local]
    # The probe is cheap and cached; "False" means the server or the model is not there.
    ready = [c for c in local if c.provider.available(c.route) is not False]
    return [*ready, *remote]


def _least_busy(candidates: Sequence[Candidate], stats: LatencyStats) -> list[Candidate]:
    # sorted() is stable: equally busy candidates keep the configured order.
    return sorted(candidates, key=lambda candidate: stats.busy(candidate.key))


def _weighted(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    # Weighted sampling without replacement (Efraimidis and Spirakis): each candidate draws
    # u ** (1 / weight), highest first; the first is candidate i with probability
    # weight_i / sum(weights), and the rest follow in the same way among themselves.
    keys = [rng.random() ** (1.0 / candidate.provider.weight) for candidate in candidates]
    order = sorted(range(len(candidates)), key=keys.__getitem__, reverse=True)
    return [candidates[index] for index in order]
