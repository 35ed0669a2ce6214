"""Typed events for ``Client(on_event=callback)``: what happened during a call, as it happens.

Events carry routing facts only (providers, model IDs, errors, timings, costs), never prompt
or completion text. Every event has the ``call_id`` of its call (unique within a client), so
that concurrent calls can be told apart, and attempt events their ``number`` within the call.
A callback that raises is logged and ignored: observing a call must not break it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

from .._exceptions import ProviderError
from .._response import ChatResponse

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "BudgetRefused",
    "CallFailed",
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

    call_id: int
    provider: str
    model_id: str
    number: int
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed. ``retry_in`` is the wait before the same route is tried again, or
    ``None`` when the route is given up."""

    call_id: int
    provider: str
    model_id: str
    number: int
    error: ProviderError
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    """The call moves on from one route to the next (routes named ``provider:model_id``,
    with ``@deployment`` for a deployment named otherwise than its provider)."""

    call_id: int
    from_route: str
    to_route: str
    error: ProviderError


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    """A second route was started because the first had not answered after ``after_s``."""

    call_id: int
    first_route: str
    hedge_route: str
    after_s: float


@dataclass(frozen=True, slots=True)
class BudgetRefused:
    """A route was skipped because its worst-case cost did not fit the budget or max_cost."""

    call_id: int
    route: str
    worst_case: Decimal | None
    remaining: Decimal | None


@dataclass(frozen=True, slots=True)
class ResponseReady:
    """The call succeeded with attempt ``number``; ``response.cost`` and
    ``response.total_cost`` say what it cost."""

    call_id: int
    number: int
    response: ChatResponse


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The call ended in ``error`` (every route failed, the deadline passed, a request was
    refused, or a stream broke after text was delivered)."""

    call_id: int
    error: Exception


Event: TypeAlias = (
    AttemptStarted
    | AttemptFailed
    | FallbackTaken
    | HedgeStarted
    | BudgetRefused
    | ResponseReady
    | CallFailed
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
