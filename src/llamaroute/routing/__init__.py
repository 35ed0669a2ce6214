"""Layer 6, routing: planning a call (which routes can serve a request, in which order, and
why the others cannot), the strategies that order them, the circuit breakers, and the retry
policy. No I/O.

Internal: this package's ``__init__`` is the interface for the client layer and the tests; the
public names are re-exported from :mod:`llamaroute`.
"""

from ._breakers import BreakerPolicy, BreakerState, Health
from ._candidate import Candidate, Plan
from ._plan import configured_routes, plan, route_refusal
from ._retry import RetryPolicy
from ._strategies import HedgePolicy, LatencyStats, Strategy, StrategyName, apply_strategy
from ._tools_gate import tools_refusal, uses_tools
from ._windows import MemoryRateLimiter, RateLimiter

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "Candidate",
    "Health",
    "HedgePolicy",
    "LatencyStats",
    "MemoryRateLimiter",
    "Plan",
    "RateLimiter",
    "RetryPolicy",
    "Strategy",
    "StrategyName",
    "apply_strategy",
    "configured_routes",
    "plan",
    "route_refusal",
    "tools_refusal",
    "uses_tools",
]
