"""Client / AsyncClient with one provider: the call shape, validation before I/O, streams,
closing, and secret hygiene."""

from __future__ import annotations

import logging
import pickle
import time
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    ChatChunk,
    Client,
    ConfigurationError,
    InvalidImageError,
    InvalidRequestError,
    LlamarouteError,
    Message,
    ServerError,
    StreamInterruptedError,
    UnknownModelError,
    UnsupportedFeatureError,
    load_catalog,
)
from llamaroute.providers import OpenRouterProvider, discover
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY, png_bytes

PNG = png_bytes(8, 6)


def test_chat_returns_a_full_response(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Step.reply("Paris.", usage=(20, 2), cost="0.0000031"))
    reply = client.chat("Llama-3.2-3B-Instruct", "Capital of France?", system="One word.")
    assert reply.text == "Paris."
    assert reply.model == "llama-3.2-3b"
    assert reply.provider == "openrouter"
    assert reply.provider_model_id == "meta-llama/llama-3.2-3b-instruct"
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (20, 2)
    assert reply.cost is not None
    assert reply.cost.total == Decimal("0.0000031")
    assert reply.cost.source == "provider"
    assert len(reply.attempts) == 1
    assert reply.attempts[0].outcome == "ok"
    assert reply.latency_s > 0
    sent = fake_openrouter.requests[0].json
    assert sent["messages"] == [
        {"role": "system", "content": "One word."},
        {"role": "user", "content": "Capital of France?"},
    ]


def test_vision_call_sends_one_image_after_the_text(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = client.chat("llama-3.2-90b-vision", "What is in this image?", image=PNG)
    assert reply.provider_model_id == "meta-llama/llama-3.2-90b-vision-instruct"
    parts = fake_openrouter.requests[0].json["messages"][0]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url"]


def test_messages_and_pinned_routes(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    history = [Message.user("Hi"), {"role": "assistant", "content": "Hello!"}]
    client.chat("openrouter:meta-llama/llama-3.2-1b-instruct:free", "And now?", messages=history)
    sent = fake_openrouter.requests[0].json
    assert sent["model"] == "meta-llama/llama-3.2-1b-instruct:free"
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_without_a_provider_figure_the_price_table_prices_the_call(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    # OpenRouter 3B is priced at 0.0509 / 0.335 USD per million tokens in pricing/openrouter.toml.
    fake_openrouter.script(Step.reply("hi", usage=(1_000_000, 500_000), cost=None))
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.cost is not None
    assert reply.cost.source == "price_table"
    assert (reply.cost.input, reply.cost.output) == (Decimal("0.0509"), Decimal("0.1675"))
    assert reply.cost.total == Decimal("0.2184")
    assert reply.attempts[-1].cost == reply.cost


def test_client_estimate_covers_its_own_routes(client: Client) -> None:
    estimates = client.estimate("llama-3.2-90b-vision", "What is this?", max_tokens=100)
    assert [e.provider for e in estimates] == ["openrouter"]  # the only configured provider
    only = estimates[0]
    assert only.model_id == "meta-llama/llama-3.2-90b-vision-instruct"
    assert only.low is not None
    assert only.high is not None
    assert only.low <= only.high
    with pytest.raises(ConfigurationError, match="not configured"):
        client.estimate("llama-3.2-3b", "hi", providers=["bedrock"])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"model": "llama-3.2-9b"}, UnknownModelError),
        ({"model": "llama-3.2-3b", "image": PNG}, UnsupportedFeatureError),
        ({"model": "llama-3.2-3b", "temperature": 3.0}, InvalidRequestError),
        ({"model": "llama-3.2-3b", "max_tokens": -1}, InvalidRequestError),
        ({"model": "llama-3.2-90b-vision", "image": b"not an image"}, InvalidImageError),
        ({"model": "llama-3.2-90b-vision", "image": "/no/such/chart.png"}, InvalidImageError),
        ({"model": "llama-3.2-90b-vision",
          "messages": [Message.user("a", image=PNG), Message.assistant("b")], "image": PNG},
         InvalidRequestError),
        ({"model": "llama-3.2-3b", "providers": ["bedrock"]}, ConfigurationError),
        ({"model": "bedrock:us.meta.llama3-2-3b-instruct-v1:0"}, ConfigurationError),
        ({"model": "llama-3.2-3b", "timeout": 0}, ConfigurationError),
    ],
)  # fmt: skip
def test_bad_input_fails_before_any_request(
    client: Client, fake_openrouter: FakeOpenRouter, kwargs: dict[str, object],
    error: type[LlamarouteError],
) -> None:  # fmt: skip
    model = kwargs.pop("model")
    with pytest.raises(error):
        client.chat(model, "hello", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error):
        client.stream(model, "hello", **kwargs)  # type: ignore[arg-type]
    assert fake_openrouter.hits == 0


