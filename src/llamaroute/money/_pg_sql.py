"""The PostgreSQL ledger's writes: one attempt's record and the budget's running total, in
the caller's transaction (``_pg_ledger.py`` holds the ledger, its pool and its queue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ._ledger import RESERVATION_TTL_S, SpendEntry, holds

__all__ = ["insert", "lock_budget", "write"]


def write(connection: Any, entry: SpendEntry | None, reservation: str | None,
          budgeted: bool) -> None:  # fmt: skip
    """Release ``reservation`` (if any) and record ``entry`` (if any) with the running total;
    idempotent: an entry already written (same call id and attempt) adds nothing."""
    held = None
    if reservation is not None:
        if budgeted or entry is not None:
            lock_budget(connection)
        row = connection.execute(
            "DELETE FROM llamaroute_reservations WHERE id = %s RETURNING amount", (reservation,)
        ).fetchone()
        held = None if row is None else Decimal(row[0])
    if entry is None:
        return
    if not insert(connection, entry):
        return  # written before (a retry after a lost acknowledgement)
    connection.execute(
        "UPDATE llamaroute_budget SET spent = spent + %s WHERE name = 'default'", (entry.cost,)
    )
    if held is not None and entry.ref and holds(entry) and held - entry.cost > 0:
        # The rest stays held until the provider's figure replaces the estimate.
        connection.execute(
            "INSERT INTO llamaroute_reservations (id, amount, expires) VALUES "
            "(%s, %s, now() + %s) ON CONFLICT (id) DO UPDATE SET amount = "
            "EXCLUDED.amount, expires = EXCLUDED.expires",
            (entry.ref, held - entry.cost, timedelta(seconds=RESERVATION_TTL_S)),
        )


def insert(connection: Any, entry: SpendEntry) -> bool:
    """Add ``entry``'s row unless its (call id, attempt) is there; whether it was added."""
    at = (entry.at or datetime.now(UTC)).astimezone(UTC)
    row = connection.execute(
        "INSERT INTO llamaroute_spend (call_id, attempt, at, day, provider, model, "
        "model_id, cost, source, partial, reported, table_cost, ref) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (call_id, attempt) DO NOTHING RETURNING id",
        (entry.call_id, entry.attempt or 0, at, at.date(), entry.provider, entry.model,
         entry.model_id, entry.cost, entry.source, entry.partial, entry.reported,
         entry.table, entry.ref),
    ).fetchone()  # fmt: skip
    return row is not None


def lock_budget(connection: Any) -> Decimal:
    """Lock the budget's row for the transaction (``FOR UPDATE``: reservations and
    settlements take turns across processes); returns the running total."""
    row = connection.execute(
        "SELECT spent FROM llamaroute_budget WHERE name = 'default' FOR UPDATE"
    ).fetchone()
    if row is None:  # deleted by hand: start again from the rows
        connection.execute(
            "INSERT INTO llamaroute_budget (name, spent) SELECT 'default', "
            "coalesce(sum(cost), 0) FROM llamaroute_spend ON CONFLICT DO NOTHING"
        )
        return lock_budget(connection)
    return Decimal(row[0])
