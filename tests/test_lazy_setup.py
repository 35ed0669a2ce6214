"""Constructing a client builds nothing that costs: pools, SSL contexts and boto3 clients are
built on the first call, once, even when many threads make their first call at the same time.

Each test races N threads (released together by a barrier) into the first call of a client
whose one provider has built nothing yet, against a fake server, and counts the builds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import pytest

from llamaroute import Client
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.providers.bedrock import BedrockProvider
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter

THREADS = 16
KEY = "sk-or-" + "lazy" * 6


def race(client: Client) -> list[BaseException]:
    """``THREADS`` threads make their first call together; what any of them raised."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def first_call() -> None:
        start.wait()
        try:
            assert client.chat("llama-3.2-3b", "Hello").text
        except BaseException as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=first_call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Counts the calls of ``owner.name`` (a function or a class), which stays what it was."""
    made: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return made


def test_openrouter_builds_its_pool_and_ssl_context_on_first_use_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pools = counting(monkeypatch, httpx, "Client")
    contexts = counting(monkeypatch, httpx, "create_ssl_context")
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=KEY, base_url=fake.base_url)
        with Client([provider]) as client:
            assert (pools, contexts) == ([], [])  # construction built neither
            assert race(client) == []
            assert len(pools) == 1
            assert len(fake.requests) == THREADS
    # An https provider builds no SSL context either until its first call.
    https = OpenRouterProvider(api_key=KEY, base_url="https://openrouter.example/api/v1")
    with Client([https]):
        assert (pools, contexts) == ([1], [])


def test_ollama_builds_its_client_on_first_use_once(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = counting(monkeypatch, ollama, "Client")
    contexts = counting(monkeypatch, httpx, "create_ssl_context")
    with FakeOllama() as fake:
        provider = OllamaProvider(host=fake.url)
        with Client([provider]) as client:
            assert builds == []
            assert race(client) == []
            assert len(builds) == 1
            assert len(fake.requests) == THREADS
    with Client([OllamaProvider(host="https://ollama.example:11434")]):
        assert (len(builds), contexts) == (1, [])


def test_bedrock_builds_its_boto3_client_and_pool_on_first_use_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds = counting(monkeypatch, BedrockProvider, "_build")
    with FakeBedrock() as fake:
        provider = BedrockProvider(
            region="us-east-1", endpoint_url=fake.url,
            aws_access_key_id="AKIDLAZY", aws_secret_access_key="lazy-" + "secret",
        )  # fmt: skip
        with Client([provider]) as client:
            assert builds == []
            assert provider._client is None
            assert provider._executor is None
            assert race(client) == []
            assert len(builds) == 1
            assert len(fake.requests) == THREADS