def test_max_tokens_is_capped_to_the_route(fake_openrouter: FakeOpenRouter, tmp_path: Path) -> None:
    catalog_file = tmp_path / "cap.toml"
    catalog_file.write_text(
        '[[routes]]\nprovider = "openrouter"\n'
        'model_id = "meta-llama/llama-3.2-3b-instruct"\nmax_output_tokens = 100\n'
    )
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    with Client(providers=[provider], catalog=load_catalog(catalog_file)) as client:
        reply = client.chat("llama-3.2-3b", "hi", max_tokens=5000)
    assert fake_openrouter.requests[0].json["max_tokens"] == 100
    assert reply.details["max_tokens_capped_to"] == 100


def test_a_passing_failure_is_retried(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Step.error(503), Step.reply("second time lucky"))
    reply = client.chat("llama-3.2-3b", "hi")
    assert reply.text == "second time lucky"
    assert [a.outcome for a in reply.attempts] == ["error", "ok"]
    assert reply.attempts[0].status_code == 503


def test_provider_errors_arrive_typed_in_the_group(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(*[Step.error(503)] * 3)
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat("llama-3.2-3b", "hi")
    assert [type(e) for e in caught.value.exceptions] == [ServerError] * 3
    assert fake_openrouter.hits == 3


# --- streams ------------------------------------------------------------------------------


def test_stream_yields_chunks_then_the_response(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(chunks=("Once", " upon", " a time"), usage=(4, 3)))
    with client.stream("llama-3.2-3b", "Tell me a story") as stream:
        chunks = list(stream)
    assert all(isinstance(chunk, ChatChunk) for chunk in chunks)
    assert [chunk.text for chunk in chunks] == ["Once", " upon", " a time"]
    assert stream.text == "Once upon a time"
    assert stream.response.text == "Once upon a time"
    assert stream.response.usage.output_tokens == 3
    assert fake_openrouter.requests[0].json["stream"] is True


def test_stream_response_before_the_end_is_an_error(client: Client) -> None:
    with client.stream("llama-3.2-3b", "hi") as stream:
        with pytest.raises(LlamarouteError, match="not finished"):
            _ = stream.response
        assert stream.read().text


def test_nothing_is_sent_until_iteration(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    stream = client.stream("llama-3.2-3b", "hi")
    assert fake_openrouter.hits == 0
    stream.read()
    assert fake_openrouter.hits == 1


@pytest.mark.parametrize("use_with", [True, False])
def test_breaking_out_early_closes_the_connection(
    client: Client, fake_openrouter: FakeOpenRouter, use_with: bool
) -> None:
    fake_openrouter.script(Step(chunks=("tick ",) * 500, chunk_delay=0.005))
    if use_with:
        with client.stream("llama-3.2-3b", "count") as stream:
            for _ in stream:
                break
    else:
        for _ in client.stream("llama-3.2-3b", "count"):
            break
    stopped = time.monotonic()
    waited = fake_openrouter.wait_closed(stopped - 0.05, timeout=1.0)
    assert waited is not None, "the server did not see the connection close within 1 s"


def test_failure_after_text_is_an_interrupted_stream(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(chunks=("The answer", " is"), error_after=2))
    received: list[str] = []

    def consume() -> None:
        with client.stream("llama-3.2-3b", "question") as stream:
            received.extend(chunk.text for chunk in stream)

    with pytest.raises(StreamInterruptedError) as caught:
        consume()
    error = caught.value
    assert error.partial_text == "".join(received) == "The answer is"
    assert isinstance(error.__cause__, ServerError)
    assert [attempt.outcome for attempt in error.attempts] == ["error"]
    assert not error.retryable


@pytest.mark.parametrize("fault", [{"cut_after": 1}, {"drop_after": 1}, {"malformed_after": 1}])
def test_truncated_streams_never_succeed(
    client: Client, fake_openrouter: FakeOpenRouter, fault: dict[str, int]
) -> None:
    fake_openrouter.script(Step(chunks=("a", "b", "c"), **fault))
    with pytest.raises(StreamInterruptedError) as caught:
        client.stream("llama-3.2-3b", "x").read()
    assert caught.value.partial_text == "a"


def test_failure_before_text_is_retried(client: Client, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Step(chunks=("a",), error_after=0), Step(chunks=("b",)))
    response = client.stream("llama-3.2-3b", "x").read()
    assert response.text == "b"
    assert [a.outcome for a in response.attempts] == ["error", "ok"]


# --- async --------------------------------------------------------------------------------


async def test_async_chat_and_stream(aclient: AsyncClient, fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Step.reply("async hello", cost="0.5"), Step(chunks=("a", "b")))
    reply = await aclient.chat("llama-3.2-1b", "hi")
    assert (reply.text, reply.cost.total if reply.cost else None) == ("async hello", Decimal("0.5"))
    async with aclient.stream("llama-3.2-1b", "hi") as stream:
        pieces = [chunk.text async for chunk in stream]
    assert pieces == ["a", "b"]
    assert stream.response.text == "ab"


async def test_async_interrupted_stream(
    aclient: AsyncClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(chunks=("a", "b"), drop_after=1))

    async def consume() -> None:
        async with aclient.stream("llama-3.2-1b", "hi") as stream:
            async for _ in stream:
                pass

    with pytest.raises(StreamInterruptedError) as caught:
        await consume()
    assert caught.value.partial_text == "a"


async def test_async_bad_input_sends_nothing(
    aclient: AsyncClient, fake_openrouter: FakeOpenRouter
) -> None:
    with pytest.raises(UnsupportedFeatureError):
        await aclient.chat("llama-3.2-1b", "hi", image=PNG)
    assert fake_openrouter.hits == 0


async def test_async_early_exit_closes_the_connection(
    aclient: AsyncClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(chunks=("tick ",) * 500, chunk_delay=0.005))
    async with aclient.stream("llama-3.2-3b", "count") as stream:
        async for _ in stream:
            break
    assert fake_openrouter.wait_closed(time.monotonic() - 0.05, timeout=1.0) is not None


# --- configuration ------------------------------------------------------------------------


def test_discovery_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert discover({}) == []
    found = discover({"OPENROUTER_API_KEY": CANARY_KEY})
    assert [provider.name for provider in found] == ["openrouter"]
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with Client() as client, pytest.raises(ConfigurationError, match="served by"):
        client.chat("llama-3.2-3b", "hi")


def test_client_arguments_are_checked(openrouter: OpenRouterProvider) -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        Client(providers=[openrouter, openrouter])
    with pytest.raises(ConfigurationError, match="provider objects"):
        Client(providers=["openrouter"])  # type: ignore[list-item]


def test_closing_the_client_closes_the_pools(fake_openrouter: FakeOpenRouter) -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    with Client(providers=[provider]) as client:
        client.chat("llama-3.2-3b", "hi")
        started = time.monotonic()
    assert fake_openrouter.wait_closed(started, timeout=1.0) is not None


# --- secrets --------------------------------------------------------------------------------


def test_the_key_never_appears_in_output(
    client: Client, fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    fake_openrouter.script(
        Step.error(401, message=f"key {CANARY_KEY} rejected"),
        Step(chunks=("a",), error_after=1),
        Step.reply("fine"),
    )
    seen: list[str] = [repr(client), repr(client.providers["openrouter"])]
    for attempt in (
        lambda: client.chat("llama-3.2-3b", "hi"),
        lambda: client.stream("llama-3.2-3b", "hi").read(),
    ):
        with pytest.raises(LlamarouteError) as caught:
            attempt()
        error = caught.value
        seen += [str(error), repr(error), repr(pickle.loads(pickle.dumps(error))),
                 repr(getattr(error, "attempts", ()))]  # fmt: skip
    reply = client.chat("llama-3.2-3b", "hi")
    seen += [repr(reply), reply.model_dump_json(), repr(fake_openrouter.requests)]
    seen += [record.getMessage() for record in caplog.records]
    assert caplog.records, "expected DEBUG records from httpx/httpcore"
    for text in seen:
        assert CANARY_KEY not in text
