"""Virtual keys at the gateway: wrong, revoked and rotated keys, per-key budgets (never
overspent, under 64 concurrent requests too), rates, allowed models, spend by key, user and
tag, a client that hangs up mid-stream, and the ``keys`` / ``spend --by`` commands."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests._gateway import (  # close_sdk_clients: an autouse fixture
    MASTER,
    PLACEHOLDER_KEY,
    Running,
    close_sdk_clients,  # noqa: F401
    sdk,
    serve,
)

openai = pytest.importorskip("openai")

from llamaroute.cli import main  # noqa: E402
from llamaroute.providers import OpenRouterProvider  # noqa: E402
from llamaroute.server import Store, worst_case  # noqa: E402
from llamaroute.testing import FakeOpenRouter, Step  # noqa: E402

MODEL = "llama-3.2-3b"
HI = [{"role": "user", "content": "Hi"}]
PRICE = ("0.0509", "0.335")  # the catalog's OpenRouter 3B price, so reported = table


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(default=Step.reply("Hello", usage=(20, 100)), price=PRICE) as server:
        yield server


@pytest.fixture
def gateway(fake: FakeOpenRouter, tmp_path: Path) -> Iterator[Running]:
    provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
    with serve([provider], tmp_path / "gw.sqlite3") as running:
        yield running


def worst(gateway: Running, max_tokens: int) -> Decimal:
    client = gateway.app.state.gateway.client
    found = worst_case(client, MODEL, {"messages": HI, "max_tokens": max_tokens})
    assert found is not None
    return found


def test_wrong_revoked_and_rotated_keys_get_401(gateway: Running, fake: FakeOpenRouter) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        sdk(gateway, "lr-not-a-real-key").chat.completions.create(model=MODEL, messages=HI)
    assert wrong.value.code == "invalid_api_key"
    key = gateway.key("team-a")
    assert sdk(gateway, key).chat.completions.create(model=MODEL, messages=HI).choices
    store = gateway.store()
    record, new = store.rotate("team-a")
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, key).chat.completions.create(model=MODEL, messages=HI)
    assert sdk(gateway, new).chat.completions.create(model=MODEL, messages=HI).choices
    store.revoke(record.id)
    store.close()
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, new).chat.completions.create(model=MODEL, messages=HI)
    assert fake.hits == 2
    no_bearer = httpx.post(f"{gateway.base_url}/chat/completions", json={})
    assert no_bearer.status_code == 401


def test_only_hashes_are_stored(gateway: Running) -> None:
    key = gateway.key("team-a")
    assert key.encode() not in gateway.db.read_bytes()


def test_a_request_over_the_budget_never_reaches_the_provider(
    gateway: Running, fake: FakeOpenRouter
) -> None:
    key = gateway.key("tiny", budget=worst(gateway, 100) / 2)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(gateway, key).chat.completions.create(model=MODEL, messages=HI, max_tokens=100)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.body["type"] == "insufficient_quota"
    assert fake.hits == 0
    # A smaller worst case fits.
    assert sdk(gateway, key).chat.completions.create(model=MODEL, messages=HI, max_tokens=10)


def test_a_rate_limited_key_gets_429_with_retry_after(gateway: Running) -> None:
    key = gateway.key("slow", rpm=2)
    ai = sdk(gateway, key)
    ai.chat.completions.create(model=MODEL, messages=HI)
    ai.chat.completions.create(model=MODEL, messages=HI)
    with pytest.raises(openai.RateLimitError) as limited:
        ai.chat.completions.create(model=MODEL, messages=HI)
    assert limited.value.code == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 61


def test_a_key_limited_to_models_gets_403_for_others(gateway: Running) -> None:
    key = gateway.key("small", models=["llama-3.2-1b"])
    ai = sdk(gateway, key)
    with pytest.raises(openai.PermissionDeniedError):
        ai.chat.completions.create(model=MODEL, messages=HI)
    assert ai.chat.completions.create(model="llama-3.2-1b", messages=HI).choices
    assert next(m.id for m in ai.models.list()) == "llama-3.2-1b"


def test_spend_by_key_user_and_tag(gateway: Running) -> None:
    key = gateway.key("team-a", tags=["org"])
    ai = sdk(gateway, key)
    ai.chat.completions.create(
        model=MODEL,
        messages=HI,
        user="alice",
        extra_headers={"x-llamaroute-tags": "exp-1, billing"},
    )
    ai.chat.completions.create(model=MODEL, messages=HI, user="bob")
    auth = {"Authorization": f"Bearer {MASTER}"}

    def spend(by: str) -> dict[str, dict[str, object]]:
        got = httpx.get(f"{gateway.base_url}/spend", params={"by": by}, headers=auth).json()
        return {group[by]: group for group in got["groups"]}

    each = Decimal("20") * Decimal(PRICE[0]) / 10**6 + Decimal("100") * Decimal(PRICE[1]) / 10**6
    users = spend("user")
    assert Decimal(users["alice"]["cost"]) == each
    assert users["bob"]["requests"] == 1
    tags = spend("tag")
    assert set(tags) == {"org", "exp-1", "billing"}
    assert tags["org"]["requests"] == 2
    keys = spend("key")
    (only,) = keys.values()
    assert only["name"] == "team-a"
    assert Decimal(only["cost"]) == 2 * each
    assert spend("provider")["openrouter"]["requests"] == 2
    assert spend("model")[MODEL]["output_tokens"] == 200
    forbidden = httpx.get(f"{gateway.base_url}/spend", headers={"Authorization": f"Bearer {key}"})
    assert forbidden.status_code == 403


async def test_64_concurrent_requests_never_overspend_a_key(tmp_path: Path) -> None:
    slow = Step.reply("Hello", usage=(20, 100), delay=0.3)
    with FakeOpenRouter(default=slow, price=PRICE) as fake:
        provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
        with serve([provider], tmp_path / "gw.sqlite3") as gateway:
            budget = worst(gateway, 100) * Decimal("10.5")
            key = gateway.key("burst", budget=budget)
            async with openai.AsyncOpenAI(
                base_url=gateway.base_url, api_key=key, max_retries=0, timeout=60
            ) as ai:

                async def one() -> str:
                    try:
                        await ai.chat.completions.create(model=MODEL, messages=HI, max_tokens=100)
                    except openai.RateLimitError as error:
                        return str(error.code)
                    return "ok"

                outcomes = await asyncio.gather(*(one() for _ in range(64)))
            # Settlements are written in batches: reading the spend writes what is queued.
            httpx.get(f"{gateway.base_url}/spend", headers={"Authorization": f"Bearer {MASTER}"})
            store = gateway.store()
            record = store.key("burst")
            store.close()
        assert outcomes.count("ok") >= 10
        assert set(outcomes) == {"ok", "insufficient_quota"}
        assert fake.hits == outcomes.count("ok")
        assert fake.billed <= budget
        assert record.spent == fake.billed


def test_a_client_that_leaves_mid_stream_closes_and_settles(
    gateway: Running, fake: FakeOpenRouter
) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    fake.script(Step.reply(words, chunk_delay=0.05))
    key = gateway.key("streamer", budget=Decimal(1))
    body = {"model": MODEL, "stream": True, "messages": HI, "max_tokens": 500}
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{gateway.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any("w0" in line for line in got)
    deadline = time.monotonic() + 15
    store = gateway.store()
    try:
        while time.monotonic() < deadline:
            rows = store._db.execute("SELECT status, cost FROM spend").fetchall()
            held = store._db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0]
            if rows and not held:
                break
            time.sleep(0.05)
        assert rows == [("client_disconnected", rows[0][1])]
        assert held == 0
        assert Decimal(0) < Decimal(rows[0][1]) < Decimal("0.001")  # the prompt and text so far
    finally:
        store.close()
    deadline = time.monotonic() + 10
    while fake.hangups == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.hangups >= 1  # the upstream stream was closed too


def test_the_keys_and_spend_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "gw.sqlite3")
    assert main(["spend", "--by", "key", "--db", db]) == 1
    assert "no gateway database" in capsys.readouterr().err
    assert (
        main(
            [
                "keys",
                "create",
                "--name",
                "team-a",
                "--budget",
                "50",
                "--rpm",
                "600",
                "--models",
                "llama-3.2-3b,Llama-3.2-1B-Instruct",
                "--db",
                db,
            ]
        )
        == 0
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    store = Store(db)
    record = store.authenticate(secret)
    assert record is not None
    assert record.models == ("llama-3.2-3b", "llama-3.2-1b")
    assert record.budget == Decimal(50)
    assert record.rpm == 600
    store.settle(
        record.id,
        None,
        Decimal("0.25"),
        user="ann",
        tags=["t1"],
        provider="openrouter",
        model=MODEL,
        input_tokens=1,
        output_tokens=2,
        status="ok",
    )
    store.close()
    assert main(["keys", "list", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["remaining"] == "49.75"
    assert secret not in json.dumps(listed)
    assert main(["spend", "--by", "tag", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"][0] == {
        "tag": "t1",
        "cost": "0.25",
        "requests": 1,
        "input_tokens": 1,
        "output_tokens": 2,
    }
    assert main(["spend", "--by", "user", "--db", db]) == 0
    assert "ann" in capsys.readouterr().out
    assert main(["keys", "rotate", "team-a", "--db", db]) == 0
    rotated = capsys.readouterr().out.strip().splitlines()[-1]
    assert rotated != secret
    assert main(["keys", "revoke", "team-a", "--db", db]) == 0
    store = Store(db)
    assert store.authenticate(rotated) is None
    assert store.authenticate(secret) is None
    store.close()
    assert main(["keys", "create", "--name", "x", "--models", "llama-9", "--db", db]) == 1
