"""The spend ledger: what a client has spent, by provider, model and day, and its budget.

Two stores behind one interface:

* :class:`MemoryLedger` (the default): running totals only, so memory stays flat however
  many calls are made.
* :class:`SqliteLedger` (``Client(ledger="spend.db")``; ``_sqlite_ledger.py``, with
  ``open_ledger``, which picks the store for a client): every billed attempt is a row in a
  SQLite file (WAL mode, a busy timeout), so several processes can share one ledger and one
  budget. Amounts are stored as decimal text and summed as
  :class:`~decimal.Decimal`: exact.

Budgets work by reservation: before an attempt, its worst-case cost is reserved; the attempt
may go ahead only if spent + reserved + this reservation fits the budget. When it ends, the
reservation is released and the real cost recorded, all under one lock (or, for SQLite, one
``BEGIN IMMEDIATE`` transaction), so concurrent calls cannot overspend together. SQLite
reservations carry an expiry, so a crashed process cannot hold budget forever.

An attempt cut short or abandoned whose cost the provider can still report (an OpenRouter
stream: ``SpendEntry.ref``, its generation id) is recorded as an estimate of the prompt and
the text received, and the rest of its reservation stays *held*: the upstream may have kept
generating after the hang-up (OpenRouter cannot stop Bedrock, for one), so the budget keeps
room for the worst case until :meth:`Ledger.correct` puts the provider's figure in place (as
``Client.reconcile_generations()`` does), or for at most :data:`RESERVATION_TTL_S`.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from .._exceptions import BudgetExceededError, ConfigurationError
from .._records import plain_decimal
from ._reconcile import RouteDrift, Sums, drifts, tally

__all__ = ["Ledger", "MemoryLedger", "SpendEntry", "SpendSummary", "holds"]

ZERO = Decimal(0)
_set = object.__setattr__
#: A reservation older than this is taken to belong to a process that died.
RESERVATION_TTL_S = 15 * 60
#: How many estimates awaiting the provider's figure a memory ledger keeps (the newest).
PENDING_LIMIT = 1000


@dataclass(frozen=True, init=False)
class SpendEntry:
    """One billed attempt: when, where, and what it cost (USD).

    ``partial`` marks an attempt that failed after the provider had generated (and billed)
    tokens, such as a stream cut short; ``source`` says where the figure came from.
    ``reported`` (the provider's own figure) and ``table`` (usage x the price table) are kept
    side by side where known, for reconciliation (:meth:`Ledger.reconcile`). ``ref`` is the
    provider's id for an attempt whose cost is an estimate (OpenRouter's generation id), so
    that the provider's figure can replace it later (:meth:`Ledger.correct`). ``call_id`` and
    ``attempt`` identify the attempt across a fleet: a shared ledger (PostgreSQL) writes an
    attempt once however often the write is retried (a store that is given none makes one).
    """

    provider: str
    model: str
    model_id: str
    cost: Decimal
    source: str
    partial: bool = False
    at: datetime | None = None
    reported: Decimal | None = None
    table: Decimal | None = None
    ref: str | None = None
    call_id: str | None = None
    attempt: int | None = None

    def __init__(
        self,
        provider: str,
        model: str,
        model_id: str,
        cost: Decimal,
        source: str,
        partial: bool = False,
        at: datetime | None = None,
        reported: Decimal | None = None,
        table: Decimal | None = None,
        ref: str | None = None,
        call_id: str | None = None,
        attempt: int | None = None,
    ) -> None:
        # The generated __init__ of a frozen dataclass sets each of the twelve fields through
        # object.__setattr__; every call records one entry, and one __dict__ costs half.
        _set(self, "__dict__", {"provider": provider, "model": model, "model_id": model_id,
                                "cost": cost, "source": source, "partial": partial, "at": at,
                                "reported": reported, "table": table, "ref": ref,
                                "call_id": call_id, "attempt": attempt})  # fmt: skip

    @property
    def day(self) -> date:
        """The UTC day of the entry."""
        return (self.at or datetime.now(UTC)).astimezone(UTC).date()


_DAY_S = 86_400
_days: dict[int, str] = {}


def holds(entry: SpendEntry | None) -> bool:
    """Whether the rest of ``entry``'s reservation stays held after it is recorded: an
    estimate of an attempt the provider can still report on (see the module docstring)."""
    return entry is not None and entry.ref is not None and entry.source == "estimate"


def _today() -> str:
    """Today's UTC date as ISO text, as ``SpendEntry.day`` gives it for an entry without
    ``at``: every call records one, and a datetime round trip costs more than the rest of
    the record. (POSIX time has exactly 86,400 s a day, as datetime assumes.)"""
    number = int(time.time() // _DAY_S)
    text = _days.get(number)
    if text is None:
        _days.clear()  # one day kept at a time
        text = _days[number] = datetime.fromtimestamp(number * _DAY_S, UTC).date().isoformat()
    return text


@dataclass(frozen=True)
class SpendSummary:
    """Totals over a ledger (or part of it): exact Decimal USD.

    ``skipped_rows`` counts stored rows left out because their cost could not be read.
    """

    total: Decimal
    calls: int
    by_provider: dict[str, Decimal]
    by_model: dict[str, Decimal]
    by_day: dict[str, Decimal]
    skipped_rows: int = 0

    def as_dict(self) -> dict[str, object]:
        """The summary with amounts as plain decimal strings (exact, for JSON)."""
        return {
            "total": plain_decimal(self.total),
            "calls": self.calls,
            "by_provider": {k: plain_decimal(v) for k, v in self.by_provider.items()},
            "by_model": {k: plain_decimal(v) for k, v in self.by_model.items()},
            "by_day": {k: plain_decimal(v) for k, v in self.by_day.items()},
            "skipped_rows": self.skipped_rows,
        }


class Ledger(ABC):
    """Where a client's spending is recorded. ``budget`` (USD) is optional."""

    def __init__(self, budget: Decimal | None = None) -> None:
        if budget is not None and (not isinstance(budget, Decimal) or budget < 0):
            raise ConfigurationError("budget must be a Decimal >= 0 (USD), e.g. Decimal('5.00')")
        self.budget = budget

    @property
    def total(self) -> Decimal:
        """Everything recorded so far (USD)."""
        return self.summary().total

    def remaining(self) -> Decimal | None:
        """Budget left after what is spent and reserved, or ``None`` without a budget."""
        if self.budget is None:
            return None
        spent, reserved = self._spent_and_reserved()
        return self.budget - spent - reserved

    @abstractmethod
    def record(self, entry: SpendEntry) -> None:
        """Add a billed attempt."""

    @abstractmethod
    def summary(self, since: date | None = None) -> SpendSummary:
        """Totals by provider, model and day (entries on or after ``since``)."""

    def estimated(self, provider: str) -> list[str]:
        """The ids (``SpendEntry.ref``) of ``provider``'s attempts still recorded as estimates
        that the provider can look up. A store that keeps none returns ``[]``."""
        return []

    def correct(self, ref: str, cost: Decimal) -> Decimal | None:
        """Replace the estimate recorded for ``ref`` with the provider's figure ``cost``;
        returns the change to the total (``None``: no such estimate)."""
        return None

    def reconcile(self) -> list[RouteDrift]:
        """Per route: the billed attempts, and the provider's reported costs beside the price
        table's figures for the same calls (``llamaroute spend --reconcile``). A store that
        keeps no such detail returns ``[]``."""
        return []

    @abstractmethod
    def reserve(self, amount: Decimal, what: str) -> str:
        """Hold ``amount`` of the budget for one attempt; returns a reservation id.

        Raises :class:`BudgetExceededError` (with the figures) when it does not fit.
        """

    @abstractmethod
    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        """Release a reservation and record what the attempt really cost (if anything)."""

    @abstractmethod
    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]: ...

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release the store's resources."""

    def _refuse(self, amount: Decimal, spent: Decimal, reserved: Decimal, what: str) -> None:
        assert self.budget is not None
        left = self.budget - spent - reserved
        raise BudgetExceededError(
            f"{what} could cost up to {amount:f} USD, but only {max(left, ZERO):f} USD of the "
            f"{self.budget:f} USD budget is left ({spent:f} spent, {reserved:f} reserved by "
            "calls in flight)"
        )


