"""BedrockProvider against servers that keep sending: the call's ``timeout=`` holds whatever
arrives (sync and async, Converse and ConverseStream), a stream's chunks may not stall past
``stream_idle_timeout``, answers are cut at their size cap with bounded memory, timeouts say
whether the request went out, and an ``AsyncClient`` outlives its event loop.

The hostile servers are ``FakeBedrock`` with :class:`RawReply` steps: bytes as given, at the
pace given (real sockets, real boto3).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from llamaroute import (
    AsyncClient,
    ChatRequest,
    Client,
    LlamarouteError,
    MalformedResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
    get_model,
)
from llamaroute.providers import ProviderCall
from llamaroute.providers.bedrock import BedrockProvider
from llamaroute.testing import FakeBedrock, RawReply, Step

from .conftest import AWS_KEYS, provider_stream

TEXT = get_model("llama-3.2-3b").route("bedrock", region="us-east-1")
T = 0.4  # the call's timeout in the deadline tests
MIB = 1024 * 1024

EVENT = FakeBedrock.event
START = EVENT("messageStart", {"role": "assistant"})
DELTA = EVENT("contentBlockDelta", {"delta": {"text": "word "}, "contentBlockIndex": 0})
STOP = EVENT("messageStop", {"stopReason": "end_turn"})
OPEN_JSON = b'{"output": {"message": {"role": "assistant", "content": [{"text": "'


def call(timeout: float | None = None) -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", "Hello"), TEXT, timeout=timeout)


def bedrock(fake: FakeBedrock, **options: Any) -> BedrockProvider:
    return BedrockProvider(region="us-east-1", endpoint_url=fake.url, **AWS_KEYS, **options)


#: Servers that never finish in time, each for a Converse call and a ConverseStream.
HOSTILE: dict[str, tuple[Step, Step]] = {
    "headers never come": (Step(delay=5), Step(delay=5)),
    "head trickled": (RawReply(slow_head=True, trickle=0.3, body=b"{}"),
                      RawReply(slow_head=True, trickle=0.3, body=START)),
    # One byte every 0.3 s: a deadline kept only between reads would be late by ~0.15 s.
    "body trickled": (RawReply(drip=OPEN_JSON + b"a" * 50, trickle=0.3),
                      RawReply(body=START, drip=DELTA * 2, trickle=0.3)),
    "endless, no text": (RawReply(drip=b" " * 500, trickle=0.01, length=10_000),
                         RawReply(body=START, endless=START * 50)),
}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


def _timed_sync(client: Client, streaming: bool) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        if streaming:
            with client.stream("llama-3.2-3b", "Hello", timeout=T) as stream:
                for _ in stream:
                    pass
        else:
            client.chat("llama-3.2-3b", "Hello", timeout=T)
    except Exception as error:  # judged below: it must be a llamaroute error
        return time.perf_counter() - started, error
    return time.perf_counter() - started, None


async def _timed_async(client: AsyncClient, streaming: bool) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        if streaming:
            async with client.stream("llama-3.2-3b", "Hello", timeout=T) as stream:
                async for _ in stream:
                    pass
        else:
            await client.chat("llama-3.2-3b", "Hello", timeout=T)
    except Exception as error:
        return time.perf_counter() - started, error
    return time.perf_counter() - started, None


@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("server", list(HOSTILE))
def test_the_call_timeout_holds_whatever_the_server_sends(
    fake: FakeBedrock, sync_or_async: str, server: str, streaming: bool
) -> None:
    provider = bedrock(fake)
    fake.script(Step.reply("warm"))  # one good call first: what is measured is the deadline
    fake.default = HOSTILE[server][streaming]
    tries = 3
    if sync_or_async == "sync":
        with Client(providers=[provider], retries=0) as client:
            client.chat("llama-3.2-3b", "Hello")
            results = [_timed_sync(client, streaming) for _ in range(tries)]
    else:

        async def run() -> list[tuple[float, BaseException | None]]:
            async with AsyncClient(providers=[provider], retries=0) as aclient:
                await aclient.chat("llama-3.2-3b", "Hello")
                return [await _timed_async(aclient, streaming) for _ in range(tries)]

        results = asyncio.run(run())
    over = [elapsed - T for elapsed, _ in results]
    print(f"{server} ({sync_or_async}, {'stream' if streaming else 'chat'}): overshoot "
          f"{', '.join(f'{o * 1000:.1f}' for o in over)} ms")  # fmt: skip
    assert all(isinstance(error, LlamarouteError) for _, error in results), results
    # ~2 ms when the machine is quiet; the slack (as in the OpenRouter and Ollama deadline tests)
    # is for a loaded test machine's scheduling, far below any trickle's seconds.
    assert statistics.median(over) < 0.15
    assert max(over) < 1.0  # a loaded machine's scheduling, never a trickle's 25 s
    assert min(over) > -0.05  # nor given up early


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_after_the_first_chunk_a_stalled_stream_ends_within_the_idle_timeout(
    fake: FakeBedrock, kind: str
) -> None:
    # The first chunk comes at once; the next frame trickles for 5 s. The call's 5 s timeout
    # only bounded the wait for the first chunk: stream_idle_timeout ends this one.
    fake.default = RawReply(body=START + DELTA, drip=DELTA * 10, trickle=0.05)
    provider = bedrock(fake, stream_idle_timeout=0.3)
    provider.client()
    chunks: list[str] = []
    started = time.perf_counter()
    with pytest.raises(StreamInterruptedError) as caught:
        read_stream(provider, kind, chunks)
    elapsed = time.perf_counter() - started
    assert chunks == ["word "]
    assert caught.value.partial_text == "word "
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    assert "stream_idle_timeout" in str(caught.value.__cause__)
    assert 0.3 <= elapsed < 1.0  # never the trickle's 5 s


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_slow_reader_is_not_a_stalled_stream(fake: FakeBedrock, kind: str) -> None:
    # The idle timeout counts the server's time only: the reader may take longer per chunk.
    # The margin is wide (0.5 s idle, 0.8 s reading) so a loaded CI machine's thread
    # scheduling cannot pass for a stalled server.
    fake.script(Step(chunks=("a", "b", "c")))
    provider = bedrock(fake, stream_idle_timeout=0.5)
    pieces: list[Any] = []
    if kind == "sync":
        for item in provider.stream(call(timeout=5)):
            pieces.append(item)
            time.sleep(0.8)
    else:
        async for item in provider.astream(call(timeout=5)):
            pieces.append(item)
            await asyncio.sleep(0.8)
    provider.close()
    assert pieces[:3] == ["a", "b", "c"]
    assert pieces[-1].text == "abc"


async def test_a_trickled_first_frame_cancelled_by_the_async_deadline_is_a_clean_timeout(
    fake: FakeBedrock,
) -> None:
    # The reported bug: the stream was closed from the loop while its worker thread was still
    # inside next(): "ValueError: generator already executing". Now the worker's read is cut
    # (the socket shut down) and the stream closes after it.
    fake.default = RawReply(body=START, drip=DELTA * 40, trickle=0.05)
    provider = bedrock(fake)
    provider.client()
    await asyncio.to_thread(provider.client)  # the loop's own helper thread, counted in before
    before = threading.active_count()
    errors: list[BaseException] = []
    for _ in range(5):
        events = provider.astream(call())  # no deadline of its own: the task's is cut
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await anext(events)
        cut_at = time.monotonic()
        try:
            await events.aclose()
        except BaseException as error:  # the bug surfaced here
            errors.append(error)
        closed = await asyncio.to_thread(fake.wait_closed, cut_at - 0.05, 1.0)
        assert closed is not None  # the server saw the hang-up
    async with AsyncClient(providers=[provider], retries=0) as aclient:
        started = time.perf_counter()
        with pytest.raises(LlamarouteError):
            await drain(aclient.stream("llama-3.2-3b", "Hello", timeout=0.3))
        assert time.perf_counter() - started < 0.8
    assert errors == []
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert threading.active_count() <= before  # no thread left reading


def read_stream(provider: BedrockProvider, kind: str, chunks: list[str]) -> None:
    """Stream through a client (``kind``: sync or async), each chunk's text into ``chunks``."""

    async def consume() -> None:
        async with (
            AsyncClient(providers=[provider]) as aclient,
            aclient.stream("llama-3.2-3b", "Hello", timeout=5) as astream,
        ):
            async for chunk in astream:
                chunks.append(chunk.text)

    if kind == "async":
        asyncio.run(consume())
        return
    with (
        Client(providers=[provider]) as client,
        client.stream("llama-3.2-3b", "Hello", timeout=5) as stream,
    ):
        for chunk in stream:
            chunks.append(chunk.text)


