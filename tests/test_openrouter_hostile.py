"""OpenRouterProvider against servers that keep sending: the call's deadline holds while bytes
trickle in, a body is never read past its cap, and an async client survives its event loop.

Deadline tests assert the end within T + SLACK. The bound that matters is 50 ms and the
overshoot measured on an idle machine is 1-3 ms (``bench/openrouter_hostile.py`` prints it);
SLACK is larger only so that a loaded 2-core CI machine's scheduling does not fail the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import socket
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    ChatRequest,
    Client,
    DeadlineExceededError,
    MalformedResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
    get_model,
)
from llamaroute.providers import OpenRouterProvider, ProviderCall
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY, provider_chat, provider_stream

ROUTE = get_model("llama-3.2-3b").route("openrouter")
SLACK = 0.15  # see the module docstring: the real overshoot is a few milliseconds
MIB = 1024 * 1024


def call(timeout: float | None = None) -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", "Hello"), ROUTE, timeout=timeout)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def timed(work: Any) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await work
    except Exception as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


# --- the call's deadline, whatever the server sends -------------------------------------------

CHAT_SERVERS = {
    "headers late": Step(delay=5),
    "body one byte every 0.3 s": Step(trickle=0.3),
    "endless body, fast": Step(endless=b" " * 4096, chunk_delay=0.01),
    "endless body, slow": Step(endless=b" ", chunk_delay=0.1),
}
STREAM_SERVERS = {
    "keep-alive comments forever": Step(endless=b": OPENROUTER PROCESSING\n\n", chunk_delay=0.05),
    "empty events forever": Step(endless=b'data: {"choices":[]}\n\n', chunk_delay=0.05),
    "every byte 0.3 s apart": Step(trickle=0.3),
}


@pytest.mark.parametrize("server", list(CHAT_SERVERS))
async def test_chat_ends_at_the_deadline(mode: str, server: str) -> None:
    with FakeOpenRouter(CHAT_SERVERS[server]) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        elapsed, error = await timed(provider_chat(provider, mode, call(timeout=1.0)))
        provider.close()
        await provider.aclose()
    assert isinstance(error, ProviderTimeoutError)
    assert error.code == "deadline"
    assert 1.0 <= elapsed < 1.0 + SLACK


@pytest.mark.parametrize("server", list(STREAM_SERVERS))
async def test_the_first_text_of_a_stream_comes_by_the_deadline(mode: str, server: str) -> None:
    with FakeOpenRouter(STREAM_SERVERS[server]) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        elapsed, error = await timed(provider_stream(provider, mode, call(timeout=1.0)))
        provider.close()
        await provider.aclose()
    assert isinstance(error, ProviderTimeoutError)
    assert error.code == "deadline"
    assert 1.0 <= elapsed < 1.0 + SLACK


@pytest.mark.parametrize(
    "endless", [b": keep-alive\n\n", b'data: {"choices":[{"delta":{"content":""}}]}\n\n', b"\n"]
)
async def test_after_the_first_text_the_idle_timeout_ends_a_stream(
    mode: str, endless: bytes
) -> None:
    # One word, then bytes forever that carry no text: the stream must end once it has gone
    # stream_idle_timeout without text, though the call's own timeout is long.
    with FakeOpenRouter(Step(endless=endless, endless_after=1, chunk_delay=0.05)) as fake:
        provider = OpenRouterProvider(
            api_key=CANARY_KEY, base_url=fake.base_url, stream_idle_timeout=0.6
        )
        items: list[Any] = []

        async def read() -> None:
            if mode == "sync":
                for item in provider.stream(call(timeout=30)):
                    items.append(item)
            else:
                async for item in provider.astream(call(timeout=30)):
                    items.append(item)

        elapsed, error = await timed(read())
        provider.close()
        await provider.aclose()
    assert items == ["Hello"]
    assert isinstance(error, ProviderTimeoutError)
    assert error.code == "stream_idle"
    assert 0.6 <= elapsed < 0.6 + 0.2 + SLACK  # the first word comes within ~0.1 s


async def test_after_the_first_text_a_slow_stream_may_outlast_the_timeout(mode: str) -> None:
    # The call's timeout bounds the wait for the first text, not the answer: a stream whose
    # words come 0.6 s apart outlasts a 0.4 s timeout, and is whole.
    with FakeOpenRouter(Step.reply("one two three", chunk_delay=0.6)) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        items = await provider_stream(provider, mode, call(timeout=0.4))
        provider.close()
        await provider.aclose()
    assert items[:-1] == ["one", " two", " three"]
    assert items[-1].finish_reason == "stop"


def test_headers_sent_one_byte_at_a_time_end_at_the_deadline() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 200

    def answer(connection: socket.socket) -> None:
        for index in range(len(head)):
            connection.sendall(head[index : index + 1])
            time.sleep(0.1)

    with raw_server(answer) as url:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=f"{url}/api/v1")
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError) as caught:
            provider.chat(call(timeout=0.8))
        elapsed = time.monotonic() - started
        provider.close()
    assert caught.value.code == "deadline"
    assert 0.8 <= elapsed < 0.8 + SLACK


#: Through the routing client: (the step, streamed?) for each server kind.
CLIENT_CASES = [(Step(trickle=0.3), False), (Step(endless=b" ", chunk_delay=0.05), False),
                (Step(endless=b": keep-alive\n\n", chunk_delay=0.05), True)]  # fmt: skip


def test_the_sync_client_ends_every_call_at_its_timeout() -> None:
    # (AsyncClient already bounded each attempt with asyncio.timeout; the provider tests above
    # run the async paths.)
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0) as client:
            for step, streaming in CLIENT_CASES:
                fake.script(step)
                started = time.monotonic()
                with pytest.raises(DeadlineExceededError) as caught:
                    (client.stream("llama-3.2-3b", "hi", timeout=0.8).read if streaming
                     else lambda: client.chat("llama-3.2-3b", "hi", timeout=0.8))()  # fmt: skip
                elapsed = time.monotonic() - started
                assert 0.8 <= elapsed < 0.8 + SLACK, (step, elapsed)
                assert len(caught.value.attempts) == 1


def test_a_stream_stalled_after_its_first_text_is_interrupted(mode: str) -> None:
    step = Step(endless=b": keep-alive\n\n", endless_after=1, chunk_delay=0.05)
    with FakeOpenRouter(step) as fake:
        provider = OpenRouterProvider(
            api_key=CANARY_KEY, base_url=fake.base_url, stream_idle_timeout=0.5
        )

        def read_sync() -> None:
            with Client([provider]) as client:
                client.stream("llama-3.2-3b", "hi", timeout=30).read()

        async def read_async() -> None:
            async with AsyncClient([provider]) as client:
                await client.stream("llama-3.2-3b", "hi", timeout=30).read()

        with pytest.raises(StreamInterruptedError) as caught:
            read_sync() if mode == "sync" else asyncio.run(read_async())
    assert caught.value.partial_text == "Hello"
    assert caught.value.code == "stream_idle"


# --- size caps --------------------------------------------------------------------------------


def peak_growth(work: Callable[[], object]) -> tuple[int, BaseException | None]:
    """The peak of traced memory above the level before ``work`` ran, and its error."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            work()
        except Exception as error:
            return tracemalloc.get_traced_memory()[1] - base, error
        return tracemalloc.get_traced_memory()[1] - base, None
    finally:
        tracemalloc.stop()


