"""Shared fixtures: fake providers on 127.0.0.1, and canary secrets to hunt for in output."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from llamaroute import AsyncClient, Client
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOllama, FakeOpenRouter

#: A distinctive key: any test may assert it never shows up in output.
CANARY_KEY = "sk-or-v1-CANARY0123456789abcdefCANARY0123456789abcdef"


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def openrouter(fake_openrouter: FakeOpenRouter) -> Iterator[OpenRouterProvider]:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    yield provider
    provider.close()


@pytest.fixture
def client(openrouter: OpenRouterProvider) -> Iterator[Client]:
    with Client(providers=[openrouter]) as client:
        yield client


@pytest.fixture
async def aclient(fake_openrouter: FakeOpenRouter) -> AsyncIterator[AsyncClient]:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    async with AsyncClient(providers=[provider]) as client:
        yield client


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
