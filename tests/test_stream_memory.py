"""A stream of many tiny chunks, sent until its ``max_stream_bytes`` cap, costs less memory
than the cap (issue 15 item 2: peak memory under 2x the cap whatever the server sends).

Each provider's stream parser and the client's stream keep the text received; kept as one
``str`` per chunk in each of them, a million two-letter chunks weigh ~80 bytes each, more than
the ~47 bytes that carried them. The servers here are raw sockets: a response head, then the
same small event forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llamaroute import AsyncClient, Client, StreamInterruptedError
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.providers.bedrock import BedrockProvider
from llamaroute.testing import FakeBedrock

from .conftest import AWS_KEYS, CANARY_KEY
from .test_openrouter_hostile import peak_growth

CAP = 2 * 2**20

#: Per provider: the stream's content type and one event carrying two letters of text.
EVENTS = {
    "openrouter": (b"text/event-stream", b'data: {"choices":[{"delta":{"content":"ab"}}]}\n\n'),
    "ollama": (b"application/x-ndjson", b'{"message":{"role":"assistant","content":"ab"}}\n'),
    "bedrock": (b"application/vnd.amazon.eventstream",
                FakeBedrock.event("contentBlockDelta", {"delta": {"text": "ab"},
                                                        "contentBlockIndex": 0})),
}  # fmt: skip


@contextlib.contextmanager
def endless_stream(kind: str) -> Iterator[str]:
    content_type, event = EVENTS[kind]
    block = event * (65536 // len(event))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type
                                   + b"\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
                while True:
                    connection.sendall(b"%x\r\n%s\r\n" % (len(block), block))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(timeout=5)


def provider(kind: str, url: str) -> Any:
    if kind == "openrouter":
        return OpenRouterProvider(api_key=CANARY_KEY, base_url=f"{url}/api/v1",
                                  max_stream_bytes=CAP)  # fmt: skip
    if kind == "ollama":
        return OllamaProvider(host=url, max_stream_bytes=CAP)
    return BedrockProvider(region="us-east-1", endpoint_url=url, max_stream_bytes=CAP, **AWS_KEYS)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", list(EVENTS))
def test_a_stream_of_tiny_chunks_to_its_cap_costs_less_than_the_cap(kind: str, mode: str) -> None:
    with endless_stream(kind) as url:
        chosen = provider(kind, url)
        if kind == "bedrock":
            chosen.client()  # boto3's service model is not the stream's memory

        def read_sync() -> None:
            with Client([chosen], retries=0) as client:
                client.stream("llama-3.2-3b", "Hello", timeout=30).read()

        async def read_async() -> None:
            async with AsyncClient([chosen], retries=0) as client:
                await client.stream("llama-3.2-3b", "Hello", timeout=30).read()

        peak, error = peak_growth(
            read_sync if mode == "sync" else lambda: asyncio.run(read_async())
        )
    assert isinstance(error, StreamInterruptedError), error
    assert "cap" in str(error)
    assert len(error.partial_text) > CAP // 100  # the text was kept, whole
    assert set(error.partial_text) == {"a", "b"}
    assert peak < CAP, f"peak {peak / 2**20:.1f} MiB for a {CAP / 2**20:.0f} MiB stream cap"