BIG = {
    # Each server would send 50 MB or more if read to the end.
    "endless body": (Step(endless=b"x" * 65536), False),
    "endless JSON string": (Step(raw_body=b'{"choices":[{"message":{"content":"',
                                 endless=b"a" * 65536), False),
    "gzip bomb": (Step(raw_body=gzip.compress(b"\0" * 50 * MIB),
                       headers={"Content-Encoding": "gzip"}), False),
    "50 MB line in a stream": (Step(endless=b"a" * 65536, endless_after=1), True),
    "endless events": (Step(endless=b'data: {"choices":[]}\n\n' * 500, endless_after=1), True),
}  # fmt: skip


@pytest.mark.parametrize("server", list(BIG))
def test_a_body_over_its_cap_fails_typed_with_bounded_memory(server: str) -> None:
    step, streaming = BIG[server]
    cap = MIB
    with FakeOpenRouter(Step(), step) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url,
                                      max_response_bytes=cap, max_stream_bytes=cap,
                                      max_event_bytes=cap // 4)  # fmt: skip
        provider.chat(call())  # the pool is built before measuring
        peak, error = peak_growth(
            (lambda: list(provider.stream(call()))) if streaming else lambda: provider.chat(call())
        )
        provider.close()
    assert isinstance(error, MalformedResponseError)
    assert error.code == "response_too_large"
    assert not error.retryable
    assert peak < 2 * cap, f"peak {peak / MIB:.2f} MiB for a {cap / MIB:.0f} MiB cap"


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 52428800\r\n\r\n")  # fmt: skip
        while True:
            connection.sendall(b" " * 65536)

    with raw_server(answer) as url:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=f"{url}/api/v1")
        peak, error = peak_growth(lambda: provider.chat(call(timeout=5)))
        provider.close()
    assert isinstance(error, MalformedResponseError)
    assert error.code == "response_too_large"
    assert peak < 1 * MIB


def test_an_oversized_answer_is_not_sent_again() -> None:
    with FakeOpenRouter(default=Step(endless=b"x" * 65536)) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url,
                                      max_response_bytes=MIB)  # fmt: skip
        with (
            Client([provider], retries=3) as client,
            pytest.raises(AllProvidersFailedError) as caught,
        ):
            client.chat("llama-3.2-3b", "hi")
        assert fake.hits == 1
    assert isinstance(caught.value.exceptions[0], MalformedResponseError)
    assert [attempt.code for attempt in caught.value.attempts] == ["response_too_large"]


def test_caps_and_idle_timeout_are_checked() -> None:
    from llamaroute import ConfigurationError

    for bad in ({"max_response_bytes": 0}, {"max_event_bytes": -1}, {"max_stream_bytes": 1.5},
                {"stream_idle_timeout": 0}, {"stream_idle_timeout": True}):  # fmt: skip
        with pytest.raises(ConfigurationError):
            OpenRouterProvider(api_key=CANARY_KEY, **bad)


# --- an AsyncClient used from two event loops (issue 16 item 8) ------------------------------


def test_an_async_client_works_across_two_asyncio_runs() -> None:
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        client = AsyncClient([provider])

        async def one() -> str:
            reply = await client.chat("llama-3.2-3b", "hi")
            async with client.stream("llama-3.2-3b", "hi") as stream:
                streamed = "".join([chunk.text async for chunk in stream])
            return reply.text + "|" + streamed

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = asyncio.run(one())
            second = asyncio.run(one())  # a new loop: the pool of the first is gone with it
            asyncio.run(client.aclose())
            gc.collect()
    assert first == second == "Hello from the fake OpenRouter.|Hello from the fake OpenRouter."
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert fake.hits == 4


# --- helpers ----------------------------------------------------------------------------------


class raw_server:
    """A bare HTTP server on 127.0.0.1 whose every answer is written by ``answer`` (for what
    the fakes cannot send: headers one byte at a time, a false Content-Length)."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            while len(body) < length:
                body += connection.recv(65536)
            with contextlib.suppress(OSError):  # the client hung up: what these tests want
                self._answer(connection)
