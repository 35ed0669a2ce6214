"""OpenRouterProvider against the fake OpenRouter over real sockets, sync and async.

Every fault ends in exactly one typed llamaroute error (or a success): never a raw httpx or
json exception, and never a truncated stream passed off as complete.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ConfigurationError,
    ContextWindowExceededError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    get_model,
)
from llamaroute.images import load_image
from llamaroute.providers import OpenRouterProvider, ProviderCall, ProviderResult
from llamaroute.providers.openrouter import build_payload, parse_retry_after
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY, png_bytes

ROUTE = get_model("llama-3.2-3b").route("openrouter")
VISION = get_model("llama-3.2-90b-vision").route("openrouter")
PNG = png_bytes(8, 6)


def call(prompt: str = "Hello", **kwargs: Any) -> ProviderCall:
    return ProviderCall(request=ChatRequest.create("llama-3.2-3b", prompt, **kwargs), route=ROUTE)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def provider(fake_openrouter: FakeOpenRouter) -> AsyncIterator[OpenRouterProvider]:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    yield provider
    await provider.aclose()


async def chat(provider: OpenRouterProvider, mode: str, the_call: ProviderCall) -> ProviderResult:
    if mode == "sync":
        return provider.chat(the_call)
    return await provider.achat(the_call)


async def stream(provider: OpenRouterProvider, mode: str, the_call: ProviderCall) -> list[Any]:
    items: list[Any] = []
    if mode == "sync":
        items.extend(provider.stream(the_call))
    else:
        items.extend([item async for item in provider.astream(the_call)])
    return items


# --- requests ---------------------------------------------------------------------------------


def test_payload_puts_text_before_the_image_and_asks_for_usage_both_ways() -> None:
    request = ChatRequest.create(
        "llama-3.2-90b-vision", "What is this?", system="Be brief", max_tokens=20,
        temperature=0.3, top_p=0.9, stop=["END"], seed=7, image=PNG,
    )  # fmt: skip
    payload = build_payload(
        ProviderCall(request, VISION, images=(load_image(PNG),), max_tokens=20), stream=True
    )
    assert payload["model"] == "meta-llama/llama-3.2-90b-vision-instruct"
    assert payload["messages"][0] == {"role": "system", "content": "Be brief"}
    parts = payload["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert payload["usage"] == {"include": True}
    assert payload["stream_options"] == {"include_usage": True}
    assert (payload["max_tokens"], payload["temperature"], payload["top_p"]) == (20, 0.3, 0.9)
    assert (payload["stop"], payload["seed"], payload["stream"]) == (["END"], 7, True)


def test_payload_passes_an_image_url_through() -> None:
    url = "https://example.com/chart.png"
    request = ChatRequest.create("llama-3.2-90b-vision", "What is this?", image=url)
    payload = build_payload(ProviderCall(request, VISION, images=(load_image(url),)), stream=False)
    assert payload["messages"][0]["content"][1]["image_url"]["url"] == url
    assert "stream" not in payload


async def test_request_on_the_wire(provider: OpenRouterProvider, mode: str,
                                   fake_openrouter: FakeOpenRouter) -> None:  # fmt: skip
    app = OpenRouterProvider(
        api_key=CANARY_KEY, base_url=fake_openrouter.base_url, app_url="https://example.app",
        app_title="Example",
    )  # fmt: skip
    await chat(app, mode, call())
    await app.aclose()
    sent = fake_openrouter.requests[-1]
    assert sent.path == "/api/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert sent.headers["http-referer"] == "https://example.app"
    assert sent.headers["x-openrouter-title"] == "Example"
    assert sent.json["model"] == "meta-llama/llama-3.2-3b-instruct"
    assert CANARY_KEY not in repr(sent)


# --- answers ----------------------------------------------------------------------------------


async def test_chat_reports_text_usage_and_cost(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.reply("Hi there", usage=(12, 3), cost="0.0000042"))
    result = await chat(provider, mode, call())
    assert result.text == "Hi there"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
    assert result.cost == Decimal("0.0000042")
    assert result.finish_reason == "stop"
    assert result.details["generation_id"] == "gen-fake-1"


async def test_stream_yields_deltas_then_the_result(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(chunks=("Hel", "lo", "!"), usage=(5, 3), cost="0.001"))
    items = await stream(provider, mode, call())
    assert items[:3] == ["Hel", "lo", "!"]
    result = items[-1]
    assert isinstance(result, ProviderResult)
    assert (result.text, result.usage.output_tokens, result.cost) == ("Hello!", 3, Decimal("0.001"))


@pytest.mark.parametrize(
    "wire",
    [{"crlf": True}, {"multiline_data": True}, {"split_writes": True},
     {"crlf": True, "multiline_data": True, "split_writes": True}],
)  # fmt: skip
async def test_sse_variants_parse_identically(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter, wire: dict[str, bool]
) -> None:
    text = "Llama 3.2 parses the same whatever the framing, ünïcode included."
    fake_openrouter.script(Step.reply(text, **wire))
    items = await stream(provider, mode, call())
    assert "".join(item for item in items if isinstance(item, str)) == text
    assert items[-1].text == text


async def test_a_finish_reason_without_done_is_not_a_success(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    # [DONE] is OpenRouter's end marker; the usage chunk comes just before it.
    fake_openrouter.script(Step.reply("all here", omit_end=True))
    with pytest.raises(MalformedResponseError, match=r"without \[DONE\]") as caught:
        await stream(provider, mode, call())
    assert caught.value.code == "incomplete_stream"


# --- faults -----------------------------------------------------------------------------------


async def test_stream_cut_short_is_never_a_success(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.reply("one two three", cut_after=2))
    with pytest.raises(MalformedResponseError, match="incomplete") as caught:
        await stream(provider, mode, call())
    assert caught.value.code == "incomplete_stream"


@pytest.mark.parametrize("after", [0, 2])
async def test_mid_stream_error_event_is_a_typed_failure(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter, after: int
) -> None:
    fake_openrouter.script(Step.reply("one two three", error_after=after))
    with pytest.raises(ServerError) as caught:
        await stream(provider, mode, call())
    assert caught.value.code == "provider_unavailable"
    assert caught.value.status_code == 502
    assert caught.value.retryable


async def test_invalid_json_chunk_chains_the_parser_error(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.reply("one two", malformed_after=1))
    with pytest.raises(MalformedResponseError) as caught:
        await stream(provider, mode, call())
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


async def test_invalid_json_body(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(malformed_after=0))
    with pytest.raises(MalformedResponseError) as caught:
        await chat(provider, mode, call())
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_reset_before_the_answer(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter, streaming: bool
) -> None:
    fake_openrouter.script(Step(reset_after=0))
    with pytest.raises(ProviderConnectionError) as caught:
        await (stream if streaming else chat)(provider, mode, call())
    assert caught.value.retryable
    # No httpx error chained (its messages may quote URLs and headers): its class and its
    # text are in the message instead, and nothing else is attached.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert "httpx." in str(caught.value)


@pytest.mark.parametrize("fault", ["drop_after", "reset_after"])
async def test_connection_lost_mid_stream(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter, fault: str
) -> None:
    fake_openrouter.script(Step.reply("one two three four", **{fault: 2}))
    with pytest.raises(ProviderConnectionError):
        await stream(provider, mode, call())


async def test_slow_answer_times_out(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step(delay=1.0))
    slow = ProviderCall(call().request, ROUTE, timeout=0.2)
    with pytest.raises(ProviderTimeoutError):
        await chat(provider, mode, slow)


async def test_refused_port_is_fast_and_not_retryable(mode: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=f"http://127.0.0.1:{port}/v1")
        with pytest.raises(ProviderConnectionError) as caught:
            await chat(provider, mode, call())
        await provider.aclose()
    assert caught.value.code == "connection_refused"
    assert not caught.value.retryable


ERRORS = [
    (400, "invalid_request", BadRequestError, False),
    (400, "context_length_exceeded", ContextWindowExceededError, False),
    (401, "authentication", AuthenticationError, False),
    (402, "payment_required", PaymentRequiredError, False),
    (403, "permission_denied", AuthenticationError, False),
    (404, "not_found", ModelNotAvailableError, False),
    (404, "no_endpoints", ModelNotAvailableError, False),
    (408, "timeout", ProviderTimeoutError, True),
    (413, None, BadRequestError, False),
    (422, None, BadRequestError, False),
    (429, "rate_limit_exceeded", RateLimitError, True),
    (500, "server", ServerError, True),
    (502, "provider_unavailable", ServerError, True),
    (503, "provider_overloaded", ServerError, True),
    (504, None, ProviderTimeoutError, True),
    (524, "timeout", ProviderTimeoutError, True),
    (529, "provider_overloaded", ServerError, True),
]


@pytest.mark.parametrize(("status", "error_type", "expected", "retryable"), ERRORS)
async def test_error_statuses_map_once_to_the_tree(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter,
    status: int, error_type: str | None, expected: type[ProviderError], retryable: bool,
) -> None:  # fmt: skip
    fake_openrouter.script(Step.error(status, error_type))
    with pytest.raises(expected) as caught:
        await chat(provider, mode, call())
    error = caught.value
    assert type(error) is expected
    assert (error.status_code, error.retryable, error.provider) == (status, retryable, "openrouter")
    if error_type:
        assert error.code == error_type


async def test_payment_required_says_it_is_billing(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.error(402))
    with pytest.raises(PaymentRequiredError, match="billing problem"):
        await chat(provider, mode, call())


async def test_errors_in_a_stream_request_are_mapped_the_same(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.error(503))
    with pytest.raises(ServerError):
        await stream(provider, mode, call())


@pytest.mark.parametrize(
    ("header", "expected"), [("7", 7.0), ("0.5", 0.5), ("soon", None), ("http-date", 30.0)]
)
async def test_retry_after_seconds_and_http_date(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter,
    header: str, expected: float | None,
) -> None:  # fmt: skip
    if header == "http-date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_openrouter.script(Step.error(429, retry_after=header))
    with pytest.raises(RateLimitError) as caught:
        await chat(provider, mode, call())
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=1.5)


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC).timestamp()
    clock = lambda: now  # noqa: E731 - a fixed clock
    assert parse_retry_after({"Retry-After": "120"}, clock) == 120.0
    assert parse_retry_after({"retry-after-ms": "1500"}, clock) == 1.5
    assert parse_retry_after({"x-amz-retry-after": "250"}, clock) == 0.25
    assert parse_retry_after({"Retry-After": "Fri, 27 Nov 2026 12:00:30 GMT"}, clock) == 30.0
    assert parse_retry_after({"Retry-After": "Fri, 27 Nov 2026 11:00:00 GMT"}, clock) == 0.0
    assert parse_retry_after({"Retry-After": "-3"}, clock) is None
    assert parse_retry_after({"Retry-After": "garbage"}, clock) is None
    assert parse_retry_after({}, clock) is None


async def test_should_retry_false_wins(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.error(503, headers={"x-should-retry": "false"}))
    with pytest.raises(ServerError) as caught:
        await chat(provider, mode, call())
    assert not caught.value.retryable


async def test_an_error_body_echoing_the_key_is_redacted(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Step.error(401, message=f"bad key {CANARY_KEY} (Bearer {CANARY_KEY})"))
    with pytest.raises(AuthenticationError) as caught:
        await chat(provider, mode, call())
    assert CANARY_KEY not in str(caught.value)
    assert "sk-or-v1-…cdef" in str(caught.value)


async def test_no_raw_exception_escapes_any_fault(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter
) -> None:
    faults = [Step(reset_after=0), Step(malformed_after=0), Step.error(500), Step(delay=0.5),
              Step(cut_after=1), Step(drop_after=1), Step(error_after=1), Step(malformed_after=1),
              Step(reset_after=1)]  # fmt: skip
    outcomes: list[str] = []
    for fault in faults:
        fake_openrouter.script(fault)
        the_call = ProviderCall(call().request, ROUTE, timeout=0.25)
        try:
            await stream(provider, mode, the_call)
            outcomes.append("ok")
        except LlamarouteError as error:
            outcomes.append(type(error).__name__)
    assert "ok" not in outcomes
    assert len(outcomes) == len(faults)


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY"):
        OpenRouterProvider(api_key="")
    with pytest.raises(ConfigurationError, match="credentials"):
        OpenRouterProvider(api_key=CANARY_KEY, base_url="https://user:pw@openrouter.ai/api/v1")
    with pytest.raises(ConfigurationError, match="query"):
        OpenRouterProvider(api_key=CANARY_KEY, base_url="https://openrouter.ai/api/v1?key=x")
    with pytest.raises(ConfigurationError, match="finite"):
        OpenRouterProvider(api_key=CANARY_KEY, timeout=httpx.Timeout(None))
    provider = OpenRouterProvider(api_key=CANARY_KEY)
    assert provider.timeout.read is not None
    assert provider.timeout.connect is not None
    assert CANARY_KEY not in repr(provider)
    assert provider.base_url == "https://openrouter.ai/api/v1"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_followed_so_the_key_stays_home(
    provider: OpenRouterProvider, mode: str, fake_openrouter: FakeOpenRouter, status: int
) -> None:
    # TESTPLAN K4: another host must never receive the Authorization header.
    with FakeOpenRouter() as elsewhere:
        fake_openrouter.script(
            Step(status=status, headers={"Location": f"{elsewhere.base_url}/chat/completions"})
        )
        with pytest.raises(ProviderConnectionError) as caught:
            await chat(provider, mode, call())
        assert elsewhere.hits == 0
    assert caught.value.code == "redirect"
    assert not caught.value.retryable
    assert caught.value.status_code == status
