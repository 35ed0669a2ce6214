"""Typed events for ``Client(on_event=callback)``: what happened during a call, as it happens.

Events carry routing facts only (providers, model IDs, errors, timings, costs), never prompt
or completion text. A callback that raises is logged and ignored: observing a call must not
break it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

from ._exceptions import ProviderError
from ._types import ChatResponse

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "BudgetRefused",
    "Event",
    "EventHandler",
    "FallbackTaken",
    "HedgeStarted",
    "ResponseReady",
    "emit",
]

logger = logging.getLogger("llamaroute")


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """A request is about to be sent (``number`` counts the call's attempts from 1)."""

    provider: str
    model_id: str
    number: int


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed. ``retry_in`` is the wait before the same route is tried again, or
    ``None`` when the route is given up."""

    provider: str
    model_id: str
    number: int
    error: ProviderError
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    """The call moves on from one route to the next."""

    from_route: str
    to_route: str
    error: ProviderError


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    """A second route was started because the first had not answered after ``after_s``."""

    first_route: str
    hedge_route: str
    after_s: float


@dataclass(frozen=True, slots=True)
class BudgetRefused:
    """A route was skipped because its worst-case cost did not fit the budget or max_cost."""

    route: str
    worst_case: Decimal | None
    remaining: Decimal | None


@dataclass(frozen=True, slots=True)
class ResponseReady:
    """The call succeeded; ``response.cost`` and ``response.total_cost`` say what it cost."""

    response: ChatResponse


Event: TypeAlias = (
    AttemptStarted | AttemptFailed | FallbackTaken | HedgeStarted | BudgetRefused | ResponseReady
)
EventHandler: TypeAlias = Callable[[Event], object]


def emit(handler: EventHandler | None, event: Event) -> None:
    """Give ``event`` to ``handler``; a failing handler is logged, never raised."""
    if handler is None:
        return
    try:
        handler(event)
    except Exception:
        logger.warning("on_event handler failed on %s", type(event).__name__, exc_info=True)