async def drain(stream: Any) -> None:
    async with stream as chunks:
        async for _ in chunks:
            pass


# --- size caps ----------------------------------------------------------------------------------


def _peak(run: Any) -> tuple[int, BaseException | None]:
    """Peak traced memory (bytes) while ``run()`` runs, and what it raised."""
    tracemalloc.start()
    try:
        run()
        error = None
    except Exception as caught:
        error = caught
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, error


BIG = {
    "declared 50 MiB": RawReply(body=OPEN_JSON, endless=b"a" * 65536, length=50 * MIB),
    "chunked, endless": RawReply(body=OPEN_JSON, endless=b"a" * 65536),
    "no length, endless": RawReply(body=OPEN_JSON, endless=b"a" * 65536, length=-1),
}


@pytest.mark.parametrize("reply", list(BIG))
def test_a_body_over_the_cap_is_refused_while_read_with_bounded_memory(
    fake: FakeBedrock, reply: str
) -> None:
    cap = 4 * MIB
    fake.default = BIG[reply]
    provider = bedrock(fake, max_response_bytes=cap)
    provider.client()
    peak, error = _peak(lambda: provider.chat(call(timeout=10)))
    provider.close()
    print(f"{reply}: peak traced memory {peak / MIB:.1f} MiB for a {cap / MIB:.0f} MiB cap")
    assert isinstance(error, MalformedResponseError), error
    assert (error.code, error.retryable) == ("response_too_large", False)
    assert "max_response_bytes" in str(error)
    assert peak < 2 * cap


