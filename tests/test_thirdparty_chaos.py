"""A chaos run against servers nobody on this project wrote (issue 8: "a chaos run against
fakes that nobody on this project wrote loses no call, raises only typed errors, and never
returns a truncated or spliced text as success").

* OpenRouter -> LLMock (PyPI), started with its own random faults: 429 and 503 (with
  ``Retry-After``), and in streams truncation, disconnects, malformed chunks and stalls.
* Bedrock and Ollama -> one aimock (npm), whose fixtures carry its own random chaos: 500s
  ("drop"), malformed bodies, 429s and dropped connections; and, for the calls whose prompt
  says "(long)", an answer aimock cuts after four chunks (mid-text).

Their answers are theirs: LLMock's (``Mock response from <model>.``) is read once, unfaulted,
before the run; aimock's are the fixtures below. A success must be one of them exactly and
whole (for a stream, the chunks the caller received add up to it); a stream that breaks
after text must raise ``StreamInterruptedError`` whose partial text is what the caller
received and the start of that server's answer. Their random faults are not seeded (LLMock
and aimock use their own generators), so the figures vary from run to run; the assertions
hold for any draw. Both servers journal every request: each call's attempts are matched
against them, counted per provider (their clocks cannot be compared, so not in order).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from llamaroute import AsyncClient, BreakerPolicy, Client
from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider

from ._chaos import ChaosCall, Received, plan_calls, run_async, run_sync, tally
from ._thirdparty import running_aimock, running_llmock
from .test_chaos import Sleeps, no_sleep_policy

# The first run may wait for the one-off npm install of aimock.
pytestmark = pytest.mark.timeout(300)

MODEL = "llama-3.2-3b"
OPENROUTER_ID = "meta-llama/llama-3.2-3b-instruct"
BEDROCK_ID, OLLAMA_ID = "us.meta.llama3-2-3b-instruct-v1:0", "llama3.2:3b"
AIMOCK_TEXTS = {
    "bedrock": "Bedrock, played by aimock: llamas are counted in herds.",
    "ollama": "Ollama, played by aimock: llamas can spit when annoyed.",
}
LONG_TEXT = "A long story that aimock cuts short after a few chunks, every time."
#: aimock's own chaos, per request; its rates apply one after the other (drop, then
#: malformed, then rate limit, then disconnect), so about 31 % of requests fail.
AIMOCK_CHAOS = {"dropRate": 0.1, "malformedRate": 0.1, "rateLimitRate": 0.1,
                "disconnectRate": 0.05}  # fmt: skip
LLMOCK_FAULTS = ("--error-rate", "429=0.1", "--error-rate", "503=0.1",
                 "--stream-fault", "truncate=0.1", "--stream-fault", "disconnect=0.1",
                 "--stream-fault", "malformed=0.05", "--stream-fault", "stall=0.02",
                 "--stream-stall-seconds", "5")  # fmt: skip
TIMEOUT = 2.0


def _fixture(match: dict[str, str], content: str, **options: Any) -> dict[str, Any]:
    return {"match": match, "response": {"content": content}, "chunkSize": 8, **options}


AIMOCK_FIXTURES = {
    "fixtures": [
        # 10 ms between chunks: aimock cuts the stream with a destroy that would otherwise
        # discard the chunks still buffered, and the cut would look like a refused request.
        _fixture({"userMessage": "(long)"}, LONG_TEXT, truncateAfterChunks=4, latency=10),
        # aimock keeps Bedrock's model ID as it came in the URL path, percent-encoded.
        _fixture({"userMessage": "chaos question", "model": BEDROCK_ID.replace(":", "%3A")},
                 AIMOCK_TEXTS["bedrock"], chaos=AIMOCK_CHAOS),
        _fixture({"userMessage": "chaos question", "model": OLLAMA_ID}, AIMOCK_TEXTS["ollama"],
                 chaos=AIMOCK_CHAOS),
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """LLMock's URL and the aimock server, both with their faults on."""
    with running_llmock("--response-style", "static", "--tool-mode", "off", *LLMOCK_FAULTS) as url:
        fixtures = tmp_path_factory.mktemp("aimock") / "chaos.json"
        with running_aimock(fixtures, AIMOCK_FIXTURES) as aimock:
            yield url, aimock


def llmock_answer(url: str) -> str:
    """LLMock's complete answer to a chaos question, asked until no fault got in the way."""
    body = {"model": OPENROUTER_ID, "messages": [{"role": "user", "content": "chaos question"}]}
    for _ in range(50):
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=5,
                              headers={"Authorization": "Bearer sk-test-llmock"})  # fmt: skip
        if response.status_code == 200:
            choice = response.json()["choices"][0]
            assert choice["finish_reason"] == "stop"
            return str(choice["message"]["content"])
    raise AssertionError("llmock never answered without a fault")


