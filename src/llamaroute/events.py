"""Typed events for ``Client(on_event=callback)``: see :mod:`llamaroute` and the README.

Each event is a frozen dataclass with routing facts only (providers, model IDs, errors,
timings, costs), never prompt or completion text::

    from llamaroute import Client
    from llamaroute.events import AttemptFailed, FallbackTaken

    def watch(event):
        if isinstance(event, FallbackTaken):
            print("fell back from", event.from_route, "to", event.to_route)

    client = Client(on_event=watch)
"""

from .client import (
    AttemptFailed,
    AttemptStarted,
    BudgetRefused,
    CallFailed,
    Event,
    EventHandler,
    FallbackTaken,
    HedgeStarted,
    ResponseReady,
)

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
]
