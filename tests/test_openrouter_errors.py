"""OpenRouter errors that must say the right thing and nothing more: no key in any output
(issue 15 item 4), an unknown model is a route problem (item 9), a URL that is not the API is a
configuration problem (issue 16 item 4), and a timeout says whether the request was sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    BadRequestError,
    Client,
    ConfigurationError,
    DeadlineExceededError,
    EndpointConfigurationError,
    LlamarouteError,
    ProviderConnectionError,
    ProviderTimeoutError,
)
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY

MODEL = "llama-3.2-3b"


def everything_shown(error: BaseException, events: list[Any]) -> list[str]:
    """Every text a caller or a log handler could see of ``error`` and the call's events."""
    seen = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for attempt in getattr(error, "attempts", ()):
        seen += [repr(attempt), attempt.model_dump_json()]
    for inner in getattr(error, "exceptions", ()):
        seen += [str(inner), "".join(traceback.format_exception(inner))]
    seen += [repr(event) for event in events]
    return seen


# --- the key never shows (issue 15 item 4) -----------------------------------------------------

ECHOED = json.dumps({
    "id": CANARY_KEY, "model": f"Bearer {CANARY_KEY}", "provider": CANARY_KEY,
    "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}).encode()  # fmt: skip
ECHOED_STREAM = (
    f'data: {{"id":"{CANARY_KEY}","model":"{CANARY_KEY}","choices":[{{"delta":'
    '{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
).encode()


def test_a_200_echoing_the_key_shows_it_nowhere() -> None:
    events: list[Any] = []
    with FakeOpenRouter() as fake:
        fake.script(Step(raw_body=ECHOED), Step(raw_body=ECHOED_STREAM),
                    Step(headers={"X-Generation-Id": CANARY_KEY},
                         raw_body=ECHOED.replace(b'"id"', b'"no_id"')))  # fmt: skip
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], on_event=events.append) as client:
            replies = [client.chat(MODEL, "hi"), client.stream(MODEL, "hi").read(),
                       client.chat(MODEL, "hi")]  # fmt: skip
    assert [reply.text for reply in replies] == ["hi", "hi", "hi"]
    assert replies[0].details["generation_id"].startswith("sk-or-v1-…")  # kept, masked
    for text in [repr(events), *(repr(r) + r.model_dump_json() for r in replies)]:
        assert CANARY_KEY not in text


ECHOING_ERRORS = [
    Step.error(401, message=f"Authorization: Bearer {CANARY_KEY} is not valid",
               error_type=CANARY_KEY),
    Step(raw_body=f'data: {{"error":{{"code":502,"message":"Bearer {CANARY_KEY}","metadata":'
                  f'{{"error_type":"{CANARY_KEY}"}}}}}}\n\n'.encode()),
]  # fmt: skip


@pytest.mark.parametrize("step", ECHOING_ERRORS, ids=["error body", "mid-stream"])
def test_an_error_echoing_the_key_shows_it_nowhere(step: Step) -> None:
    events: list[Any] = []
    with FakeOpenRouter(step) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with (
            Client([provider], retries=0, on_event=events.append) as client,
            pytest.raises(LlamarouteError) as caught,
        ):
            client.stream(MODEL, "hi").read()
    for text in everything_shown(caught.value, events):
        assert CANARY_KEY not in text


def test_an_httpx_error_quoting_the_key_is_not_chained() -> None:
    # httpx's messages may quote URLs and headers: what the caller catches is formatted, by the
    # standard traceback module, with no key in it, and still names what went wrong.
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"reset while sending Authorization: Bearer {CANARY_KEY}")

    events: list[Any] = []
    transport = httpx.MockTransport(handler)
    provider = OpenRouterProvider(
        api_key=CANARY_KEY,
        http_client=httpx.Client(transport=transport),
        async_http_client=httpx.AsyncClient(transport=transport),
    )
    with Client([provider], retries=0, on_event=events.append) as client:
        with pytest.raises(AllProvidersFailedError) as caught:
            client.chat(MODEL, "hi")
        with pytest.raises(AllProvidersFailedError) as streamed:
            client.stream(MODEL, "hi").read()
    for error in (caught.value, streamed.value):
        inner = error.exceptions[0]
        assert isinstance(inner, ProviderConnectionError)
        assert "httpx.ReadError" in str(inner)
        assert "sk-or-v1-…cdef" in str(inner)  # the masked key: enough to tell which key
        for text in everything_shown(error, events):
            assert CANARY_KEY not in text


