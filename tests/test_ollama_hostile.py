"""OllamaProvider against a hostile server (issue 15 items 1, 2 and 6): the call's timeout
holds whatever the server sends, sync and async, chat and stream; answers are capped in size
while they are read, with bounded memory; a timeout says which one it was.

The fake's hostile answers: ``trickle`` (one byte at a time, for ever), ``flood`` (an endless
body at full speed), ``keep_alive`` (stream lines with no text, for ever), ``oversized``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llamaroute import (
    AllProvidersFailedError,
    Client,
    MalformedResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from llamaroute.providers import OllamaProvider
from llamaroute.testing import Exchange, FakeOllama, FakeServer, Step

from .test_ollama import call, chat, mode, stream

__all__ = ["mode"]  # the fixture, shared with test_ollama.py

#: The attempt's time in these tests, and what a deadline may overshoot it by here. The goal
#: is 50 ms (a few ms measured: see the report); a loaded test machine gets some slack.
T = 0.5
SLACK = 0.15

MiB = 2**20


@pytest.fixture
async def provider(fake_ollama: FakeOllama) -> AsyncIterator[OllamaProvider]:
    provider = OllamaProvider(host=fake_ollama.url)
    yield provider
    await provider.aclose()


async def timed(run: Any) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        await run
    except Exception as error:
        return time.perf_counter() - started, error
    return time.perf_counter() - started, None


# --- item 1: the deadline holds while bytes keep coming ---------------------------------------

HOSTILE = [
    pytest.param("trickle", {"interval": 0.05}, id="trickle"),
    pytest.param("keep_alive", {"interval": 0.02}, id="keep-alive"),
]


@pytest.mark.parametrize(("kind", "options"), HOSTILE)
@pytest.mark.parametrize("streaming", [False, True])
async def test_the_deadline_holds_while_bytes_keep_coming(
    provider: OllamaProvider, fake_ollama: FakeOllama, mode: str, streaming: bool,
    kind: str, options: dict[str, Any],
) -> None:  # fmt: skip
    # Every read returns in time (httpx's per-read timeout never fires); only the whole
    # attempt's deadline can end this: the whole answer, or the wait for a stream's first text.
    getattr(fake_ollama, kind)(**options)
    elapsed, error = await timed((stream if streaming else chat)(provider, mode, call(timeout=T)))
    print(f"\n{mode} {kind} {'stream' if streaming else 'chat'}: ended at T + "
          f"{(elapsed - T) * 1000:.1f} ms")  # fmt: skip
    assert isinstance(error, ProviderTimeoutError)
    assert (error.code, error.retryable) == ("ReadTimeout", True)
    assert f"the attempt's {T:g} s ran out" in str(error)
    assert T <= elapsed < T + SLACK


async def test_the_deadline_holds_against_an_endless_fast_body(mode: str) -> None:
    # Caps high enough that only the deadline can end it: every read returns at once.
    with FakeOllama() as fake:
        fake.flood()
        provider = OllamaProvider(host=fake.url, max_response_bytes=2**40)
        elapsed, error = await timed(chat(provider, mode, call(timeout=T)))
        await provider.aclose()
    assert isinstance(error, ProviderTimeoutError)
    assert T <= elapsed < T + SLACK


@pytest.mark.parametrize("streaming", [False, True])
async def test_without_a_call_timeout_the_providers_timeouts_bound_the_answer(
    fake_ollama: FakeOllama, mode: str, streaming: bool
) -> None:
    # No timeout= at all: the provider's own timeouts, added up (0.1 + 0.1 + 0.3 s), bound
    # the whole answer (a stream's first text), however the server trickles.
    timeout = httpx.Timeout(0.1, read=0.3)
    provider = OllamaProvider(host=fake_ollama.url, timeout=timeout)
    fake_ollama.trickle(0.02)
    elapsed, error = await timed((stream if streaming else chat)(provider, mode, call()))
    await provider.aclose()
    assert isinstance(error, ProviderTimeoutError)
    assert "within the provider's timeouts (0.5 s)" in str(error)
    assert 0.5 <= elapsed < 0.5 + SLACK


@pytest.mark.parametrize("kind", ["trickle", "keep_alive"])
async def test_after_the_first_text_a_stalled_stream_ends_at_the_idle_timeout(
    fake_ollama: FakeOllama, mode: str, kind: str
) -> None:
    # No call timeout at all: only stream_idle_timeout bounds the wait for more text, from the
    # last text that came (lines without text do not count).
    provider = OllamaProvider(host=fake_ollama.url, stream_idle_timeout=0.4)
    getattr(fake_ollama, kind)(0.02, chunks=2)
    pieces: list[str] = []
    last = time.perf_counter()
    error: BaseException | None = None
    try:
        if mode == "sync":
            for item in provider.stream(call()):
                pieces.append(item) if isinstance(item, str) else None
                last = time.perf_counter()
        else:
            async for item in provider.astream(call()):
                pieces.append(item) if isinstance(item, str) else None
                last = time.perf_counter()
    except ProviderTimeoutError as caught:
        error = caught
    idle = time.perf_counter() - last
    await provider.aclose()
    assert pieces == [" word0", " word1"]
    assert error is not None
    assert "no new text for 0.4 s (stream_idle_timeout)" in str(error)
    assert 0.4 <= idle < 0.4 + SLACK


async def test_the_idle_timeout_is_never_longer_than_the_call_timeout(
    fake_ollama: FakeOllama, mode: str
) -> None:
    provider = OllamaProvider(host=fake_ollama.url)  # idle timeout 60 s by default
    fake_ollama.keep_alive(0.02, chunks=1)
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError, match=r"no new text for 0\.3 s"):
        await stream(provider, mode, call(timeout=0.3))
    assert time.perf_counter() - started < 0.3 * 2 + SLACK
    await provider.aclose()


async def test_the_consumer_time_between_chunks_does_not_count(
    fake_ollama: FakeOllama, mode: str
) -> None:
    # A consumer slower than the idle timeout still gets the whole answer: the idle timeout
    # is the server's silence, counted from when the provider asks for the next line.
    provider = OllamaProvider(host=fake_ollama.url, stream_idle_timeout=0.2)
    fake_ollama.script(Step(chunks=("a", "b", "c")))
    texts: list[str] = []
    if mode == "sync":
        for item in provider.stream(call()):
            texts.append(item if isinstance(item, str) else "|")
            time.sleep(0.3)
    else:
        async for item in provider.astream(call()):
            texts.append(item if isinstance(item, str) else "|")
            await asyncio.sleep(0.3)
    await provider.aclose()
    assert texts == ["a", "b", "c", "|"]


def test_the_sync_client_ends_a_trickled_call_at_its_timeout(fake_ollama: FakeOllama) -> None:
    # Issue 15's report: a sync stream with timeout=5 returned after 25 s. Through the Client,
    # sync, for chat and stream: DeadlineExceededError at the call's timeout.
    with Client(providers=[OllamaProvider(host=fake_ollama.url)]) as client:
        calls = [
            lambda: client.chat("llama-3.2-3b", "hi", timeout=T, retries=0),
            lambda: client.stream("llama-3.2-3b", "hi", timeout=T, retries=0).read(),
        ]
        for run in calls:
            fake_ollama.trickle(0.05)
            started = time.perf_counter()
            with pytest.raises(AllProvidersFailedError) as caught:
                run()
            assert time.perf_counter() - started < T + SLACK
            assert caught.value.attempts[-1].code == "ReadTimeout"


# --- item 6: a timeout says which one it was --------------------------------------------------


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen backlog is full: a connect there waits (the SYN goes unanswered)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        waiting = []
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            waiting.append(client)
        time.sleep(0.05)
        try:
            yield port
        finally:
            for client in waiting:
                client.close()


async def test_a_connect_timeout_says_so(full_backlog: int, mode: str) -> None:
    provider = OllamaProvider(host=f"127.0.0.1:{full_backlog}")
    elapsed, error = await timed(chat(provider, mode, call(timeout=0.3)))
    await provider.aclose()
    assert isinstance(error, ProviderTimeoutError)
    assert error.code == "ConnectTimeout"
    assert 0.3 <= elapsed < 0.3 + SLACK


def test_a_timeout_is_billed_unless_the_request_was_never_sent(
    full_backlog: int, fake_ollama: FakeOllama
) -> None:
    # A connect that timed out sent nothing, so nothing is billed; a read that timed out
    # reached the model, so its attempt is billed as an estimate (issue 16 item 6).
    for host, code in ((f"127.0.0.1:{full_backlog}", "ConnectTimeout"),
                       (fake_ollama.url, "ReadTimeout")):  # fmt: skip
        fake_ollama.script(Step(delay=1.0))
        with (
            Client(providers=[OllamaProvider(host=host)]) as client,
            pytest.raises(AllProvidersFailedError) as caught,
        ):
            client.chat("llama-3.2-3b", "hi", timeout=0.3, retries=0)
        attempt = caught.value.attempts[0]
        assert attempt.code == code
        assert (attempt.cost is None) is (code == "ConnectTimeout")
        if attempt.cost is not None:
            assert attempt.cost.source == "estimate"


# --- item 2: size caps, with bounded memory ---------------------------------------------------


async def test_a_body_over_the_cap_is_refused_and_not_retried(
    fake_ollama: FakeOllama, mode: str
) -> None:
    provider = OllamaProvider(host=fake_ollama.url, max_response_bytes=MiB)
    fake_ollama.oversized(MiB - 1000)  # just under: fine
    assert len((await chat(provider, mode, call())).text) == MiB - 1000
    fake_ollama.oversized(2 * MiB)
    with pytest.raises(MalformedResponseError) as caught:
        await chat(provider, mode, call())
    await provider.aclose()
    error = caught.value
    assert (error.code, error.retryable) == ("response_too_large", False)
    assert "1,048,576 bytes" in str(error)


@pytest.mark.parametrize(
    ("options", "what"),
    [({"size": 2 * MiB}, "one line"), ({"size": 5 * MiB, "lines": True}, "the body")],
)
async def test_a_stream_over_its_caps_is_refused(
    fake_ollama: FakeOllama, mode: str, options: dict[str, Any], what: str
) -> None:
    provider = OllamaProvider(host=fake_ollama.url, max_line_bytes=MiB, max_stream_bytes=4 * MiB)
    fake_ollama.oversized(MiB // 2, lines=True)  # lines and total under their caps: fine
    assert len((await stream(provider, mode, call()))[-1].text) == MiB // 2
    fake_ollama.oversized(**options)
    with pytest.raises(MalformedResponseError, match=what) as caught:
        await stream(provider, mode, call())
    await provider.aclose()
    assert (caught.value.code, caught.value.retryable) == ("response_too_large", False)


@pytest.mark.parametrize("streaming", [False, True])
async def test_an_endless_body_stops_at_the_cap_with_bounded_memory(
    fake_ollama: FakeOllama, mode: str, streaming: bool
) -> None:
    cap = 8 * MiB
    provider = OllamaProvider(
        host=fake_ollama.url, max_response_bytes=cap, max_line_bytes=cap, max_stream_bytes=cap
    )
    await chat(provider, mode, call())  # the client and its pool are built before measuring
    fake_ollama.flood()
    tracemalloc.start()
    try:
        with pytest.raises(MalformedResponseError) as caught:
            await (stream if streaming else chat)(provider, mode, call())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    await provider.aclose()
    print(f"\n{mode} {'stream' if streaming else 'chat'}: endless body, cap {cap / MiB:.0f} "
          f"MiB, peak {peak / MiB:.1f} MiB")  # fmt: skip
    assert caught.value.code == "response_too_large"
    assert peak < 2 * cap


class Compressing(FakeServer):
    """Answers every chat with a gzip-encoded body, asked for or not."""

    def handle(self, exchange: Exchange) -> None:
        import gzip

        text = b"x" * 10**6
        body = gzip.compress(b'{"message": {"role": "assistant", "content": "' + text + b'"}}')
        exchange.send(200, body, {"Content-Encoding": "gzip"})


async def test_a_compressed_answer_is_refused_unread(mode: str, fake_ollama: FakeOllama) -> None:
    # A few kB of gzip can inflate to gigabytes after the size check: the provider asks for
    # an unencoded body, and refuses one that comes compressed anyway.
    provider = OllamaProvider(host=fake_ollama.url)
    await chat(provider, mode, call())
    assert fake_ollama.requests[-1].headers["accept-encoding"] == "identity"
    await provider.aclose()
    with Compressing() as server:
        provider = OllamaProvider(host=server.url)
        with pytest.raises(MalformedResponseError) as caught:
            await chat(provider, mode, call())
        await provider.aclose()
    assert (caught.value.code, caught.value.retryable) == ("unexpected_encoding", False)


def test_a_cut_stream_after_text_is_interrupted_at_the_cap(fake_ollama: FakeOllama) -> None:
    # Past the first chunk, the cap ends the stream like any other failure: with the text so
    # far, never spliced.
    provider = OllamaProvider(host=fake_ollama.url, max_line_bytes=64 * 1024)
    fake_ollama.flood(chunks=2)  # two good lines, then one that never ends
    with Client(providers=[provider]) as client, pytest.raises(StreamInterruptedError) as caught:
        client.stream("llama-3.2-3b", "hi").read()
    assert caught.value.partial_text == " word0 word1"
    assert caught.value.code == "response_too_large"
