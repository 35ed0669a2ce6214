"""An ``AsyncClient`` (and an ``OllamaProvider``) reused across event loops (issue 16 item 8,
the Ollama half): each ``asyncio.run()`` gets an async ollama client of its own, the old one
is closed as its loop ends, and the dead loop is never touched."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

from llamaroute import AsyncClient
from llamaroute.providers import OllamaProvider
from llamaroute.testing import FakeOllama, Step

from .test_ollama import call


def test_an_async_client_works_across_two_asyncio_runs(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Step.reply("one"), Step(chunks=("t", "wo")), Step.reply("three"))
    client = AsyncClient(providers=[OllamaProvider(host=fake_ollama.url)])

    async def chat() -> str:
        return (await client.chat("llama-3.2-3b", "hi")).text

    async def streamed() -> str:
        async with client.stream("llama-3.2-3b", "hi") as stream:
            return "".join([chunk.text async for chunk in stream])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(chat()) == "one"
        assert asyncio.run(streamed()) == "two"
        assert asyncio.run(chat()) == "three"
        asyncio.run(client.aclose())
        gc.collect()
    assert not [warning for warning in caught if issubclass(warning.category, ResourceWarning)]
    # Each loop closed its connection as it ended: none is left open on the fake's side.
    assert fake_ollama.wait_closed(0.0) is not None


def test_the_provider_builds_one_async_client_per_loop(fake_ollama: FakeOllama) -> None:
    provider = OllamaProvider(host=fake_ollama.url)

    async def use() -> object:
        await provider.achat(call())
        assert await provider.aavailable("llama3.2:3b")
        return provider._async()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = asyncio.run(use())
        second = asyncio.run(use())
        gc.collect()
    assert first is not second
    assert first._client.is_closed  # type: ignore[attr-defined]  # closed as its loop ended
    assert not [warning for warning in caught if issubclass(warning.category, ResourceWarning)]
    provider.close()


def test_two_live_loops_in_two_threads_share_the_provider(fake_ollama: FakeOllama) -> None:
    provider = OllamaProvider(host=fake_ollama.url)
    texts: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        async def chats() -> None:
            for _ in range(5):
                texts.append((await provider.achat(call())).text)

        try:
            asyncio.run(chats())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    provider.close()
    assert not errors
    assert len(texts) == 15
