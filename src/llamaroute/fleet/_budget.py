"""A budget shared by a fleet on Redis, in front of any spend ledger.

:class:`RedisBudget` is a :class:`~llamaroute.money.Ledger`: the records (summaries,
reconciliation, corrections) are the wrapped ledger's (memory, SQLite or PostgreSQL), while
the budget lives on Redis, where one Lua script checks ``spent + reserved + amount <= budget``
and reserves atomically, and another settles (releases the reservation, adds the cost), so N
processes never overspend together. Reservations expire (the ledger's
:data:`~llamaroute.money._ledger.RESERVATION_TTL_S`), so a dead process releases its own.

Amounts on Redis are integers of :data:`UNIT` USD, rounded *up* (reservations and costs), so
the shared total can only err on the safe side, by less than one unit per call. The spent
total, if Redis lost it (a restart without persistence), is seeded again from the wrapped
ledger, under a new *generation*; a settlement whose reservation belongs to an older one is
not added (the seed may have it already) but raises the total to the ledger's, which has
it. So the total never falls below the ledger's (no overspending) and exceeds it by at most
what the calls in flight at such a moment cost (recorded in the ledger, not yet added), on
the safe side. That needs a shared ledger (PostgreSQL, SQLite); with one in memory, the seed
is this process's share.

Redis unreachable: a reservation is refused with :class:`~llamaroute.BudgetExceededError`
before anything is sent (fail closed), or, with ``fail_open=True``, allowed with one warning.
A settlement never fails the call: the cost is recorded in the wrapped ledger at once, and
the Redis half is queued (up to ``queue_limit``; beyond, counted in :attr:`dropped` and
warned about) and replayed when Redis answers. Replays are idempotent: each settlement has a
marker key, so a settlement whose answer was lost is never counted twice.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import deque
from contextlib import suppress
from datetime import date
from decimal import Decimal

from .._exceptions import BudgetExceededError, ConfigurationError, LlamarouteError
from ..money import Ledger, RouteDrift, SpendEntry, SpendSummary
from ..money._ledger import RESERVATION_TTL_S, ZERO, holds
from ._connection import RedisConnection, RedisDown
from ._scripts import MAX_SPENT, RESERVE, SETTLE, SUMS

__all__ = ["UNIT", "RedisBudget"]

logger = logging.getLogger("llamaroute")

#: The budget's unit on Redis (USD): amounts are whole numbers of it.
UNIT = Decimal("1e-10")
#: Largest budget Redis can hold exactly in units (2**53 units, Lua's exact integers).
MAX_BUDGET = UNIT * 2**53
#: How long a budget's keys live without use (seconds; each use renews them).
KEY_TTL_S = 30 * 86_400
#: How long a settlement's marker is kept (seconds): a replay within it counts once. (The
#: replays come from this process's queue within an outage; one key per settlement, so short.)
MARKER_TTL_S = 900
_LOCAL = "local-"

_CORRECT = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], tonumber(ARGV[1])) end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


def units(amount: Decimal) -> int:
    """``amount`` in whole :data:`UNIT` s, rounded up (a cost or reservation never shrinks)."""
    return math.ceil(amount / UNIT)


class RedisBudget(Ledger):
    """``inner``'s records with a budget shared on Redis (see the module docstring)."""

    def __init__(
        self,
        connection: RedisConnection,
        inner: Ledger,
        budget: Decimal | None = None,
        *,
        name: str = "default",
        fail_open: bool = False,
        queue_limit: int = 10_000,
    ) -> None:
        budget = inner.budget if budget is None else budget
        super().__init__(budget)
        if budget is not None and budget >= MAX_BUDGET:
            raise ConfigurationError(f"a budget on Redis must be below {MAX_BUDGET:f} USD")
        if ":" in name or not name:
            raise ConfigurationError(f"a budget name takes no ':' and is not empty: {name!r}")
        inner.budget = None  # the budget is checked here, once, fleet-wide
        self.inner = inner
        self.fail_open = fail_open
        self.queue_limit = queue_limit
        #: Settlements dropped (queue full while Redis was down), and their cost (USD).
        self.dropped = 0
        self.dropped_cost = ZERO
        self._redis = connection
        self._keys = [connection.key("budget", name, part)
                      for part in ("spent", "expiry", "held", "generation")]  # fmt: skip
        self._marker = connection.key("budget", name, "settled") + ":"
        # Settlements waiting for Redis: (reservation, cost, hold ref, generation).
        self._pending: deque[tuple[str, int, str, str]] = deque()
        # The generation of the spent total each reservation was made in, and the latest
        # seen (see _scripts.SETTLE: a total Redis lost and the ledger reseeded).
        self._generations: dict[str, str] = {}
        self._generation = ""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._warned_open = False

    def __repr__(self) -> str:
        return f"<RedisBudget {self._redis.url!r} budget={self.budget} records={self.inner!r}>"

    # --- the records: the wrapped ledger's -------------------------------------------------

    def summary(self, since: date | None = None) -> SpendSummary:
        return self.inner.summary(since)

    def estimated(self, provider: str) -> list[str]:
        return self.inner.estimated(provider)

    def reconcile(self) -> list[RouteDrift]:
        return self.inner.reconcile()

    def record(self, entry: SpendEntry) -> None:
        self.inner.record(entry)
        self._settle_shared(_LOCAL + uuid.uuid4().hex, entry)

    def correct(self, ref: str, cost: Decimal) -> Decimal | None:
        delta = self.inner.correct(ref, cost)
        if delta is not None:
            step = units(delta) if delta > 0 else -units(-delta)
            # (Redis down: the hold expires; a lost total is reseeded from the ledger.)
            with suppress(RedisDown):
                self._redis.run("correct", _CORRECT, self._keys, [step, ref])
        return delta

    # --- the budget: Redis's ---------------------------------------------------------------

    def reserve(self, amount: Decimal, what: str) -> str:
        key = uuid.uuid4().hex
        if self.budget is None:
            return _LOCAL + key
        self._replay()
        try:
            answer = self._reserve(key, amount, "")
            if int(answer[0]) == -1:  # the spent total is gone (a Redis restart): seed it
                answer = self._reserve(key, amount, str(units(self._ledger_total(what))))
        except RedisDown:
            if self.fail_open:
                self._warn_open()
                key = _LOCAL + key
                self._remember(key, self._generation)
                return key
            raise BudgetExceededError(
                f"{what} was not sent: the budget is kept on Redis at {self._redis.url}, which "
                f"is unreachable ({self._redis.last_error}); it is retried automatically "
                "(fail_open=True lets calls through meanwhile)"
            ) from None
        if int(answer[0]) != 1:
            self._refuse(amount, int(answer[1]) * UNIT, int(answer[2]) * UNIT, what)
        self._generation = str(answer[3])
        self._remember(key, self._generation)
        return key

    def _remember(self, key: str, generation: str) -> None:
        with self._lock:
            if len(self._generations) >= 100_000:  # never settled (cannot happen): stay flat
                self._generations.clear()
            self._generations[key] = generation

    def _ledger_total(self, what: str) -> Decimal:
        try:
            return self.inner.total + getattr(self.inner, "unrecorded", ZERO)
        except LlamarouteError as error:
            raise BudgetExceededError(
                f"{what} was not sent: Redis lost the budget's running total and the ledger "
                f"cannot be read to restore it ({error})"
            ) from None

    def _reserve(self, key: str, amount: Decimal, seed: str) -> list[str]:
        assert self.budget is not None
        answer = self._redis.run(
            "reserve", RESERVE, self._keys,
            [key, units(amount), int(self.budget / UNIT), RESERVATION_TTL_S * 1000, seed,
             KEY_TTL_S, uuid.uuid4().hex],
        )  # fmt: skip
        return [str(value) for value in answer]

    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        if entry is not None:
            # First: the record is never lost. (As a settlement, so that a shared ledger
            # keys the write by this attempt's reservation: written once however retried.)
            self.inner.settle(reservation, entry)
        self._settle_shared(reservation, entry)

    def _settle_shared(self, reservation: str, entry: SpendEntry | None) -> None:
        if self.budget is None:
            return  # nothing to enforce here: no round trip (set the budget on every process)
        cost = units(entry.cost) if entry is not None else 0
        ref = entry.ref if entry is not None and entry.ref and holds(entry) else ""
        with self._lock:
            generation = self._generations.pop(reservation, None)
        if generation is None:  # (recorded without a reservation)
            generation = self._generation
        if reservation.startswith(_LOCAL) and not cost:
            return  # nothing was held on Redis, nothing to add
        item = (reservation, cost, ref or "", generation)
        self._replay()
        if not self._pending and self._apply(item):
            return
        self._queue(item)

    def _apply(self, item: tuple[str, int, str, str]) -> bool:
        reservation, cost, ref, generation = item
        try:
            result = self._redis.run(
                "settle", SETTLE, [*self._keys, self._marker + reservation],
                [reservation, cost, ref, RESERVATION_TTL_S * 1000, MARKER_TTL_S, KEY_TTL_S,
                 generation],
            )  # fmt: skip
            if int(result) == 2:
                # Redis lost the total since this cost's reservation: the ledger (which has
                # this record) is the measure; the total rises to it, and never counts twice.
                with suppress(LlamarouteError):
                    total = units(self.inner.total + getattr(self.inner, "unrecorded", ZERO))
                    self._redis.run("max_spent", MAX_SPENT, self._keys[:1], [total])
        except RedisDown:
            return False
        return True

    def _queue(self, item: tuple[str, int, str, str]) -> None:
        with self._lock:
            if len(self._pending) >= self.queue_limit:
                lost = self._pending.popleft() if self._pending else item
                if lost is not item:
                    self._pending.append(item)
                self.dropped += 1
                self.dropped_cost += lost[1] * UNIT
                logger.warning(
                    "Redis at %s is unreachable and %d budget settlements wait: one of %s USD "
                    "is dropped from the shared budget (%d so far; the ledger has the record)",
                    self._redis.url, self.queue_limit, f"{lost[1] * UNIT:f}", self.dropped,
                )  # fmt: skip
            else:
                self._pending.append(item)
            self._schedule()

    def _replay(self) -> None:
        """Apply the queued settlements in order while Redis answers."""
        while self._pending and self._redis.available:
            with self._lock:
                if not self._pending:
                    return
                item = self._pending[0]
            if not self._apply(item):
                return
            with self._lock:
                if self._pending and self._pending[0] is item:
                    self._pending.popleft()

    def _schedule(self) -> None:
        # (Lock held.) A timer replays the queue while it is not empty.
        if self._timer is not None or self._closed or not self._pending:
            return
        self._timer = threading.Timer(self._redis.retry_s, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
        self._replay()
        with self._lock:
            self._schedule()

    @property
    def pending(self) -> int:
        """Settlements waiting for Redis."""
        return len(self._pending)

    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]:
        spent, held = self._redis.run("sums", SUMS, self._keys[:3], [])
        waiting = sum(item[1] for item in self._pending) * UNIT
        total = self._ledger_total("a call") if spent == "" else int(spent) * UNIT
        return total + waiting, int(held) * UNIT

    def remaining(self) -> Decimal | None:
        """Budget left fleet-wide, or ``None`` without a budget. While Redis cannot be
        reached: ``0`` (fail closed), or what this process's ledger leaves (fail open)."""
        if self.budget is None:
            return None
        try:
            spent, reserved = self._spent_and_reserved()
        except BudgetExceededError:  # the total is lost and the ledger cannot be read
            return ZERO
        except RedisDown:
            if self.fail_open:
                return self.budget - self.inner.total
            return ZERO
        return self.budget - spent - reserved

    def _warn_open(self) -> None:
        if not self._warned_open:
            self._warned_open = True
            logger.warning(
                "Redis at %s is unreachable: the budget fails open (fail_open=True), so calls "
                "go ahead unchecked until it answers again", self._redis.url,
            )  # fmt: skip

    def close(self) -> None:
        """Replay what waits (if Redis answers), then close the wrapped ledger."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._replay()
        if self._pending:
            logger.warning(
                "closing with %d budget settlement(s) Redis at %s never took (the ledger has "
                "their records)", len(self._pending), self._redis.url,
            )  # fmt: skip
        self.inner.close()
