"""Budgets that are caps (issue 17, part 6): abandoned streams settle, reservations bound the
prompt from above (emoji included), reported costs are checked, a missing usage chunk is an
estimate. Real providers against the fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import logging
from decimal import Decimal
from typing import Any

import pytest

from llamaroute import AsyncClient, BudgetExceededError, Client, RetryPolicy
from llamaroute.money import prompt_token_ceiling
from llamaroute.testing import Step

from .conftest import Fakes, three_providers

NO_SLEEP = RetryPolicy(sleep=lambda seconds: None)
#: Bedrock 90B: 0.72 USD per million tokens both ways, 2048 output tokens at most; a stream's
#: reservation is about 0.0015 USD, so this budget holds two at a time, not three.
BUDGET = Decimal("0.004")
MODEL = "llama-3.2-90b-vision"
LONG = Step(chunks=tuple(f"word{i} " for i in range(40)), usage=(30, 40))


def client_for(fakes: Fakes, *names: str, cls: Any = Client, **options: Any) -> Any:
    made = three_providers(fakes)
    options.setdefault("retries", NO_SLEEP)
    return cls(providers=[made[name] for name in names], **options)


# --- abandoned streams settle -------------------------------------------------------------------


def _break(client: Client) -> None:
    for _ in client.stream(MODEL, "tell me a story"):
        break


def _close(client: Client) -> None:
    stream = client.stream(MODEL, "tell me a story")
    iterator = iter(stream)
    next(iterator)
    next(iterator)
    stream.close()


def _collect(client: Client) -> None:
    stream = client.stream(MODEL, "tell me a story")
    iterator = iter(stream)
    next(iterator)
    del iterator, stream
    gc.collect()


@pytest.mark.parametrize("leave", [_break, _close, _collect], ids=["break", "close", "gc"])
def test_abandoned_streams_settle_and_release_their_reservation(
    three_fakes: Fakes, leave: Any
) -> None:
    three_fakes[1].default = LONG
    with client_for(three_fakes, "bedrock", budget=BUDGET) as client:
        for _ in range(3):
            leave(client)
        # Every reservation was given back: nothing is held, and a normal call goes through.
        assert client.spend.remaining() == BUDGET - client.spend.total
        spent = client.spend.total
        # Three prompts and a few words each, estimated high (their ceilings), far below the
        # three reservations (about 0.0015 USD each) that used to stay held.
        assert Decimal(0) < spent < Decimal("0.0005")
        reply = client.chat(MODEL, "hi", max_tokens=100)
        assert reply.provider == "bedrock"
        assert client.spend.total == spent + reply.cost.total


async def _abreak(client: AsyncClient) -> None:
    async with client.stream(MODEL, "tell me a story") as stream:
        async for _ in stream:
            break


async def _aclose(client: AsyncClient) -> None:
    stream = client.stream(MODEL, "tell me a story")
    async for _ in stream:
        break
    await stream.aclose()
    await stream.aclose()  # twice is fine


async def _agc(client: AsyncClient) -> None:
    stream = client.stream(MODEL, "tell me a story")
    async for _ in stream:
        break
    del stream
    gc.collect()
    for _ in range(20):  # the event loop's finalizer closes the stream in a task of its own
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("leave", [_abreak, _aclose, _agc], ids=["break", "aclose", "gc"])
async def test_abandoned_async_streams_settle_quietly(
    three_fakes: Fakes, leave: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    three_fakes[1].default = LONG
    async with client_for(three_fakes, "bedrock", cls=AsyncClient, budget=BUDGET) as client:
        for _ in range(3):
            await leave(client)
        assert client.spend.remaining() == BUDGET - client.spend.total
        assert client.spend.total > 0
        reply = await client.chat(MODEL, "hi", max_tokens=100)
        assert reply.provider == "bedrock"
    assert not [r for r in caplog.records if "already running" in r.getMessage()]


def test_an_abandoned_stream_is_recorded_as_an_estimate(three_fakes: Fakes) -> None:
    three_fakes[1].default = LONG
    with client_for(three_fakes, "bedrock", budget=BUDGET) as client:
        with client.stream(MODEL, "tell me a story") as stream:
            for index, _ in enumerate(stream):
                if index == 4:
                    break
        by_provider = client.spend.summary().by_provider
        assert list(by_provider) == ["bedrock"]
        assert by_provider["bedrock"] > 0


# --- conservative reservations ------------------------------------------------------------------


def test_the_prompt_ceiling_is_never_below_the_real_token_count() -> None:
    # Real Llama 3 counts (PROVIDERS.md "Tokens"): the llama 3 tokens, a family emoji 15.
    assert prompt_token_ceiling("🦙") >= 3
    assert prompt_token_ceiling("👨‍👩‍👧‍👦") >= 15
    assert prompt_token_ceiling("hello world") == 11


def test_an_emoji_prompt_is_refused_before_sending_when_its_ceiling_passes_max_cost(
    three_fakes: Fakes,
) -> None:
    emoji = "👨‍👩‍👧‍👦" * 2000  # 50,000 bytes; about 30,000 real tokens
    with (
        client_for(three_fakes, "bedrock") as client,
        pytest.raises(BudgetExceededError, match="lower max_tokens"),
    ):
        # 30,000 tokens at 0.72/M is 0.0216 USD: more than 0.02 must be reserved.
        client.chat(MODEL, emoji, max_tokens=10, max_cost=Decimal("0.02"))
    assert three_fakes[1].hits == 0


# --- reported costs -----------------------------------------------------------------------------


def _body(usage: str) -> bytes:
    return (
        '{"id":"gen-1","model":"meta-llama/llama-3.2-3b-instruct","choices":[{"message":'
        '{"content":"hi"},"finish_reason":"stop"}],"usage":' + usage + "}"
    ).encode()


def test_a_reported_cost_keeps_every_digit(three_fakes: Fakes) -> None:
    usage = '{"prompt_tokens":10,"completion_tokens":2,"cost":0.000000123456789012345}'
    three_fakes[0].script(Step(raw_body=_body(usage)))
    with client_for(three_fakes, "openrouter") as client:
        reply = client.chat("llama-3.2-3b", "hi")
    assert reply.cost is not None
    assert reply.cost.total == Decimal("0.000000123456789012345")
    assert reply.cost.source == "provider"
    assert reply.cost.reported == Decimal("0.000000123456789012345")
    assert reply.cost.table is not None  # the table's figure, side by side


def test_byok_adds_the_upstream_charge_to_openrouters_fee(three_fakes: Fakes) -> None:
    usage = ('{"prompt_tokens":10,"completion_tokens":2,"cost":0.0000005,"is_byok":true,'
             '"cost_details":{"upstream_inference_cost":0.00001}}')  # fmt: skip
    plain = ('{"prompt_tokens":10,"completion_tokens":2,"cost":0.00001,"is_byok":false,'
             '"cost_details":{"upstream_inference_cost":0.00001}}')  # fmt: skip
    three_fakes[0].script(Step(raw_body=_body(usage)), Step(raw_body=_body(plain)))
    with client_for(three_fakes, "openrouter") as client:
        byok = client.chat("llama-3.2-3b", "hi")
        not_byok = client.chat("llama-3.2-3b", "hi")
    assert byok.cost is not None
    assert byok.cost.total == Decimal("0.0000105")
    assert not_byok.cost is not None
    assert not_byok.cost.total == Decimal("0.00001")  # equal to cost there: not added twice


def test_a_stream_without_its_usage_chunk_is_an_estimate_not_zero(three_fakes: Fakes) -> None:
    frames = [
        b'data: {"id":"gen-1","choices":[{"delta":{"content":"Hello there, '
        b'a few words"},"finish_reason":null}]}\n\n',
        b'data: {"id":"gen-1","choices":[{"delta":{"content":""},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    three_fakes[0].script(Step(raw_body=b"".join(frames)))
    with client_for(three_fakes, "openrouter", budget=Decimal(1)) as client:
        stream = client.stream("llama-3.2-90b-vision", "hi")
        reply = stream.read()
        assert reply.cost is not None
        assert reply.cost.source == "estimate"
        assert reply.cost.total > 0
        assert reply.cost.note is not None
        assert client.spend.total == reply.cost.total
        assert client.spend.remaining() == Decimal(1) - reply.cost.total


def test_an_ollama_answer_without_counts_is_an_estimate(three_fakes: Fakes) -> None:
    lines = [
        b'{"model":"llama3.2:3b","message":{"role":"assistant","content":"Hello there"},'
        b'"done":false}\n',
        b'{"model":"llama3.2:3b","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"stop"}\n',
    ]
    three_fakes[2].script(Step(raw_body=b"".join(lines)))
    with client_for(three_fakes, "ollama") as client:
        reply = client.stream("llama-3.2-3b", "hi").read()
    assert reply.text == "Hello there"
    assert reply.cost is not None
    assert reply.cost.source == "estimate"  # local: 0 USD, but marked as an estimate
    assert reply.cost.note is not None
