"""What a call costs in Redis round trips with ``state="redis://..."`` (issue 22): one on the
hot path, the breaker's record with the latency sample pipelined in it, counted on the real
Redis by what redis-py sends (a pipeline is one send)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import Connection

from llamaroute import AsyncClient, Client
from llamaroute.fleet import RedisState
from llamaroute.fleet import _connection as connection_module
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from . import _fleet
from ._fleet import MODEL, PLACEHOLDER_KEY, REDIS_URL, PrivateRedis

pytestmark = pytest.mark.skipif(
    not _fleet.answers(6379), reason="needs Redis on 127.0.0.1:6379 (.ci/run starts it)"
)


@pytest.fixture
def prefix() -> Iterator[str]:
    name = _fleet.unique("trips")
    yield name
    _fleet.drop_redis_prefix(REDIS_URL, name)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every command (or pipeline) redis-py sends: one round trip each."""
    sent: list[Any] = []
    original = Connection.send_packed_command

    def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    return sent


def _latency(prefix: str) -> dict[str, str]:
    state = RedisState(REDIS_URL, prefix=prefix)
    try:
        found: dict[str, str] = state.connection.command("HGETALL", f"llamaroute:{prefix}:latency")
        return found
    finally:
        state.close()


def test_a_sync_call_costs_one_round_trip(prefix: str, sends: list[Any]) -> None:
    with FakeOpenRouter(default=Step.reply("a llama")) as fake, Client(
        [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
        state=f"{REDIS_URL}?prefix={prefix}",
    ) as client:  # fmt: skip
        for _ in range(2):  # the scripts are loaded once (the latency's with the second call)
            client.chat(MODEL, "hi")
        before = len(sends)
        for _ in range(5):
            client.chat(MODEL, "hi")
        assert len(sends) - before == 5
        # The latency samples rode along: the fleet's average is there.
        assert any(key.startswith("total:openrouter:") for key in _latency(prefix))


def test_an_async_call_costs_one_round_trip(prefix: str, sends: list[Any]) -> None:
    async def main() -> int:
        async with AsyncClient(
            [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
            state=f"{REDIS_URL}?prefix={prefix}",
        ) as client:  # fmt: skip
            for _ in range(2):  # the scripts are loaded once
                await client.chat(MODEL, "hi")
            before = len(sends)
            for _ in range(5):
                await client.chat(MODEL, "hi")
            return len(sends) - before

    with FakeOpenRouter(default=Step.reply("a llama")) as fake:
        assert asyncio.run(main()) == 5


def test_a_queued_write_is_sent_on_close_or_after_waiting(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    stats = state.latency_stats()
    stats.observe("openrouter:m", 0.5)
    assert _latency(prefix) == {}  # queued: no round trip of its own
    monkeypatch.setattr(connection_module, "LATER_S", 0.05)
    time.sleep(0.06)
    stats.observe("openrouter:m", 0.25)  # the first has waited long enough: both go now
    assert float(_latency(prefix)["total:openrouter:m"]) == pytest.approx(0.5 * 0.7 + 0.25 * 0.3)
    stats.observe("ollama:m", 1.0)
    state.close()
    assert float(_latency(prefix)["total:ollama:m"]) == 1.0


def test_a_pipeline_reloads_the_scripts_a_restarted_redis_forgot() -> None:
    server = PrivateRedis().start()
    try:
        with FakeOpenRouter(default=Step.reply("a llama")) as fake, Client(
            [OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)],
            state=server.url,
        ) as client:  # fmt: skip
            for _ in range(2):
                client.chat(MODEL, "hi")
            state = RedisState(server.url)
            state.connection.command("SCRIPT", "FLUSH")  # as a restarted Redis (ours alone)
            state.connection.command("FLUSHALL")
            client.chat(MODEL, "hi")  # the record and the queued sample: both reloaded
            assert state.connection.command("ZCARD", "llamaroute:breakers") == 2  # provider, route
            fields = state.connection.command("HGETALL", "llamaroute:latency")
            assert any(key.startswith("total:openrouter:") for key in fields)
            state.close()
    finally:
        server.kill()
