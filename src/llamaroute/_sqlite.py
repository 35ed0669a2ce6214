"""What every SQLite file of llamaroute's needs when it is opened (the spend ledger's and the
gateway's): WAL mode, reached even when several processes open a new file at once."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["use_wal"]


def use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (a file keeps it), waiting up to ``timeout`` seconds for the
    other processes opening it at the same moment.

    The switch needs the file to itself, and SQLite answers ``SQLITE_BUSY`` at once, without
    waiting out the busy timeout, when two connections that have both read the file try to
    switch together (each would wait for the other). So the switch is retried here, with a
    short pause that grows, until it is made or the time is up."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorname", "") == "SQLITE_BUSY"
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
