"""The gateway's SQLite file: virtual keys (only their hashes), per-key budgets with
reservations, per-key request rates, and spend by key, user, tag, provider, model and day.

Every decision that must hold across requests and worker processes (does this request fit the
key's budget? is the key over its rate?) is taken under one write transaction
(``BEGIN IMMEDIATE``), so two requests, even in two processes, never both take the last of a
budget. Amounts are exact decimal strings, summed as :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from .._exceptions import ConfigurationError
from .._records import plain_decimal
from .._sqlite import use_wal
from ._reports import GROUPINGS, spend_report, spend_series

__all__ = [
    "DB_ENV",
    "GROUPINGS",
    "KEY_PREFIX",
    "RESERVATION_TTL_S",
    "Admission",
    "KeyRecord",
    "Settlement",
    "Store",
    "default_db_path",
    "hash_key",
]

DB_ENV = "LLAMAROUTE_GATEWAY_DB"
KEY_PREFIX = "lr-"
#: A reservation older than this is ignored (its request, or its process, died without
#: settling): no call lives this long, and a crash must not hold a budget forever.
RESERVATION_TTL_S = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    budget TEXT,
    rpm INTEGER,
    models TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    revoked REAL,
    spent TEXT NOT NULL DEFAULT '0'
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_key ON reservations(key_id);
CREATE TABLE IF NOT EXISTS windows (
    key_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key_id, minute)
);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    day TEXT NOT NULL,
    key_id TEXT NOT NULL,
    user TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    cost TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_day ON spend(day);
CREATE TABLE IF NOT EXISTS spend_tags (
    spend_id INTEGER NOT NULL,
    tag TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_tags_id ON spend_tags(spend_id);
"""


