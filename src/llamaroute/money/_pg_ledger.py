"""The PostgreSQL spend ledger: one row per billed attempt, shared by a fleet of processes.

``Client(ledger="postgresql://user@host/db")`` opens it (``open_ledger``; psycopg 3 and
psycopg_pool, the ``postgres`` extra, are imported only then). It keeps the SQLite ledger's
record and behaviour, with what a fleet needs on top:

* **Idempotent writes.** Each row carries ``(call_id, attempt)``, unique in the table; a
  write is ``INSERT ... ON CONFLICT DO NOTHING`` and the running total moves only when the
  row was inserted. A write retried after a lost acknowledgement (the commit reached the
  server, its answer did not reach us) therefore counts once, while two attempts of one call
  are two rows. The client names each call for the whole fleet (a random prefix per client
  and its call count) and each attempt by its number in the call; an entry without a call id
  is given one when it is first written, and keeps it through every retry.
* **Budgets across processes.** ``reserve`` and ``settle`` each run in one transaction that
  locks the budget's row (``SELECT ... FOR UPDATE``), so N processes can never reserve
  together beyond the budget. Reservations expire (:data:`~._ledger.RESERVATION_TTL_S`), so
  a process that died holds nothing for long.
* **PostgreSQL unreachable.** A spend record that cannot be written is queued in memory (up
  to ``queue_limit`` entries) and written later by a background thread: as soon as the
  server may be tried again, then every ``retry_s`` seconds while the queue is not empty
  (never on the caller's thread, so an outage does not slow calls down). A record dropped
  because the queue is full is counted (:attr:`PostgresLedger.dropped`,
  :attr:`PostgresLedger.dropped_cost`) and warned about. Queued costs still count against
  the budget here. A reservation cannot be made while the server is unreachable: a call
  with a budget is then refused (fail closed, :class:`~llamaroute.BudgetExceededError`)
  before anything is sent. The answer of a call already running is never lost to the
  ledger.
* **Reconnection is automatic**: the pool checks a connection before lending it and replaces
  broken ones; after a failure the server is left alone for ``retry_s`` seconds, so a dead
  server does not slow every call down.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .._exceptions import BudgetExceededError, ConfigurationError
from ._ledger import RESERVATION_TTL_S, ZERO, Ledger, SpendEntry, SpendSummary
from ._pg_schema import (
    IDENTIFIER_CHARS,
    LATEST_VERSION,
    NewerSchemaError,
    is_postgres_url,
    migrate,
    redacted,
    schema_in,
)
from ._pg_sql import lock_budget, write
from ._reconcile import RouteDrift, drift_by_route

__all__ = ["PostgresLedger", "is_postgres_url"]

logger = logging.getLogger("llamaroute")


class _Queued:
    """A write waiting for the server: an entry with its idempotency key fixed, and the
    reservation it settles (if any)."""

    __slots__ = ("entry", "reservation")

    def __init__(self, entry: SpendEntry | None, reservation: str | None) -> None:
        self.entry = entry
        self.reservation = reservation


class PostgresLedger(Ledger):
    """The spend ledger in a PostgreSQL database, shared safely by many processes.

    Args:
        url: a libpq connection URL, ``postgresql://user@host:5432/dbname``.
        budget: the budget (USD) shared by every process using this database.
        schema: the PostgreSQL schema for the tables (created if missing); default: the
            connection's ``search_path`` (normally ``public``); a URL whose
            ``options`` set one schema (``?options=-csearch_path%3Dmyapp``) names it too.
        pool_size: most connections this process opens.
        queue_limit: most spend records kept in memory while the server is unreachable.
        retry_s: how long after a failure the server is left alone, and how often the
            queue is retried.
        connect_timeout: seconds to wait for a connection (short, so that a dead server
            does not hang calls).

    Opening it connects and migrates the schema; a server that cannot be reached then, or
    a database migrated by a newer llamaroute, raises :class:`~llamaroute.ConfigurationError`.
    """

    #: The schema version this llamaroute migrates a database to.
    SCHEMA_VERSION = LATEST_VERSION

    def __init__(
        self,
        url: str,
        budget: Decimal | None = None,
        *,
        schema: str | None = None,
        pool_size: int = 4,
        queue_limit: int = 10_000,
        retry_s: float = 1.0,
        connect_timeout: float = 2.0,
    ) -> None:
        super().__init__(budget)
        if not is_postgres_url(url):
            raise ConfigurationError(f"not a PostgreSQL URL: {url!r} (postgresql://...)")
        if pool_size < 1 or queue_limit < 0 or not retry_s > 0 or not connect_timeout > 0:
            raise ConfigurationError(
                "PostgresLedger needs pool_size >= 1, queue_limit >= 0, retry_s > 0 and "
                "connect_timeout > 0"
            )
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise ConfigurationError(
                "a PostgreSQL ledger needs psycopg 3 and psycopg_pool: "
                "pip install 'llamaroute[postgres]'"
            ) from None
        self._psycopg: Any = psycopg
        if schema is None:
            schema = schema_in(url)
        if schema is not None and (not schema or not set(schema) <= IDENTIFIER_CHARS):
            raise ConfigurationError(
                "schema must be lower-case letters, digits and underscores, e.g. 'llamaroute'"
            )
        self.url = redacted(url)
        self.schema = schema
        self.queue_limit = queue_limit
        self.retry_s = float(retry_s)
        #: Spend records dropped because the queue was full, and what they cost (USD).
        self.dropped = 0
        self.dropped_cost = ZERO
        #: The last failure, as ``"ErrorType: message"``, for diagnosis.
        self.last_error: str | None = None
        self._queue: deque[_Queued] = deque()
        self._lock = threading.Lock()  # the queue and the flags below
        self._flushing = threading.Lock()  # one flush at a time
        self._down_until = 0.0
        self._timer: threading.Timer | None = None
        self._closed = False
        self._warned: set[str] = set()
        self._make_pool: Any = lambda: ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"connect_timeout": max(1, round(connect_timeout))},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout,
            name="llamaroute-ledger",
        )
        self._pool: Any = self._make_pool()
        try:
            self._pool.open(wait=True, timeout=connect_timeout + 1)
            with self._pool.connection() as connection:
                if schema is not None:
                    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    connection.commit()
                    connection.execute(f'SET search_path TO "{schema}"')
                migrate(connection)
        except (psycopg.Error, NewerSchemaError, OSError) as error:
            self._pool.close()
            raise ConfigurationError(
                f"cannot open the spend ledger at {self.url}: {error}".rstrip()
                + " (check that PostgreSQL runs there and that the URL, user and database "
                "are right)"
            ) from None
        except BaseException:
            self._pool.close()
            raise

    def _connection(self) -> Any:
        """A pooled connection (context manager); a ledger used after :meth:`close` (to read
        it, say) opens a new pool."""
        if self._pool.closed:
            with self._lock:
                if self._pool.closed:
                    self._pool = self._make_pool()
                    self._pool.open(wait=False)
                    self._closed = False
        return self._pool.connection()

    def _configure(self, connection: Any) -> None:
        if self.schema is not None:
            connection.execute(f'SET search_path TO "{self.schema}"')
            connection.commit()

    def __repr__(self) -> str:
        return f"<PostgresLedger {self.url!r} budget={self.budget}>"

    # --- writing ---------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """How many spend records wait in memory for the server."""
        return len(self._queue)

    @property
    def unrecorded(self) -> Decimal:
        """The cost of the queued records (USD): spent, not yet in the database."""
        with self._lock:
            return sum((q.entry.cost for q in self._queue if q.entry is not None), ZERO)

    def record(self, entry: SpendEntry) -> None:
        self._write(_Queued(_keyed(entry, None), None))

    def settle(self, reservation: str, entry: SpendEntry | None) -> None:
        self._write(_Queued(None if entry is None else _keyed(entry, reservation), reservation))

    def _write(self, item: _Queued) -> None:
        """Write ``item`` now if the server answers (after anything queued before it), else
        queue it. Never raises: the call that produced the cost keeps its answer."""
        if not self._queue and self._available() and self._try(item):
            return
        # Queued: written by the timer's thread, never this one, so that a server that
        # does not answer costs the caller's call nothing more.
        self._enqueue(item)

    def _try(self, item: _Queued) -> bool:
        """Write ``item``: ``True`` when it is done with (written, or refused by the server
        as bad data: dropped, counted and warned about, so it cannot block the queue),
        ``False`` when the server could not be reached (then it is to be retried)."""
        try:
            self._apply(item)
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as error:
            self._failed(error)
            return False
        except self._psycopg.Error as error:
            self._drop(item, f"the server refused it: {type(error).__name__}: {error}")
        return True

    def _drop(self, item: _Queued, why: str) -> None:
        cost = item.entry.cost if item.entry is not None else ZERO
        with self._lock:
            self.dropped += 1
            self.dropped_cost += cost
        self._warn("dropped", "the spend ledger %s dropped a record of %s USD (%s); %d dropped "
                   "so far", self.url, f"{cost:f}", why, self.dropped)  # fmt: skip

    def _enqueue(self, item: _Queued) -> None:
        with self._lock:
            lost = None
            if len(self._queue) >= self.queue_limit:
                lost = self._queue.popleft() if self._queue else item
            if lost is not item:
                self._queue.append(item)
            # Written as soon as the server may be tried again (the next write's turn).
            self._schedule(max(0.0, self._down_until - time.monotonic()))
        if lost is not None:
            self._drop(lost, f"it is unreachable and {self.queue_limit} records wait already")

    def flush(self) -> int:
        """Write the queued records now, if the server answers; returns how many are left."""
        if not self._flushing.acquire(blocking=False):
            return len(self._queue)  # another thread is at it
        try:
            while self._queue and self._available():
                item = self._queue[0]
                if not self._try(item):
                    break
                with self._lock:
                    if self._queue and self._queue[0] is item:
                        self._queue.popleft()
            if not self._queue and "queued" in self._warned:
                logger.info("the spend ledger %s is reachable again; its queue is written",
                            self.url)  # fmt: skip
                self._warned.discard("queued")
            return len(self._queue)
        finally:
            self._flushing.release()

    def _schedule(self, delay: float | None = None) -> None:
        # (Called with self._lock held.) One timer at a time, only while records wait.
        if self._timer is not None or self._closed or not self._queue:
            return
        self._timer = threading.Timer(self.retry_s if delay is None else delay, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()
        with self._lock:
            self._schedule()

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}".strip()
        self._down_until = time.monotonic() + self.retry_s
        self._warn(
            "queued", "cannot write to the spend ledger %s (%s); spend records are queued in "
            "memory (up to %d) and written when it answers again", self.url, self.last_error,
            self.queue_limit,
        )  # fmt: skip

    def _apply(self, item: _Queued) -> None:
        """Write one item in one transaction (idempotent: safe to repeat)."""
        with self._connection() as connection, connection.transaction():
            write(connection, item.entry, item.reservation, self.budget is not None)

    # --- budgets ---------------------------------------------------------------------------

    def reserve(self, amount: Decimal, what: str) -> str:
        key = uuid.uuid4().hex
        if self.budget is None:
            return key  # nothing to hold: settle only records
        if self._queue:
            self.flush()
        problem = None
        if self._available():
            try:
                self._reserve(key, amount, what)
                return key
            except self._psycopg.Error as error:
                self._failed(error)
                problem = self.last_error
        raise BudgetExceededError(
            f"{what} was not sent: the budget cannot be checked, because the spend ledger "
            f"{self.url} is unreachable ({problem or self.last_error}); it is retried "
            "automatically"
        )

    def _reserve(self, key: str, amount: Decimal, what: str) -> None:
        assert self.budget is not None
        with self._connection() as connection, connection.transaction():
            spent = lock_budget(connection) + self.unrecorded
            connection.execute("DELETE FROM llamaroute_reservations WHERE expires < now()")
            row = connection.execute(
                "SELECT coalesce(sum(amount), 0) FROM llamaroute_reservations"
            ).fetchone()
            reserved = Decimal(row[0])
            if spent + reserved + amount > self.budget:
                self._refuse(amount, spent, reserved, what)  # rolls back
            connection.execute(
                "INSERT INTO llamaroute_reservations (id, amount, expires) VALUES "
                "(%s, %s, now() + %s)",
                (key, amount, timedelta(seconds=RESERVATION_TTL_S)),
            )

    def _spent_and_reserved(self) -> tuple[Decimal, Decimal]:
        with self._connection() as connection, connection.transaction():
            row = connection.execute(
                "SELECT (SELECT spent FROM llamaroute_budget WHERE name = 'default'), "
                "(SELECT coalesce(sum(amount), 0) FROM llamaroute_reservations "
                "WHERE expires >= now())"
            ).fetchone()
        spent = Decimal(row[0]) if row[0] is not None else ZERO
        return spent + self.unrecorded, Decimal(row[1])

    def remaining(self) -> Decimal | None:
        """Budget left after what is spent and reserved, or ``None`` without a budget; ``0``
        (and a warning) while the server cannot be reached."""
        if self.budget is None:
            return None
        try:
            spent, reserved = self._spent_and_reserved()
        except self._psycopg.Error as error:
            self._failed(error)
            return ZERO
        return self.budget - spent - reserved

    # --- reading ---------------------------------------------------------------------------

    @property
    def total(self) -> Decimal:
        """Everything written so far (USD): the running total, kept exact with the rows in
        the same transactions (one row read, however long the table)."""
        rows = self._rows("SELECT spent FROM llamaroute_budget WHERE name = 'default'")
        return Decimal(rows[0][0]) if rows else self.summary().total

    def _rows(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._connection() as connection:
                rows: list[tuple[Any, ...]] = connection.execute(query, args).fetchall()
                return rows
        except self._psycopg.Error as error:
            raise ConfigurationError(
                f"cannot read the spend ledger at {self.url}: {error}".rstrip()
            ) from None

    def summary(self, since: date | None = None) -> SpendSummary:
        where, args = ("WHERE day >= %s", (since,)) if since is not None else ("", ())
        rows = self._rows(
            "SELECT provider, model, day, sum(cost), count(*) FROM llamaroute_spend "
            f"{where} GROUP BY provider, model, day",
            args,
        )
        total, calls = ZERO, 0
        by_provider: defaultdict[str, Decimal] = defaultdict(Decimal)
        by_model: defaultdict[str, Decimal] = defaultdict(Decimal)
        by_day: defaultdict[str, Decimal] = defaultdict(Decimal)
        for provider, model, day, cost, count in rows:
            amount = Decimal(cost)
            total += amount
            calls += int(count)
            by_provider[str(provider)] += amount
            by_model[str(model)] += amount
            by_day[day.isoformat()] += amount
        return SpendSummary(total, calls, dict(by_provider), dict(by_model), dict(by_day))

    def reconcile(self, since: date | None = None) -> list[RouteDrift]:
        """As :meth:`Ledger.reconcile`, over the rows from ``since`` on."""
        where, args = ("WHERE day >= %s", (since,)) if since is not None else ("", ())
        rows = self._rows(
            f"SELECT provider, model_id, cost, reported, table_cost FROM llamaroute_spend {where}",
            args,
        )
        return drift_by_route([(str(p), str(m), Decimal(c), r, t) for p, m, c, r, t in rows])

    def estimated(self, provider: str) -> list[str]:
        rows = self._rows(
            "SELECT ref FROM llamaroute_spend WHERE provider = %s AND source = 'estimate' "
            "AND ref IS NOT NULL ORDER BY id",
            (provider,),
        )
        return [str(ref) for (ref,) in rows]

    def correct(self, ref: str, cost: Decimal) -> Decimal | None:
        try:
            with self._connection() as connection, connection.transaction():
                lock_budget(connection)
                row = connection.execute(
                    "SELECT id, cost FROM llamaroute_spend WHERE ref = %s AND source = "
                    "'estimate' ORDER BY id LIMIT 1 FOR UPDATE",
                    (ref,),
                ).fetchone()
                if row is None:
                    return None
                delta = cost - Decimal(row[1])
                connection.execute("DELETE FROM llamaroute_reservations WHERE id = %s", (ref,))
                connection.execute(
                    "UPDATE llamaroute_spend SET cost = %s, reported = %s, source = 'provider' "
                    "WHERE id = %s",
                    (cost, cost, row[0]),
                )
                connection.execute(
                    "UPDATE llamaroute_budget SET spent = spent + %s WHERE name = 'default'",
                    (delta,),
                )
                return delta
        except self._psycopg.Error as error:
            self._failed(error)
            return None

    # --- the rest --------------------------------------------------------------------------

    def _warn(self, kind: str, message: str, *args: object) -> None:
        first = kind not in self._warned
        self._warned.add(kind)
        logger.log(logging.WARNING if first or kind == "dropped" else logging.DEBUG,
                   message, *args)  # fmt: skip

    def close(self) -> None:
        """Write what is queued if the server answers, then close the pool. Records still
        queued are lost: their count and cost are logged as a warning."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._down_until = 0.0
        left = self.flush()
        if left:
            logger.warning(
                "the spend ledger %s is closed with %d record(s) (%s USD) it could not write",
                self.url, left, f"{self.unrecorded:f}",
            )  # fmt: skip
        self._pool.close()


def _keyed(entry: SpendEntry, reservation: str | None) -> SpendEntry:
    """``entry`` with its idempotency key fixed: its own call id and attempt if it has one
    (the client always gives both: its fleet-unique call id and the attempt's number in the
    call), else the reservation's id (unique per attempt), else a random id."""
    if entry.call_id is not None:
        return entry
    return replace(entry, call_id=reservation or uuid.uuid4().hex, attempt=entry.attempt or 0)
