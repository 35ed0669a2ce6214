"""The SQLite ledger file under damage: checked on opening, typed errors, bad rows skipped,
failed writes counted and never raised into a call, read-only reading."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import BudgetExceededError, Client, ConfigurationError
from llamaroute.cli import main
from llamaroute.client import AttemptStarted, Event
from llamaroute.money import SpendEntry, SqliteLedger, open_ledger
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY

GOOD = [Decimal("0.1"), Decimal("0.2"), Decimal("0.000000015"), Decimal("1.44")]


def entry(cost: Decimal | str, provider: str = "bedrock") -> SpendEntry:
    at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return SpendEntry(provider, "llama-3.2-3b", "us.meta.llama3-2-3b-instruct-v1:0",
                      Decimal(cost), "price_table", at=at)  # fmt: skip


def filled(path: Path, rows: int = 0) -> Path:
    """A ledger file with the four GOOD entries, plus ``rows`` more of 0.01 added in bulk."""
    ledger = SqliteLedger(path)
    for cost in GOOD:
        ledger.record(entry(cost))
    ledger.close()
    if rows:
        with sqlite3.connect(path) as db:
            db.executemany(
                "INSERT INTO spend (at, day, provider, model, model_id, cost, source, partial) "
                "VALUES ('2026-11-27T12:00:00+00:00', '2026-11-27', 'ollama', 'm', 'i', ?, "
                "'price_table', 0)",
                [("0.01",)] * rows,
            )
        db.close()
    return path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "llamaroute" and r.levelno == logging.WARNING]  # fmt: skip


# --- checked when opened -------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_with_damaged_pages_is_refused_when_opened(tmp_path: Path, read_only: bool) -> None:
    path = filled(tmp_path / "spend.db", rows=3000)
    data = bytearray(path.read_bytes())
    assert len(data) > 40_000
    data[8192:20_000] = b"\xab" * (20_000 - 8192)  # pages 3 to 5 of 4,096 bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigurationError) as raised:
        SqliteLedger(path, read_only=read_only)
    message = str(raised.value)
    assert str(path) in message
    assert "is damaged" in message
    assert "Move it aside" in message
    assert raised.value.__cause__ is None


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a ledger\n" * 200)
    for read_only in (False, True):
        with pytest.raises(ConfigurationError, match=r"is not a SQLite database.*Move it aside"):
            SqliteLedger(path, read_only=read_only)
    assert path.read_text().startswith("these are my notes")  # left as it was


def test_a_sqlite_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE spend (id INTEGER PRIMARY KEY, what TEXT)")
    db.close()
    with pytest.raises(ConfigurationError, match="not a llamaroute spend ledger"):
        SqliteLedger(other)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ConfigurationError, match="not a llamaroute spend ledger"):
        SqliteLedger(empty, read_only=True)


def test_the_spend_command_reports_a_damaged_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spend.db"
    path.write_bytes(b"\0" * 100 + b"junk" * 1000)
    assert main(["spend", "--ledger", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("llamaroute: error: the spend ledger")
    assert "Move it aside" in err
    assert err.count("\n") == 1


# --- rows that are not amounts ---------------------------------------------------------------


def test_rows_whose_cost_is_not_an_amount_are_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = filled(tmp_path / "spend.db")
    with sqlite3.connect(path) as db:
        for bad in ("abc", "NaN", "Infinity", "-1", "", "1e999999999", b"\x00"):
            db.execute(
                "INSERT INTO spend (at, day, provider, model, model_id, cost, source, partial) "
                "VALUES ('2026-11-27T12:00:00+00:00', '2026-11-27', 'bedrock', 'm', 'i', ?, "
                "'price_table', 0)",
                (bad,),
            )
    db.close()
    ledger = SqliteLedger(path)
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        first = ledger.summary()
        second = ledger.summary()
    assert first.total == sum(GOOD, Decimal(0))  # exact: Decimal, the good rows only
    assert (first.calls, first.skipped_rows) == (4, 7)
    assert first.by_provider == {"bedrock": sum(GOOD, Decimal(0))}
    assert second == first
    assert first.as_dict()["skipped_rows"] == 7
    assert len(warnings_of(caplog)) == 1  # warned once
    assert "7 row(s)" in warnings_of(caplog)[0]
    ledger.close()


def test_an_unreadable_running_total_is_rebuilt_from_the_rows(tmp_path: Path) -> None:
    path = filled(tmp_path / "spend.db")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE totals SET amount = 'abc' WHERE name = 'spent'")
    db.close()
    ledger = SqliteLedger(path, Decimal("5"))
    assert ledger.remaining() == Decimal("5") - sum(GOOD, Decimal(0))
    ledger.record(entry("0.5"))
    assert ledger.failed_writes == 0
    assert ledger.remaining() == Decimal("4.5") - sum(GOOD, Decimal(0))
    ledger.close()


def test_the_spend_command_shows_the_good_rows_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filled(tmp_path / "spend.db")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE spend SET cost = 'abc' WHERE id = 1")  # the 0.1 row
    db.close()
    assert main(["spend", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1.640000015 USD over 3 billed attempt(s)" in out
    assert "1 row(s) left out" in out


# --- failed writes never reach the call ------------------------------------------------------


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's write lock on the file."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_write_locked_out_is_counted_warned_once_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = filled(tmp_path / "spend.db")
    ledger = SqliteLedger(path, Decimal("10"), timeout=0.05)
    key = ledger.reserve(Decimal("1"), "a call")
    with caplog.at_level(logging.WARNING, logger="llamaroute"), locked(path):
        ledger.record(entry("0.25"))
        ledger.settle(key, entry("0.5"))
        assert (ledger.failed_writes, ledger.unrecorded) == (2, Decimal("0.75"))
        assert "database is locked" in (ledger.last_error or "")
        # What could not be written still counts against the budget; the reservation, not
        # released, still holds its share until it expires.
        spent = sum(GOOD, Decimal(0)) + Decimal("0.75")
        assert ledger.remaining() == Decimal("10") - spent - Decimal("1")
        # With the budget uncheckable, nothing more is sent.
        with pytest.raises(BudgetExceededError, match=r"budget cannot be checked.*locked"):
            ledger.reserve(Decimal("0.01"), "the next call")
    assert len(warnings_of(caplog)) == 1
    assert str(path) in warnings_of(caplog)[0]
    ledger.record(entry("0.1"))  # the lock is gone: writing works again
    assert ledger.total == sum(GOOD, Decimal(0)) + Decimal("0.1")
    ledger.close()


def test_without_a_budget_a_reservation_that_cannot_be_written_does_not_stop_the_call(
    tmp_path: Path,
) -> None:
    path = filled(tmp_path / "spend.db")
    ledger = SqliteLedger(path, timeout=0.05)
    with locked(path):
        key = ledger.reserve(Decimal("1"), "a call with max_cost")
        ledger.settle(key, entry("0.5"))
    assert (ledger.failed_writes, ledger.unrecorded) == (2, Decimal("0.5"))
    ledger.close()


def test_a_full_disk_is_counted_and_not_raised(tmp_path: Path) -> None:
    ledger = SqliteLedger(filled(tmp_path / "spend.db"))
    pages = ledger._db.execute("PRAGMA page_count").fetchone()[0]
    ledger._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own "disk full"
    for _ in range(300):
        ledger.record(entry("0.01"))
    assert ledger.failed_writes > 0
    assert "full" in (ledger.last_error or "")
    written = ledger.summary()
    assert written.total + ledger.unrecorded == sum(GOOD, Decimal(0)) + Decimal("3.00")
    ledger.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_file_deleted_or_replaced_after_opening_is_a_failed_write(
    tmp_path: Path, how: str
) -> None:
    path = filled(tmp_path / "spend.db")
    ledger = SqliteLedger(path)
    path.unlink()
    if how == "replaced":
        filled(path)
    ledger.record(entry("0.3"))
    assert (ledger.failed_writes, ledger.unrecorded) == (1, Decimal("0.3"))
    assert f"the file was {how}" in (ledger.last_error or "")
    ledger.close()


def test_a_closed_ledger_swallows_writes_and_has_no_budget_left(tmp_path: Path) -> None:
    ledger = SqliteLedger(filled(tmp_path / "spend.db"), Decimal("10"))
    ledger.close()
    ledger.record(entry("0.3"))
    assert ledger.failed_writes == 1
    assert ledger.remaining() == Decimal(0)
    with pytest.raises(ConfigurationError, match="cannot read the spend ledger"):
        ledger.summary()


def test_a_client_returns_the_answer_when_the_ledger_fails_mid_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = filled(tmp_path / "spend.db")
    ledger = SqliteLedger(path, Decimal("10"), timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)

    def lock_once_sent(event: Event) -> None:
        # The reservation is made; now another process holds the file until the call ends.
        if isinstance(event, AttemptStarted) and not other.in_transaction:
            other.execute("BEGIN IMMEDIATE")

    with FakeOpenRouter(default=Step.reply("Llamas hum.", cost="0.25")) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with (
            caplog.at_level(logging.WARNING, logger="llamaroute"),
            Client(providers=[provider], ledger=ledger, on_event=lock_once_sent) as client,
        ):
            reply = client.chat("llama-3.2-3b", "hi", max_tokens=50)
            assert reply.text == "Llamas hum."
            assert (ledger.failed_writes, ledger.unrecorded) == (1, Decimal("0.25"))
            # The next call's reservation cannot be written: refused as a budget refusal, and
            # not sent.
            with pytest.raises(BudgetExceededError):
                client.chat("llama-3.2-3b", "hi", max_tokens=50)
            assert fake.hits == 1
    other.execute("ROLLBACK")
    other.close()
    assert any("could not write to the spend ledger" in m for m in warnings_of(caplog))


# --- read-only reading -----------------------------------------------------------------------


def test_a_read_only_ledger_reads_and_sqlite_refuses_its_writes(tmp_path: Path) -> None:
    path = filled(tmp_path / "spend.db")
    path.chmod(0o444)
    ledger = SqliteLedger(path, Decimal("10"), read_only=True)
    assert ledger.total == sum(GOOD, Decimal(0))
    assert ledger.remaining() == Decimal("10") - sum(GOOD, Decimal(0))
    # mode=ro: SQLite opened the file read-only, so the refusal is SQLite's own (root too).
    for write in (lambda: ledger.record(entry("1")), lambda: ledger.reserve(Decimal(1), "x"),
                  lambda: ledger.settle("k", entry("1"))):  # fmt: skip
        with pytest.raises(ConfigurationError, match=r"read_only=True.*readonly database"):
            write()
    assert ledger.failed_writes == 0
    assert ledger.total == sum(GOOD, Decimal(0))
    assert "read_only" in repr(ledger)
    with pytest.raises(ConfigurationError, match="a client needs one it can write"):
        open_ledger(ledger, None)
    ledger.close()


def test_spend_reads_a_0444_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = filled(tmp_path / "spend.db")
    path.chmod(0o444)
    assert main(["spend", "--ledger", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["total"], data["calls"], data["skipped_rows"]) == ("1.740000015", 4, 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


@contextmanager
def unwritable(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable even for root (``chattr +i``), or by mode for anyone else."""
    if os.geteuid() != 0:
        modes = [(path, stat.S_IMODE(path.stat().st_mode)) for path in paths]
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in reversed(modes):
                path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("no chattr to make a file unwritable for root")
    done: list[Path] = []
    try:
        for path in paths:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("this file system does not take chattr +i")
            done.append(path)
        yield
    finally:
        for path in reversed(done):
            subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_ledger_in_a_folder_nobody_may_write_is_still_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    path = filled(folder / "spend.db", rows=10)
    assert sorted(p.name for p in folder.iterdir()) == ["spend.db"]  # no -wal, no -shm
    with unwritable(path, folder):
        with pytest.raises(ConfigurationError, match="cannot open the spend ledger"):
            SqliteLedger(path)  # it could not be written
        ledger = SqliteLedger(path, read_only=True)
        assert ledger.total == sum(GOOD, Decimal(0)) + Decimal("0.10")
        assert ledger.summary().calls == 14
        with pytest.raises(ConfigurationError, match="read_only=True"):
            ledger.record(entry("1"))
        ledger.close()
        assert main(["spend", "--ledger", str(path)]) == 0
        assert "1.840000015 USD over 14 billed attempt(s)" in capsys.readouterr().out
