"""Reconciliation: the provider's own figures beside the price table's, per route.

Every billed attempt is recorded with the figure it was charged at and, where both are known,
the provider's reported cost and usage x the table's price. Summed per route, the two show how
far the table has drifted from what the provider bills (``llamaroute spend --reconcile``): a
drift of a few percent is rounding, a steady one means the table needs a refresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, TypeVar

__all__ = ["RouteDrift", "Row", "Sums", "drift_by_route", "drifts", "tally"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RouteDrift:
    """One route's figures over a ledger.

    ``calls`` counts its billed attempts, ``spent`` what they were charged at; ``compared``
    counts those with both a reported and a table figure, summed in ``reported`` and ``table``
    (estimates, and providers that report no cost, are not compared).
    """

    provider: str
    model_id: str
    calls: int
    spent: Decimal
    compared: int
    reported: Decimal
    table: Decimal

    @property
    def drift(self) -> Decimal:
        """Reported minus table (USD): positive when the provider bills more than the table."""
        return self.reported - self.table

    @property
    def drift_share(self) -> Decimal | None:
        """The drift as a share of the table's figure (``None`` when that is 0)."""
        return self.drift / self.table if self.table else None

    def as_dict(self) -> dict[str, object]:
        """The figures with amounts as Decimals (the CLI writes them as plain strings)."""
        share = self.drift_share
        return {
            "provider": self.provider, "model_id": self.model_id, "calls": self.calls,
            "spent": self.spent, "compared": self.compared, "reported": self.reported,
            "table": self.table, "drift": self.drift,
            "drift_percent": None if share is None else round(share * 100, 2),
        }  # fmt: skip


Row = tuple[str, str, Decimal, Decimal | None, Decimal | None]
"""One billed attempt: ``(provider, model_id, cost, reported, table)``."""

Sums = dict[tuple[str, str], list[Decimal]]
_K = TypeVar("_K", bound=tuple[str, ...])
"""Running sums per route: calls, spent, compared, reported, table."""


def tally(
    sums: dict[_K, list[Decimal]],
    key: _K,
    cost: Decimal,
    reported: Decimal | None,
    table: Decimal | None,
) -> None:
    """Add one billed attempt to the running ``sums`` under ``key`` (a route, or finer)."""
    entry = sums.get(key)
    if entry is None:  # (not setdefault: that builds the list on every call)
        entry = sums[key] = [ZERO, ZERO, ZERO, ZERO, ZERO]
    entry[0] += 1
    entry[1] += cost
    if reported is not None and table is not None:
        entry[2] += 1
        entry[3] += reported
        entry[4] += table


def drifts(sums: Sums) -> list[RouteDrift]:
    """The running ``sums`` as one :class:`RouteDrift` per route, sorted by route."""
    return [
        RouteDrift(provider, model_id, int(calls), spent, int(compared), reported, table)
        for (provider, model_id), (calls, spent, compared, reported, table) in sorted(sums.items())
    ]


def drift_by_route(rows: Iterable[Row]) -> list[RouteDrift]:
    """Sum billed attempts per route."""
    sums: Sums = {}
    for provider, model_id, cost, reported, table in rows:
        tally(sums, (provider, model_id), cost, reported, table)
    return drifts(sums)


class Corrections(NamedTuple):
    """What ``Client.reconcile_generations()`` did: estimates replaced by the provider's own
    figure, estimates the provider has no figure for yet (try again later), and the change
    to the ledger's total (USD; negative when the estimates were high)."""

    corrected: int
    pending: int
    change: Decimal
