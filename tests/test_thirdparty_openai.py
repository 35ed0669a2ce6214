"""The OpenRouter provider against an OpenAI-compatible server nobody on this project wrote.

LLMock (https://pypi.org/project/llmock/) is a third-party mock of the OpenAI chat API with
its own fault injection; it runs here as a separate process on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    Client,
    LlamarouteError,
    MalformedResponseError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llamaroute.providers import OpenRouterProvider

from ._thirdparty import LLMOCK, running_llmock

pytestmark = pytest.mark.skipif(
    LLMOCK is None, reason="llmock is not installed (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def llmock_url() -> Iterator[str]:
    with running_llmock("--response-style", "echo", "--tool-mode", "off") as url:
        yield url


@pytest.fixture
def mock(llmock_url: str) -> str:
    httpx.post(f"{llmock_url}/_llmock/reset", timeout=5).raise_for_status()
    return llmock_url


def scenario(url: str, *behaviors: dict[str, object]) -> None:
    response = httpx.post(f"{url}/_llmock/scenario", json={"behaviors": list(behaviors)}, timeout=5)
    response.raise_for_status()


@pytest.fixture
def client(mock: str) -> Iterator[Client]:
    # No retries: these tests look at how each single fault is reported.
    provider = OpenRouterProvider(api_key="sk-test-llmock-0000000000", base_url=f"{mock}/v1")
    with Client(providers=[provider], retries=0) as client:
        yield client


def test_chat_with_usage(client: Client) -> None:
    reply = client.chat("llama-3.2-3b", "Say hello", max_tokens=50)
    assert "Say hello" in reply.text  # llmock's echo style repeats the prompt
    assert reply.usage.input_tokens > 0
    assert reply.usage.output_tokens > 0
    assert reply.finish_reason == "stop"


def test_stream_with_usage(client: Client) -> None:
    with client.stream("llama-3.2-3b", "Say hello") as stream:
        chunks = [chunk.text for chunk in stream]
    assert len(chunks) > 1
    assert stream.response.text == "".join(chunks)
    assert stream.response.usage.output_tokens > 0
    assert stream.response.finish_reason == "stop"


async def test_async_chat_and_stream(mock: str) -> None:
    provider = OpenRouterProvider(api_key="sk-test-llmock-0000000000", base_url=f"{mock}/v1")
    async with AsyncClient(providers=[provider]) as client:
        reply = await client.chat("llama-3.2-1b", "Say hello")
        async with client.stream("llama-3.2-1b", "Say hello") as stream:
            text = "".join([chunk.text async for chunk in stream])
    assert reply.usage.output_tokens > 0
    assert text == stream.response.text
    assert stream.response.usage.output_tokens > 0


def only_error(group: AllProvidersFailedError) -> Exception:
    assert len(group.exceptions) == 1
    return group.exceptions[0]


def test_rate_limit_with_retry_after(client: Client, mock: str) -> None:
    scenario(mock, {"type": "fail", "status": 429, "retry_after": 2})
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat("llama-3.2-3b", "hi")
    error = only_error(caught.value)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.0
    assert error.retryable


def test_server_error(client: Client, mock: str) -> None:
    scenario(mock, {"type": "fail", "status": 503})
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat("llama-3.2-3b", "hi")
    assert isinstance(only_error(caught.value), ServerError)


def test_llmock_judges_our_retries_resilient(mock: str) -> None:
    """LLMock's own verdict on how llamaroute retried its 429 (with Retry-After) and 503s."""
    provider = OpenRouterProvider(api_key="sk-test-llmock-0000000000", base_url=f"{mock}/v1")
    scenario(mock, {"type": "fail", "status": 429, "retry_after": 1, "times": 1},
             {"type": "fail", "status": 503, "times": 1})  # fmt: skip
    with Client(providers=[provider]) as client:
        reply = client.chat("llama-3.2-3b", "hi")
    assert [a.status_code for a in reply.attempts] == [429, 503, None]
    verdict = httpx.get(f"{mock}/_llmock/verdict", timeout=5).json()
    assert verdict["errors"] == 0, json.dumps(verdict, indent=1)
    assert verdict["warnings"] == 0, verdict


@pytest.mark.parametrize(
    ("kind", "after", "expected"),
    [
        ("truncate", 2, StreamInterruptedError),
        ("disconnect", 2, StreamInterruptedError),
        ("malformed", 2, StreamInterruptedError),
        ("truncate", 0, MalformedResponseError),
        ("disconnect", 0, ProviderConnectionError),
        ("malformed", 0, MalformedResponseError),
    ],
)
def test_stream_faults_are_typed_and_never_silent(
    client: Client, mock: str, kind: str, after: int, expected: type[LlamarouteError]
) -> None:
    scenario(mock, {"type": "stream_fault", "kind": kind, "after_chunks": after})
    with pytest.raises(LlamarouteError) as caught:
        client.stream("llama-3.2-3b", "Tell me something long enough").read()
    error = caught.value
    if isinstance(error, AllProvidersFailedError):  # failed before any text: typed, grouped
        error = only_error(error)
    assert isinstance(error, expected)
