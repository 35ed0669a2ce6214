"""The gateway's Prometheus metrics (``/metrics``), in a registry of the app's own (no global
state: two apps in one process count separately). With ``--workers`` each process exposes its
own counts, as usual for Prometheus' multi-process-free setup."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .._records import Attempt

__all__ = ["Metrics"]

_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """Requests, attempts, errors by type, latency, tokens, cost and breaker states."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llamaroute_gateway_requests",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "llamaroute_gateway_attempts",
            "Provider attempts by outcome",
            ["provider", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "llamaroute_gateway_errors",
            "Errors answered, by type and code",
            ["type", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "llamaroute_gateway_request_seconds",
            "Time to the full answer (or the stream's end)",
            ["endpoint"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.first_token = Histogram(
            "llamaroute_gateway_first_chunk_seconds",
            "Time to a stream's first chunk",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.tokens = Counter(
            "llamaroute_gateway_tokens",
            "Tokens by direction and model",
            ["direction", "model"],
            registry=r,
        )
        self.cost = Counter(
            "llamaroute_gateway_cost_usd",
            "USD spent, by provider and model",
            ["provider", "model"],
            registry=r,
        )
        self.breaker = Gauge(
            "llamaroute_gateway_breaker_state",
            "Circuit breaker per route: 0 closed, 1 half open, 2 open",
            ["route"],
            registry=r,
        )
        # Each metric's child per label values: prometheus_client's ``labels()`` takes a lock
        # and re-checks its arguments on every call; the set of label values is small.
        self._children: dict[tuple[object, ...], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once."""
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def attempted(self, attempts: tuple[Attempt, ...]) -> None:
        """Count a call's attempts by provider and outcome."""
        for attempt in attempts:
            self.child(self.attempts, attempt.provider, attempt.outcome).inc()

    def spent(
        self, provider: str, model: str, cost: Decimal, input_tokens: int, output_tokens: int
    ) -> None:
        """Count a call's tokens and cost."""
        if input_tokens:
            self.child(self.tokens, "input", model).inc(input_tokens)
        if output_tokens:
            self.child(self.tokens, "output", model).inc(output_tokens)
        if cost:
            self.child(self.cost, provider, model).inc(float(cost))

    def render(self, health: Mapping[str, Mapping[str, object]]) -> bytes:
        """The exposition text, breaker states read now."""
        for route, state in health.items():
            self.breaker.labels(route).set(_BREAKER_STATES.get(str(state.get("state")), 0))
        return generate_latest(self.registry)