def test_stream_caps_frame_and_total_with_bounded_memory(fake: FakeBedrock) -> None:
    cap = 4 * MIB
    frame = EVENT("contentBlockDelta", {"delta": {"text": "x" * 60_000}, "contentBlockIndex": 0})
    huge = FakeBedrock.frame({":event-type": "contentBlockDelta"}, b"{" + b" " * (2 * MIB))
    fake.script(RawReply(body=START, endless=frame), RawReply(body=START + huge))
    provider = bedrock(fake, max_stream_bytes=cap)
    provider.client()
    peak, error = _peak(lambda: list(provider.stream(call(timeout=10))))
    print(f"endless stream: peak traced memory {peak / MIB:.1f} MiB for a {cap / MIB:.0f} MiB cap")
    assert isinstance(error, MalformedResponseError), error
    assert (error.code, error.retryable) == ("response_too_large", False)
    assert "max_stream_bytes" in str(error)
    assert peak < 2 * cap
    with pytest.raises(MalformedResponseError, match="max_event_bytes") as caught:
        list(provider.stream(call(timeout=10)))  # one 2 MiB frame; the default cap is 1 MiB
    assert caught.value.code == "response_too_large"
    provider.close()


def test_an_answer_over_the_cap_is_not_retried(fake: FakeBedrock) -> None:
    fake.default = BIG["chunked, endless"]
    client = Client(providers=[bedrock(fake, max_response_bytes=MIB)], retries=3)
    with client, pytest.raises(LlamarouteError) as caught:
        client.chat("llama-3.2-3b", "Hello", timeout=10)
    errors = getattr(caught.value, "exceptions", [caught.value])
    assert [getattr(e, "code", None) for e in errors] == ["response_too_large"]
    assert fake.hits == 1


def test_the_caps_have_documented_defaults() -> None:
    provider = BedrockProvider(region="us-east-1", **AWS_KEYS)
    assert (provider.limits.body, provider.limits.frame, provider.limits.stream) == (
        16 * MIB, MIB, 64 * MIB,
    )  # fmt: skip
    assert provider.stream_idle_timeout == 30.0
    for bad in ({"max_response_bytes": 0}, {"max_event_bytes": True},
                {"stream_idle_timeout": 0}, {"max_stream_bytes": 1.5}):  # fmt: skip
        with pytest.raises(LlamarouteError):
            BedrockProvider(region="us-east-1", **AWS_KEYS, **bad)  # type: ignore[arg-type]


