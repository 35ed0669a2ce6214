"""The spend ledger on the real PostgreSQL (issue 21): the schema and its migrations, exact
and idempotent records, one budget for many processes, and a server restarted mid-run. Each
test has its own schema; the restart test runs a private throwaway cluster."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest

from llamaroute import BudgetExceededError, Client, ConfigurationError
from llamaroute.money import PostgresLedger, SpendEntry, open_ledger
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from . import _fleet
from ._fleet import MODEL, PG_URL, PLACEHOLDER_KEY, PrivatePostgres

pytestmark = pytest.mark.skipif(
    not _fleet.answers(5432), reason="needs PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)"
)


@pytest.fixture
def schema() -> Iterator[str]:
    name = _fleet.unique("pg")
    yield name
    _fleet.drop_pg_schema(PG_URL, name)


@pytest.fixture
def ledger(schema: str) -> Iterator[PostgresLedger]:
    opened = PostgresLedger(PG_URL, schema=schema)
    yield opened
    opened.close()


def _entry(cost: str, provider: str = "openrouter", **options: object) -> SpendEntry:
    return SpendEntry(provider, MODEL, "m", Decimal(cost), "provider", **options)  # type: ignore[arg-type]


def _rows(schema: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'SET search_path TO "{schema}"')
        return connection.execute(query).fetchall()


def test_the_schema_is_migrated_once_with_a_version_table_and_indexes(
    ledger: PostgresLedger, schema: str
) -> None:
    again = PostgresLedger(PG_URL, schema=schema)  # a second process: nothing to do
    again.close()
    versions = _rows(schema, "SELECT version FROM llamaroute_schema_version")
    assert versions == [(v,) for v in range(1, PostgresLedger.SCHEMA_VERSION + 1)]
    indexes = {name for (name,) in _rows(schema, "SELECT indexname FROM pg_indexes WHERE "
                                         "tablename = 'llamaroute_spend'")}  # fmt: skip
    assert {"llamaroute_spend_day", "llamaroute_spend_provider_day",
            "llamaroute_spend_model_day"} <= indexes  # fmt: skip
    columns = {name for (name,) in _rows(schema, "SELECT column_name FROM "
               "information_schema.columns WHERE table_name = 'llamaroute_spend' AND "
               f"table_schema = '{schema}'")}  # fmt: skip
    assert {"call_id", "attempt", "api_key", "user_id", "tags", "reported", "table_cost",
            "ref", "input_tokens", "output_tokens"} <= columns  # fmt: skip


def test_a_database_from_a_newer_version_is_refused(ledger: PostgresLedger, schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'INSERT INTO "{schema}".llamaroute_schema_version VALUES (999)')
    with pytest.raises(ConfigurationError, match="upgrade llamaroute"):
        PostgresLedger(PG_URL, schema=schema)


def test_records_and_summaries_are_exact(ledger: PostgresLedger) -> None:
    yesterday = datetime(2026, 1, 1, 23, 59, tzinfo=UTC)
    ledger.record(_entry("0.0000001", at=yesterday))
    ledger.record(_entry("0.3", provider="bedrock"))
    ledger.record(_entry("0.2000000000000000001"))
    summary = ledger.summary()
    assert summary.total == Decimal("0.5000001000000000001")
    assert summary.calls == 3
    assert summary.by_provider == {"openrouter": Decimal("0.2000001000000000001"),
                                   "bedrock": Decimal("0.3")}  # fmt: skip
    assert summary.by_day["2026-01-01"] == Decimal("0.0000001")
    assert ledger.summary(since=date(2026, 6, 1)).calls == 2


def test_a_write_retried_after_a_lost_acknowledgement_counts_once(
    ledger: PostgresLedger, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = ledger._apply
    lost = []

    def commit_then_lose_the_answer(item):  # type: ignore[no-untyped-def]
        apply(item)  # committed on the server ...
        if not lost:
            lost.append(item)
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ledger, "_apply", commit_then_lose_the_answer)
    monkeypatch.setattr(ledger, "retry_s", 0.05)
    key = ledger.reserve(Decimal("0.5"), "a call")  # (no budget: nothing held)
    ledger.settle(key, _entry("0.25"))
    assert lost  # ... as far as we know, not written: it is queued and written again
    deadline = time.monotonic() + 10
    while ledger.flush() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ledger.total == Decimal("0.25")
    assert _rows(schema, "SELECT count(*) FROM llamaroute_spend") == [(1,)]
    # The same attempt reported again (a gateway retrying its write) is still one row.
    ledger.record(_entry("0.25", call_id="call-1", attempt=2))
    ledger.record(_entry("0.25", call_id="call-1", attempt=2))
    assert ledger.total == Decimal("0.5")
    assert _rows(schema, "SELECT spent FROM llamaroute_budget") == [(Decimal("0.5"),)]


def test_estimates_are_corrected_and_their_holds_released(schema: str) -> None:
    ledger = PostgresLedger(PG_URL, Decimal("1"), schema=schema)
    try:
        key = ledger.reserve(Decimal("0.6"), "a stream")
        ledger.settle(key, SpendEntry("openrouter", MODEL, "m", Decimal("0.1"), "estimate",
                                      ref="gen-1"))  # fmt: skip
        assert ledger.remaining() == Decimal("0.4")  # 0.1 spent, 0.5 still held
        assert ledger.estimated("openrouter") == ["gen-1"]
        assert ledger.correct("gen-1", Decimal("0.15")) == Decimal("0.05")
        assert ledger.remaining() == Decimal("0.85")
        assert ledger.estimated("openrouter") == []
        assert ledger.reconcile()[0].spent == Decimal("0.15")
    finally:
        ledger.close()


def test_four_processes_never_overspend_a_budget_kept_in_postgres(schema: str) -> None:
    budget = Decimal("0.00004")
    PostgresLedger(PG_URL, schema=schema).close()  # migrate once before the race
    with FakeOpenRouter(default=Step.reply("a llama", delay=0.05)) as fake, \
            _fleet.spawn_pool(4) as pool:  # fmt: skip
        start = time.time() + 5
        jobs = [pool.apply_async(_fleet.pg_budget_worker,
                                 (fake.base_url, PG_URL, schema, str(budget), 16, start))
                for _ in range(4)]  # fmt: skip
        results = [job.get(180) for job in jobs]
        hits = fake.hits
    for result in results:
        assert result["others"] == [], result["others"]
    costs = [Decimal(cost) for result in results for cost in result["answered"]]
    assert len(costs) + sum(result["refused"] for result in results) == 64
    assert hits == len(costs)
    assert 0 < sum(costs) <= budget
    assert _rows(schema, "SELECT sum(cost), count(*) FROM llamaroute_spend") == [
        (sum(costs), len(costs))
    ]
    assert _rows(schema, "SELECT count(*) FROM llamaroute_reservations") == [(0,)]


def test_the_client_opens_a_postgres_url(schema: str) -> None:
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"  # the schema is created: it is new
    opened = open_ledger(url, None)
    assert isinstance(opened, PostgresLedger)
    assert opened.schema == schema
    opened.close()
    with FakeOpenRouter() as fake:
        with Client([OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
                    ledger=url, retries=0) as client:  # fmt: skip
            reply = client.chat(MODEL, "hi")
        assert isinstance(client.spend, PostgresLedger)
        assert client.spend.total == reply.total_cost  # still readable after close
        client.spend.close()


def test_bad_urls_and_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="cannot open the spend ledger"):
        PostgresLedger("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresLedger(PG_URL, schema="Robert'); DROP TABLE")
    canary = "canary" + "-pw-" + str(uuid.uuid4().int % 10**6)  # (made up at run time)
    with pytest.raises(ConfigurationError) as refused:
        PostgresLedger(f"postgresql://postgres:{canary}@127.0.0.1:1/test", connect_timeout=1)
    assert canary not in str(refused.value)  # a password never shows in a message


# --- a private server, restarted mid-run ----------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.remove()


def test_postgres_restarted_mid_run_loses_nothing_and_counts_nothing_twice(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = PostgresLedger(private_postgres.url, retry_s=0.2, connect_timeout=1)
    budgeted = PostgresLedger(private_postgres.url, Decimal("1"), schema="capped", retry_s=0.2,
                              connect_timeout=1)  # fmt: skip
    replies = []
    with FakeOpenRouter() as fake, \
            Client([OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
                   ledger=ledger, retries=0) as client, \
            Client([OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
                   ledger=budgeted, retries=0) as capped:  # fmt: skip
        for _ in range(3):
            replies.append(client.chat(MODEL, "before"))
        private_postgres.stop()
        with caplog.at_level(logging.WARNING, logger="llamaroute"):
            for _ in range(4):  # answers keep coming; their records wait in memory
                replies.append(client.chat(MODEL, "during"))
            with pytest.raises(BudgetExceededError):  # a budget cannot be checked: refused
                capped.chat(MODEL, "during", max_tokens=16)
        assert ledger.queued == 4
        assert ledger.unrecorded == sum(r.total_cost for r in replies[3:])
        assert any("queued" in r.message for r in caplog.records)
        private_postgres.start()
        deadline = time.monotonic() + 30
        while ledger.queued and time.monotonic() < deadline:
            time.sleep(0.1)  # the timer writes the queue (no call needed)
        assert ledger.queued == 0
        replies.append(client.chat(MODEL, "after"))
        capped_reply = capped.chat(MODEL, "after", max_tokens=16)  # reconnected by itself
    assert ledger.total == sum(r.total_cost for r in replies)
    assert ledger.summary().calls == len(replies) == 8
    assert budgeted.total == capped_reply.total_cost
    ledger.close()
    budgeted.close()


def test_a_full_queue_drops_the_oldest_record_counts_it_and_warns(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = PostgresLedger(private_postgres.url, queue_limit=2, retry_s=0.2, connect_timeout=1)
    private_postgres.stop()
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        for cost in ("0.1", "0.2", "0.4"):
            ledger.record(_entry(cost))
    assert (ledger.dropped, ledger.dropped_cost, ledger.queued) == (1, Decimal("0.1"), 2)
    assert any("dropped" in r.message for r in caplog.records)
    private_postgres.start()
    deadline = time.monotonic() + 30
    while ledger.flush() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ledger.queued == 0
    assert ledger.total == Decimal("0.6")
    ledger.close()


def test_a_concurrent_burst_during_an_outage_is_written_exactly_once(
    private_postgres: PrivatePostgres,
) -> None:
    ledger = PostgresLedger(private_postgres.url, retry_s=0.1, connect_timeout=1)
    ledger.record(_entry("1"))
    private_postgres.stop()
    threads = [threading.Thread(target=ledger.record, args=(_entry("0.001"),)) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    private_postgres.start()
    deadline = time.monotonic() + 30
    while ledger.queued and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ledger.summary().calls == 51
    assert ledger.total == Decimal("1.050")
    ledger.close()


def test_a_record_the_server_refuses_is_dropped_and_counted_not_retried_forever(
    ledger: PostgresLedger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        ledger.record(_entry("-1"))  # breaks the table's CHECK (cost >= 0)
    ledger.record(_entry("0.5"))
    assert (ledger.dropped, ledger.dropped_cost, ledger.queued) == (1, Decimal("-1"), 0)
    assert any("refused" in r.message for r in caplog.records)
    assert ledger.total == Decimal("0.5")


def test_the_spend_command_reads_a_postgres_ledger(
    ledger: PostgresLedger, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from llamaroute.cli import main

    ledger.record(_entry("0.00000024"))
    ledger.record(_entry("0.5", provider="bedrock"))
    code = main(["spend", "--ledger", f"{PG_URL}?options=-csearch_path%3D{schema}", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert shown["total"] == "0.50000024"
    assert shown["by_provider"] == {"openrouter": "0.00000024", "bedrock": "0.5"}


def test_each_attempt_of_a_call_is_one_row_keyed_by_the_call_and_its_attempt(
    schema: str,
) -> None:
    # Two attempts of one call: the first (deployment or-a) times out after the request was
    # sent, so its prompt is billed as an estimate; the second (or-b) answers. Two rows, one
    # call id, attempts 1 and 2; the same record written again adds nothing; another
    # client's first call is another call, never taken for a duplicate.
    ledger = PostgresLedger(PG_URL, schema=schema)
    try:
        with FakeOpenRouter(default=Step.reply("late", delay=3)) as slow, \
                FakeOpenRouter(default=Step.reply("a llama")) as fast:  # fmt: skip
            providers = [
                OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=slow.base_url,
                                   deployment="or-a"),
                OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fast.base_url,
                                   deployment="or-b"),
            ]  # fmt: skip
            with Client(providers, ledger=ledger, retries=0, timeout=2.0) as client:
                reply = client.chat(MODEL, "How many llamas?", max_tokens=16)
            with Client(providers[1:], ledger=ledger, retries=0) as other:
                other.chat(MODEL, "How many llamas?", max_tokens=16)
        assert reply.text == "a llama"
        assert [a.outcome for a in reply.attempts] == ["error", "ok"]
        first, second = (attempt.cost for attempt in reply.attempts)
        assert first is not None
        assert second is not None
        assert first.total > 0
        assert first.source == "estimate"
        calls: dict[str, list[tuple[object, ...]]] = {}
        for call_id, attempt, cost in _rows(schema, "SELECT call_id, attempt, cost FROM "
                                            "llamaroute_spend ORDER BY attempt"):  # fmt: skip
            calls.setdefault(str(call_id), []).append((attempt, cost))
        [(call_id, mine)] = [(key, rows) for key, rows in calls.items() if len(rows) == 2]
        assert mine == [(1, first.total), (2, second.total)]
        assert len(calls) == 2  # the other client's call: its own id, its own row
        assert all(key.endswith("-1") for key in calls)  # each client's first call
        total = ledger.total
        # A retry of the same write (the acknowledgement was lost) is still one row.
        again = SpendEntry("openrouter", MODEL, "m", first.total, "estimate", partial=True,
                           call_id=call_id, attempt=1)  # fmt: skip
        ledger.record(again)
        ledger.record(again)
        assert _rows(schema, "SELECT count(*) FROM llamaroute_spend") == [(3,)]
        assert ledger.total == total
        # A third attempt of the same call is a new row.
        ledger.record(SpendEntry("openrouter", MODEL, "m", Decimal("0.001"), "provider",
                                 call_id=call_id, attempt=3))  # fmt: skip
        assert _rows(schema, "SELECT count(*) FROM llamaroute_spend") == [(4,)]
        assert ledger.total == total + Decimal("0.001")
    finally:
        ledger.close()
