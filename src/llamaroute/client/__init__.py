"""The client layer: ``Client`` and ``AsyncClient``, the I/O-free routing driver they share
(admission, attempts, retries, fallback, the final error), streams, events and telemetry.

Internal: this package's ``__init__`` is the interface for the cli, the gateway (server), events
and the tests; the public names are re-exported from :mod:`llamaroute` and
:mod:`llamaroute.events`.
"""

from ._async import AsyncClient
from ._attempts import FallbackRule, default_fallback
from ._base import BaseClient
from ._events import (
    AttemptFailed,
    AttemptStarted,
    BudgetRefused,
    CallFailed,
    Event,
    EventHandler,
    FallbackTaken,
    HedgeStarted,
    ResponseReady,
    emit,
)
from ._streaming import AsyncStream, Stream
from ._sync import Client
from ._telemetry import Tracing, chain, tracing_handler

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "AttemptFailed",
    "AttemptStarted",
    "BaseClient",
    "BudgetRefused",
    "CallFailed",
    "Client",
    "Event",
    "EventHandler",
    "FallbackRule",
    "FallbackTaken",
    "HedgeStarted",
    "ResponseReady",
    "Stream",
    "Tracing",
    "chain",
    "default_fallback",
    "emit",
    "tracing_handler",
]
