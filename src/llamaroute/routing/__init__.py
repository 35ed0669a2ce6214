"""The routing layer: planning a call (which routes can serve a request, in which order, and
why the others cannot), the strategies that order them, the circuit breakers, and the retry
policy. No I/O.

Internal: this package's ``__init__`` is the interface for the layers above (fleet, client) and
the tests; the public names are re-exported from :mod:`llamaroute`.
"""

from ._breakers import BreakerPolicy, BreakerState, Health
from ._candidate import Candidate, Plan, candidate
from ._limits import (
    WINDOW,
    Hold,
    Limit,
    MemoryRateLimits,
    RateLimits,
    Refusal,
    oversized,
    requests_reached,
    tokens_reached,
)
from ._plan import Served, configured_routes, plan, route_refusal, served
from ._retry import RetryPolicy
from ._strategies import HedgePolicy, LatencyStats, Strategy, StrategyName, apply_strategy
from ._tools_gate import tools_refusal, uses_tools
from ._window_gate import fit_windows, last_if_tight

__all__ = [
    "WINDOW",
    "BreakerPolicy",
    "BreakerState",
    "Candidate",
    "Health",
    "HedgePolicy",
    "Hold",
    "LatencyStats",
    "Limit",
    "MemoryRateLimits",
    "Plan",
    "RateLimits",
    "Refusal",
    "RetryPolicy",
    "Served",
    "Strategy",
    "StrategyName",
    "apply_strategy",
    "candidate",
    "configured_routes",
    "fit_windows",
    "last_if_tight",
    "oversized",
    "plan",
    "requests_reached",
    "route_refusal",
    "served",
    "tokens_reached",
    "tools_refusal",
    "uses_tools",
]
