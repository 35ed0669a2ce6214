"""The SQLite ledger's file: its schema, the checks made when it is opened, the migration of
files written by older versions, and how stored amounts are read (``_sqlite_ledger.py`` holds
the ledger itself)."""

from __future__ import annotations

import os
import sqlite3
from decimal import Decimal
from pathlib import Path

__all__ = [
    "_FIGURES",
    "_SCHEMA",
    "_Damaged",
    "_NotALedger",
    "_amount",
    "_check_tables",
    "_connect",
    "_identity",
    "_migrate",
    "_text",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    model_id TEXT NOT NULL,
    cost TEXT NOT NULL,
    source TEXT NOT NULL,
    partial INTEGER NOT NULL,
    reported TEXT,
    table_cost TEXT,
    ref TEXT
);
CREATE INDEX IF NOT EXISTS spend_day ON spend(day);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    amount TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS totals (
    name TEXT PRIMARY KEY,
    amount TEXT NOT NULL
);
INSERT OR IGNORE INTO totals (name, amount) VALUES ('spent', '0');
"""

#: The columns the ledger reads and writes, per table.
_TABLES = {
    "spend": {"at", "day", "provider", "model", "model_id", "cost", "source", "partial"},
    "reservations": {"id", "amount", "expires"},
    "totals": {"name", "amount"},
}

_MAX_AMOUNT = Decimal(10**12)


def _connect(target: str, timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(target, timeout=timeout, isolation_level=None,
                           check_same_thread=False, uri=uri)  # fmt: skip


def _check_tables(db: sqlite3.Connection, *, missing_ok: bool) -> None:
    for table, needed in _TABLES.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not (needed <= have or (missing_ok and not have)):
            raise _NotALedger(f"its table {table!r} is missing or lacks columns")


#: The reconciliation columns, added to ledger files written before they existed.
_FIGURES = {"reported", "table_cost"}
#: Every column added since the first version, with the reconciliation ones.
_ADDED = {*_FIGURES, "ref"}


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a ledger file from an older version lacks (NULL in its old rows)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(spend)")}
    for column in sorted(_ADDED - have):
        db.execute(f"ALTER TABLE spend ADD COLUMN {column} TEXT")


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:f}"


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:  # ":memory:", for one
        return None
    return found.st_dev, found.st_ino


class _Damaged(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage."""


class _NotALedger(sqlite3.DatabaseError):
    """A SQLite file without the ledger's tables."""


def _amount(value: object) -> Decimal | None:
    """A stored amount as a Decimal, or ``None`` unless it is an amount in [0, 10**12) USD
    (beyond that it is no cost, and '1e999999999' would overflow the sum)."""
    if isinstance(value, float):
        value = repr(value)  # a hand-edited REAL: its shortest decimal form
    if not isinstance(value, str | int):
        return None  # NULL, a BLOB
    try:
        amount = Decimal(value)
    except ArithmeticError:  # decimal.InvalidOperation: 'abc'
        return None
    return amount if amount.is_finite() and 0 <= amount < _MAX_AMOUNT else None