def received(url: str, aimock: Any) -> tuple[list[Received], dict[str, int]]:
    """Every chat request the two servers journaled, and the faults they say they injected."""
    found, faults = [], {"llmock": 0, "aimock": 0}
    for record in httpx.get(f"{url}/_llmock/requests", timeout=5).json()["requests"]:
        if record["path"].endswith("/chat/completions"):
            body = json.dumps(record["body"]).encode()
            found.append(Received(record["started_at"], "openrouter", record["model"], body))
            faults["llmock"] += record["fault"] is not None
    for entry in aimock.get_journal():
        path, body = entry["path"], json.dumps(entry["body"]).encode()
        if path.startswith("/model/"):
            found.append(Received(entry["timestamp"], "bedrock", unquote(path.split("/")[2]), body))
        elif path == "/api/chat":
            found.append(Received(entry["timestamp"], "ollama", entry["body"]["model"], body))
        response = entry.get("response") or {}
        faults["aimock"] += bool(response.get("chaosAction") or response.get("interrupted"))
    return found, faults


def test_a_chaos_run_against_third_party_servers_loses_no_call(servers: tuple[str, Any]) -> None:
    """240 calls (120 sync from 8 threads, 120 async, 16 at a time), half streamed, over
    LLMock and aimock with their own faults on: no call lost, no untyped error, no truncated
    or spliced text as a success, and every request either server received is one of its
    call's attempts."""
    url, aimock = servers
    aimock.reset_journal()
    httpx.delete(f"{url}/_llmock/requests", timeout=5).raise_for_status()
    texts = {"openrouter": llmock_answer(url), **AIMOCK_TEXTS}
    assert OPENROUTER_ID in texts["openrouter"]  # LLMock's static style names the model
    httpx.delete(f"{url}/_llmock/requests", timeout=5).raise_for_status()

    def expected(provider: str, call: ChaosCall) -> str:
        return LONG_TEXT if call.tag and provider != "openrouter" else texts[provider]

    def providers() -> list[Any]:
        return [OpenRouterProvider(api_key="sk-test-llmock-0000000000", base_url=f"{url}/v1"),
                BedrockProvider(region="us-east-1", endpoint_url=aimock.url,
                                aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"),
                OllamaProvider(host=aimock.base_url)]  # fmt: skip

    sleeps = Sleeps()
    options = {"retries": no_sleep_policy(sleeps), "breaker": BreakerPolicy(failures=0)}
    long = lambda number: " (long)" if number % 8 == 3 else ""  # noqa: E731 (a stream in four)
    planned_sync = plan_calls(0, 120, models=(MODEL,), tag=long)
    planned_async = plan_calls(120, 120, models=(MODEL,), tag=long)
    started = time.perf_counter()
    with Client(providers=providers(), **options) as client:
        outcomes = run_sync(client, planned_sync, threads=8, timeout=TIMEOUT, limit=90)

    async def async_part() -> list[Any]:
        async with AsyncClient(providers=providers(), **options) as aclient:
            return await run_async(aclient, planned_async, concurrency=16, timeout=TIMEOUT,
                                   limit=90)  # fmt: skip

    outcomes += asyncio.run(async_part())
    elapsed = time.perf_counter() - started
    requests, faults = received(url, aimock)
    figures = tally(planned_sync + planned_async, outcomes, expected, requests, faults, elapsed,
                    ordered=False)  # fmt: skip
    print()
    print(figures.report("chaos run over LLMock (OpenRouter) and aimock (Bedrock, Ollama)"))
    print(f"  retry waits: {len(sleeps.waits)} (none slept), e.g. LLMock's Retry-After 1 s:"
          f" {sleeps.waits.count(1.0)}")  # fmt: skip

    assert figures.planned == 240
    assert figures.lost == 0
    assert figures.categories["untyped"] == 0
    assert figures.categories["wrong"] == 0
    assert figures.problems == []
    assert figures.unseen <= figures.failed_attempts["ProviderTimeoutError"]
    assert figures.categories["success"] > 0.7 * figures.planned
    # Their faults really were injected, and reached us as typed failed attempts.
    assert faults["llmock"] > 10
    assert faults["aimock"] > 10
    assert 0.2 <= figures.failure_rate <= 0.45
    assert {"RateLimitError", "ServerError", "ProviderConnectionError",
            "MalformedResponseError"} <= set(figures.failed_attempts)  # fmt: skip
    assert "StreamInterruptedError" in figures.typed
