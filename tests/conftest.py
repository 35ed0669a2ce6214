"""Shared fixtures: fake providers on 127.0.0.1, canary secrets to hunt for in output, and
small real images made with Pillow."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaroute import AsyncClient, Client
from llamaroute.providers import (
    BedrockProvider,
    OllamaProvider,
    OpenRouterProvider,
    Provider,
    ProviderCall,
    ProviderResult,
)
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    """A small, valid PNG made with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


#: A distinctive key: any test may assert it never shows up in output.
CANARY_KEY = "sk-or-v1-CANARY0123456789abcdefCANARY0123456789abcdef"


class Clock:
    """A fake monotonic clock whose sleeps only move time forward (for ``RetryPolicy(clock=,
    sleep=, async_sleep=)``; breakers and deadlines read the same clock)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture(autouse=True)
def _no_user_price_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never pick up the developer's refreshed price file (``llamaroute prices refresh``):
    the default location points at a file that does not exist."""
    missing = tmp_path_factory.getbasetemp() / "no-refreshed-prices.toml"
    monkeypatch.setenv("LLAMAROUTE_PRICES", str(missing))


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


def make_png(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), (40, 90, 160)).save(path, format="PNG")
    return path


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A 800 x 500 PNG: 2 x 1 tiles of 560 px."""
    return make_png(tmp_path / "chart.png", 800, 500)


@pytest.fixture
def not_an_image(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path


# --- AWS Bedrock ------------------------------------------------------------------------------

#: Distinctive AWS credentials: tests assert they never show up in output.
CANARY_AWS_KEY_ID = "AKIACANARY0123456789"
CANARY_AWS_SECRET = "CANARYsecretKEY/0123456789abcdefCANARYsecretKEY"
CANARY_AWS_TOKEN = "CANARYsessionTOKEN0123456789abcdefCANARYsessionTOKEN"

#: A small PNG (made with Pillow: hand-written bytes tend to carry a bad CRC).
PNG = png_bytes(2, 2)


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


# --- the three real providers against the three fakes ------------------------------------------

Fakes = tuple[FakeOpenRouter, FakeBedrock, FakeOllama]

#: Dummy AWS keys: the fake checks that a request is signed, not with which key.
AWS_KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


@pytest.fixture
def three_fakes() -> Iterator[Fakes]:
    """A fake OpenRouter, Bedrock and Ollama, each on its own port."""
    with FakeOpenRouter() as openrouter, FakeBedrock() as bedrock, FakeOllama() as ollama:
        yield openrouter, bedrock, ollama


def three_providers(
    fakes: Fakes,
    *,
    openrouter_key: str = CANARY_KEY,
    aws: dict[str, str] | None = None,
    ollama_key: str | None = None,
) -> dict[str, Provider]:
    """The real OpenRouter, Bedrock and Ollama providers pointed at ``fakes``, by name."""
    openrouter, bedrock, ollama = fakes
    return {
        "openrouter": OpenRouterProvider(api_key=openrouter_key, base_url=openrouter.base_url),
        "bedrock": BedrockProvider(
            region="us-east-1", endpoint_url=bedrock.url, **(aws or AWS_KEYS)
        ),
        "ollama": OllamaProvider(host=ollama.url, api_key=ollama_key),
    }


def socket_error_text(host: str) -> str:
    """What this machine's resolver says about ``host`` ("Name or service not known", or
    "Temporary failure in name resolution" without a resolver)."""
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror as error:
        return str(error.strerror)
    pytest.skip(f"{host} resolves here")