def default_db_path() -> Path:
    """``$LLAMAROUTE_GATEWAY_DB``, else ``$XDG_DATA_HOME/llamaroute/gateway.sqlite3`` (by
    default ``~/.local/share/llamaroute/gateway.sqlite3``)."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llamaroute" / "gateway.sqlite3"


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 of a 256-bit random secret (no salt is needed at
    that entropy; it cannot be guessed or looked up)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as stored (never its secret): ``budget`` USD (``None``: unlimited),
    ``rpm`` requests a minute (``None``: unlimited), allowed ``models`` (empty: all)."""

    id: str
    name: str
    prefix: str
    budget: Decimal | None
    rpm: int | None
    models: tuple[str, ...]
    tags: tuple[str, ...]
    created: float
    revoked: float | None
    spent: Decimal

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, amounts as exact strings."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "budget": None if self.budget is None else plain_decimal(self.budget),
            "rpm": self.rpm,
            "models": list(self.models),
            "tags": list(self.tags),
            "spent": plain_decimal(self.spent),
            "remaining": None if self.budget is None else plain_decimal(self.budget - self.spent),
            "created": _iso(self.created),
            "revoked": None if self.revoked is None else _iso(self.revoked),
        }


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one finished request cost, for whom (key, user, tags), where, and the
    reservation it releases."""

    key_id: str
    reservation: int | None
    cost: Decimal
    user: str | None
    tags: tuple[str, ...]
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    status: str
    at: float


@dataclass(frozen=True, slots=True)
class Admission:
    """Why a request may not go on (``refusal`` is ``"budget"`` or ``"rate"``), or the id of
    the budget it holds (``reservation``) when it may."""

    reservation: int | None = None
    refusal: str | None = None
    message: str = ""
    retry_after: int | None = None


_COLUMNS = "id, name, prefix, budget, rpm, models, tags, created, revoked, spent"


def _record(row: sqlite3.Row | tuple[object, ...]) -> KeyRecord:
    kid, name, prefix, budget, rpm, models, tags, created, revoked, spent = row
    return KeyRecord(
        str(kid),
        str(name),
        str(prefix),
        None if budget is None else Decimal(str(budget)),
        None if rpm is None else int(str(rpm)),
        tuple(json.loads(str(models))),
        tuple(json.loads(str(tags))),
        float(str(created)),
        None if revoked is None else float(str(revoked)),
        Decimal(str(spent)),
    )


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


class Store:
    """The gateway's database. One connection, used from one thread (the event loop's, or the
    command line's); several processes may share the file (WAL, a busy timeout)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            use_wal(self._db, 30.0)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._pending: list[Settlement] = []
            # Live keys by hash, valid while no other connection has written to the file
            # (``PRAGMA data_version``) and this one has changed no key.
            self._known: dict[str, KeyRecord] = {}
            self._version = -1
        except (OSError, sqlite3.Error) as error:
            raise ConfigurationError(
                f"cannot open the gateway database {self.path}: {error}"
            ) from None

    def close(self) -> None:
        """Write what is queued, and close the connection."""
        try:
            self.flush()
        finally:
            self._db.close()

    @contextmanager
    def _write(self, *, keys: bool = False) -> Iterator[sqlite3.Connection]:
        if keys:  # this connection's own writes leave data_version as it was
            self._known.clear()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- keys ------------------------------------------------------------------------------

    def provision(self, name: str, secret: str, *, budget: Decimal | None = None,
                  rpm: int | None = None, models: Sequence[str] = (),
                  tags: Sequence[str] = ()) -> KeyRecord:  # fmt: skip
        """The live key called ``name`` with this secret and these limits (a config file's
        ``[[keys]]``): created, or updated in place (its spend is kept)."""
        if len(secret) < 16:
            raise ConfigurationError(f"key {name}: its secret must be at least 16 characters")
        live = [r for r in self.list_keys() if r.name == name and r.revoked is None]
        if not live:
            record, _ = self.create_key(name, budget=budget, rpm=rpm, models=models, tags=tags)
            live = [record]
        with self._write(keys=True) as db:
            db.execute(
                "UPDATE keys SET hash = ?, prefix = ?, budget = ?, rpm = ?, models = ?, tags = ? "
                "WHERE id = ?",
                (hash_key(secret), secret[:7], None if budget is None else str(budget), rpm,
                 json.dumps(list(models)), json.dumps(list(tags)), live[0].id),
            )  # fmt: skip
        return self.key(live[0].id)

    def create_key(
        self,
        name: str,
        *,
        budget: Decimal | None = None,
        rpm: int | None = None,
        models: Sequence[str] = (),
        tags: Sequence[str] = (),
    ) -> tuple[KeyRecord, str]:
        """A new key: its record, and the secret (shown once, never stored)."""
        if not name.strip():
            raise ConfigurationError("a key needs a --name")
        if budget is not None and budget < 0:
            raise ConfigurationError("--budget must be >= 0 (USD)")
        if rpm is not None and rpm < 1:
            raise ConfigurationError("--rpm must be at least 1")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        kid = "key_" + secrets.token_hex(6)
        with self._write(keys=True) as db:
            db.execute(
                "INSERT INTO keys (id, name, hash, prefix, budget, rpm, models, tags, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kid,
                    name,
                    hash_key(secret),
                    secret[:7],
                    None if budget is None else str(budget),
                    rpm,
                    json.dumps(list(models)),
                    json.dumps(list(tags)),
                    time.time(),
                ),
            )
        return self.key(kid), secret

    def key(self, kid: str) -> KeyRecord:
        """The key with this id or name (a revoked one too)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM keys WHERE id = ? OR name = ? ORDER BY revoked IS NOT NULL, "
            "created DESC LIMIT 1",
            (kid, kid),
        ).fetchone()
        if row is None:
            raise ConfigurationError(f"no key {kid!r} (llamaroute keys list shows them)")
        return _record(row)

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created").fetchall()
        return [_record(row) for row in rows]

    def revoke(self, kid: str) -> KeyRecord:
        """Revoke a key (by id or name): it gets 401 from now on."""
        record = self.key(kid)
        with self._write(keys=True) as db:
            db.execute(
                "UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (time.time(), record.id),
            )
        return self.key(record.id)

    def rotate(self, kid: str) -> tuple[KeyRecord, str]:
        """A new secret for a key (same id, budget, spend); the old secret stops working."""
        record = self.key(kid)
        if record.revoked is not None:
            raise ConfigurationError(f"key {record.id} is revoked; create a new one")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write(keys=True) as db:
            db.execute(
                "UPDATE keys SET hash = ?, prefix = ? WHERE id = ?",
                (hash_key(secret), secret[:7], record.id),
            )
        return self.key(record.id), secret

    def authenticate(self, secret: str) -> KeyRecord | None:
        """The live key whose secret this is, or ``None`` (unknown or revoked).

        Answered from memory while the file is unchanged: one ``PRAGMA data_version`` (a
        counter, ~10 us) per call instead of a query, so a key revoked or rotated by any
        process is refused on its very next request."""
        digest = hash_key(secret)
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._known.clear()
            self._version = version
        known = self._known.get(digest)
        if known is not None:
            return known
        row = self._db.execute(
            f"SELECT {_COLUMNS}, hash FROM keys WHERE hash = ?", (digest,)
        ).fetchone()
        # The lookup is by hash; the comparison is still made in constant time.
        if row is None or not hmac.compare_digest(str(row[-1]), digest) or row[8] is not None:
            return None
        record = self._known[digest] = _record(row[:-1])
        return record

    # --- budgets and rates -----------------------------------------------------------------

    def admit(
        self, key: KeyRecord, worst_case: Decimal | None, now: float | None = None
    ) -> Admission:
        """Count the request against the key's rate and hold ``worst_case`` of its budget,
        in one transaction. A key without budget or rate is admitted without a write."""
        if key.rpm is None and key.budget is None:
            return Admission()
        now = time.time() if now is None else now
        with self._write() as db:
            if key.rpm is not None:
                minute = int(now // 60)
                db.execute("DELETE FROM windows WHERE key_id = ? AND minute < ?", (key.id, minute))
                row = db.execute(
                    "SELECT count FROM windows WHERE key_id = ? AND minute = ?", (key.id, minute)
                ).fetchone()
                count = 0 if row is None else int(row[0])
                if count >= key.rpm:
                    wait = max(1, int((minute + 1) * 60 - now) + 1)
                    return Admission(
                        refusal="rate",
                        retry_after=wait,
                        message=f"key {key.name} is limited to {key.rpm} requests "
                        f"a minute; retry in {wait} s",
                    )
                db.execute(
                    "INSERT OR REPLACE INTO windows (key_id, minute, count) VALUES (?, ?, ?)",
                    (key.id, minute, count + 1),
                )
            if key.budget is None:
                return Admission()
            if worst_case is None:
                return Admission(
                    refusal="budget",
                    message="this request's cost cannot be "
                    "bounded (its price is unknown), and the key has a budget",
                )
            spent = Decimal(
                db.execute("SELECT spent FROM keys WHERE id = ?", (key.id,)).fetchone()[0]
            )
            held = db.execute(
                "SELECT amount FROM reservations WHERE key_id = ? AND created > ?",
                (key.id, now - RESERVATION_TTL_S),
            ).fetchall()
            reserved = sum((Decimal(row[0]) for row in held), Decimal(0))
            if spent + reserved + worst_case > key.budget:
                left = max(key.budget - spent - reserved, Decimal(0))
                return Admission(
                    refusal="budget",
                    message=(
                        f"key {key.name} is over its budget: this request could cost up to "
                        f"{worst_case:f} USD, {left:f} USD of {key.budget:f} is left ({spent:f} "
                        f"spent, {reserved:f} held by requests in flight); lower max_tokens or "
                        "raise the key's budget"
                    ),
                )
            cursor = db.execute(
                "INSERT INTO reservations (key_id, amount, created) VALUES (?, ?, ?)",
                (key.id, str(worst_case), now),
            )
            return Admission(reservation=cursor.lastrowid)

    def settle(
        self,
        key_id: str,
        reservation: int | None,
        cost: Decimal,
        *,
        user: str | None,
        tags: Sequence[str],
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        status: str,
        now: float | None = None,
    ) -> None:
        """Release the request's reservation and record what it cost, attributed to its key,
        user and tags (one transaction)."""
        self.write_settlements([Settlement(
            key_id, reservation, cost, user, tuple(tags), provider, model, input_tokens,
            output_tokens, status, time.time() if now is None else now,
        )])  # fmt: skip

    def defer(self, settlement: Settlement) -> bool:
        """Queue a settlement for the next :meth:`flush`; whether the queue was empty (the
        caller then schedules a flush). Until it is written its reservation stays held, so a
        budget only looks smaller for that while, never larger."""
        self._pending.append(settlement)
        return len(self._pending) == 1

    def flush(self) -> None:
        """Write every queued settlement, in one transaction."""
        pending, self._pending = self._pending, []
        if pending:
            self.write_settlements(pending)

    def write_settlements(self, settlements: Sequence[Settlement]) -> None:
        """Release the reservations and record the costs, in one transaction."""
        with self._write() as db:
            spent: dict[str, Decimal] = {}
            for item in settlements:
                if item.reservation is not None:
                    db.execute("DELETE FROM reservations WHERE id = ?", (item.reservation,))
                if item.cost:
                    spent[item.key_id] = spent.get(item.key_id, Decimal(0)) + item.cost
                day = datetime.fromtimestamp(item.at, UTC).date().isoformat()
                cursor = db.execute(
                    "INSERT INTO spend (at, day, key_id, user, provider, model, cost, "
                    "input_tokens, output_tokens, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.at, day, item.key_id, item.user, item.provider, item.model,
                     str(item.cost), item.input_tokens, item.output_tokens, item.status),
                )  # fmt: skip
                if item.tags:
                    db.executemany(
                        "INSERT INTO spend_tags (spend_id, tag) VALUES (?, ?)",
                        [(cursor.lastrowid, tag) for tag in item.tags],
                    )
            for key_id, amount in spent.items():
                row = db.execute("SELECT spent FROM keys WHERE id = ?", (key_id,)).fetchone()
                if row is not None:
                    db.execute("UPDATE keys SET spent = ? WHERE id = ?",
                               (str(Decimal(row[0]) + amount), key_id))  # fmt: skip

    # --- spend ------------------------------------------------------------------------------

    def spend(self, by: str, since: str | None = None) -> dict[str, object]:
        """Spend grouped ``by`` key, user, tag, provider, model or day (on or after the day
        ``since``): per group the cost (exact string), requests and tokens, largest first."""
        names = {record.id: record.name for record in self.list_keys()} if by == "key" else {}
        return spend_report(self._db, by, since, names)

    def series(self, by: str, since: str | None = None) -> dict[str, dict[str, str]]:
        """Spend per day and per ``by`` (key, model or provider): ``{day: {name: cost}}``."""
        return spend_series(self._db, by, since)
