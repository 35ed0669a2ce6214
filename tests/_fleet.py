"""Helpers for the fleet tests (issue 21): the machine's real Redis and PostgreSQL, private
throwaway servers that a test may kill and restart, and the worker functions that the
multi-process tests run in child processes (spawned, so they must be importable here).

Every test works in its own namespace (a unique Redis key prefix, a unique PostgreSQL schema),
so tests are independent and may run in parallel; the shared servers are never restarted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: A distinctive key for the fake providers (never a real one).
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fake servers accept any key
MODEL = "llama-3.2-1b"


def in_threads(count: int, work: Callable[[], None], *, join_s: float = 120) -> None:
    """Run ``work`` in ``count`` threads started together, and wait for them."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_s)


@dataclass
class Tally:
    """What calls made from several threads came to: each answer's value, each expected
    refusal (``refusal``, noted by ``noted``), and anything else by type and message."""

    refusal: type[BaseException]
    noted: Callable[[BaseException], str] = str
    answered: list[Any] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, make: Callable[[], Any]) -> bool:
        """Make one call and keep what came of it; ``True`` when it was refused."""
        try:
            value = make()
        except self.refusal as error:
            with self.lock:
                self.refused.append(self.noted(error))
            return True
        except Exception as error:  # anything else fails the test, with its type
            with self.lock:
                self.others.append(f"{type(error).__name__}: {error}")
            return False
        with self.lock:
            self.answered.append(value)
        return False


def answers(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(name: str) -> str:
    """A fresh namespace name (lower-case, for PostgreSQL schemas too)."""
    return f"t_{name}_{uuid.uuid4().hex[:10]}"


def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"llamaroute:{prefix}:*", count=500):
            client.delete(key)
    finally:
        client.close()


def drop_pg_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- private servers ----------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence, to kill."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed (needed for a private Redis to kill)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not answers(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary folder on a free port (run as the
    ``postgres`` user when the tests run as root, which PostgreSQL refuses)."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            pytest.skip("PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin)")
        self.bin = found[-1].parent
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start a private cluster")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.folder = Path(tempfile.mkdtemp(prefix="llamaroute-pg-"))
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        # Immediate: like a crash; connections die without a goodbye.
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- what the child processes run -----------------------------------------------------------


def _client(base_url: str, **options: Any) -> Any:
    from llamaroute import Client
    from llamaroute.providers import OpenRouterProvider

    return Client([OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=base_url)], retries=0,
                  **options)  # fmt: skip


def budget_worker(
    base_url: str,
    redis_url: str,
    prefix: str,
    budget: str,
    calls: int,
    start_at: float,
    pg_schema: str | None = None,
) -> dict[str, Any]:
    """One process of the fleet: ``calls`` concurrent calls under the shared budget (with
    the spend ledger in PostgreSQL's ``pg_schema``, if given)."""
    from llamaroute import BudgetExceededError
    from llamaroute.fleet import RedisState
    from llamaroute.money import PostgresLedger

    tally = Tally(BudgetExceededError)
    ledger = None if pg_schema is None else PostgresLedger(PG_URL, schema=pg_schema)
    client = _client(base_url, state=RedisState(redis_url, prefix=prefix), budget=Decimal(budget),
                     ledger=ledger)  # fmt: skip
    _wait_until(start_at)

    def call() -> None:
        tally.record(lambda: client.chat(MODEL, "How many llamas fit in a fleet?",
                                         max_tokens=64).total_cost)  # fmt: skip

    in_threads(calls, call, join_s=120)
    total = client.spend.total
    client.close()
    if ledger is not None:
        ledger.close()
    return {"answered": [str(c) for c in tally.answered], "refused": len(tally.refused),
            "others": tally.others, "ledger_total": str(total)}  # fmt: skip


def rate_limited_worker(
    base_url: str, state_url: str, rpm: int, calls: int, timeout: float, start_at: float
) -> dict[str, Any]:
    """One process of a fleet whose OpenRouter deployment allows ``rpm`` requests a minute
    fleet-wide (``state_url``: Redis with the test's prefix): ``calls`` concurrent calls, each
    with ``timeout``; how many were answered, refused by the local limit, or failed else."""
    from llamaroute import Client, RateLimitError
    from llamaroute.providers import OpenRouterProvider

    def noted(error: Any) -> str:  # a RateLimitError
        return f"{error.code} sent={error.status_code}"

    tally = Tally(RateLimitError, noted)
    provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=base_url, rpm=rpm)
    client = Client([provider], state=state_url, retries=0, timeout=timeout)
    _wait_until(start_at)

    def call() -> None:
        tally.record(lambda: client.chat(MODEL, "One llama at a time?", max_tokens=16).text)

    in_threads(calls, call, join_s=120)
    client.close()
    return {"answered": len(tally.answered), "limited": tally.refused, "others": tally.others}


