"""The Ollama provider against an Ollama-compatible server nobody on this project wrote.

aimock (CopilotKit, npm ``@copilotkit/aimock``, driven by ``aimock-pytest`` from PyPI) mocks
LLM APIs, Ollama's ``/api/chat`` (JSON and NDJSON) and ``/api/tags`` among them, with its own
error injection and chaos. It runs here as a Node.js process on 127.0.0.1.

Installing it: aimock-pytest would fetch the npm tarball itself, over plain HTTP, inside the
test session (where pytest-socket allows 127.0.0.1 only), and its pinned version (1.45.0) is
not on the registry. So this module fetches a published version once with npm's own client
(``npm pack``, a subprocess outside pytest-socket's guard) into aimock-pytest's cache layout,
and reuses it afterwards. Without node/npm, or when the download fails (offline), the module
is skipped with the reason. Set ``AIMOCK_CLI_PATH`` to use an aimock you already have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaroute import (
    AsyncClient,
    Client,
    LlamarouteError,
    MalformedResponseError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    get_model,
)
from llamaroute.providers import OllamaProvider, ProviderResult

from ._thirdparty import serving
from .test_ollama import call

# The first test may wait for the one-off npm download.
pytestmark = pytest.mark.timeout(180)

aimock_pytest = pytest.importorskip("aimock_pytest", reason="pip install -e '.[dev]'")
from aimock_pytest._node_manager import NodeManager  # noqa: E402
from aimock_pytest._server import AIMockServer  # noqa: E402

#: The newest aimock on the npm registry when this was written.
AIMOCK_VERSION = "1.43.0"
CACHE = Path(os.environ.get("LLAMAROUTE_AIMOCK_CACHE", Path.home() / ".cache" / "llamaroute"))
ROUTE = get_model("llama-3.2-3b").route("ollama")


def _install(manager: NodeManager, cache: Path) -> None:
    """Put aimock where ``NodeManager(cache_dir=cache)`` looks for it, using npm itself."""
    target = cache / AIMOCK_VERSION
    if (target / "package" / "dist" / "cli.js").is_file() or os.environ.get("AIMOCK_CLI_PATH"):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch aimock")
    with tempfile.TemporaryDirectory() as scratch:
        packed = subprocess.run(
            [npm, "pack", f"@copilotkit/aimock@{AIMOCK_VERSION}", "--pack-destination", scratch,
             "--silent"],
            capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
        tarballs = list(Path(scratch).glob("*.tgz"))
        if packed.returncode != 0 or not tarballs:
            pytest.skip(f"could not fetch aimock with npm: {packed.stderr.strip()[-300:]}")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(target, filter="data")  # npm tarballs hold one package/ dir


@pytest.fixture(scope="module")
def aimock() -> Iterator[AIMockServer]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: aimock needs Node.js >= 20")
    cache = CACHE / "aimock"
    manager = NodeManager(version=AIMOCK_VERSION, cache_dir=cache)
    _install(manager, cache)
    try:
        manager.find_node()
    except RuntimeError as error:
        pytest.skip(str(error))
    with serving(AIMockServer(manager, port=0)) as server:
        yield server


@pytest.fixture
def mock(aimock: AIMockServer) -> AIMockServer:
    aimock.reset()
    aimock.add_fixture(
        {"userMessage": "llama fact", "model": "llama3.2:3b"},
        {"content": "Llamas hum to their young."},
        chunkSize=5,
    )
    return aimock


@pytest.fixture
def provider(mock: AIMockServer) -> Iterator[OllamaProvider]:
    provider = OllamaProvider(host=mock.base_url)
    yield provider
    provider.close()


def fact(**kwargs: Any) -> Any:
    return call("Tell me a llama fact", **kwargs)


def test_chat(provider: OllamaProvider, mock: AIMockServer) -> None:
    result = provider.chat(fact(max_tokens=40, temperature=0.3))
    assert result.text == "Llamas hum to their young."
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 0)
    sent = mock.get_last_request()
    assert sent is not None
    assert sent["path"] == "/api/chat"
    # aimock journals the request translated to its own form: num_predict became max_tokens.
    assert (sent["body"]["max_tokens"], sent["body"]["temperature"]) == (40, 0.3)


def test_stream(provider: OllamaProvider) -> None:
    items = list(provider.stream(fact()))
    pieces = [item for item in items if isinstance(item, str)]
    assert len(pieces) > 3  # aimock streamed it in 5-character chunks
    assert "".join(pieces) == "Llamas hum to their young."
    assert isinstance(items[-1], ProviderResult)
    assert items[-1].text == "Llamas hum to their young."


def test_probe_reads_its_tags(provider: OllamaProvider) -> None:
    assert provider.available(ROUTE)  # aimock lists the models its fixtures name
    assert not provider.available("llama3.2:1b")


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    # aimock's 404 is in OpenAI's error shape, not Ollama's ("model ... not found, try pulling
    # it first"): a server that is not answering as Ollama does, not a model to pull.
    [(503, ServerError, True), (429, RateLimitError, True), (500, ServerError, True),
     (404, ProviderConnectionError, False)],
)  # fmt: skip
@pytest.mark.parametrize("streaming", [False, True])
def test_injected_errors_are_typed(
    provider: OllamaProvider, mock: AIMockServer, streaming: bool,
    status: int, expected: type[Exception], retryable: bool,
) -> None:  # fmt: skip
    mock.next_error(status, {"message": "injected by aimock"})
    with pytest.raises(expected, match="injected by aimock") as caught:
        list(provider.stream(fact())) if streaming else provider.chat(fact())
    assert getattr(caught.value, "retryable", None) is retryable
    # The next call is fine again: one-shot errors.
    assert provider.chat(fact()).text == "Llamas hum to their young."


def test_an_unmatched_request_is_a_typed_404(provider: OllamaProvider) -> None:
    # Issue 16 item 4: a 404 that is not Ollama's "not found, try pulling it first" does not
    # send the user to `ollama pull`; it names the URL and keeps the server's words.
    with pytest.raises(ProviderConnectionError, match="No fixture matched") as caught:
        provider.chat(call("something aimock has no fixture for"))
    error = caught.value
    assert (error.status_code, error.code, error.retryable) == (404, "not_ollama", False)
    assert provider.host in str(error)
    assert "ollama pull" not in str(error)


@pytest.mark.parametrize(
    ("chaos", "expected"),
    [({"malformedRate": 1}, MalformedResponseError),
     ({"disconnectRate": 1}, ProviderConnectionError)],
)  # fmt: skip
@pytest.mark.parametrize("streaming", [False, True])
def test_chaos_faults_are_typed(
    aimock: AIMockServer, streaming: bool, chaos: dict[str, float], expected: type[Exception]
) -> None:
    aimock.reset()
    aimock.add_fixture({"userMessage": "llama fact"}, {"content": "never"}, chaos=chaos)
    provider = OllamaProvider(host=aimock.base_url)
    with pytest.raises(expected):
        list(provider.stream(fact())) if streaming else provider.chat(fact())
    provider.close()


def test_a_truncated_stream_never_succeeds(aimock: AIMockServer) -> None:
    aimock.reset()
    aimock.add_fixture({"userMessage": "llama fact"}, {"content": "one two three four five"},
                       chunkSize=4, truncateAfterChunks=2)  # fmt: skip
    provider = OllamaProvider(host=aimock.base_url)
    with pytest.raises(LlamarouteError) as caught:
        list(provider.stream(fact()))
    provider.close()
    assert isinstance(caught.value, ProviderConnectionError | MalformedResponseError)


def test_through_the_client(mock: AIMockServer) -> None:
    with Client(providers=[OllamaProvider(host=mock.base_url)]) as client:
        reply = client.chat("llama-3.2-3b", "Tell me a llama fact")
        with client.stream("llama-3.2-3b", "Tell me a llama fact") as stream:
            text = "".join(chunk.text for chunk in stream)
    assert (reply.text, reply.provider) == ("Llamas hum to their young.", "ollama")
    assert text == reply.text


async def test_async_through_the_client(mock: AIMockServer) -> None:
    async with AsyncClient(providers=[OllamaProvider(host=mock.base_url)]) as client:
        reply = await client.chat("llama-3.2-3b", "Tell me a llama fact")
        async with client.stream("llama-3.2-3b", "Tell me a llama fact") as stream:
            text = "".join([chunk.text async for chunk in stream])
    assert reply.text == text == "Llamas hum to their young."
