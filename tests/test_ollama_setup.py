"""OllamaProvider's availability probe, configuration and discovery, and the Client on top of
it: over real sockets against the fake Ollama, sync and async."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import ollama
import pytest

from llamaroute import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigurationError,
    ModelNotAvailableError,
    ServerError,
    StreamInterruptedError,
    get_model,
)
from llamaroute.providers import OllamaProvider, OpenRouterProvider, discover
from llamaroute.testing import FakeOllama, Step

from .conftest import CANARY_KEY
from .test_ollama import PNG, RawServer, call

ROUTE = get_model("llama-3.2-3b").route("ollama")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probed(fake_ollama: FakeOllama, clock: Clock) -> Iterator[OllamaProvider]:
    provider = OllamaProvider(host=fake_ollama.url, clock=clock)
    yield provider
    provider.close()


def tag_requests(fake: FakeOllama) -> int:
    return sum(1 for request in fake.requests if request.path == "/api/tags")


# --- availability -----------------------------------------------------------------------------


def test_available_when_the_tag_is_pulled(probed: OllamaProvider, fake_ollama: FakeOllama) -> None:
    fake_ollama.models = ["llama3.2:1b", "llama3.2-vision:11b"]
    assert probed.available("llama3.2:1b")
    assert probed.available(get_model("llama-3.2-11b-vision").route("ollama"))
    assert not probed.available("llama3.2:3b")
    assert not probed.available(ROUTE)
    assert tag_requests(fake_ollama) == 1  # one probe answered all of them


def test_alternate_ids_and_latest_count_as_the_route(
    probed: OllamaProvider, fake_ollama: FakeOllama
) -> None:
    fake_ollama.models = ["llama3.2:latest"]  # what `ollama pull llama3.2` leaves
    assert probed.available(ROUTE)  # llama3.2:3b lists llama3.2 as an alternate ID
    assert probed.available("llama3.2:3b")
    assert probed.available("llama3.2")  # no suffix means :latest
    assert not probed.available("llama3.2:1b")


def test_the_installed_alternate_is_the_tag_sent(
    probed: OllamaProvider, fake_ollama: FakeOllama
) -> None:
    fake_ollama.models = ["llama3.2:latest"]
    with pytest.raises(ModelNotAvailableError, match=r"ollama pull llama3\.2:3b"):
        probed.chat(call())  # no probe yet: the route's own tag, which is not pulled
    assert probed.available(ROUTE)
    result = probed.chat(call())
    assert fake_ollama.requests[-1].json["model"] == "llama3.2"  # = llama3.2:latest
    assert result.served_model == "llama3.2"


def test_the_probe_is_cached_for_its_ttl(
    probed: OllamaProvider, fake_ollama: FakeOllama, clock: Clock
) -> None:
    fake_ollama.models = []
    assert not probed.available(ROUTE)
    fake_ollama.models = ["llama3.2:3b"]
    clock.now += 9.9
    assert not probed.available(ROUTE)  # still the cached answer
    assert tag_requests(fake_ollama) == 1
    clock.now += 0.2
    assert probed.available(ROUTE)
    assert tag_requests(fake_ollama) == 2


async def test_async_probe_shares_the_cache(
    fake_ollama: FakeOllama, clock: Clock
) -> None:  # fmt: skip
    provider = OllamaProvider(host=fake_ollama.url, clock=clock, probe_ttl=5)
    assert await provider.aavailable(ROUTE)
    assert provider.available(ROUTE)
    clock.now += 5
    fake_ollama.models = []
    assert not await provider.aavailable(ROUTE)
    assert tag_requests(fake_ollama) == 2
    await provider.aclose()


def test_a_server_that_is_down_is_unavailable_at_once(clock: Clock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        provider = OllamaProvider(host=f"127.0.0.1:{sock.getsockname()[1]}", clock=clock)
        started = time.perf_counter()
        assert not provider.available(ROUTE)
        assert time.perf_counter() - started < 0.5
        started = time.perf_counter()
        assert not provider.available("llama3.2:1b")  # cached: no second connection
        assert time.perf_counter() - started < 0.01
        provider.close()


def test_a_hung_server_is_unavailable_within_the_probe_timeout(fake_ollama: FakeOllama) -> None:
    # The fake sleeps before answering chats only; hang /api/tags with a raw server instead.
    hung = RawServer(200, b"{}")
    hung.handle = lambda exchange: time.sleep(1.5)  # type: ignore[method-assign]
    with hung:
        provider = OllamaProvider(host=hung.url, probe_timeout=httpx.Timeout(0.2))
        started = time.perf_counter()
        assert not provider.available(ROUTE)
        assert time.perf_counter() - started < 1.0
        provider.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b'{"error": "boom"}'), (200, b"not json"), (200, b'{"models": 3}'),
     (301, b"")],
)  # fmt: skip
def test_a_broken_tags_answer_is_unavailable_not_an_exception(status: int, body: bytes) -> None:
    with RawServer(status, body) as server:
        provider = OllamaProvider(host=server.url)
        assert not provider.available(ROUTE)
        provider.close()


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [("localhost", "http://localhost:11434"), ("10.0.0.5:8080", "http://10.0.0.5:8080"),
     (":5000", "http://127.0.0.1:5000"), ("0.0.0.0", "http://0.0.0.0:11434"),
     ("https://ollama.example.com", "https://ollama.example.com"),
     ("http://127.0.0.1:11434/", "http://127.0.0.1:11434"), ("[::1]", "http://[::1]:11434")],
)  # fmt: skip
def test_hosts_read_like_ollama_host(host: str, expected: str) -> None:
    assert OllamaProvider(host=host).host == expected


def test_the_host_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert OllamaProvider().host == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "ollama-box:11500")
    assert OllamaProvider().host == "http://ollama-box:11500"


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="query"):
        OllamaProvider(host="http://localhost:11434?key=x")
    with pytest.raises(ConfigurationError, match="finite"):
        OllamaProvider(timeout=httpx.Timeout(None))
    with pytest.raises(ConfigurationError, match="num_ctx"):
        OllamaProvider(num_ctx=0)


async def test_every_client_built_has_a_finite_timeout_and_no_redirects(
    fake_ollama: FakeOllama,
) -> None:
    provider = OllamaProvider(host=fake_ollama.url)
    provider.chat(call())
    await provider.achat(call())
    for client in (provider._sync(), provider._async()):
        timeout = client._client.timeout  # the ollama client's own default is None
        assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)
        assert client._client.follow_redirects is False
    await provider.aclose()


def test_the_api_key_never_shows(monkeypatch: pytest.MonkeyPatch, fake_ollama: FakeOllama) -> None:
    key = "ollama-CANARY-0123456789abcdef"
    monkeypatch.setenv("OLLAMA_API_KEY", key)
    provider = OllamaProvider(host=fake_ollama.url)
    fake_ollama.script(Step.error(401, message=f"bad key {key}"))
    with pytest.raises(AuthenticationError) as caught:
        provider.chat(call())
    provider.close()
    assert fake_ollama.requests[-1].headers["authorization"] == f"Bearer {key}"
    assert key not in repr(provider)
    assert key not in str(caught.value)


def test_closing_closes_owned_clients_only(fake_ollama: FakeOllama) -> None:
    injected = ollama.Client(host=fake_ollama.url, timeout=5)
    provider = OllamaProvider(host=fake_ollama.url, client=injected)
    provider.chat(call())
    provider.close()
    assert not injected._client.is_closed  # the caller's, not ours
    assert fake_ollama.hits == 1
    injected.close()
    own = OllamaProvider(host=fake_ollama.url)
    own.chat(call())
    client = own._sync()
    own.close()
    assert client._client.is_closed


def test_discovery_puts_a_configured_ollama_first() -> None:
    assert discover({}) == []
    found = discover({"OLLAMA_HOST": "127.0.0.1:11500", "OPENROUTER_API_KEY": CANARY_KEY})
    assert [provider.name for provider in found] == ["ollama", "openrouter"]
    assert isinstance(found[0], OllamaProvider)
    assert found[0].host == "http://127.0.0.1:11500"
    assert isinstance(found[1], OpenRouterProvider)
    assert [provider.name for provider in discover({"OPENROUTER_API_KEY": CANARY_KEY})] == [
        "openrouter"
    ]


def test_import_llamaroute_does_not_import_ollama() -> None:
    code = ("import sys, llamaroute, llamaroute.providers, llamaroute.testing; "
            "print('ollama' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


# --- through the Client -----------------------------------------------------------------------


def test_client_chat_and_stream(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Step.reply("Llamas hum.", usage=(9, 3)), Step(chunks=("One", " two")))
    with Client(providers=[OllamaProvider(host=fake_ollama.url)]) as client:
        reply = client.chat("llama-3.2-3b", "A llama fact?", max_tokens=30, temperature=0.1)
        with client.stream("llama-3.2-3b", "Count.") as stream:
            text = "".join(chunk.text for chunk in stream)
    assert (reply.text, reply.provider, reply.provider_model_id) == (
        "Llamas hum.", "ollama", "llama3.2:3b")  # fmt: skip
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (9, 3)
    assert reply.details["eval_duration_s"] == pytest.approx(0.8)
    assert text == "One two"
    assert stream.response.finish_reason == "stop"
    options = fake_ollama.requests[0].json["options"]
    assert (options["num_predict"], options["temperature"]) == (30, 0.1)


async def test_async_client_chat_and_stream(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Step.reply("Hi"), Step(chunks=("a", "b")))
    async with AsyncClient(providers=[OllamaProvider(host=fake_ollama.url)]) as client:
        reply = await client.chat("llama-3.2-1b", "Hi?")
        async with client.stream("llama-3.2-1b", "More?") as stream:
            chunks = [chunk.text async for chunk in stream]
    assert (reply.text, reply.provider_model_id) == ("Hi", "llama3.2:1b")
    assert chunks == ["a", "b"]


def test_client_vision_sends_base64_without_a_prefix(fake_ollama: FakeOllama) -> None:
    with Client(providers=[OllamaProvider(host=fake_ollama.url)]) as client:
        reply = client.chat("llama-3.2-11b-vision", "What is this?", image=PNG, max_tokens=500)
    assert reply.provider_model_id == "llama3.2-vision:11b"
    sent = fake_ollama.requests[0].json
    message = sent["messages"][-1]
    assert message["content"] == "What is this?"
    assert message["images"] == [base64.b64encode(PNG).decode()]
    assert sent["options"]["num_ctx"] == 4096  # 1601 positions for the one tile count


def test_a_stream_cut_after_text_is_interrupted_not_complete(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Step.reply("one two three", error_after=2))
    with (
        Client(providers=[OllamaProvider(host=fake_ollama.url)]) as client,
        pytest.raises(StreamInterruptedError) as caught,
        client.stream("llama-3.2-3b", "Go") as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.partial_text == "one two"
    assert caught.value.code == "stream_error"


# --- the fake itself, read with plain httpx -------------------------------------------------


def test_the_fake_speaks_ollamas_wire_format(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Step(chunks=("Hi", " there"), usage=(0, 2), finish_reason="length"),
                       Step.reply("Whole", usage=(7, 1)))  # fmt: skip
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=fake_ollama.url, timeout=5) as http:
        tags = http.get("/api/tags").json()["models"]
        streamed = http.post("/api/chat", json=body)  # streams unless told not to
        whole = http.post("/api/chat", json={**body, "stream": False}).json()
        missing = http.post("/api/chat", json={**body, "model": "llama3.2-vision:90b-q8"})
    assert [tag["name"] for tag in tags] == list(fake_ollama.models)
    assert streamed.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert [line["message"]["content"] for line in lines] == ["Hi", " there", ""]
    assert [line["done"] for line in lines] == [False, False, True]
    final = lines[-1]
    assert (final["done_reason"], final["eval_count"]) == ("length", 2)
    assert "prompt_eval_count" not in final  # omitempty: a zero count is absent
    assert final["total_duration"] == 1_250_000_000  # nanoseconds
    assert (whole["message"]["content"], whole["prompt_eval_count"], whole["done"]) == (
        "Whole", 7, True)  # fmt: skip
    assert missing.status_code == 404
    assert missing.json() == {
        "error": 'model "llama3.2-vision:90b-q8" not found, try pulling it first'
    }
    assert fake_ollama.hits == 4


def test_the_fake_injects_seeded_chaos(fake_ollama: FakeOllama) -> None:
    fake_ollama.chaos(1.0, seed=3, faults=[Step.error(503), Step(error_after=0)])
    provider = OllamaProvider(host=fake_ollama.url)
    outcomes = set()
    for _ in range(6):
        with pytest.raises(ServerError) as caught:
            list(provider.stream(call()))
        outcomes.add(caught.value.code)
    provider.close()
    assert outcomes == {"server_busy", "stream_error"}
    assert fake_ollama.faults_injected == 6
