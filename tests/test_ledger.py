"""The spend ledger: exact Decimal totals under concurrency, shared SQLite files, budgets."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from llamaroute import BudgetExceededError, ConfigurationError
from llamaroute.money import MemoryLedger, SpendEntry, SqliteLedger, open_ledger

# Costs that floats cannot add exactly.
COSTS = [Decimal("0.1"), Decimal("0.2"), Decimal("0.000000015"), Decimal("1.44")]


def entry(cost: Decimal, provider: str = "bedrock", day: int = 27) -> SpendEntry:
    return SpendEntry(provider, "llama-3.2-3b", "us.meta.llama3-2-3b-instruct-v1:0", cost,
                      "price_table", at=datetime(2026, 11, day, 12, tzinfo=UTC))  # fmt: skip


@pytest.fixture(params=["memory", "sqlite"])
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(budget: Decimal | None = None) -> MemoryLedger | SqliteLedger:
        if request.param == "memory":
            return MemoryLedger(budget)
        return SqliteLedger(tmp_path / "spend.db", budget)

    return make


def test_totals_are_exact_under_16_threads(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    per_thread = 200

    def work(index: int) -> None:
        for n in range(per_thread):
            ledger.record(entry(COSTS[(index + n) % 4], "bedrock" if n % 2 else "openrouter"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = sum((COSTS[(i + n) % 4] for i in range(16) for n in range(per_thread)), Decimal(0))
    summary = ledger.summary()
    assert summary.total == expected  # Decimal equality: not approx
    assert summary.calls == 16 * per_thread
    assert sum(summary.by_provider.values(), Decimal(0)) == expected
    assert ledger.total == expected
    ledger.close()


def test_summary_by_day_and_since(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.record(entry(Decimal("1.00"), day=26))
    ledger.record(entry(Decimal("0.50"), day=27))
    assert ledger.summary().by_day == {"2026-11-26": Decimal("1.00"), "2026-11-27": Decimal("0.50")}
    since = ledger.summary(since=date(2026, 11, 27))
    assert (since.total, since.calls) == (Decimal("0.50"), 1)
    assert since.as_dict()["total"] == "0.50"
    ledger.close()


def test_reservations_keep_concurrent_calls_within_budget(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger(Decimal("1.00"))
    granted: list[str] = []
    refused: list[BudgetExceededError] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            key = ledger.reserve(Decimal("0.30"), "a call")
        except BudgetExceededError as error:
            with lock:
                refused.append(error)
            return
        with lock:
            granted.append(key)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 3  # 3 x 0.30 fits in 1.00, a fourth does not
    assert "0.30" in str(refused[0])
    for key in granted:
        ledger.settle(key, entry(Decimal("0.25")))
    assert ledger.total == Decimal("0.75")
    assert ledger.remaining() == Decimal("0.25")
    ledger.close()


def _write(path: str, count: int) -> None:
    ledger = SqliteLedger(path)
    for n in range(count):
        ledger.record(entry(COSTS[n % 4]))
    ledger.close()


def test_two_processes_share_one_sqlite_ledger(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write, args=(path, 300)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    ledger = SqliteLedger(path)
    assert ledger.summary().calls == 600
    assert ledger.total == 2 * sum((COSTS[n % 4] for n in range(300)), Decimal(0))
    ledger.close()


def _open_at_once(path: str, start: Barrier) -> None:
    start.wait()
    SqliteLedger(path).close()


def test_processes_opening_a_new_ledger_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it to oneself, and SQLite refuses at once, without
    its busy timeout, when two openers that have both read the file try together. Before the
    switch was retried, about one opener in twenty-five failed here with 'database is
    locked'; 30 rounds of 4 processes released by one barrier find that nearly every run."""
    context = multiprocessing.get_context("fork")
    for round_ in range(30):
        path = str(tmp_path / f"new-{round_}.db")
        start = context.Barrier(4)
        openers = [context.Process(target=_open_at_once, args=(path, start)) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=60)
        assert [opener.exitcode for opener in openers] == [0, 0, 0, 0], f"round {round_}"


def test_expired_reservations_release_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = SqliteLedger(tmp_path / "spend.db", Decimal("1"))
    ledger.reserve(Decimal("1"), "a call from a process that then died")
    with pytest.raises(BudgetExceededError):
        ledger.reserve(Decimal("0.1"), "another")
    # The ledger reads the wall clock with time.time(): move it far past the reservation's expiry.
    monkeypatch.setattr(time, "time", lambda: 10**12)
    ledger.reserve(Decimal("0.1"), "another")
    ledger.close()


def test_open_ledger_and_checks(tmp_path: Path) -> None:
    assert isinstance(open_ledger(None, None), MemoryLedger)
    sqlite = open_ledger(tmp_path / "x.db", Decimal("2"))
    assert isinstance(sqlite, SqliteLedger)
    assert sqlite.budget == Decimal("2")
    sqlite.close()
    with pytest.raises(ConfigurationError):
        MemoryLedger(2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MemoryLedger(Decimal("-1"))
    with pytest.raises(ConfigurationError, match="cannot open"):
        SqliteLedger(tmp_path / "no" / "such" / "dir" / "x.db")


def test_the_client_names_each_record_by_its_call_and_attempt() -> None:
    # The key a shared ledger writes each attempt once by: the call's id (a random prefix per
    # client, then the client's call count) and the attempt's number within the call.
    from llamaroute import Client
    from llamaroute.providers import OpenRouterProvider
    from llamaroute.testing import FakeOpenRouter, Step

    class Recording(MemoryLedger):
        def __init__(self) -> None:
            super().__init__()
            self.entries: list[SpendEntry] = []

        def record(self, entry: SpendEntry) -> None:
            self.entries.append(entry)
            super().record(entry)

    ledgers = [Recording(), Recording()]
    script = [Step.error(500), Step.reply("a llama"), Step.reply("again")]
    with FakeOpenRouter(*script) as fake:
        for ledger in ledgers:
            provider = OpenRouterProvider(api_key="placeholder-not-a-key", base_url=fake.base_url)
            with Client([provider], ledger=ledger, retries=1) as client:
                client.chat("llama-3.2-1b", "hi")
                client.chat("llama-3.2-1b", "hi")
    first, second = ledgers
    # The first call failed once (not billed, no record), then answered on attempt 2.
    assert [entry.attempt for entry in first.entries] == [2, 1]
    prefix = first.entries[0].call_id.rsplit("-", 1)[0]  # type: ignore[union-attr]
    assert [entry.call_id for entry in first.entries] == [f"{prefix}-1", f"{prefix}-2"]
    assert len(prefix) == 12
    other = second.entries[0].call_id
    assert other is not None
    assert other.endswith("-1")
    assert other != first.entries[0].call_id  # another client: another call
