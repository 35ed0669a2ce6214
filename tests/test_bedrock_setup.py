"""BedrockProvider's setup and its life in a client: lazy boto3, no credential look-up at
construction, regions, discovery, concurrency of the async shell, closing, secret hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from llamaroute import (
    AsyncClient,
    AuthenticationError,
    ChatRequest,
    Client,
    ConfigurationError,
    ProviderError,
    UnknownModelError,
    UnsupportedFeatureError,
    get_model,
)
from llamaroute.providers import OpenRouterProvider, ProviderCall, discover
from llamaroute.providers.bedrock import BedrockProvider
from llamaroute.testing import FakeBedrock, Step

from .conftest import (
    CANARY_AWS_KEY_ID,
    CANARY_AWS_SECRET,
    CANARY_AWS_TOKEN,
    PNG,
    provider_chat,
    provider_stream,
)

TEXT = get_model("llama-3.2-3b").route("bedrock", region="us-east-1")
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


def call(prompt: str = "Hello") -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", prompt), TEXT)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS settings from the machine: empty config files, no AWS_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return config


@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A port that accepts TCP connections into its backlog and never answers: a metadata
    endpoint that would make a credential look-up wait."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def no_connection_reached(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


# --- construction: lazy, instant, no credentials --------------------------------------------


def test_constructing_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys; from llamaroute.providers.bedrock import BedrockProvider; "
        "BedrockProvider(region='us-east-1'); print('boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_construction_and_discovery_never_wait_on_the_metadata_endpoint(
    aws_env: Path, black_hole: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT",
                       f"http://127.0.0.1:{black_hole.getsockname()[1]}")  # fmt: skip
    aws_env.write_text("[profile dev]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_PROFILE", "dev")
    started = time.perf_counter()
    provider = BedrockProvider(region="us-east-1")
    found = discover()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    assert [p.region for p in found if isinstance(p, BedrockProvider)] == ["us-west-2"]
    assert provider.region == "us-east-1"
    assert no_connection_reached(black_hole)


async def test_first_call_without_credentials_is_an_authentication_error(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, sync_or_async: str,
    fake_bedrock: FakeBedrock,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    provider = BedrockProvider(region="us-east-1", endpoint_url=fake_bedrock.url)
    with pytest.raises(AuthenticationError, match="no usable AWS credentials") as caught:
        await provider_chat(provider, sync_or_async, call())
    await provider.aclose()
    assert (caught.value.code, caught.value.retryable) == ("NoCredentialsError", False)
    assert fake_bedrock.hits == 0


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = BedrockProvider(region="us-east-1", **KEYS)
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'llamaroute\[bedrock\]'"):
        provider.chat(call())


def test_region_comes_from_the_argument_the_environment_or_the_profile(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="needs a region"):
        BedrockProvider()
    aws_env.write_text("[default]\nregion = eu-west-3\n[profile dev]\nregion = us-east-2\n")
    assert BedrockProvider().region == "eu-west-3"
    assert BedrockProvider(profile="dev").region == "us-east-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert BedrockProvider().region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert BedrockProvider().region == "us-west-2"
    assert BedrockProvider(region="eu-central-1").region == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="'missing' not found"):
        BedrockProvider(profile="missing")


@pytest.mark.parametrize(
    "kwargs",
    [
        {**KEYS, "profile": "dev"},
        {"aws_access_key_id": "AKIDEXAMPLE"},
        {"aws_session_token": "token"},
        {"read_timeout": 0},
        {"connect_timeout": float("inf")},
        {"endpoint_url": "https://user:pass@bedrock.example"},
        {"max_connections": 0},
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        BedrockProvider(region="us-east-1", **kwargs)  # type: ignore[arg-type]


def test_client_settings_retries_off_and_one_client_for_every_timeout() -> None:
    provider = BedrockProvider(region="us-east-1", **KEYS)
    config = provider.client().meta.config
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (10.0, 300.0)
    assert config.max_pool_connections == 64
    # A call's timeout is kept around the reads (its own deadline), not by a client per value.
    assert provider.client() is provider.client()  # built once
    provider.close()


def test_route_for_the_region() -> None:
    assert BedrockProvider(region="us-east-2").route_for("llama-3.2-90b-vision").model_id == (
        "us.meta.llama3-2-90b-instruct-v1:0"
    )
    eu = BedrockProvider(region="eu-west-1")
    assert eu.route_for("llama-3.2-3b").model_id == "eu.meta.llama3-2-3b-instruct-v1:0"
    with pytest.raises(UnsupportedFeatureError, match="us-east-1"):
        eu.route_for("llama-3.2-11b-vision")


# --- discovery ------------------------------------------------------------------------------


def test_discover_appends_bedrock_when_credentials_and_a_region_are_named(aws_env: Path) -> None:
    env = {"OPENROUTER_API_KEY": "sk-or-v1-test", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_REGION": "us-east-1"}  # fmt: skip
    found = discover(env)
    assert [type(p) for p in found] == [OpenRouterProvider, BedrockProvider]
    assert found[1].region == "us-east-1"
    assert discover({"AWS_REGION": "us-east-1"}) == []  # no credentials named
    assert discover({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}) == []  # no region anywhere
    aws_env.write_text("[profile dev]\nregion = eu-west-1\n")
    assert [p.region for p in discover({"AWS_PROFILE": "dev"})] == ["eu-west-1"]


def test_discover_skips_a_broken_aws_setting_with_a_warning(
    aws_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llamaroute"):
        assert discover({"AWS_PROFILE": "missing"}) == []
    assert "not found" in caplog.text


# --- in a client ----------------------------------------------------------------------------


@pytest.fixture
def us_provider(fake_bedrock: FakeBedrock) -> Iterator[BedrockProvider]:
    provider = BedrockProvider(region="us-east-1", endpoint_url=fake_bedrock.url, **KEYS)
    yield provider
    provider.close()


def test_client_vision_chat_and_stream(
    us_provider: BedrockProvider, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.script(Step.reply("A red dot.", usage=(1610, 4)))
    with Client(providers=[us_provider]) as client:
        reply = client.chat("llama-3.2-90b-vision", "What is this?", image=PNG, max_tokens=50)
        with client.stream("llama-3.2-3b", "Hi") as stream:
            text = "".join(chunk.text for chunk in stream)
    assert (reply.text, reply.provider, reply.usage.input_tokens) == ("A red dot.", "bedrock", 1610)
    assert reply.provider_model_id == "us.meta.llama3-2-90b-instruct-v1:0"
    assert reply.details["latency_ms"] == 42
    assert text == stream.response.text
    assert stream.response.usage.output_tokens > 0
    assert fake_bedrock.model_ids == [
        "us.meta.llama3-2-90b-instruct-v1:0", "us.meta.llama3-2-3b-instruct-v1:0",
    ]  # fmt: skip


async def test_async_client_in_an_eu_region(fake_bedrock: FakeBedrock) -> None:
    provider = BedrockProvider(region="eu-west-1", endpoint_url=fake_bedrock.url, **KEYS)
    async with AsyncClient(providers=[provider]) as client:
        reply = await client.chat("llama-3.2-3b", "Hi")
        with pytest.raises(UnsupportedFeatureError, match="not offered on bedrock in region"):
            await client.chat("llama-3.2-90b-vision", "What is this?", image=PNG)
        with pytest.raises(UnknownModelError, match="inference profile"):
            await client.chat("bedrock:meta.llama3-2-3b-instruct-v1:0", "Hi")
    assert reply.provider_model_id == "eu.meta.llama3-2-3b-instruct-v1:0"
    assert fake_bedrock.model_ids == ["eu.meta.llama3-2-3b-instruct-v1:0"]  # 1 request only


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_leaving_a_stream_early_closes_the_connection(
    us_provider: BedrockProvider, fake_bedrock: FakeBedrock, kind: str
) -> None:
    fake_bedrock.script(Step.reply(" ".join(["word"] * 40), chunk_delay=0.05))
    if kind == "sync":
        events = us_provider.stream(call())
        assert isinstance(next(events), str)
        closed_at = time.monotonic()
        events.close()
    else:
        aevents = us_provider.astream(call())
        assert isinstance(await aevents.__anext__(), str)
        closed_at = time.monotonic()
        await aevents.aclose()
    waited = await asyncio.to_thread(fake_bedrock.wait_closed, closed_at, 1.0)
    assert waited is not None
    assert waited < 1.0


# --- concurrency ----------------------------------------------------------------------------


@pytest.fixture
async def slow_provider() -> AsyncIterator[tuple[BedrockProvider, FakeBedrock]]:
    with FakeBedrock(default=Step.reply("slow but sure", delay=0.2)) as fake:
        provider = BedrockProvider(region="us-east-1", endpoint_url=fake.url, **KEYS)
        await provider.achat(call())  # build the client once, outside the measurement
        yield provider, fake
        await provider.aclose()


async def test_fifty_concurrent_async_calls_run_side_by_side(
    slow_provider: tuple[BedrockProvider, FakeBedrock],
) -> None:
    provider, fake = slow_provider
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:  # the event loop must keep turning while boto3 waits
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    results = await asyncio.gather(*(provider.achat(call()) for _ in range(50)))
    elapsed = time.perf_counter() - started
    items = await asyncio.gather(*(provider_stream(provider, "async", call()) for _ in range(50)))
    streamed = time.perf_counter() - started - elapsed
    done.set()
    await ticking
    print(
        f"50 concurrent async chats against 200 ms latency: {elapsed:.2f} s (serial: 10 s); "
        f"50 streams: {streamed:.2f} s; worst loop gap {max(gaps):.3f} s"
    )
    assert all(result.text == "slow but sure" for result in results)
    assert all(stream[-1].text == "slow but sure" for stream in items)
    assert elapsed < 2.5
    assert streamed < 2.5
    # A boto3 call run on the loop itself would stall it for the whole 50 x 200 ms; a busy
    # machine stalls it for tens of milliseconds. The bound tells the two apart with room.
    assert max(gaps) < 1.0
    assert fake.hits == 101


async def test_closing_returns_the_worker_threads(
    slow_provider: tuple[BedrockProvider, FakeBedrock],
) -> None:
    provider, _ = slow_provider
    before = threading.active_count()
    await asyncio.gather(*(provider.achat(call()) for _ in range(20)))
    assert threading.active_count() > before
    await provider.aclose()
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert threading.active_count() <= before
    assert (await provider.achat(call())).text == "slow but sure"  # usable again after close


def _client_sockets(server_port: int) -> list[socket.socket]:
    """The open TCP sockets of this process connected to ``server_port``."""
    found = []
    for thing in gc.get_objects():
        if isinstance(thing, socket.socket) and thing.family == socket.AF_INET:
            with contextlib.suppress(OSError):  # closed, or no longer connected
                if thing.getpeername()[1] == server_port:
                    found.append(thing)
    return found


async def test_a_stream_cancelled_as_its_request_step_ends_closes_its_connection(
    fake_bedrock: FakeBedrock,
) -> None:
    """The race the chaos run found: the worker thread has the stream open (the answer's
    headers are in), but the task waiting for it is cancelled before it resumes, so the
    stream never reaches the generator. It must still be closed now, not left to the garbage
    collector (which an error the caller keeps would delay; the sockets this test holds
    keep it from running at all)."""
    # A warm-up call builds the boto3 client; then the headers at once and a word every
    # 20 ms (the fake sees the hang-up at its next write).
    fake_bedrock.script(Step.reply("warm"), Step.reply(" ".join(["word"] * 500), chunk_delay=0.02))
    provider = BedrockProvider(region="us-east-1", endpoint_url=fake_bedrock.url, **KEYS)
    try:
        await provider.achat(call())  # its connection goes back to the pool, then to the stream
        stream = provider.astream(call())
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the request step is submitted to the worker
        started = time.monotonic()
        while len(fake_bedrock.requests) < 2 and time.monotonic() - started < 5:
            time.sleep(0.01)  # block the loop: the task cannot resume while the step ends
        time.sleep(0.3)  # the headers reach the worker; botocore returns the open stream
        streaming = _client_sockets(fake_bedrock.port)
        assert streaming
        first.cancel()
        cancelled = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert fake_bedrock.wait_closed(cancelled, timeout=2.0) is not None  # it hung up
        assert [sock.fileno() for sock in streaming] == [-1] * len(streaming)  # and closed it
    finally:
        await provider.aclose()


@pytest.mark.parametrize("fault", [Step.error(500), Step.reply("a b c", omit_end=True)])
def test_closing_closes_connections_that_an_error_still_references(
    fake_bedrock: FakeBedrock, fault: Step
) -> None:
    # The error (kept by the caller here) references botocore's response, and through it the
    # urllib3 pool: boto3's close() alone would leave its connection open until collected.
    fake_bedrock.script(fault)
    provider = BedrockProvider(
        region="us-east-1", endpoint_url=fake_bedrock.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip
    with pytest.raises(ProviderError) as caught:
        list(provider.stream(call()))
    closing = time.monotonic()
    provider.close()
    assert fake_bedrock.wait_closed(closing, timeout=1.0) is not None
    assert caught.value.retryable  # still held: the connection was closed all the same


# --- secrets --------------------------------------------------------------------------------


@pytest.fixture
def canary_provider(fake_bedrock: FakeBedrock) -> Iterator[BedrockProvider]:
    provider = BedrockProvider(
        region="us-east-1", endpoint_url=fake_bedrock.url, aws_access_key_id=CANARY_AWS_KEY_ID,
        aws_secret_access_key=CANARY_AWS_SECRET, aws_session_token=CANARY_AWS_TOKEN,
    )  # fmt: skip
    yield provider
    provider.close()


def _exercise(provider: BedrockProvider, fake: FakeBedrock, echo: str) -> list[ProviderError]:
    fake.script(Step.reply("ok"), Step.error(403, "AccessDeniedException", echo),
                Step.reply("a b", error_after=1, message=echo), Step(reset_after=0))  # fmt: skip
    provider.chat(call())
    errors: list[ProviderError] = []
    for run in (provider.chat, lambda c: list(provider.stream(c)), provider.chat):
        with pytest.raises(ProviderError) as caught:
            run(call())
        errors.append(caught.value)
    return errors


def test_credentials_never_appear_in_reprs_errors_or_our_logs(
    canary_provider: BedrockProvider, fake_bedrock: FakeBedrock, caplog: pytest.LogCaptureFixture
) -> None:
    botocore_level = logging.getLogger("botocore").level
    with caplog.at_level(logging.DEBUG, logger="llamaroute"):
        # An upstream that echoes the secrets back in its errors: we redact them.
        echo = f"denied for {CANARY_AWS_SECRET} / {CANARY_AWS_TOKEN}"
        errors = _exercise(canary_provider, fake_bedrock, echo)
    shown = [repr(canary_provider), caplog.text]
    for error in errors:
        shown += [str(error), repr(error), repr(pickle.loads(pickle.dumps(error)).__dict__)]
    for secret in (CANARY_AWS_SECRET, CANARY_AWS_TOKEN, CANARY_AWS_KEY_ID):
        assert not [text for text in shown if secret in text], secret
    assert logging.getLogger("botocore").level == botocore_level  # we never turn botocore on
    assert CANARY_AWS_TOKEN in fake_bedrock.requests[0].headers["x-amz-security-token"]


def test_with_every_logger_at_debug_the_secret_key_still_never_appears(
    canary_provider: BedrockProvider, fake_bedrock: FakeBedrock, caplog: pytest.LogCaptureFixture
) -> None:
    # (No echoing upstream here: botocore at DEBUG logs raw response bodies, whatever is in them.)
    with caplog.at_level(logging.DEBUG):  # root: botocore and urllib3 at DEBUG too
        _exercise(canary_provider, fake_bedrock, "denied")
    assert caplog.records
    assert CANARY_AWS_SECRET not in caplog.text
    # botocore's own DEBUG output prints signed headers, the session token among them; only
    # a caller who turns botocore's DEBUG on sees it, and llamaroute never does.
    leaking = {r.name for r in caplog.records if CANARY_AWS_TOKEN in r.getMessage()}
    assert all(name.startswith("botocore") for name in leaking)