def probe_worker(redis_url: str, prefix: str, threads: int, start_at: float) -> int:
    """How many of ``threads`` concurrent admissions a half-open breaker lets through here."""
    from llamaroute.catalog import default_catalog
    from llamaroute.fleet import RedisState
    from llamaroute.routing import BreakerPolicy

    route = next(r for r in default_catalog().resolve(MODEL).routes if r.provider == "openrouter")
    health = RedisState(redis_url, prefix=prefix).health(BreakerPolicy(failures=3, cooldown=1.0))
    admitted = []
    _wait_until(start_at)
    gate = threading.Barrier(threads)

    def admit() -> None:
        gate.wait(30)
        admitted.append(health.admit(route))

    workers = [threading.Thread(target=admit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return sum(admitted)


def breaker_worker(
    openrouter_url: str, ollama_url: str, redis_url: str, prefix: str
) -> dict[str, Any]:
    """A second process: its client must see the breaker the first process opened."""
    from llamaroute import Client
    from llamaroute.fleet import RedisState
    from llamaroute.providers import OllamaProvider, OpenRouterProvider
    from llamaroute.routing import BreakerPolicy

    with Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter_url),
         OllamaProvider(host=ollama_url)],
        state=RedisState(redis_url, prefix=prefix), retries=0,
        breaker=BreakerPolicy(failures=3, cooldown=600),
    ) as client:  # fmt: skip
        health = client.health()
        reply = client.chat(MODEL, "hello")
        return {"health": health, "provider": reply.provider}


def _wait_until(start_at: float) -> None:
    # The processes start together at a wall-clock time (a Manager's Event would need a
    # socket, which the tests' socket guard refuses).
    time.sleep(max(0.0, start_at - time.time()))


@contextlib.contextmanager
def spawn_pool(processes: int) -> Iterator[Any]:
    """A pool of fresh (spawned) processes; tasks get a ``start_at`` a few seconds ahead."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        yield pool


def pg_budget_worker(
    base_url: str, pg_url: str, schema: str, budget: str, calls: int, start_at: float
) -> dict[str, Any]:
    """One process of a fleet whose budget is kept in PostgreSQL alone (no Redis)."""
    from llamaroute import BudgetExceededError
    from llamaroute.money import PostgresLedger

    ledger = PostgresLedger(pg_url, Decimal(budget), schema=schema)
    client = _client(base_url, ledger=ledger)
    tally = Tally(BudgetExceededError)
    _wait_until(start_at)

    def call() -> None:
        tally.record(lambda: str(client.chat(MODEL, "How many llamas fit in a fleet?",
                                             max_tokens=64).total_cost))  # fmt: skip

    in_threads(calls, call, join_s=120)
    client.close()
    ledger.close()
    return {"answered": tally.answered, "refused": len(tally.refused), "others": tally.others}


def restart_worker(
    base_url: str, redis_url: str, prefix: str, pg_schema: str, seconds: float, start_at: float
) -> dict[str, Any]:
    """Calls for ``seconds`` from 4 threads, with a budget on Redis (which the parent kills
    and restarts meanwhile) and the ledger in PostgreSQL."""
    from llamaroute import BudgetExceededError
    from llamaroute.fleet import RedisState
    from llamaroute.money import PostgresLedger

    ledger = PostgresLedger(PG_URL, schema=pg_schema)
    client = _client(base_url, state=RedisState(redis_url, prefix=prefix, retry_s=0.2),
                     budget=Decimal("1"), ledger=ledger)  # fmt: skip
    tally = Tally(BudgetExceededError)
    _wait_until(start_at)
    stop = time.monotonic() + seconds

    def calls() -> None:
        while time.monotonic() < stop:
            if tally.record(lambda: str(client.chat(MODEL, "Still there?",
                                                    max_tokens=32).total_cost)):  # fmt: skip
                time.sleep(0.05)

    in_threads(4, calls, join_s=seconds + 60)
    deadline = time.monotonic() + 20
    while client.spend.pending and time.monotonic() < deadline:
        time.sleep(0.1)  # the settlements Redis missed are replayed
    pending = client.spend.pending
    client.close()
    ledger.close()
    return {"answered": tally.answered, "refused": len(tally.refused), "others": tally.others,
            "pending": pending}  # fmt: skip
