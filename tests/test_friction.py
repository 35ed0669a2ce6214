"""What new users ran into (issue 16): breakers that failed calls with nowhere else to go, errors
that hid their cause, a rejected request that lost its attempts, a timed-out attempt billed as
nothing."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator, Generator
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    BadRequestError,
    BreakerPolicy,
    Client,
    ConfigurationError,
    DeadlineExceededError,
    RetryPolicy,
    ServerError,
    Usage,
    get_model,
)
from llamaroute.providers import (
    BedrockProvider,
    OllamaProvider,
    OpenRouterProvider,
    Provider,
    ProviderCall,
    ProviderResult,
)
from llamaroute.routing import Health
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY, socket_error_text

ROUTE = get_model("llama-3.2-3b").route("openrouter")


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


NO_WAIT = RetryPolicy(attempts=3, sleep=lambda seconds: None, async_sleep=_no_sleep)


class Flaky(Provider):
    """An OpenRouter stand-in, in process: the n-th attempt of the call whose prompt is ``p``
    fails with ``ServerError`` when the coin seeded with ``(p, n)`` says so (``rate``), after a
    latency drawn the same way. So the same calls meet the same faults, whatever order the
    event loop runs them in."""

    name = "openrouter"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tries: dict[str, int] = {}

    async def achat(self, call: ProviderCall) -> ProviderResult:
        prompt = call.request.messages[-1].text
        number = self.tries[prompt] = self.tries.get(prompt, 0) + 1
        coin = random.Random(f"{prompt}/{number}")
        await asyncio.sleep(coin.random() * 0.004)  # interleave, as real latencies do
        if coin.random() < self.rate:
            raise ServerError("upstream hiccup", provider=self.name, model_id=call.route.model_id)
        return ProviderResult("ok", "stop", Usage(input_tokens=10, output_tokens=2))

    def chat(self, call: ProviderCall) -> ProviderResult:
        raise NotImplementedError  # only the async client is used here

    def stream(self, call: ProviderCall) -> Generator[str, None, None]:
        raise NotImplementedError

    async def astream(self, call: ProviderCall) -> AsyncGenerator[str, None]:
        raise NotImplementedError
        yield ""  # pragma: no cover

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def _failed_calls(breaker: BreakerPolicy, calls: int = 200, rate: float = 0.3) -> int:
    provider = Flaky(rate)
    async with AsyncClient([provider], retries=NO_WAIT, breaker=breaker) as client:
        outcomes = await asyncio.gather(
            *(client.chat("llama-3.2-3b", f"call {n}") for n in range(calls)),
            return_exceptions=True,
        )
    for outcome in outcomes:
        assert not isinstance(outcome, BaseException) or isinstance(
            outcome, AllProvidersFailedError
        ), outcome
    return sum(isinstance(outcome, BaseException) for outcome in outcomes)


# --- 2. breakers divert; they never fail a call that has nowhere else to go --------------------


@pytest.mark.parametrize(
    "breaker", [BreakerPolicy(), BreakerPolicy(failures=3)], ids=["default", "3-in-a-row"]
)
async def test_a_one_provider_app_fails_no_more_with_breakers_than_without(
    breaker: BreakerPolicy,
) -> None:
    # 200 concurrent calls, 30 % of attempts fail; every call gets its 3 attempts either way,
    # so with the same faults the same calls fail (0.3**3 of them, about 5).
    with_breakers = await _failed_calls(breaker)
    without = await _failed_calls(BreakerPolicy(failures=0))
    assert with_breakers == without
    assert with_breakers <= 15


class FailsTogether(Flaky):
    """Its first ``failures`` attempts fail together: each waits until all have started, as
    concurrent requests to a provider having a bad second do. Every later attempt answers."""

    def __init__(self, failures: int) -> None:
        super().__init__(0.0)
        self.failures = failures
        self.attempts = 0

    async def achat(self, call: ProviderCall) -> ProviderResult:
        self.attempts += 1
        if self.attempts <= self.failures:
            while self.attempts < self.failures:
                await asyncio.sleep(0.001)
            raise ServerError("upstream hiccup", provider=self.name, model_id=call.route.model_id)
        return ProviderResult("ok", "stop", Usage(input_tokens=10, output_tokens=2))


async def test_a_breaker_that_opens_mid_call_does_not_end_a_call_with_nowhere_to_go() -> None:
    # Three concurrent calls' first attempts fail at once and open the breaker (failures=3).
    # Each call still has its retries and one route: the breaker must not turn the retry into
    # a failure (the old breaker skipped it, so all three calls failed after one attempt).
    async def short_wait(seconds: float) -> None:
        await asyncio.sleep(0.05)  # the three failures are all recorded before any retry

    provider = FailsTogether(3)
    retries = RetryPolicy(attempts=3, sleep=lambda seconds: None, async_sleep=short_wait)
    breaker = BreakerPolicy(failures=3)
    async with AsyncClient([provider], retries=retries, breaker=breaker) as client:
        replies = await asyncio.gather(
            *(client.chat("llama-3.2-3b", f"call {n}") for n in range(3)), return_exceptions=True
        )
        assert client.health()[ROUTE.pinned]["times_opened"] == 1
    assert [getattr(reply, "text", reply) for reply in replies] == ["ok", "ok", "ok"]
    assert provider.attempts == 6


def test_the_default_breaker_opens_on_a_failure_rate_not_on_a_run_of_bad_luck() -> None:
    now = [0.0]
    flaky = Health(BreakerPolicy(), clock=lambda: now[0])
    coin = random.Random(3)
    for _ in range(2000):  # 30 % failures, spread over time: usable, and never opened
        now[0] += 0.01
        flaky.record(ROUTE, ServerError("x") if coin.random() < 0.3 else None)
    assert flaky.snapshot()[ROUTE.pinned]["times_opened"] == 0
    down = Health(BreakerPolicy(), clock=lambda: now[0])
    for count in range(1, 11):  # every call fails: open at the 10th failure in a row
        down.record(ROUTE, ServerError("x"))
        assert (down.snapshot()[ROUTE.pinned]["state"] == "open") == (count == 10)
    busy = Health(BreakerPolicy(failures=None), clock=lambda: now[0])
    for count in range(1, 31):  # the rate rule alone: 60 % failures, open at 30 outcomes
        busy.record(ROUTE, ServerError("x") if count % 5 < 3 else None)
        assert (busy.snapshot()[ROUTE.pinned]["state"] == "open") == (count >= 30)


def test_breaker_policy_checks_its_numbers() -> None:
    for bad in ({"failure_rate": 0}, {"failure_rate": 1.5}, {"min_calls": 0}, {"window": 0}):
        with pytest.raises(ConfigurationError):
            BreakerPolicy(**bad)  # type: ignore[arg-type]


# --- 3. an error names each attempt's cause, in plain words -----------------------------------


def test_all_providers_failed_names_each_cause_without_jargon() -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url="http://127.0.0.1:9/api/v1")
    with (
        Client([provider], retries=0) as client,
        pytest.raises(AllProvidersFailedError) as caught,
    ):
        client.chat("llama-3.2-3b", "hi")
    text = str(caught.value)
    assert "sub-exception" not in text
    assert "ProviderConnectionError: connection failed" in text
    assert "refused" in text.lower()
    assert CANARY_KEY not in text


def test_each_cause_is_named_in_plain_words_for_every_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_bedrock: FakeBedrock
) -> None:
    # A host that does not resolve and Bedrock without credentials: the message names the
    # resolver's and boto3's own words, never the ollama client's generic "Failed to connect
    # to Ollama. Please check that Ollama is downloaded..." that hid them.
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    nowhere = "nowhere.invalid"  # reserved: never resolves (RFC 2606)
    providers = [
        OpenRouterProvider(api_key=CANARY_KEY, base_url=f"http://{nowhere}/api/v1"),
        BedrockProvider(region="us-east-1", endpoint_url=fake_bedrock.url),
        OllamaProvider(host=f"http://{nowhere}:11434"),
    ]
    with Client(providers, retries=0) as client, pytest.raises(AllProvidersFailedError) as caught:
        client.chat("llama-3.2-3b", "hi")
    text = str(caught.value)
    causes = dict(part.split(": ", 1) for part in text.split(": ", 1)[1].split("; "))
    assert list(causes) == [
        "openrouter meta-llama/llama-3.2-3b-instruct",
        "bedrock us.meta.llama3-2-3b-instruct-v1:0",
        "ollama llama3.2:3b",
    ]
    unresolved = socket_error_text(nowhere)
    assert unresolved in causes["openrouter meta-llama/llama-3.2-3b-instruct"]
    assert "Unable to locate credentials" in causes["bedrock us.meta.llama3-2-3b-instruct-v1:0"]
    assert unresolved in causes["ollama llama3.2:3b"]
    assert "Please check that Ollama is downloaded" not in text
    assert "sub-exception" not in text
    assert fake_bedrock.hits == 0


def test_falling_back_is_logged_only_when_there_is_a_next_route(
    fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openrouter.default = Step.error(401, message="bad key")
    rejected = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    with Client([rejected], retries=0) as client, pytest.raises(AllProvidersFailedError):
        client.chat("llama-3.2-3b", "hi")
    assert fake_openrouter.hits == 1
    assert not [r for r in caplog.records if "falling back" in r.getMessage()]
    with FakeOllama() as ollama:
        local = OllamaProvider(host=ollama.url)
        with Client([rejected, local], retries=0) as client:
            assert client.chat("llama-3.2-3b", "hi").provider == "ollama"
    assert [r for r in caplog.records if "falling back to the next route" in r.getMessage()]


# --- 5. the error that ends a call carries every attempt --------------------------------------


def test_a_rejected_request_after_a_retried_429_carries_both_attempts() -> None:
    with FakeOpenRouter() as fake:
        fake.script(Step.error(429, retry_after="0"), Step.error(400, message="bad field"))
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider]) as client, pytest.raises(BadRequestError) as caught:
            client.chat("llama-3.2-3b", "hi")
        assert fake.hits == 2
    assert [(a.outcome, a.status_code) for a in caught.value.attempts] == [
        ("error", 429),
        ("error", 400),
    ]


# --- 6. a non-streamed attempt that timed out at the server was likely billed ------------------


def test_a_timed_out_attempt_is_billed_as_an_estimate() -> None:
    with FakeOpenRouter(default=Step(delay=2)) as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider], retries=0) as client:
            with pytest.raises(DeadlineExceededError) as caught:
                client.chat("llama-3.2-3b", "hi " * 200, timeout=0.5)
            (attempt,) = caught.value.attempts
            assert attempt.error_type == "ProviderTimeoutError"
            assert attempt.cost is not None
            assert attempt.cost.source == "estimate"
            assert attempt.cost.total > 0
            assert client.spend.total == attempt.cost.total > Decimal(0)


# --- 8. a sync client inside async code says it blocks the loop --------------------------------


def test_a_sync_client_in_async_code_warns_once() -> None:
    with FakeOpenRouter() as fake:
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client([provider]) as client:

            async def blocking() -> None:
                client.chat("llama-3.2-3b", "hi")
                client.chat("llama-3.2-3b", "hi")

            with pytest.warns(RuntimeWarning, match="AsyncClient") as caught:
                asyncio.run(blocking())
            assert len([w for w in caught if w.category is RuntimeWarning]) == 1
            assert caught[0].filename == __file__  # it points at the caller's line


def test_identical_causes_are_said_once_with_their_count() -> None:
    with FakeOpenRouter() as fake:
        fake.script(*[Step.error(503, message="overloaded")] * 3)
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with (
            Client([provider], retries=NO_WAIT) as client,
            pytest.raises(AllProvidersFailedError) as caught,
        ):
            client.chat("llama-3.2-3b", "hi")
    text = str(caught.value)
    assert text.count("overloaded") == 1
    assert "(3 attempts)" in text
    assert len(caught.value.attempts) == 3
