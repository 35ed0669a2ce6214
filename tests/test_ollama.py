"""OllamaProvider against the fake Ollama over real sockets, with the real ``ollama`` client,
sync and async.

Every fault ends in exactly one typed llamaroute error (or a success): never a raw httpx, json,
pydantic or ollama exception, and never a truncated stream passed off as complete.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    InvalidImageError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    UnsupportedFeatureError,
    get_model,
)
from llamaroute.images import load_image
from llamaroute.providers import OllamaProvider, ProviderCall, ProviderResult
from llamaroute.providers.ollama import build_request, estimate_num_ctx, map_error
from llamaroute.testing import Exchange, FakeOllama, FakeServer, Step

from .conftest import png_bytes

ROUTE = get_model("llama-3.2-3b").route("ollama")
VISION = get_model("llama-3.2-11b-vision").route("ollama")

PNG = png_bytes(2, 2)


def call(prompt: str = "Hello", *, timeout: float | None = None, **kwargs: Any) -> ProviderCall:
    request = ChatRequest.create("llama-3.2-3b", prompt, **kwargs)
    return ProviderCall(request, ROUTE, max_tokens=request.max_tokens, timeout=timeout)


def vision_call(prompt: str = "What is this?", image: Any = PNG, **kwargs: Any) -> ProviderCall:
    request = ChatRequest.create("llama-3.2-11b-vision", prompt, image=image, **kwargs)
    return ProviderCall(request, VISION, images=(load_image(image),), max_tokens=request.max_tokens)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def provider(fake_ollama: FakeOllama) -> AsyncIterator[OllamaProvider]:
    provider = OllamaProvider(host=fake_ollama.url)
    yield provider
    await provider.aclose()


async def chat(provider: OllamaProvider, mode: str, the_call: ProviderCall) -> ProviderResult:
    if mode == "sync":
        return provider.chat(the_call)
    return await provider.achat(the_call)


async def stream(provider: OllamaProvider, mode: str, the_call: ProviderCall) -> list[Any]:
    if mode == "sync":
        return list(provider.stream(the_call))
    return [item async for item in provider.astream(the_call)]


class RawServer(FakeServer):
    """Answers every request with the given bytes: for wire shapes the fake never sends."""

    def __init__(self, status: int, body: bytes | list[bytes]) -> None:
        super().__init__()
        self.status, self.body = status, body

    def handle(self, exchange: Exchange) -> None:
        if isinstance(self.body, list):
            exchange.start_stream("application/x-ndjson")
            for line in self.body:
                exchange.write(line)
            exchange.end_stream()
        else:
            exchange.send(self.status, self.body)


# --- requests ---------------------------------------------------------------------------------


def test_request_carries_messages_options_and_one_base64_image() -> None:
    the_call = vision_call(system="Be brief", max_tokens=50, temperature=0.2, top_p=0.9,
                           stop=["END"], seed=7)  # fmt: skip
    kwargs = build_request(the_call, stream=True, keep_alive="10m")
    assert kwargs["model"] == "llama3.2-vision:11b"
    assert kwargs["stream"] is True
    assert kwargs["keep_alive"] == "10m"
    assert kwargs["messages"][0] == {"role": "system", "content": "Be brief"}
    assert kwargs["messages"][1]["content"] == "What is this?"
    assert kwargs["messages"][1]["images"] == [PNG]  # the ollama client base64-encodes bytes
    options = kwargs["options"]
    assert (options["num_predict"], options["temperature"], options["top_p"]) == (50, 0.2, 0.9)
    assert (options["stop"], options["seed"]) == (["END"], 7)
    assert options["num_ctx"] == estimate_num_ctx(the_call)


def test_unset_parameters_are_not_sent() -> None:
    kwargs = build_request(call(), stream=False)
    assert set(kwargs["options"]) == {"num_ctx"}
    assert "keep_alive" not in kwargs
    assert "images" not in kwargs["messages"][0]


def test_num_ctx_is_sized_from_the_request() -> None:
    # Small prompt and answer: the floor. Every size is a power of two (few model reloads).
    assert estimate_num_ctx(call(max_tokens=100)) == 2048
    assert estimate_num_ctx(call()) == 4096  # no max_tokens: 2048 kept free for the answer
    long = estimate_num_ctx(call("word " * 6000, max_tokens=500))  # 30,000 characters
    assert long == 16384
    assert long >= 30000 / 3 + 500
    # One image: 1601 positions per tile (a 1x1 PNG is one tile) tip it over the floor.
    assert estimate_num_ctx(call("What is this?", max_tokens=500)) == 2048
    assert estimate_num_ctx(vision_call(max_tokens=500)) == 4096
    small = ROUTE.model_copy(update={"context_window": 8192})
    huge = ProviderCall(call("x" * 100_000).request, small, max_tokens=10)
    assert estimate_num_ctx(huge) == 8192  # never above the route's window


def test_a_fixed_num_ctx_wins(fake_ollama: FakeOllama) -> None:
    # (A prompt this size would be sized to 4096; one over 8192 is refused: test_context_window.)
    provider = OllamaProvider(host=fake_ollama.url, num_ctx=8192, keep_alive=-1)
    provider.chat(call("x" * 5_000))
    provider.close()
    sent = fake_ollama.requests[-1].json
    assert sent["options"]["num_ctx"] == 8192
    assert sent["keep_alive"] == -1


def test_images_need_bytes_and_one_per_request() -> None:
    url = "https://example.com/chart.png"
    with pytest.raises(InvalidImageError, match="needs the image bytes"):
        build_request(vision_call(image=url), stream=False)
    two = ProviderCall(vision_call().request, VISION, images=(load_image(PNG), load_image(PNG)))
    with pytest.raises(UnsupportedFeatureError, match="one image per request"):
        build_request(two, stream=False)


async def test_request_on_the_wire(mode: str, fake_ollama: FakeOllama) -> None:
    provider = OllamaProvider(host=fake_ollama.url, api_key="ollama-CANARY-key-0123456789",
                              headers={"X-Team": "llamas"})  # fmt: skip
    await chat(provider, mode, vision_call(max_tokens=20))
    await provider.aclose()
    sent = fake_ollama.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.headers["authorization"] == "Bearer ollama-CANARY-key-0123456789"
    assert sent.headers["x-team"] == "llamas"
    image = sent.json["messages"][0]["images"][0]
    assert image == base64.b64encode(PNG).decode()  # base64, no data: prefix
    assert not image.startswith("data:")
    assert sent.json["stream"] is False
    assert sent.json["options"]["num_predict"] == 20
    assert "CANARY" not in repr(provider)
    assert "CANARY" not in repr(sent)


# --- answers ----------------------------------------------------------------------------------


async def test_chat_reports_text_usage_and_timings(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script(Step.reply("Hi there", usage=(12, 3)))
    result = await chat(provider, mode, call())
    assert result.text == "Hi there"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
    assert result.finish_reason == "stop"
    assert result.cost is None  # priced by the client from the table (0 for local)
    assert result.served_model == "llama3.2:3b"
    assert result.details["total_duration_s"] == pytest.approx(1.25)  # ns on the wire
    assert result.details["eval_duration_s"] == pytest.approx(0.8)


async def test_stream_yields_deltas_then_the_result(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script(Step(chunks=("Hel", "lo", "!"), usage=(5, 3)))
    items = await stream(provider, mode, call())
    assert items[:3] == ["Hel", "lo", "!"]
    assert len(items) == 4
    result = items[-1]
    assert isinstance(result, ProviderResult)
    assert (result.text, result.usage.input_tokens, result.usage.output_tokens) == ("Hello!", 5, 3)
    assert fake_ollama.requests[-1].json["stream"] is True


async def test_a_finished_stream_leaves_its_connection_for_the_next_call(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    # The done line is read past, to the end of the response, so the connection goes back to
    # the pool: three streams, one connection, none closed.
    started = time.monotonic()
    for _ in range(3):
        fake_ollama.script(Step(chunks=("a", "b")))
        items = await stream(provider, mode, call())
        assert items[:2] == ["a", "b"]
    time.sleep(0.05)  # a closed connection would be noticed by the fake within this
    assert not fake_ollama.closed_since(started)


@pytest.mark.parametrize("streaming", [False, True])
async def test_absent_counts_mean_zero(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool
) -> None:
    fake_ollama.script(Step.reply("cached", usage=(0, 0)))  # omitempty: both fields absent
    result = (await stream(provider, mode, call()))[-1] if streaming else (
        await chat(provider, mode, call()))  # fmt: skip
    assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 0)


@pytest.mark.parametrize(("done_reason", "expected"),
                         [("stop", "stop"), ("length", "length"), ("load", "other")])  # fmt: skip
async def test_done_reason_maps_to_finish_reasons(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, done_reason: str, expected: str
) -> None:
    fake_ollama.script(Step.reply("a b", finish_reason=done_reason))
    assert (await chat(provider, mode, call())).finish_reason == expected
    fake_ollama.script(Step.reply("a b", finish_reason=done_reason))
    assert (await stream(provider, mode, call()))[-1].finish_reason == expected


@pytest.mark.parametrize("wire", [{"crlf": True}, {"split_writes": True}])
async def test_ndjson_framing_variants_parse_identically(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, wire: dict[str, bool]
) -> None:
    text = "Llama 3.2 reads the same whatever the framing, ünïcode included."
    fake_ollama.script(Step.reply(text, **wire))
    items = await stream(provider, mode, call())
    assert "".join(item for item in items if isinstance(item, str)) == text
    assert items[-1].text == text


# --- the judged failures ----------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_nothing_listening_fails_fast_and_is_not_retried(
    mode: str, refused_port: int, streaming: bool
) -> None:
    provider = OllamaProvider(host=f"127.0.0.1:{refused_port}")
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        with pytest.raises(ProviderConnectionError) as caught:
            await (stream if streaming else chat)(provider, mode, call())
        timings.append(time.perf_counter() - started)
        assert caught.value.code == "connection_refused"
        assert not caught.value.retryable
        assert "is Ollama running?" in str(caught.value)
    await provider.aclose()
    # The first call builds the connection pool (an SSL context: tens of ms); later ones do not.
    print(f"\nrefused port, {mode} {'stream' if streaming else 'chat'}: first "
          f"{timings[0] * 1000:.1f} ms, median of the rest "
          f"{statistics.median(timings[1:]) * 1000:.2f} ms")  # fmt: skip
    assert max(timings) < 1.0
    assert statistics.median(timings[1:]) < 0.05


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_model_not_pulled_names_the_pull_command(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool
) -> None:
    fake_ollama.models = ["llama3.2:1b"]
    with pytest.raises(ModelNotAvailableError) as caught:
        await (stream if streaming else chat)(provider, mode, call())
    error = caught.value
    assert "`ollama pull llama3.2:3b`" in str(error)
    assert (error.status_code, error.code, error.retryable) == (404, "model_not_found", False)
    assert "try pulling it first" in str(error)  # the server's own words are kept


@pytest.mark.parametrize("streaming", [False, True])
async def test_an_old_format_vision_model_asks_for_a_re_pull(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool
) -> None:
    message = ("'llama3.2-vision' is no longer compatible with your version of Ollama and has "
               "been replaced by a newer version. To re-download, run 'ollama pull "
               "llama3.2-vision'")  # fmt: skip
    fake_ollama.script(Step.error(500, message=message))
    with pytest.raises(ModelNotAvailableError) as caught:
        await (stream if streaming else chat)(provider, mode, vision_call())
    error = caught.value
    assert "re-pull it: `ollama pull llama3.2-vision:11b`" in str(error)
    assert (error.status_code, error.code, error.retryable) == (500, "model_incompatible", False)


async def test_more_than_one_image_is_a_bad_request(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    message = "this model only supports one image while more than one image requested"
    fake_ollama.script(Step.error(500, message=message))
    with pytest.raises(BadRequestError) as caught:
        await chat(provider, mode, vision_call())
    assert (caught.value.code, caught.value.retryable) == ("too_many_images", False)


ERRORS = [
    (301, ProviderConnectionError, False, "redirect"),  # not followed: the host is wrong
    (400, BadRequestError, False, None),
    (401, AuthenticationError, False, None),
    (403, AuthenticationError, False, None),
    (408, ProviderTimeoutError, True, None),
    (422, BadRequestError, False, None),
    (429, RateLimitError, True, None),
    (499, ServerError, True, "request_canceled"),
    (500, ServerError, True, None),
    (502, ServerError, True, None),
    (503, ServerError, True, "server_busy"),
    (504, ProviderTimeoutError, True, None),
]


@pytest.mark.parametrize(("status", "expected", "retryable", "code"), ERRORS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_error_statuses_map_once_to_the_tree(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool,
    status: int, expected: type[ProviderError], retryable: bool, code: str | None,
) -> None:  # fmt: skip
    fake_ollama.script(Step.error(status))
    with pytest.raises(expected) as caught:
        await (stream if streaming else chat)(provider, mode, call())
    error = caught.value
    assert type(error) is expected
    assert (error.status_code, error.retryable, error.code) == (status, retryable, code)
    assert error.provider == "ollama"
    assert error.model_id == "llama3.2:3b"


async def test_redirects_are_not_followed(provider: OllamaProvider, mode: str) -> None:
    # The Authorization header must never travel to another host.
    with FakeOllama() as elsewhere, FakeOllama() as first:
        first.script(Step.error(307, headers={"Location": f"{elsewhere.url}/api/chat"}))
        moved = OllamaProvider(host=first.url, api_key="ollama-CANARY-key-0123456789")
        with pytest.raises(ProviderConnectionError, match="redirect"):
            await chat(moved, mode, call())
        await moved.aclose()
        assert (first.hits, elsewhere.hits) == (1, 0)


@pytest.mark.parametrize("after", [0, 2])
async def test_a_mid_stream_error_line_is_a_typed_failure(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, after: int
) -> None:
    fake_ollama.script(Step.reply("one two three", error_after=after, message="runner crashed"))
    with pytest.raises(ServerError, match="runner crashed") as caught:
        await stream(provider, mode, call())
    assert (caught.value.code, caught.value.status_code) == ("stream_error", None)
    assert caught.value.retryable


@pytest.mark.parametrize("fault", [{"omit_end": True}, {"cut_after": 2}, {"cut_after": 0}])
async def test_a_stream_without_done_is_never_a_success(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, fault: dict[str, Any]
) -> None:
    fake_ollama.script(Step.reply("one two three", **fault))
    with pytest.raises(MalformedResponseError, match="done: true") as caught:
        await stream(provider, mode, call())
    assert caught.value.code == "incomplete_stream"


@pytest.mark.parametrize("streaming", [False, True])
async def test_invalid_json_chains_the_parser_error(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool
) -> None:
    # Streamed: a line that is not JSON after one good line; not streamed: a truncated body.
    fake_ollama.script(Step.reply("one two", malformed_after=1 if streaming else 0))
    with pytest.raises(MalformedResponseError) as caught:
        await (stream if streaming else chat)(provider, mode, call())
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)
    assert caught.value.retryable


WRONG_SHAPES = [
    pytest.param(200, b'{"done": true}', "ValidationError", id="body-without-message"),
    pytest.param(200, b"[1, 2]", "TypeError", id="body-not-an-object"),
    pytest.param(200, b"\x80 not utf-8", "UnicodeDecodeError", id="body-not-utf8"),
    pytest.param(200, [b'{"done": false}\n'], "ValidationError", id="line-without-message"),
    pytest.param(200, [b"[1, 2]\n"], "AttributeError", id="line-not-an-object"),
    pytest.param(200, [b'{"message":{"role":"user"}}\n', b"\n"], "JSONDecodeError", id="blank"),
]


@pytest.mark.parametrize(("status", "body", "cause"), WRONG_SHAPES)
async def test_wrong_shapes_the_client_lets_escape_are_malformed(
    mode: str, status: int, body: bytes | list[bytes], cause: str
) -> None:
    with RawServer(status, body) as server:
        provider = OllamaProvider(host=server.url)
        run = stream if isinstance(body, list) else chat
        with pytest.raises(MalformedResponseError) as caught:
            await run(provider, mode, call())
        await provider.aclose()
    # Chained as a scrubbed copy of the same type, or (pydantic's, which holds the values it
    # refused) as a stand-in that names it.
    chained = caught.value.__cause__
    assert getattr(chained, "type_name", type(chained).__name__).endswith(cause)


async def test_an_error_object_from_an_openai_style_server_is_read(mode: str) -> None:
    # Not Ollama's error shape (a string), and not naming the model: not a missing model.
    body = b'{"error": {"message": "No fixture matched", "type": "invalid_request_error"}}'
    with RawServer(404, body) as server:
        provider = OllamaProvider(host=server.url)
        with pytest.raises(ProviderConnectionError, match="No fixture matched") as caught:
            await chat(provider, mode, call())
        await provider.aclose()
    assert "{'message'" not in str(caught.value)
    assert (caught.value.code, caught.value.status_code) == ("not_ollama", 404)


@pytest.mark.parametrize(
    ("streaming", "fault"),
    [(False, {"reset_after": 0}), (True, {"reset_after": 0}), (True, {"drop_after": 2}),
     (True, {"reset_after": 2})],
)  # fmt: skip
async def test_a_lost_connection_is_a_retryable_connection_error(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool,
    fault: dict[str, int],
) -> None:  # fmt: skip
    # Before the answer and mid-stream: raw httpx errors the ollama client lets through.
    fake_ollama.script(Step.reply("one two three four", **fault))
    with pytest.raises(ProviderConnectionError) as caught:
        await (stream if streaming else chat)(provider, mode, call())
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.TransportError)


@pytest.mark.parametrize("streaming", [False, True])
async def test_the_attempt_timeout_is_applied(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama, streaming: bool
) -> None:
    # ollama.Client.chat takes no timeout: the attempt's budget reaches httpx via a hook.
    fake_ollama.script(Step(delay=1.5))
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError) as caught:
        await (stream if streaming else chat)(provider, mode, call(timeout=0.2))
    assert time.perf_counter() - started < 1.0
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_a_stalled_stream_times_out(mode: str, fake_ollama: FakeOllama) -> None:
    provider = OllamaProvider(host=fake_ollama.url, timeout=httpx.Timeout(5.0, read=0.2))
    fake_ollama.script(Step.reply("one two three", chunk_delay=1.0))
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await stream(provider, mode, call())
    assert time.perf_counter() - started < 1.0
    await provider.aclose()


async def test_no_raw_exception_escapes_any_fault(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    faults = [Step(reset_after=0), Step(malformed_after=0), Step.error(500), Step.error(503),
              Step.error(404), Step(delay=0.5), Step(cut_after=1), Step(drop_after=1),
              Step(error_after=1), Step(malformed_after=1), Step(reset_after=1),
              Step(omit_end=True)]  # fmt: skip
    outcomes: list[str] = []
    for streaming in (False, True):
        for fault in faults:
            fake_ollama.script(fault)
            try:
                await (stream if streaming else chat)(provider, mode, call(timeout=0.25))
                outcomes.append("ok")
            except LlamarouteError as error:
                outcomes.append(type(error).__name__)
    # Without a stream, the fake sends one whole body: the six stream-only faults succeed there.
    assert outcomes.count("ok") == 6
    assert "ok" not in outcomes[len(faults) :]
    assert len(outcomes) == 2 * len(faults)


async def test_leaving_a_stream_early_closes_the_connection(
    provider: OllamaProvider, mode: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script(Step.reply("a b c d e f g h", chunk_delay=0.05))
    moment = time.monotonic()
    if mode == "sync":
        events = provider.stream(call())
        assert next(events) == "a"
        events.close()
    else:
        aevents = provider.astream(call())
        assert await anext(aevents) == "a"
        await aevents.aclose()
    assert fake_ollama.wait_closed(moment, timeout=1.0) is not None


def test_map_error_covers_what_has_no_wire_fault() -> None:
    dns = ConnectionError("Failed to connect to Ollama")  # no ConnectionRefusedError beneath
    error = map_error(dns, model_id="llama3.2:3b", host="http://ollama-box:11434")
    assert isinstance(error, ProviderConnectionError)
    assert (error.code, error.retryable) == ("connect_error", True)
    assert "ollama-box" in str(error)
    refused = httpx.ConnectError("refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert map_error(refused, model_id="m").code == "connection_refused"
    decoding = map_error(httpx.DecodingError("bad gzip"), model_id="m")
    assert isinstance(decoding, MalformedResponseError)
    other = map_error(RuntimeError("key sk-secret-123456 leaked"), model_id="m",
                      redact=lambda text: text.replace("sk-secret-123456", "sk-…3456"))  # fmt: skip
    assert type(other) is ServerError
    assert other.retryable
    assert "sk-secret-123456" not in str(other)
