"""What a gateway request may cost before it is sent, and what it did cost after.

* :func:`worst_case` is the most one request can cost on any route the gateway would try,
  by the same bound the client's own reservations use (the prompt's UTF-8 bytes, every image
  at its padded high end, every allowed output token). The gateway holds it against the key's
  budget and passes it to the client as ``max_cost``, so the client never spends more.
* :class:`TabLedger` is the client's ledger: it keeps no entries (memory stays flat however
  many requests pass) and adds every billed attempt, failed ones and abandoned streams
  included, to the tab of the request that made it (a context variable: each request runs in
  its own task).
"""

from __future__ import annotations

import contextvars
import itertools
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .._request import ChatRequest
from ..client import AsyncClient
from ..money import Ledger, SpendEntry, SpendSummary, request_token_ceiling, worst_case_cost

__all__ = ["TAB", "Tab", "TabLedger", "worst_case"]

#: Padded 4 tiles: the most an image can be billed as, whatever its size.
_WORST_TILES = 4


@dataclass(slots=True)
class Tab:
    """What one gateway request has been billed so far, attempt by attempt."""

    cost: Decimal = Decimal(0)
    attempts: list[SpendEntry] = field(default_factory=list)


TAB: contextvars.ContextVar[Tab | None] = contextvars.ContextVar(
    "llamaroute_gateway_tab", default=None
)


class TabLedger(Ledger):
    """A ledger without a budget that bills each entry to the current request's :class:`Tab`
    and keeps only running totals; ``shared``, when given, gets every entry too (the
    ``[routing] ledger`` of the config: one ledger for a fleet of gateways)."""

    def __init__(self, shared: Ledger | None = None) -> None:
        super().__init__(None)
        self._total = Decimal(0)
        self._calls = 0
        self._ids = itertools.count(1)
        self._shared = shared  # a fleet's ledger (PostgreSQL), written as well

    def record(self, entry: SpendEntry) -> None:
        self._total += entry.cost
        self._calls += 1
        if self._shared is not None:
            self._shared.record(entry)
        tab = TAB.get()
        if tab is not None:
            tab.cost += entry.cost
            tab.attempts.append(entry)

    def summary(self, since: date | None = None) -> SpendSummary:
        return SpendSummary(self._total, self._calls, {}, {}, {})

    def reserve(self, amount: Decimal, what: str) -> str:
        # The key's budget is held by the gateway's own store; the client only checks
        # max_cost, which needs an id to settle against.
        return str(next(self._ids))

    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        if entry is not None:
            self.record(entry)

    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]:
        return self._total, Decimal(0)


def worst_case(client: AsyncClient, model: str, kwargs: dict[str, Any]) -> Decimal | None:
    """The most this request can cost on any route ``client`` could send it to (``None``:
    some route's price is unknown, or no route serves it). Bad input raises the client's
    own typed errors, as the call would."""
    params = {
        name: kwargs[name]
        for name in ("max_tokens", "tools", "tool_choice", "response_format")
        if name in kwargs
    }
    request = ChatRequest.create(model, messages=kwargs["messages"], **params)
    resolution = client.catalog.resolve(request.model)
    providers = client.providers
    ceiling = request_token_ceiling(request)
    tiles = [_WORST_TILES] * len(request.images)
    worst: Decimal | None = None
    for route in resolution.routes:
        provider = providers.get(route.provider)
        if provider is None:
            continue
        price = client.catalog.price(route, provider.region)
        if price is None:
            continue  # the client refuses an unpriced route under max_cost: never sent
        cost = worst_case_cost(route, price, ceiling, tiles, request.max_tokens)
        worst = cost if worst is None else max(worst, cost)
    return worst