async def test_an_async_httpx_error_quoting_the_key_is_not_chained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused Authorization: Bearer {CANARY_KEY}")

    transport = httpx.MockTransport(handler)
    provider = OpenRouterProvider(
        api_key=CANARY_KEY, async_http_client=httpx.AsyncClient(transport=transport)
    )
    async with AsyncClient([provider], retries=0) as client:
        with pytest.raises(AllProvidersFailedError) as caught:
            await client.chat(MODEL, "hi")
    for text in everything_shown(caught.value, []):
        assert CANARY_KEY not in text


def test_a_key_no_header_can_carry_is_refused_at_construction() -> None:
    for bad in (CANARY_KEY + "\n", f" {CANARY_KEY}", CANARY_KEY + "é"):
        with pytest.raises(ConfigurationError) as caught:
            OpenRouterProvider(api_key=bad)
        assert CANARY_KEY not in str(caught.value)


# --- an unknown model is a route problem (issue 15 item 9) -------------------------------------


@pytest.fixture
def two_routes() -> Iterator[tuple[FakeOpenRouter, FakeOllama, Client]]:
    with FakeOpenRouter() as openrouter, FakeOllama() as ollama:
        providers = [OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
                     OllamaProvider(host=ollama.url)]  # fmt: skip
        with Client(providers, retries=2) as client:
            yield openrouter, ollama, client


def openai_error(**fields: Any) -> Step:
    body = {"error": {"message": "The model `x` does not exist", "type": "invalid_request_error",
                      **fields}}  # fmt: skip
    return Step.error(400, raw_body=json.dumps(body).encode())


#: (the 400, whether it falls back): only a structured field that names the model falls back.
FOUR_HUNDREDS = {
    "code model_not_found": (openai_error(code="model_not_found"), True),
    "param model": (openai_error(param="model", code=None), True),
    "type model_not_found": (openai_error(type="model_not_found"), True),
    "param messages": (openai_error(param="messages"), False),
    # LiteLLM's proxy: "Invalid model name" in words only. Message text is never read.
    "words only": (Step.error(400, raw_body=json.dumps({"error": {
        "message": "/chat/completions: Invalid model name passed in model=x",
        "type": "None", "param": "None", "code": "400"}}).encode()), False),
    # A proxy that answers a wrong key with a 400: a rejected request, not a bad key.
    "key refused as a 400": (Step.error(400, message="invalid api key"), False),
}  # fmt: skip


def test_only_a_400_naming_the_model_falls_back(
    two_routes: tuple[FakeOpenRouter, FakeOllama, Client],
) -> None:
    openrouter, ollama, client = two_routes
    outcomes = {}
    for name, (step, _) in FOUR_HUNDREDS.items():
        openrouter.script(step)
        hits = openrouter.hits, ollama.hits
        try:
            reply = client.chat(MODEL, "hi", providers=["openrouter", "ollama"])
        except BadRequestError:
            outcomes[name] = (False, "BadRequestError", None)
        else:
            first = reply.attempts[0]
            outcomes[name] = (reply.provider == "ollama", first.error_type, first.code)
        assert openrouter.hits == hits[0] + 1  # never retried: it would fail the same way
    assert outcomes == {
        name: (True, "ModelNotAvailableError", "model_not_found") if falls_back
        else (False, "BadRequestError", None)
        for name, (_, falls_back) in FOUR_HUNDREDS.items()
    }  # fmt: skip


# --- a URL that is not the API (issue 16 item 4) -----------------------------------------------


