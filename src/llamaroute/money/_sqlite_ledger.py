"""The SQLite spend ledger: one row per billed attempt in a file that processes share.

Amounts are stored as decimal text and summed as :class:`~decimal.Decimal` (SQLite's ``SUM``
is a float). Budget reservations and the settling of an attempt each run in one
``BEGIN IMMEDIATE`` transaction, so concurrent processes cannot overspend together.

A ledger must never cost the caller an answer. So the file is checked when it is opened (a
damaged file fails there, before any call, as a :class:`~llamaroute.ConfigurationError`), and
once it is open, a failed write is counted, warned about once and swallowed: the call that
produced the cost still returns its answer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from .._exceptions import BudgetExceededError, ConfigurationError
from .._sqlite import use_wal
from ._ledger import (
    RESERVATION_TTL_S,
    ZERO,
    Ledger,
    MemoryLedger,
    SpendEntry,
    SpendSummary,
    holds,
)
from ._reconcile import RouteDrift, drift_by_route
from ._sqlite_file import (
    _FIGURES,
    _SCHEMA,
    _amount,
    _check_tables,
    _connect,
    _Damaged,
    _identity,
    _migrate,
    _NotALedger,
    _text,
)

__all__ = ["SqliteLedger", "open_ledger"]

logger = logging.getLogger("llamaroute")

#: What a write can fail with once the file is open; none of it may reach the caller.
_WRITE_ERRORS = (sqlite3.Error, ArithmeticError, OSError)


class SqliteLedger(Ledger):
    """Every billed attempt as a row in a SQLite file, shared safely between processes.

    The file is checked when it is opened (``PRAGMA quick_check``): a damaged file, or one that
    is not a SQLite ledger, raises :class:`~llamaroute.ConfigurationError` naming it.
    ``read_only=True`` opens it for reading only (as ``llamaroute spend`` does), so that a
    ledger this process may not write can still be read; writing to it raises
    :class:`~llamaroute.ConfigurationError`. ``timeout`` is how long a write waits for another
    process's lock (seconds).

    Once open, the ledger never fails a call whose request was sent: a write that fails (disk
    full, locked beyond ``timeout``, the file deleted or replaced) is counted in
    :attr:`failed_writes`, its cost added to :attr:`unrecorded` (which still counts against
    the budget here), and a warning is logged once. A stored row whose cost is not an amount
    is left out of the totals and counted in :attr:`SpendSummary.skipped_rows`. If the file
    cannot be read to check a budget, no budget is left: calls are refused, not sent.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        budget: Decimal | None = None,
        *,
        read_only: bool = False,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(budget)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigurationError(f"timeout must be a number of seconds > 0, not {timeout!r}")
        self.path = Path(path)
        self.read_only = read_only
        #: How many writes failed after the ledger was opened.
        self.failed_writes = 0
        #: The cost of the entries those writes lost (USD).
        self.unrecorded = ZERO
        #: The last failure, as ``"ErrorType: message"``, for diagnosis.
        self.last_error: str | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._db = self._open(float(timeout))
        self._identity = _identity(self.path)

    def __repr__(self) -> str:
        mode = " read_only" if self.read_only else ""
        return f"<SqliteLedger {str(self.path)!r}{mode} budget={self.budget}>"

    # --- opening: every problem with the file is found here --------------------------------

    def _open(self, timeout: float) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            if self.read_only:
                db = self._connect_read_only(timeout)
            else:
                db = _connect(str(self.path), timeout)
            db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                problems = str(verdict).splitlines()
                raise _Damaged("; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else ""))
            _check_tables(db, missing_ok=not self.read_only)  # (before the schema's index)
            if not self.read_only:
                use_wal(db, timeout)
                db.executescript(_SCHEMA)
                _check_tables(db, missing_ok=False)
                _migrate(db)
        except sqlite3.Error as error:
            if db is not None:
                db.close()
            raise ConfigurationError(self._open_failure(error)) from None
        return db

    def _connect_read_only(self, timeout: float) -> sqlite3.Connection:
        uri = self.path.absolute().as_uri()
        db = _connect(f"{uri}?mode=ro", timeout, uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorname", "") != "SQLITE_CANTOPEN":
                raise
            # A WAL-mode file in a folder this process cannot write: SQLite cannot make the
            # -shm index beside it. Nothing can write there either, so the file is all there is.
            db.close()
            db = _connect(f"{uri}?mode=ro&immutable=1", timeout, uri=True)
        return db

    def _open_failure(self, error: sqlite3.Error) -> str:
        name = getattr(error, "sqlite_errorname", "")
        if isinstance(error, _NotALedger):
            return (
                f"the file {self.path} is a SQLite database but not a llamaroute spend ledger "
                f"({error}): pass another path, or move it aside"
            )
        if isinstance(error, _Damaged) or name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            what = "is not a SQLite database" if name == "SQLITE_NOTADB" else "is damaged"
            return (
                f"the spend ledger {self.path} {what} ({error}). Move it aside (rename it): a "
                "new, empty ledger is then started at that path, and `sqlite3 FILE .recover` "
                "may rescue the old records"
            )
        hint = ""
        if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM") and (
            not self.read_only and self.path.is_file()
        ):
            hint = " (if this process may only read it, open it with read_only=True)"
        return f"cannot open the spend ledger {self.path}: {error}{hint}"

    # --- writing: once open, a failure is counted and warned about, never raised -----------

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock now: one writer at a time across processes.
        # (Callers hold self._lock.)
        self._db.execute(begin)
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite has already rolled back after some errors
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _write(self, work: Callable[[sqlite3.Connection], None], lost: Decimal) -> bool:
        """Run ``work`` in one write transaction. On failure, count it, add ``lost`` to
        :attr:`unrecorded`, warn once and return ``False``. A read-only ledger raises
        :class:`~llamaroute.ConfigurationError` instead (SQLite itself refuses the write)."""
        with self._lock:
            try:
                self._check_identity()
                with self._transaction() as db:
                    work(db)
                return True
            except _WRITE_ERRORS as error:
                if self.read_only:
                    raise ConfigurationError(
                        f"the spend ledger {self.path} was opened read_only=True and cannot be "
                        f"written ({error})"
                    ) from None
                self.failed_writes += 1
                self.unrecorded += lost
                self.last_error = f"{type(error).__name__}: {error}"
        self._warn_once(
            "write", "could not write to the spend ledger %s (%s); calls go on and their "
            "answers are returned, but this spending is not in the file (see the ledger's "
            "failed_writes and unrecorded)", self.path, self.last_error,
        )  # fmt: skip
        return False

    def _check_identity(self) -> None:
        # A deleted or replaced file stays writable through the open connection (POSIX), and
        # everything written to it would vanish without an error.
        if self._identity is None:
            return
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise OSError("the file was deleted after the ledger was opened") from None
        if (now.st_dev, now.st_ino) != self._identity:
            raise OSError("the file was replaced after the ledger was opened")

    def _insert(self, db: sqlite3.Connection, entry: SpendEntry) -> None:
        # The running total is kept as exact decimal text, updated in the same transaction.
        spent = self._spent(db) + entry.cost
        db.execute("REPLACE INTO totals (name, amount) VALUES ('spent', ?)", (str(spent),))
        at = (entry.at or datetime.now(UTC)).astimezone(UTC)
        db.execute(
            "INSERT INTO spend (at, day, provider, model, model_id, cost, source, partial, "
            "reported, table_cost, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at.isoformat(), at.date().isoformat(), entry.provider, entry.model,
             entry.model_id, str(entry.cost), entry.source, int(entry.partial),
             _text(entry.reported), _text(entry.table), entry.ref),
        )  # fmt: skip

    def record(self, entry: SpendEntry) -> None:
        self._write(lambda db: self._insert(db, entry), entry.cost)

    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            held = None
            if entry is not None and entry.ref and holds(entry):
                held = db.execute("SELECT amount FROM reservations WHERE id = ?",
                                  (reservation,)).fetchone()  # fmt: skip
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            if entry is not None:
                self._insert(db, entry)
            if held is None or entry is None or not entry.ref:
                return
            rest = (_amount(held[0]) or ZERO) - entry.cost
            if rest > 0:
                # The rest stays held until the provider's figure replaces the estimate.
                db.execute("INSERT OR REPLACE INTO reservations (id, amount, expires) "
                           "VALUES (?, ?, ?)", (entry.ref, str(rest),
                                                time.time() + RESERVATION_TTL_S))  # fmt: skip

        if not self._write(work, entry.cost if entry is not None else ZERO):
            # Give the budget back at least, if the file takes that much (else it expires).
            with self._lock, suppress(*_WRITE_ERRORS), self._transaction() as db:
                db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))

    def reserve(self, amount: Decimal, what: str) -> str:
        key = uuid.uuid4().hex

        def work(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("DELETE FROM reservations WHERE expires < ?", (now,))
            if self.budget is not None:
                spent, reserved = self._sums(db)
                if spent + reserved + amount > self.budget:
                    self._refuse(amount, spent, reserved, what)  # rolls back
            db.execute(
                "INSERT INTO reservations (id, amount, expires) VALUES (?, ?, ?)",
                (key, str(amount), now + RESERVATION_TTL_S),
            )

        if not self._write(work, ZERO) and self.budget is not None:
            # Nothing has been sent yet; with no way to check the budget, spend nothing.
            raise BudgetExceededError(
                f"{what} was not sent: the budget cannot be checked, because the spend ledger "
                f"{self.path} failed ({self.last_error})"
            )
        return key

    # --- reading ---------------------------------------------------------------------------

    def summary(self, since: date | None = None) -> SpendSummary:
        query = "SELECT provider, model, day, cost FROM spend"
        args: tuple[str, ...] = ()
        if since is not None:
            query += " WHERE day >= ?"
            args = (since.isoformat(),)
        total, calls, skipped = ZERO, 0, 0
        by_provider: defaultdict[str, Decimal] = defaultdict(Decimal)
        by_model: defaultdict[str, Decimal] = defaultdict(Decimal)
        by_day: defaultdict[str, Decimal] = defaultdict(Decimal)
        with self._lock:
            try:
                rows = self._db.execute(query, args).fetchall()
            except sqlite3.Error as error:
                raise ConfigurationError(
                    f"cannot read the spend ledger {self.path}: {error}"
                ) from None
        for provider, model, day, cost in rows:
            amount = _amount(cost)
            if amount is None:
                skipped += 1
                continue
            total += amount
            calls += 1
            by_provider[str(provider)] += amount
            by_model[str(model)] += amount
            by_day[str(day)] += amount
        if skipped:
            self._warn_once(
                "rows", "%d row(s) of the spend ledger %s have a cost that is not an amount; "
                "the totals leave them out", skipped, self.path,
            )  # fmt: skip
        return SpendSummary(total, calls, dict(by_provider), dict(by_model), dict(by_day),
                            skipped_rows=skipped)  # fmt: skip

    def reconcile(self, since: date | None = None) -> list[RouteDrift]:
        """As :meth:`Ledger.reconcile`, over the rows from ``since`` on. Rows written before
        the file had the two columns (or with an unreadable figure) count as not compared."""
        with self._lock:
            try:
                have = {row[1] for row in self._db.execute("PRAGMA table_info(spend)")}
                figures = "reported, table_cost" if have >= _FIGURES else "NULL, NULL"
                query = f"SELECT provider, model_id, cost, {figures} FROM spend"
                args: tuple[str, ...] = ()
                if since is not None:
                    query += " WHERE day >= ?"
                    args = (since.isoformat(),)
                rows = self._db.execute(query, args).fetchall()
            except sqlite3.Error as error:
                raise ConfigurationError(
                    f"cannot read the spend ledger {self.path}: {error}"
                ) from None
        kept = []
        for provider, model_id, cost, reported, table in rows:
            amount = _amount(cost)
            if amount is not None:
                kept.append(
                    (str(provider), str(model_id), amount, _amount(reported), _amount(table))
                )
        return drift_by_route(kept)

    def estimated(self, provider: str) -> list[str]:
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT ref FROM spend WHERE provider = ? AND source = 'estimate' "
                    "AND ref IS NOT NULL ORDER BY id", (provider,),
                ).fetchall()  # fmt: skip
            except sqlite3.Error as error:
                raise ConfigurationError(
                    f"cannot read the spend ledger {self.path}: {error}"
                ) from None
        return [str(ref) for (ref,) in rows]

    def correct(self, ref: str, cost: Decimal) -> Decimal | None:
        change: list[Decimal] = []

        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT id, cost FROM spend WHERE ref = ? AND source = 'estimate'",
                             (ref,)).fetchone()  # fmt: skip
            if row is None:
                return
            db.execute("DELETE FROM reservations WHERE id = ?", (ref,))  # its hold ends
            delta = cost - (_amount(row[1]) or ZERO)
            db.execute("UPDATE spend SET cost = ?, reported = ?, source = 'provider' WHERE id = ?",
                       (_text(cost), _text(cost), row[0]))  # fmt: skip
            db.execute("REPLACE INTO totals (name, amount) VALUES ('spent', ?)",
                       (_text(self._spent(db) + delta),))  # fmt: skip
            change.append(delta)

        self._write(work, ZERO)
        return change[0] if change else None

    def _spent(self, db: sqlite3.Connection) -> Decimal:
        row = db.execute("SELECT amount FROM totals WHERE name = 'spent'").fetchone()
        spent = None if row is None else _amount(row[0])
        if spent is None:  # the running total is missing or unreadable: add the rows up again
            self._warn_once(
                "total", "the running total of the spend ledger %s is unreadable; it is "
                "rebuilt from the rows", self.path,
            )  # fmt: skip
            costs = (_amount(cost) for (cost,) in db.execute("SELECT cost FROM spend"))
            spent = sum((cost for cost in costs if cost is not None), ZERO)
        return spent

    def _sums(self, db: sqlite3.Connection) -> tuple[Decimal, Decimal]:
        rows = db.execute("SELECT amount FROM reservations WHERE expires >= ?", (time.time(),))
        amounts = (_amount(amount) for (amount,) in rows)
        reserved = sum((amount for amount in amounts if amount is not None), ZERO)
        # What this process could not write was still spent: it counts against the budget.
        return self._spent(db) + self.unrecorded, reserved

    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]:
        with self._lock, self._transaction("BEGIN") as db:  # one consistent snapshot
            return self._sums(db)

    def remaining(self) -> Decimal | None:
        """Budget left after what is spent and reserved, or ``None`` without a budget; ``0``
        (and a warning) while the file cannot be read."""
        if self.budget is None:
            return None
        try:
            spent, reserved = self._spent_and_reserved()
        except sqlite3.Error as error:
            self.last_error = f"{type(error).__name__}: {error}"
            self._warn_once(
                "read", "cannot read the spend ledger %s (%s): no budget is left until it can "
                "be read", self.path, self.last_error,
            )  # fmt: skip
            return ZERO
        return self.budget - spent - reserved

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        # (No lock: called with self._lock held; at worst two threads both warn.)
        first = kind not in self._warned
        self._warned.add(kind)
        logger.log(logging.WARNING if first else logging.DEBUG, message, *args)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self.unrecorded:
            logger.warning(
                "the spend ledger %s is closed without %s USD of spending it could not write",
                self.path, f"{self.unrecorded:f}",
            )  # fmt: skip


def open_ledger(ledger: Ledger | str | os.PathLike[str] | None, budget: Decimal | None) -> Ledger:
    """The ledger for ``Client(ledger=..., budget=...)``: in memory unless a path is given;
    a ``postgresql://`` URL opens a :class:`~._pg_ledger.PostgresLedger` (psycopg is
    imported only then)."""
    if isinstance(ledger, str) and ledger.startswith(("postgresql://", "postgres://")):
        from ._pg_ledger import PostgresLedger

        return PostgresLedger(ledger, budget)
    if isinstance(ledger, SqliteLedger) and ledger.read_only:
        raise ConfigurationError(
            f"the spend ledger {ledger.path} was opened read_only=True: a client needs one it "
            "can write"
        )
    if isinstance(ledger, Ledger):
        if budget is not None:
            ledger.budget = budget
        return ledger
    if ledger is None:
        return MemoryLedger(budget)
    return SqliteLedger(ledger, budget)
