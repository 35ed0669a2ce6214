"""Shared fixtures: fake providers on 127.0.0.1, and canary secrets to hunt for in output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llamaroute import AsyncClient, Client
from llamaroute.providers import OpenRouterProvider, Provider, ProviderCall, ProviderResult
from llamaroute.testing import FakeBedrock, FakeOpenRouter

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


# --- AWS Bedrock ------------------------------------------------------------------------------

#: Distinctive AWS credentials: tests assert they never show up in output.
CANARY_AWS_KEY_ID = "AKIACANARY0123456789"
CANARY_AWS_SECRET = "CANARYsecretKEY/0123456789abcdefCANARYsecretKEY"
CANARY_AWS_TOKEN = "CANARYsessionTOKEN0123456789abcdefCANARYsessionTOKEN"

#: A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
)


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        yield fake


@pytest.fixture(params=["sync", "async"])
def sync_or_async(request: pytest.FixtureRequest) -> str:
    """Run a provider test through the sync and the async methods."""
    return str(request.param)


async def provider_chat(provider: Provider, mode: str, call: ProviderCall) -> ProviderResult:
    """``provider.chat`` or ``await provider.achat``, by ``mode``."""
    if mode == "sync":
        return provider.chat(call)
    return await provider.achat(call)


async def provider_stream(provider: Provider, mode: str, call: ProviderCall) -> list[Any]:
    """Every item of ``provider.stream`` or ``provider.astream``, by ``mode``."""
    if mode == "sync":
        return list(provider.stream(call))
    return [item async for item in provider.astream(call)]