def test_a_base_url_with_the_endpoint_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"pass 'https://openrouter.ai/api/v1'"):
        OpenRouterProvider(api_key=CANARY_KEY,
                           base_url="https://openrouter.ai/api/v1/chat/completions")  # fmt: skip
    with pytest.raises(ConfigurationError, match="API root"):
        OpenRouterProvider(api_key=CANARY_KEY, base_url="http://gw.local/v1/chat/completions/")


@pytest.mark.parametrize(
    "step",
    [
        Step.error(404, raw_body=b"<!DOCTYPE html><h1>404</h1>", content_type="text/html"),
        Step.error(404, raw_body=b'{"detail":"Not Found"}'),
        Step.error(404, raw_body=b""),
    ],
    ids=["html", "json of another shape", "empty"],
)
def test_a_404_that_is_not_an_api_error_names_the_url_and_falls_back(
    two_routes: tuple[FakeOpenRouter, FakeOllama, Client], step: Step
) -> None:
    openrouter, _ollama, client = two_routes
    openrouter.script(step)
    reply = client.chat(MODEL, "hi", providers=["openrouter", "ollama"])
    assert reply.provider == "ollama"
    assert openrouter.hits == 1  # not retried: the URL will not change
    first = reply.attempts[0]
    assert (first.error_type, first.code) == ("EndpointConfigurationError", "endpoint_not_found")
    assert f"{openrouter.base_url}/chat/completions" in (first.error or "")
    assert "base_url" in (first.error or "")
    # Alone, the route's error is a configuration error (a setting to fix) naming the URL.
    openrouter.script(step)
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat(MODEL, "hi", providers=["openrouter"])
    (alone,) = caught.value.exceptions
    assert isinstance(alone, ConfigurationError)
    assert isinstance(alone, EndpointConfigurationError)
    assert f"{openrouter.base_url}/chat/completions" in str(caught.value)
    # A 404 in the API's own error shape is still a model that is not available there.
    openrouter.script(Step.error(404, error_type="not_found"))
    reply = client.chat(MODEL, "hi", providers=["openrouter", "ollama"])
    assert reply.attempts[0].error_type == "ModelNotAvailableError"


# --- timeouts say whether the request was sent (billing) --------------------------------------


@pytest.mark.parametrize("kind", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout,
                                  httpx.PoolTimeout])  # fmt: skip
def test_a_timeout_is_coded_with_its_httpx_class(kind: type[httpx.TimeoutException]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise kind("timed out")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = OpenRouterProvider(api_key=CANARY_KEY, http_client=client)
    with Client([provider], retries=0) as routed, pytest.raises(AllProvidersFailedError) as caught:
        routed.chat(MODEL, "hi")
    error = caught.value.exceptions[0]
    assert isinstance(error, ProviderTimeoutError)
    assert error.code == kind.__name__


def test_a_connect_timeout_is_not_billed_and_a_read_timeout_is() -> None:
    # A listener whose backlog is full: the connection is never accepted, so the request is
    # never sent (nothing to bill). A server that takes the request and answers late: billed.
    with socket.socket() as listener, FakeOpenRouter(default=Step(delay=2)) as slow:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.05)
        unreachable = OpenRouterProvider(api_key=CANARY_KEY, base_url=f"http://127.0.0.1:{port}/v1",
                                         timeout=httpx.Timeout(5, connect=0.3))  # fmt: skip
        late = OpenRouterProvider(api_key=CANARY_KEY, base_url=slow.base_url,
                                  timeout=httpx.Timeout(5, read=0.3))  # fmt: skip
        outcomes = []
        for provider in (unreachable, late):
            with (
                Client([provider], retries=0) as client,
                pytest.raises((AllProvidersFailedError, DeadlineExceededError)) as caught,
            ):
                client.chat(MODEL, "hi " * 100)
            (attempt,) = caught.value.attempts
            outcomes.append((attempt.code, None if attempt.cost is None else attempt.cost.source))
        for filler in fillers:
            filler.close()
    assert outcomes == [("ConnectTimeout", None), ("ReadTimeout", "estimate")]
