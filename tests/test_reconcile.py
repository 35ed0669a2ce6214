"""Reconciliation (issue 17, part 7): the ledger keeps the provider's reported cost beside the
table's figure, ``llamaroute spend --reconcile`` shows the drift per route, and ledger files
from before the two columns are migrated."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import AsyncClient, Client, MalformedResponseError, RetryPolicy
from llamaroute.money import MemoryLedger, SpendEntry, SqliteLedger
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY
from .test_cli import run

NO_SLEEP = RetryPolicy(sleep=lambda seconds: None)
ROUTE = "meta-llama/llama-3.2-3b-instruct"


def _entries() -> list[SpendEntry]:
    return [
        SpendEntry(
            "openrouter",
            "llama-3.2-3b",
            ROUTE,
            Decimal("0.09"),
            "provider",
            reported=Decimal("0.09"),
            table=Decimal("0.04"),
        ),
        SpendEntry(
            "openrouter",
            "llama-3.2-3b",
            ROUTE,
            Decimal("0.01"),
            "provider",
            reported=Decimal("0.01"),
            table=Decimal("0.01"),
        ),
        SpendEntry("openrouter", "llama-3.2-3b", ROUTE, Decimal("0.002"), "estimate"),
        SpendEntry(
            "bedrock",
            "llama-3.2-3b",
            "us.meta.llama3-2-3b-instruct-v1:0",
            Decimal("0.3"),
            "price_table",
            table=Decimal("0.3"),
        ),
    ]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_ledger_keeps_both_figures_per_route(store: str, tmp_path: Path) -> None:
    ledger = MemoryLedger() if store == "memory" else SqliteLedger(tmp_path / "spend.db")
    for entry in _entries():
        ledger.record(entry)
    bedrock, openrouter = ledger.reconcile()
    ledger.close()
    assert (openrouter.provider, openrouter.model_id) == ("openrouter", ROUTE)
    assert (openrouter.calls, openrouter.compared) == (3, 2)
    assert openrouter.spent == Decimal("0.102")
    assert (openrouter.reported, openrouter.table) == (Decimal("0.10"), Decimal("0.05"))
    assert openrouter.drift == Decimal("0.05")
    assert openrouter.drift_share == 1
    assert (bedrock.calls, bedrock.compared, bedrock.drift_share) == (1, 0, None)


def test_an_old_ledger_file_is_migrated_and_its_old_rows_are_not_compared(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE spend (id INTEGER PRIMARY KEY, at TEXT NOT NULL, day TEXT NOT NULL,
            provider TEXT NOT NULL, model TEXT NOT NULL, model_id TEXT NOT NULL,
            cost TEXT NOT NULL, source TEXT NOT NULL, partial INTEGER NOT NULL);
        CREATE TABLE reservations (id TEXT PRIMARY KEY, amount TEXT NOT NULL,
            expires REAL NOT NULL);
        CREATE TABLE totals (name TEXT PRIMARY KEY, amount TEXT NOT NULL);
        INSERT INTO totals VALUES ('spent', '0.5');
        INSERT INTO spend (at, day, provider, model, model_id, cost, source, partial) VALUES
            ('2026-12-01T00:00:00+00:00', '2026-12-01', 'openrouter', 'llama-3.2-3b',
             'meta-llama/llama-3.2-3b-instruct', '0.5', 'provider', 0);
        """
    )
    db.close()
    # Read-only, before any migration: readable, nothing compared.
    reader = SqliteLedger(path, read_only=True)
    (before,) = reader.reconcile()
    reader.close()
    assert (before.calls, before.compared) == (1, 0)
    ledger = SqliteLedger(path)  # migrates
    ledger.record(_entries()[0])
    (after,) = ledger.reconcile()
    assert ledger.total == Decimal("0.59")
    ledger.close()
    assert (after.calls, after.compared, after.drift) == (2, 1, Decimal("0.05"))


def test_spend_reconcile_prints_the_drift_per_route(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = str(tmp_path / "spend.db")
    ledger = SqliteLedger(path)
    for entry in _entries():
        ledger.record(entry)
    ledger.close()
    code, out, _ = run(capsys, "spend", "--ledger", path, "--reconcile")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith("openrouter:"))
    assert line.split() == [f"openrouter:{ROUTE}", "3", "0.102", "2", "0.10", "0.05", "+0.05",
                            "+100.00%"]  # fmt: skip
    code, out, _ = run(capsys, "spend", "--ledger", path, "--reconcile", "--json")
    assert code == 0
    routes = {route["provider"]: route for route in json.loads(out)["routes"]}
    assert routes["openrouter"]["drift"] == "0.05"
    assert routes["bedrock"]["drift_percent"] is None


def test_a_client_records_the_reported_and_table_figures(tmp_path: Path) -> None:
    # The fake bills 0.2 USD per million tokens and reports it; no limits, so no ceiling.
    with (
        FakeOpenRouter(default=Step(usage=(1000, 1000)), price=("0.2", "0.2")) as fake,
        Client(
            [OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)],
            retries=NO_SLEEP,
            ledger=tmp_path / "spend.db",
        ) as client,  # fmt: skip
    ):
        reply = client.chat("llama-3.2-3b", "hi")
        (route,) = client.spend.reconcile()
    assert reply.cost is not None
    assert reply.cost.reported == Decimal("0.0004")
    assert route.reported == Decimal("0.0004")
    assert reply.cost.table is not None
    assert (route.calls, route.compared, route.table) == (1, 1, reply.cost.table)
    assert route.drift == Decimal("0.0004") - reply.cost.table