# --- timeout codes: was the request sent? ----------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose accept queue is full: a connection attempt waits, unanswered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        yield port
        for filler in fillers:
            filler.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_connect_timeout_says_nothing_was_sent_and_is_not_billed(
    black_hole: int, kind: str
) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=f"http://127.0.0.1:{black_hole}",
                               **AWS_KEYS)  # fmt: skip
    provider.client()
    started = time.perf_counter()
    chat = provider.chat if kind == "sync" else lambda c: asyncio.run(provider.achat(c))
    with pytest.raises(ProviderTimeoutError) as caught:
        chat(call(timeout=0.3))
    assert time.perf_counter() - started < 0.6
    assert caught.value.code == "ConnectTimeoutError"
    client = Client(providers=[provider], retries=0)
    with client, pytest.raises(LlamarouteError) as failed:
        client.chat("llama-3.2-3b", "Hello", timeout=0.3)
    attempt = failed.value.attempts[0]  # type: ignore[attr-defined]
    assert (attempt.code, attempt.cost) == ("ConnectTimeoutError", None)
    # botocore's own connect timeout (no call deadline) maps to the same code.
    short = BedrockProvider(region="us-east-1", endpoint_url=f"http://127.0.0.1:{black_hole}",
                            connect_timeout=0.2, **AWS_KEYS)  # fmt: skip
    with pytest.raises(ProviderTimeoutError) as botocore_timeout:
        short.chat(call())
    assert botocore_timeout.value.code == "ConnectTimeoutError"
    provider.close()
    short.close()


def test_a_read_timeout_says_the_request_was_sent_and_is_billed_as_an_estimate(
    fake: FakeBedrock,
) -> None:
    fake.default = Step(delay=3)
    provider = bedrock(fake)
    provider.client()
    client = Client(providers=[provider], retries=0)
    with client, pytest.raises(LlamarouteError) as failed:
        client.chat("llama-3.2-3b", "Hello", timeout=0.3)
    attempt = failed.value.attempts[0]  # type: ignore[attr-defined]
    assert attempt.code == "ReadTimeoutError"
    assert attempt.cost is not None
    assert attempt.cost.source == "estimate"
    short = bedrock(fake, read_timeout=0.2)  # no call deadline: read_timeout bounds the answer
    short.client()  # built beforehand, or its build could use up the 0.2 s
    with pytest.raises(ProviderTimeoutError) as caught:
        short.chat(call())
    assert caught.value.code == "ReadTimeoutError"
    short.close()


# --- an AsyncClient outlives its event loop (issue 16, item 8) --------------------------------


def test_an_async_client_with_bedrock_works_across_two_asyncio_runs(fake: FakeBedrock) -> None:
    provider = bedrock(fake)
    client = AsyncClient(providers=[provider], retries=0)

    async def use() -> tuple[str, str, type[BaseException]]:
        reply = await client.chat("llama-3.2-3b", "Hello")
        async with client.stream("llama-3.2-3b", "Hello") as stream:
            text = "".join([chunk.text async for chunk in stream])
        fake.script(Step(delay=2))
        try:
            await client.chat("llama-3.2-3b", "Hello", timeout=0.2)
        except LlamarouteError as error:
            return reply.text, text, type(error)
        raise AssertionError("the slow call did not time out")

    first = asyncio.run(use())
    second = asyncio.run(use())
    asyncio.run(client.aclose())
    assert first == second
    assert first[0] == first[1] == FakeBedrock.default_text
    assert issubclass(first[2], LlamarouteError)


async def test_provider_streams_stay_whole_under_a_deadline(fake: FakeBedrock) -> None:
    # The deadline machinery must not cut a healthy stream: 30 streams, sync and async.
    provider = bedrock(fake, stream_idle_timeout=2)
    for number in range(30):
        items = await provider_stream(provider, ("sync", "async")[number % 2], call(timeout=2))
        assert "".join(i for i in items if isinstance(i, str)) == items[-1].text
    provider.close()
