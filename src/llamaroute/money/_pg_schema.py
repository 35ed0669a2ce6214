"""The PostgreSQL ledger's URLs, schema and migrations (``_pg_ledger.py`` holds the ledger).

Each migration is applied once, in order, and recorded in ``llamaroute_schema_version``; the
whole run holds a transaction-scoped advisory lock, so several processes starting together
migrate the database exactly once. A database migrated by a newer llamaroute (a version this
one does not know) is refused rather than written with assumptions that may be wrong.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "IDENTIFIER_CHARS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "is_postgres_url",
    "migrate",
    "redacted",
    "schema_in",
]

_PREFIXES = ("postgresql://", "postgres://")
IDENTIFIER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a PostgreSQL connection URL (``postgresql://...``)."""
    return isinstance(value, str) and value.startswith(_PREFIXES)


def redacted(url: str) -> str:
    # user:password@host -> user@host: a password never reaches a message or log.
    head, sep, rest = url.partition("://")
    auth, at, host = rest.partition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{head}{sep}{auth}{at}{host}"


def schema_in(url: str) -> str | None:
    """The one schema a URL's ``options=-c search_path=NAME`` names, if it names one (it is
    then created if missing, as ``schema=`` would be)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = str(conninfo_to_dict(url).get("options") or "")
    except Exception:  # a malformed URL: connecting says what is wrong with it
        return None
    found = re.fullmatch(r"\s*-c\s*search_path\s*=\s*([a-z0-9_]+)\s*", options)
    return found.group(1) if found else None


#: The advisory lock key that serialises migrations (any fixed 64-bit number).
_LOCK_KEY = 0x6C6C_616D_6172_6F75  # "llamarou"

#: Migration n (1-based) is ``MIGRATIONS[n - 1]``. Append only: never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # One row per billed attempt. (call_id, attempt) is the idempotency key: a write
        # retried after a lost acknowledgement hits the unique index and adds nothing.
        # api_key, user_id, tags and the token counts are left NULL by the SDK; the gateway
        # fills them.
        """CREATE TABLE llamaroute_spend (
            id BIGSERIAL PRIMARY KEY,
            call_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            day DATE NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            model_id TEXT NOT NULL,
            cost NUMERIC NOT NULL CHECK (cost >= 0),
            source TEXT NOT NULL,
            partial BOOLEAN NOT NULL,
            reported NUMERIC,
            table_cost NUMERIC,
            ref TEXT,
            api_key TEXT,
            user_id TEXT,
            tags JSONB,
            input_tokens INTEGER,
            output_tokens INTEGER,
            UNIQUE (call_id, attempt)
        )""",
        "CREATE INDEX llamaroute_spend_day ON llamaroute_spend (day)",
        "CREATE INDEX llamaroute_spend_provider_day ON llamaroute_spend (provider, day)",
        "CREATE INDEX llamaroute_spend_model_day ON llamaroute_spend (model, day)",
        "CREATE INDEX llamaroute_spend_estimates ON llamaroute_spend (provider, ref) "
        "WHERE source = 'estimate' AND ref IS NOT NULL",
        # The running total the budget is checked against, one row per budget; reserve and
        # settle lock it (SELECT ... FOR UPDATE), which serialises them across processes.
        """CREATE TABLE llamaroute_budget (
            name TEXT PRIMARY KEY,
            spent NUMERIC NOT NULL DEFAULT 0
        )""",
        "INSERT INTO llamaroute_budget (name, spent) VALUES ('default', 0)",
        """CREATE TABLE llamaroute_reservations (
            id TEXT PRIMARY KEY,
            amount NUMERIC NOT NULL,
            expires TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX llamaroute_reservations_expires ON llamaroute_reservations (expires)",
    ),
)

LATEST_VERSION = len(MIGRATIONS)


class NewerSchemaError(Exception):
    """The database was migrated by a newer llamaroute."""


def migrate(connection: Any) -> int:
    """Bring the schema up to :data:`LATEST_VERSION` in one transaction; returns the version
    found before. ``connection`` is a psycopg connection (not in a transaction)."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS llamaroute_schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        row = connection.execute("SELECT max(version) FROM llamaroute_schema_version").fetchone()
        found = int(row[0]) if row is not None and row[0] is not None else 0
        if found > LATEST_VERSION:
            raise NewerSchemaError(
                f"its schema is version {found}, newer than this llamaroute knows "
                f"({LATEST_VERSION}): upgrade llamaroute"
            )
        for number in range(found + 1, LATEST_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO llamaroute_schema_version (version) VALUES (%s)", (number,)
            )
    return found