# --- cut OpenRouter streams, reconciled through GET /generation --------------------------------


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_abandoned_openrouter_stream_is_reconciled_through_generation(
    store: str, tmp_path: Path
) -> None:
    step = Step(chunks=tuple(f"w{i} " for i in range(40)), chunk_delay=0.01, usage=(50, 40))
    ledger = MemoryLedger() if store == "memory" else SqliteLedger(tmp_path / "spend.db")
    with (
        FakeOpenRouter(default=step, price=("0.2", "0.2")) as fake,
        Client(
            [OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)],
            retries=NO_SLEEP,
            ledger=ledger,
        ) as client,  # fmt: skip
    ):
        with client.stream("llama-3.2-3b", "tell me") as stream:
            for index, _ in enumerate(stream):
                if index == 2:
                    break
        estimate = client.spend.total
        assert client.spend.estimated("openrouter") == ["gen-fake-1"]
        assert fake.wait_closed(0.0, timeout=2) is not None
        for _ in range(100):  # the fake bills once its writer notices the hang-up
            if "gen-fake-1" in fake.generations:
                break
            time.sleep(0.02)
        done = client.reconcile_generations()
        assert (done.corrected, done.pending) == (1, 0)
        assert client.spend.total == fake.generations["gen-fake-1"]
        assert done.change == client.spend.total - estimate
        assert client.spend.estimated("openrouter") == []
        # Again: nothing left to do.
        assert client.reconcile_generations() == (0, 0, Decimal(0))


def test_a_generation_not_written_yet_stays_pending(tmp_path: Path) -> None:
    with (
        FakeOpenRouter() as fake,
        Client(
            [OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)], retries=NO_SLEEP
        ) as client,  # fmt: skip
    ):
        client.spend.record(SpendEntry("openrouter", "llama-3.2-3b", ROUTE, Decimal("0.001"),
                                       "estimate", ref="gen-unknown"))  # fmt: skip
        assert client.reconcile_generations() == (0, 1, Decimal(0))
        assert client.spend.total == Decimal("0.001")


async def test_the_async_client_reconciles_too() -> None:
    step = Step(chunks=tuple(f"w{i} " for i in range(40)), chunk_delay=0.01, usage=(50, 40))
    with FakeOpenRouter(default=step, price=("0.2", "0.2")) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        async with AsyncClient([provider], retries=NO_SLEEP) as client:
            async with client.stream("llama-3.2-3b", "tell me") as stream:
                async for _ in stream:
                    break
            assert client.spend.estimated("openrouter") == ["gen-fake-1"]
            for _ in range(100):
                if "gen-fake-1" in fake.generations:
                    break
                await asyncio.sleep(0.02)
            done = await client.reconcile_generations()
            assert done.corrected == 1
            assert client.spend.total == fake.generations["gen-fake-1"]


def test_a_huge_generation_body_is_a_typed_error_read_under_a_cap() -> None:
    # A hostile server answering /generation with an endless body: read at most the cap.
    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hangs up at its cap, as it should
                self.wfile.write(b'{"data": {"total_cost": "' + b"1" * (8 * 1024 * 1024))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = OpenRouterProvider(
            api_key=CANARY_KEY, base_url=f"http://127.0.0.1:{server.server_port}/api/v1"
        )
        with pytest.raises(MalformedResponseError, match="generation body"):
            provider.generation_cost("gen-1")
        provider.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_estimate_the_provider_can_correct_holds_the_rest_of_its_reservation(
    store: str, tmp_path: Path
) -> None:
    # An abandoned OpenRouter stream may go on being billed upstream: the budget keeps room
    # for the worst case until the provider's figure is in.
    ledger = (
        MemoryLedger(budget=Decimal("1"))
        if store == "memory"
        else SqliteLedger(tmp_path / "spend.db", budget=Decimal("1"))
    )
    reservation = ledger.reserve(Decimal("0.6"), "a stream")
    estimate = SpendEntry("openrouter", "llama-3.2-3b", ROUTE, Decimal("0.1"), "estimate",
                          partial=True, ref="gen-7")  # fmt: skip
    ledger.settle(reservation, estimate)
    assert ledger.total == Decimal("0.1")
    assert ledger.remaining() == Decimal("0.4")  # 0.1 spent, 0.5 still held for gen-7
    assert ledger.correct("gen-7", Decimal("0.45")) == Decimal("0.35")
    assert ledger.remaining() == Decimal("0.55")  # the hold ended with the real figure
    # A figure computed from usage holds nothing back.
    other = ledger.reserve(Decimal("0.3"), "a call")
    ledger.settle(other, SpendEntry("openrouter", "llama-3.2-3b", ROUTE, Decimal("0.05"),
                                    "price_table", ref="gen-8"))  # fmt: skip
    assert ledger.remaining() == Decimal("0.5")