class MemoryLedger(Ledger):
    """Running totals in memory, under one lock (thread- and asyncio-safe: no awaits)."""

    def __init__(self, budget: Decimal | None = None) -> None:
        super().__init__(budget)
        self._lock = threading.Lock()
        self._total = ZERO
        self._calls = 0
        # One running sum per provider, model, route and day (calls, spent, and the
        # reconciliation's compared, reported and table): one update per entry, where a
        # total per provider, per model, per day and per route took five. The totals by each
        # are summed from these when asked for (a handful of rows a day).
        self._sums: dict[tuple[str, str, str, str], list[Decimal]] = {}
        self._reserved: dict[str, Decimal] = {}
        self._held_until: dict[str, float] = {}  # held rests of estimates, by ref
        self._estimates: dict[str, SpendEntry] = {}  # by ref; the newest PENDING_LIMIT kept

    def __repr__(self) -> str:
        return f"<MemoryLedger total={self._total} budget={self.budget}>"

    def record(self, entry: SpendEntry) -> None:
        with self._lock:
            self._add(entry)

    def _add(self, entry: SpendEntry) -> None:
        cost = entry.cost
        self._total += cost
        self._calls += 1
        day = entry.day.isoformat() if entry.at is not None else _today()
        tally(self._sums, (entry.provider, entry.model, entry.model_id, day), cost,
              entry.reported, entry.table)  # fmt: skip
        if entry.ref is not None and entry.source == "estimate":
            self._estimates[entry.ref] = entry
            if len(self._estimates) > PENDING_LIMIT:  # memory stays flat
                del self._estimates[next(iter(self._estimates))]

    def estimated(self, provider: str) -> list[str]:
        with self._lock:
            return [ref for ref, entry in self._estimates.items() if entry.provider == provider]

    def correct(self, ref: str, cost: Decimal) -> Decimal | None:
        with self._lock:
            if self._held_until.pop(ref, None) is not None:
                self._reserved.pop(ref, None)  # the provider's figure is in: the hold ends
            entry = self._estimates.pop(ref, None)
            if entry is None:
                return None
            delta = cost - entry.cost
            self._total += delta
            day = entry.day.isoformat() if entry.at is not None else _today()
            self._sums[(entry.provider, entry.model, entry.model_id, day)][1] += delta
            return delta

    def reconcile(self) -> list[RouteDrift]:
        with self._lock:
            routes: Sums = {}
            for (provider, _, model_id, _), row in self._sums.items():
                sums = routes.get((provider, model_id))
                if sums is None:
                    routes[(provider, model_id)] = list(row)
                else:
                    for index, value in enumerate(row):
                        sums[index] += value
            return drifts(routes)

    def summary(self, since: date | None = None) -> SpendSummary:
        with self._lock:
            by_provider: defaultdict[str, Decimal] = defaultdict(Decimal)
            by_model: defaultdict[str, Decimal] = defaultdict(Decimal)
            by_day: defaultdict[str, Decimal] = defaultdict(Decimal)
            calls_by_day: defaultdict[str, int] = defaultdict(int)
            for (provider, model, _, day), row in self._sums.items():
                by_provider[provider] += row[1]
                by_model[model] += row[1]
                by_day[day] += row[1]
                calls_by_day[day] += int(row[0])
            if since is None:
                return SpendSummary(self._total, self._calls, dict(by_provider),
                                    dict(by_model), dict(by_day))  # fmt: skip
            days = {d: v for d, v in by_day.items() if d >= since.isoformat()}
            calls = sum(n for d, n in calls_by_day.items() if d >= since.isoformat())
            # Running totals keep no per-entry detail: with `since`, only the days split.
            return SpendSummary(sum(days.values(), ZERO), calls, {}, {}, days)

    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]:
        with self._lock:
            self._expire_holds()
            return self._total, sum(self._reserved.values(), ZERO)

    def _expire_holds(self) -> None:
        if self._held_until:
            now = time.monotonic()
            for ref in [ref for ref, until in self._held_until.items() if until < now]:
                del self._held_until[ref]
                self._reserved.pop(ref, None)

    def reserve(self, amount: Decimal, what: str) -> str:
        with self._lock:
            self._expire_holds()
            reserved = sum(self._reserved.values(), ZERO)
            if self.budget is not None and self._total + reserved + amount > self.budget:
                self._refuse(amount, self._total, reserved, what)
            key = uuid.uuid4().hex
            self._reserved[key] = amount
            return key

    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        with self._lock:
            held = self._reserved.pop(reservation, None)
            if entry is not None:
                self._add(entry)
            if held is not None and entry is not None and entry.ref and holds(entry):
                rest = held - entry.cost
                if rest > 0:
                    self._reserved[entry.ref] = rest
                    self._held_until[entry.ref] = time.monotonic() + RESERVATION_TTL_S
