"""llamaroute against raw httpx (raw boto3 for Bedrock) and its peers, on a loopback mock.

    python bench/run.py            # the full run (about 10 minutes on 2 cores); writes
                                   # bench/results/latest.md and latest.json, prints the table
    python bench/run.py --smoke    # every measurement, tiny counts: seconds (what CI runs)
    python bench/run.py --check    # also exit 1 when a budget line is missed

The mock server (``bench/mock_server.py``) runs in its own process. Clients are measured in
rounds, each round running every client in turn (the order rotates), so that drift of a noisy
machine hits them all alike; figures are medians over every round, with p99 beside them, and
each is given as a ratio to the raw baseline measured in the same run. The openai SDK, LiteLLM
and the ollama client are measured where they are installed (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PY = sys.executable

MODEL = "llama-3.2-3b"
OPENROUTER_ID = "meta-llama/llama-3.2-3b-instruct"
OLLAMA_TAG = "llama3.2:3b"
BEDROCK_ID = "us.meta.llama3-2-3b-instruct-v1:0"
PROMPT = "Why do llamas hum?"
MESSAGES = [{"role": "user", "content": PROMPT}]
KEY = "sk-or-bench-0000"
AWS = {"aws_access_key_id": "AKIDBENCH0000", "aws_secret_access_key": "bench-secret"}
CHUNKS = 50  # text chunks in each mock stream (bench/mock_server.py)
BURST_TIMEOUT = 120.0  # seconds for one client's async burst

# Peers must not reach the internet: LiteLLM fetches a price map at import and a tokenizer
# from a model hub on its first stream unless told to stay local.
CHILD_ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1",
             "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
# pip compiles an installed package's bytecode at install time, whatever
# PYTHONDONTWRITEBYTECODE says, so the peers and an installed llamaroute start from .pyc
# files. An editable checkout run with PYTHONDONTWRITEBYTECODE=1 would instead compile
# llamaroute from source in every fresh process (~80 ms, ~50 modules), which no installed user
# pays: the fresh processes here may use bytecode, and compile_llamaroute() writes it once.
CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.update(CHILD_ENV)


def compile_llamaroute() -> None:
    """Compile llamaroute's modules to bytecode, as ``pip install`` does, before any fresh
    process is timed (see CHILD_ENV)."""
    import compileall

    import llamaroute

    compileall.compile_dir(Path(llamaroute.__file__).parent, quiet=1)


@dataclass(frozen=True)
class Settings:
    rounds: int
    calls: int  # sync calls per client per round
    streams: int  # streams per client per round
    async_calls: int  # calls per client per round in the async throughput test
    concurrency: int
    imports: int  # fresh processes per import figure
    rss_calls: int
    workload_lines: int
    ceiling_requests: int
    peers: bool


FULL = Settings(rounds=10, calls=200, streams=30, async_calls=600, concurrency=100, imports=20,
                rss_calls=10_000, workload_lines=100_000, ceiling_requests=30_000,
                peers=True)  # fmt: skip
SMOKE = Settings(rounds=2, calls=10, streams=3, async_calls=100, concurrency=100, imports=2,
                 rss_calls=300, workload_lines=500, ceiling_requests=500, peers=False)  # fmt: skip


# --- statistics ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def rotated(items: list[Any], round_index: int) -> list[Any]:
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


# --- the mock server -------------------------------------------------------------------------


class Mock:
    """``bench/mock_server.py`` in its own process; ``cpu()`` is its CPU seconds so far."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [PY, str(HERE / "mock_server.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if line[:1] != ["listening"]:
            self.process.kill()
            raise SystemExit("the mock server did not start")
        self.url = f"http://127.0.0.1:{line[1]}"

    def cpu(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the clients -----------------------------------------------------------------------------


@dataclass
class Subject:
    """One client on one provider: a sync call, a stream of text pieces, an async call."""

    name: str
    chat: Callable[[], object]
    stream: Callable[[], Iterable[object]] | None = None
    achat: Callable[[], Awaitable[object]] | None = None
    close: list[Callable[[], object]] = field(default_factory=list)
    #: The share of each round's calls this client makes: LiteLLM is slow enough (5-50x)
    #: to take most of the run otherwise. Its rounds are still interleaved with the others.
    share: float = 1.0

    def count(self, calls: int) -> int:
        return max(1, round(calls * self.share))


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _once(factory: Callable[[], Any]) -> Callable[[], Any]:
    """``factory()`` on first call, the same object after (async clients are built in the
    event loop that uses them)."""
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(factory())
        return made[0]

    return get


def llamaroute_subject(
    name: str, make_providers: Callable[[], list[Any]], **options: Any
) -> Subject:
    import llamaroute

    client = llamaroute.Client(make_providers(), **options)
    aclient = _once(lambda: llamaroute.AsyncClient(make_providers(), **options))

    def stream() -> Iterable[object]:
        return client.stream(MODEL, PROMPT)

    async def achat() -> object:
        return await aclient().chat(MODEL, PROMPT)

    return Subject(name, partial(client.chat, MODEL, PROMPT), stream, achat, [client.close])


def openrouter_subjects(url: str, peers: bool) -> list[Subject]:
    import httpx

    base = f"{url}/api/v1"
    endpoint = f"{base}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": OPENROUTER_ID, "messages": MESSAGES, "usage": {"include": True}}
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    raw = httpx.Client()
    araw = _once(httpx.AsyncClient)

    def raw_chat() -> str:
        response = raw.post(endpoint, json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    def raw_stream() -> Iterator[str]:
        with raw.stream("POST", endpoint, json=stream_body, headers=headers) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                choices = json.loads(line[6:])["choices"]
                if choices and (piece := choices[0]["delta"].get("content")):
                    yield piece

    async def raw_achat() -> str:
        response = await araw().post(endpoint, json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    from llamaroute.providers import OpenRouterProvider

    subjects = [
        Subject("raw httpx", raw_chat, raw_stream, raw_achat, [raw.close]),
        llamaroute_subject("llamaroute", lambda: [OpenRouterProvider(api_key=KEY, base_url=base)]),
    ]
    if peers and _installed("openai"):
        import openai

        sdk = openai.OpenAI(api_key=KEY, base_url=base, max_retries=0)
        asdk = _once(lambda: openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0))
        create = partial(sdk.chat.completions.create, model=OPENROUTER_ID, messages=MESSAGES)

        async def openai_achat() -> object:
            return await asdk().chat.completions.create(model=OPENROUTER_ID, messages=MESSAGES)

        subjects.append(
            Subject(
                "openai SDK",
                create,
                partial(create, stream=True, stream_options={"include_usage": True}),
                openai_achat,
                [sdk.close],
            )
        )
    if peers and _installed("litellm"):
        subjects.append(litellm_subject(f"openrouter/{OPENROUTER_ID}", api_base=base, api_key=KEY))
    return subjects


def litellm_subject(model: str, **options: Any) -> Subject:
    import litellm

    litellm.telemetry = False
    call = partial(litellm.completion, model=model, messages=MESSAGES, **options)

    async def achat() -> object:
        return await litellm.acompletion(model=model, messages=MESSAGES, **options)

    return Subject("LiteLLM", call, partial(call, stream=True), achat, share=0.2)


def ollama_subjects(url: str, peers: bool) -> list[Subject]:
    import httpx

    endpoint = f"{url}/api/chat"
    body = {"model": OLLAMA_TAG, "messages": MESSAGES, "options": {"num_ctx": 2048}}
    raw = httpx.Client()
    araw = _once(httpx.AsyncClient)

    def raw_chat() -> str:
        response = raw.post(endpoint, json={**body, "stream": False})
        response.raise_for_status()
        return str(response.json()["message"]["content"])

    def raw_stream() -> Iterator[str]:
        with raw.stream("POST", endpoint, json={**body, "stream": True}) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    chunk = json.loads(line)
                    if piece := chunk["message"]["content"]:
                        yield piece
                    if chunk.get("done"):
                        break

    async def raw_achat() -> str:
        response = await araw().post(endpoint, json={**body, "stream": False})
        response.raise_for_status()
        return str(response.json()["message"]["content"])

    from llamaroute.providers import OllamaProvider

    subjects = [
        Subject("raw httpx", raw_chat, raw_stream, raw_achat, [raw.close]),
        llamaroute_subject("llamaroute", lambda: [OllamaProvider(url)]),
    ]
    if _installed("ollama"):  # a runtime dependency of llamaroute: always there
        import ollama

        client = ollama.Client(host=url)
        aclient = _once(lambda: ollama.AsyncClient(host=url))
        options = {"num_ctx": 2048}
        chat = partial(client.chat, model=OLLAMA_TAG, messages=MESSAGES, options=options)

        async def ollama_achat() -> object:
            return await aclient().chat(model=OLLAMA_TAG, messages=MESSAGES, options=options)

        subjects.append(
            Subject(
                "ollama client",
                chat,
                partial(chat, stream=True),
                ollama_achat,
                [client._client.close],
            )
        )
    if peers and _installed("litellm"):
        subjects.append(litellm_subject(f"ollama_chat/{OLLAMA_TAG}", api_base=url))
    return subjects


def bedrock_subjects(url: str, peers: bool) -> list[Subject]:
    import boto3
    from botocore.config import Config

    raw = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64), **AWS,
    )  # fmt: skip
    request = {"modelId": BEDROCK_ID, "messages": [{"role": "user", "content": [{"text": PROMPT}]}]}
    pool = ThreadPoolExecutor(64)

    def raw_chat() -> str:
        return str(raw.converse(**request)["output"]["message"]["content"][0]["text"])

    def raw_stream() -> Iterator[str]:
        for event in raw.converse_stream(**request)["stream"]:
            if "contentBlockDelta" in event:
                yield event["contentBlockDelta"]["delta"]["text"]

    async def raw_achat() -> str:
        # boto3 is synchronous: the async baseline is boto3 in a thread pool.
        return await asyncio.get_running_loop().run_in_executor(pool, raw_chat)

    from llamaroute.providers import BedrockProvider

    subjects = [
        Subject("raw boto3", raw_chat, raw_stream, raw_achat, [raw.close, pool.shutdown]),
        llamaroute_subject(
            "llamaroute",
            lambda: [BedrockProvider(region="us-east-1", endpoint_url=url, **AWS)],
        ),
    ]
    if peers and _installed("litellm"):
        subjects.append(litellm_subject(
            f"bedrock/converse/{BEDROCK_ID}", aws_bedrock_runtime_endpoint=url,
            aws_region_name="us-east-1", **AWS,
        ))  # fmt: skip
    return subjects


def router_subjects(url: str) -> list[Subject]:
    """The router's own cost, on OpenRouter: a direct call, a call whose first route (Ollama on
    a refused port) fails over once, and a call whose first route's breaker is open."""
    import httpx

    import llamaroute
    from llamaroute.providers import OllamaProvider, OpenRouterProvider

    base = f"{url}/api/v1"
    endpoint = f"{base}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": OPENROUTER_ID, "messages": MESSAGES, "usage": {"include": True}}
    raw = httpx.Client()

    def raw_chat() -> str:
        response = raw.post(endpoint, json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    def routed(**options: Any) -> llamaroute.Client:
        return llamaroute.Client(
            [OllamaProvider(refused_url()), OpenRouterProvider(api_key=KEY, base_url=base)],
            **options,
        )

    direct = llamaroute.Client([OpenRouterProvider(api_key=KEY, base_url=base)])
    # Breakers off: every call meets the refused port, then falls back.
    failover = routed(breaker=llamaroute.BreakerPolicy(failures=0))
    broken = routed(breaker=llamaroute.BreakerPolicy(failures=1, cooldown=3600))
    first = broken.chat(MODEL, PROMPT)  # opens the Ollama route's breaker
    assert first.provider == "openrouter", first.attempts
    assert len(first.attempts) == 2, first.attempts

    def check_failover() -> object:
        reply = failover.chat(MODEL, PROMPT)
        assert len(reply.attempts) == 2
        return reply

    return [
        Subject("raw httpx", raw_chat, close=[raw.close]),
        Subject("llamaroute", partial(direct.chat, MODEL, PROMPT), close=[direct.close]),
        Subject("failover once", check_failover, close=[failover.close]),
        Subject("breaker open", partial(broken.chat, MODEL, PROMPT), close=[broken.close]),
    ]


# --- in-process measurements -------------------------------------------------------------


def measure_sync(subjects: list[Subject], settings: Settings) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {s.name: [] for s in subjects}
    for subject in subjects:  # warm up: connections, caches, lazy imports
        for _ in range(3):
            subject.chat()
    clock = time.perf_counter
    for index in range(settings.rounds):
        for subject in rotated(subjects, index):
            out, chat = samples[subject.name], subject.chat
            for _ in range(subject.count(settings.calls)):
                started = clock()
                chat()
                out.append(clock() - started)
    return samples


def measure_streams(
    subjects: list[Subject], settings: Settings
) -> dict[str, dict[str, list[float]]]:
    """Per stream: time to the first chunk, and the time per chunk after it."""
    subjects = [s for s in subjects if s.stream is not None]
    samples = {s.name: {"first": [], "chunk": []} for s in subjects}

    def one(subject: Subject) -> tuple[float, float]:
        assert subject.stream is not None
        started = time.perf_counter()
        first, count = 0.0, 0
        for _ in subject.stream():
            if not count:
                first = time.perf_counter()
            count += 1
        ended = time.perf_counter()
        assert count >= CHUNKS, f"{subject.name}: {count} chunks"
        # Every client parses the same 50 text chunks (plus the stream's last frames).
        return first - started, (ended - first) / (CHUNKS - 1)

    for subject in subjects:
        for _ in range(2):
            one(subject)
    for index in range(settings.rounds):
        for subject in rotated(subjects, index):
            for _ in range(subject.count(settings.streams)):
                first, chunk = one(subject)
                samples[subject.name]["first"].append(first)
                samples[subject.name]["chunk"].append(chunk)
    return samples


def measure_async(
    subjects: list[Subject], settings: Settings, mock: Mock
) -> dict[str, dict[str, list[float]]]:
    """Calls per second with ``concurrency`` calls in flight, the latency of each call, and
    the mock's CPU share meanwhile. A client whose burst does not finish in time (LiteLLM's
    async client once stalled here) is dropped from this figure rather than hang the run."""
    subjects = [s for s in subjects if s.achat is not None]
    samples = {s.name: {"throughput": [], "latency": [], "mock_cpu": []} for s in subjects}

    async def burst(subject: Subject, total: int) -> tuple[float, list[float]]:
        assert subject.achat is not None
        achat, latencies = subject.achat, []
        left = total

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                await achat()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with asyncio.timeout(BURST_TIMEOUT):
            await asyncio.gather(*(worker() for _ in range(settings.concurrency)))
        return total / (time.perf_counter() - started), latencies

    async def main() -> None:
        for subject in subjects:  # warm up: connections, caches
            await burst(subject, min(settings.concurrency * 2, settings.async_calls))
        failed: set[str] = set()
        for index in range(settings.rounds):
            for subject in rotated(subjects, index):
                if subject.name in failed:
                    continue
                cpu, wall = mock.cpu(), time.perf_counter()
                calls = max(settings.concurrency, subject.count(settings.async_calls))
                try:
                    throughput, latencies = await burst(subject, calls)
                except TimeoutError:
                    log(f"  {subject.name}: async burst timed out; left out of this figure")
                    failed.add(subject.name)
                    del samples[subject.name]
                    continue
                share = (mock.cpu() - cpu) / (time.perf_counter() - wall)
                out = samples[subject.name]
                out["throughput"].append(throughput)
                out["latency"].extend(latencies)
                out["mock_cpu"].append(share)

    asyncio.run(main())
    return samples


def mock_ceiling(mock: Mock, settings: Settings) -> dict[str, float]:
    """The mock's throughput with the cheapest possible client: raw asyncio sockets, keep-alive,
    ``concurrency`` connections, a pre-rendered request, only the length header read."""
    host, port = mock.url.removeprefix("http://").split(":")
    payload = json.dumps({"model": OPENROUTER_ID, "messages": MESSAGES}).encode()
    request = (
        b"POST /api/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
        b"\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )

    async def main() -> float:
        left = settings.ceiling_requests

        async def connection() -> None:
            nonlocal left
            reader, writer = await asyncio.open_connection(host, int(port))
            while left > 0:
                left -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(settings.concurrency)))
        return settings.ceiling_requests / (time.perf_counter() - started)

    cpu, wall = mock.cpu(), time.perf_counter()
    try:
        import uvloop  # type: ignore[import-not-found]

        throughput = uvloop.run(main())
    except ImportError:
        throughput = asyncio.run(main())
    return {"throughput": throughput, "mock_cpu": (mock.cpu() - cpu) / (time.perf_counter() - wall)}


# --- fresh-process measurements ------------------------------------------------------------


#: CPU seconds (user + system) of each command ``_timed`` ran, by its arguments: on a shared
#: machine a child's CPU time is steadier than its wall time.
CHILD_CPU: dict[tuple[str, ...], list[float]] = {}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(args: list[str]) -> float:
    cpu = _child_cpu()
    started = time.perf_counter()
    done = subprocess.run(args, env=CHILD_ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{done.stderr[-2000:]}")
    CHILD_CPU.setdefault(tuple(args), []).append(_child_cpu() - cpu)
    return elapsed


def measure_processes(
    commands: dict[str, list[str]], rounds: int, *, fewer: dict[str, int] | None = None
) -> dict[str, list[float]]:
    """Wall time of fresh processes, interleaved in rounds, minus the bare interpreter's median
    of the same run. ``fewer`` caps the runs of slow commands (LiteLLM)."""
    bare: list[float] = []
    samples: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for index in range(rounds):
        bare.append(_timed([PY, "-c", "pass"]))
        for name in rotated(names, index):
            if fewer and index >= fewer.get(name, rounds):
                continue
            samples[name].append(_timed(commands[name]))
    floor = median(bare)
    return {"bare interpreter": bare} | {
        name: [max(0.0, value - floor) for value in values] for name, values in samples.items()
    }


def cold_start_code(subject: str, url: str) -> str:
    base = f"{url}/api/v1"
    if subject == "raw httpx":
        return (
            "import httpx\n"
            "with httpx.Client() as c:\n"
            f"    r = c.post('{base}/chat/completions', json={{'model': '{OPENROUTER_ID}', "
            f"'messages': {MESSAGES!r}}}, headers={{'Authorization': 'Bearer {KEY}'}})\n"
            "    print(r.json()['choices'][0]['message']['content'])\n"
        )
    if subject == "llamaroute":
        return (
            "import llamaroute\n"
            "from llamaroute.providers import OpenRouterProvider\n"
            f"p = OpenRouterProvider(api_key='{KEY}', base_url='{base}')\n"
            "with llamaroute.Client([p]) as c:\n"
            f"    print(c.chat('{MODEL}', '{PROMPT}').text)\n"
        )
    if subject == "openai SDK":
        return (
            "import openai\n"
            f"c = openai.OpenAI(api_key='{KEY}', base_url='{base}', max_retries=0)\n"
            f"r = c.chat.completions.create(model='{OPENROUTER_ID}', messages={MESSAGES!r})\n"
            "print(r.choices[0].message.content)\n"
        )
    if subject == "LiteLLM":
        return (
            "import litellm\n"
            f"r = litellm.completion(model='openrouter/{OPENROUTER_ID}', messages={MESSAGES!r}, "
            f"api_base='{base}', api_key='{KEY}')\n"
            "print(r.choices[0].message.content)\n"
        )
    raise ValueError(subject)


def rss_child(subject: str, url: str, calls: int) -> None:
    """Run in a fresh process: RSS after import and set-up, after 1,000 and after all calls."""

    def rss() -> dict[str, float]:
        status = Path("/proc/self/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines())
        return {key: int(values[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}

    if subject == "raw httpx":
        import httpx

        client = httpx.Client()
        endpoint = f"{url}/api/v1/chat/completions"
        body = {"model": OPENROUTER_ID, "messages": MESSAGES}

        def call() -> None:
            client.post(endpoint, json=body).json()["choices"][0]["message"]["content"]

    else:
        import llamaroute
        from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider

        kind, _, mode = subject.partition(" ")
        provider = {
            "openrouter": lambda: OpenRouterProvider(api_key=KEY, base_url=f"{url}/api/v1"),
            "ollama": lambda: OllamaProvider(url),
            "bedrock": lambda: BedrockProvider(region="us-east-1", endpoint_url=url, **AWS),
        }[kind]()
        lclient = llamaroute.Client([provider])

        def call() -> None:
            if mode == "stream":
                with lclient.stream(MODEL, PROMPT) as stream:
                    for _ in stream:
                        pass
            else:
                lclient.chat(MODEL, PROMPT)

    call()
    points = {"after import": rss()}
    for done in range(1, calls):
        call()
        if done + 1 == min(1000, calls // 10):
            points["after 1,000 calls" if calls >= 10_000 else f"after {done + 1} calls"] = rss()
    points[f"after {calls:,} calls"] = rss()
    print(json.dumps(points))


def measure_rss(url: str, settings: Settings) -> dict[str, dict[str, dict[str, float]]]:
    subjects = ["raw httpx", "openrouter chat", "openrouter stream", "ollama chat",
                "bedrock chat"]  # fmt: skip
    out = {}
    for subject in subjects:
        done = subprocess.run(
            [PY, __file__, "--rss-child", subject, "--url", url, "--calls",
             str(settings.rss_calls)],
            env=CHILD_ENV, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"RSS child {subject} failed:\n{done.stderr[-2000:]}")
        out[subject] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def write_workload(path: Path, lines: int) -> None:
    words = ["llama", "alpaca", "camelid", "wool", "Andes", "herd", "hum", "spit", "pack",
             "animal", "guanaco", "vicuña", "mountain", "grass", "cria", "fleece"]  # fmt: skip
    with path.open("w", encoding="utf-8") as out:
        for index in range(lines):
            text = " ".join(words[(index * 7 + k) % len(words)] for k in range(8 + index % 60))
            if index % 3 == 0:
                line: dict[str, Any] = {"prompt": text, "max_tokens": 100 + index % 400}
            elif index % 3 == 1:
                line = {"messages": [{"role": "user", "content": text},
                                     {"role": "assistant", "content": text[:40]},
                                     {"role": "user", "content": "And then?"}],
                        "expected_output_tokens": 80}  # fmt: skip
            else:
                line = {"prompt": text, "system": "Answer briefly.", "id": f"r{index}"}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _has_exact_tokenizer() -> bool:
    done = subprocess.run([PY, "-c", "import quicktok; quicktok.get_encoding('llama3')"],
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def workload_command(path: Path, counter: str) -> list[str]:
    return [PY, "-m", "llamaroute", "estimate", "--model", MODEL, "--workload", str(path),
            "--json", "--counter", counter]  # fmt: skip


def measure_workload(settings: Settings, rounds: int) -> dict[str, list[float]]:
    """``llamaroute estimate --workload`` on a generated JSONL file, with the heuristic token
    counter (a default install's) and the exact tokenizer (quicktok-v1, where installed),
    against the floor of reading the same file with ``json.loads`` per line (all in fresh
    processes, start-up included)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "workload.jsonl"
        write_workload(path, settings.workload_lines)
        commands = {
            "json.loads per line": [PY, "-c", "import json, sys\n"
                                    "for line in open(sys.argv[1], 'rb'): json.loads(line)",
                                    str(path)],
            "llamaroute": workload_command(path, "heuristic"),
        }  # fmt: skip
        if _has_exact_tokenizer():
            commands["exact tokenizer"] = workload_command(path, "exact")
        times = measure_processes(commands, rounds)
    found = {name: [settings.workload_lines / t for t in values if t > 0]
             for name, values in times.items() if name != "bare interpreter"}  # fmt: skip
    # Lines per CPU-second of the process, less a bare interpreter's CPU (as for wall time).
    bare = median(CHILD_CPU.get((PY, "-c", "pass"), [0.0]))
    for name, args in commands.items():
        found[f"{name} (CPU)"] = [settings.workload_lines / (t - bare)
                                  for t in CHILD_CPU.get(tuple(args), []) if t > bare]  # fmt: skip
    return found


# The peak from /proc (VmHWM, kB): getrusage's ru_maxrss would carry the parent's peak over
# the fork into the child.
_PEAK_RSS = (
    "import runpy, sys\n"
    "sys.argv = ['llamaroute', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('llamaroute', run_name='__main__')\n"
    "finally:\n"
    "    status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
    "    print(int(status.split()[0]), file=sys.stderr)\n"
)


def measure_workload_memory(settings: Settings) -> dict[str, dict[str, float]]:
    """Peak RSS (MiB) of ``estimate --workload`` (heuristic counter) on N and 10 N lines, flat
    if the file's size does not show; and on 10 N lines, its lines/s against ``json.loads``
    per line (one fresh process each, start-up included: at 10 N it weighs less)."""
    rss: dict[str, float] = {}
    speed: dict[str, float] = {}
    loads = "import json, sys\nfor line in open(sys.argv[1], 'rb'): json.loads(line)"
    with tempfile.TemporaryDirectory() as scratch:
        for lines in (settings.workload_lines, 10 * settings.workload_lines):
            path = Path(scratch) / f"workload-{lines}.jsonl"
            write_workload(path, lines)
            args = [PY, "-c", _PEAK_RSS, *workload_command(path, "heuristic")[3:]]
            started = time.perf_counter()
            done = subprocess.run(args, env=CHILD_ENV, capture_output=True, text=True,
                                  check=False)  # fmt: skip
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"estimate --workload failed:\n{done.stderr[-2000:]}")
            rss[f"{lines:,} lines"] = int(done.stderr.strip().splitlines()[-1]) / 1024
            if lines > settings.workload_lines:
                speed["llamaroute"] = lines / elapsed
                speed["json.loads per line"] = lines / _timed([PY, "-c", loads, str(path)])
            path.unlink()
    return {"rss": rss, "lines_per_s": speed}


# --- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure for the baseline, llamaroute and the peers."""

    figure: str
    unit: str  # "ms", "us", "calls/s", "MiB", ...
    values: dict[str, dict[str, float]]  # subject -> {"median": .., "p99": ..}
    baseline: str
    higher_is_better: bool = False
    budget: str = ""
    budget_ok: bool | None = None
    note: str = ""
    has_ratio: bool = True

    def ratio(self, subject: str) -> float | None:
        if not self.has_ratio:
            return None
        base = self.values.get(self.baseline, {}).get("median")
        value = self.values.get(subject, {}).get("median")
        if base is None or value is None or base == 0:
            return None
        return value / base


def stats(values: list[float], scale: float = 1.0) -> dict[str, float]:
    return {"median": median(values) * scale, "p99": p99(values) * scale, "n": len(values)}


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit in ("calls/s", "lines/s", "req/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.{1 if value >= 10 else 2}f} {unit}"


PEERS = ("openai SDK", "LiteLLM", "ollama client")


def cell(row: Row, subject: str, *, with_p99: bool) -> str:
    entry = row.values.get(subject)
    if entry is None:
        return "—"
    text = fmt(entry["median"], row.unit)
    if with_p99 and "p99" in entry and entry.get("n", 0) > 1:
        text += f" (p99 {fmt(entry['p99'], row.unit).split()[0]})"
    return text


def table(rows: list[Row]) -> str:
    peers = [p for p in PEERS if any(p in row.values for row in rows)]
    head = ["figure", "baseline", "llamaroute", "ratio", "budget", *peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ratio = row.ratio("llamaroute")
        verdict = "" if row.budget_ok is None else (" ✓" if row.budget_ok else " ✗")
        cells = [
            row.figure,
            f"{row.baseline}: {cell(row, row.baseline, with_p99=True)}",
            cell(row, "llamaroute", with_p99=True),
            "—" if ratio is None else f"{ratio:.2f}x",
            (row.budget + verdict) or "",
        ]
        for peer in peers:
            value, peer_ratio = cell(row, peer, with_p99=False), row.ratio(peer)
            cells.append(value if peer_ratio is None or value == "—"
                         else f"{value} ({peer_ratio:.2f}x)")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rss_rows(rss: dict[str, dict[str, dict[str, float]]], settings: Settings) -> list[Row]:
    """Peak RSS after import (and one call) and after all calls, raw httpx against llamaroute
    on OpenRouter; then the growth from the 1,000th call on, for every llamaroute client."""
    base, ours = rss["raw httpx"], rss["openrouter chat"]
    first, last = next(iter(base)), list(base)[-1]
    growth = {subject: list(points.values())[-1]["VmRSS"] - list(points.values())[1]["VmRSS"]
              for subject, points in rss.items()}  # fmt: skip
    worst = max(value for subject, value in growth.items() if subject != "raw httpx")
    flat = Row(
        f"RSS growth from call {list(base)[1].split()[1]} to {settings.rss_calls:,} "
        "(worst llamaroute client)", "MiB",
        {"raw httpx": {"median": growth["raw httpx"]}, "llamaroute": {"median": worst}},
        "raw httpx", budget="flat (< 1 MiB)", has_ratio=False,
        note=", ".join(f"{subject} {value:+.2f} MiB" for subject, value in growth.items()),
    )  # fmt: skip
    flat.budget_ok = worst < 1.0
    return [
        Row("peak RSS after import and one call (OpenRouter)", "MiB",
            {"raw httpx": {"median": base[first]["VmHWM"]},
             "llamaroute": {"median": ours[first]["VmHWM"]}}, "raw httpx"),
        Row(f"peak RSS {last} (OpenRouter)", "MiB",
            {"raw httpx": {"median": base[last]["VmHWM"]},
             "llamaroute": {"median": ours[last]["VmHWM"]}}, "raw httpx"),
        flat,
    ]  # fmt: skip


def sync_rows(provider: str, baseline: str, sync: dict[str, list[float]],
              streams: dict[str, dict[str, list[float]]],
              aio: dict[str, dict[str, list[float]]], concurrency: int) -> list[Row]:  # fmt: skip
    rows = [
        Row(f"{provider}: sync chat, per call", "µs",
            {k: stats(v, 1e6) for k, v in sync.items()}, baseline, budget="≤ 1.25x"),
        Row(f"{provider}: async chat, {concurrency} concurrent", "calls/s",
            {k: stats(v["throughput"]) for k, v in aio.items()}, baseline,
            higher_is_better=True, budget="≥ 0.9x"),
        Row(f"{provider}: stream, per chunk", "µs",
            {k: stats(v["chunk"], 1e6) for k, v in streams.items()}, baseline, budget="≤ 1.5x"),
        Row(f"{provider}: stream, time to first chunk", "µs",
            {k: stats(v["first"], 1e6) for k, v in streams.items()}, baseline),
    ]  # fmt: skip
    for row, limit in zip(rows[:3], (1.25, 0.9, 1.5), strict=True):
        ratio = row.ratio("llamaroute")
        if ratio is not None:
            row.budget_ok = ratio >= limit if row.higher_is_better else ratio <= limit
    if provider == "Ollama" and "ollama client" in sync:
        # Issue 22's decision: llamaroute is built on the ollama client by design, so its
        # per-call and per-chunk budget is 1.25x that client (the layer under it), not raw httpx.
        for row in (rows[0], rows[2]):
            ours = row.values.get("llamaroute", {}).get("median")
            theirs = row.values.get("ollama client", {}).get("median")
            if ours is not None and theirs:
                row.budget = f"≤ 1.25x the ollama client ({ours / theirs:.2f}x)"
                row.budget_ok = ours / theirs <= 1.25
    return rows


# --- main ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("llamaroute", "httpx", "pydantic", "ollama", "boto3", "openai", "litellm"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "packages": versions}  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(settings: Settings, smoke: bool) -> tuple[list[Row], dict[str, Any]]:
    raw: dict[str, Any] = {}
    rows: list[Row] = []
    mock = Mock()
    try:
        log(f"mock server at {mock.url}")
        peers_import = {"openai SDK": "openai", "LiteLLM": "litellm"}
        peers = [name for name, mod in peers_import.items() if settings.peers and _installed(mod)]

        log("import time (fresh processes)")
        commands = {"raw httpx": [PY, "-c", "import httpx"],
                    "ollama client": [PY, "-c", "import ollama"],
                    "llamaroute": [PY, "-c", "import llamaroute"]}  # fmt: skip
        commands |= {name: [PY, "-c", f"import {peers_import[name]}"] for name in peers}
        imports = measure_processes(commands, settings.imports, fewer={"LiteLLM": 5})
        raw["import"] = imports
        row = Row("import (minus bare interpreter)", "ms",
                  {k: stats(v, 1e3) for k, v in imports.items()}, "raw httpx",
                  budget="≤ import ollama")  # fmt: skip
        row.budget_ok = median(imports["llamaroute"]) <= median(imports["ollama client"])
        rows.append(row)

        log("cold start to the first response (fresh processes)")
        cold = {name: [PY, "-c", cold_start_code(name, mock.url)]
                for name in ("raw httpx", "llamaroute", *peers)}  # fmt: skip
        colds = measure_processes(cold, max(2, settings.imports // 2), fewer={"LiteLLM": 3})
        raw["cold_start"] = colds
        rows.append(Row("cold start to first response (minus bare interpreter)", "ms",
                        {k: stats(v, 1e3) for k, v in colds.items() if k != "bare interpreter"},
                        "raw httpx"))  # fmt: skip

        for provider, baseline, build in (
            ("OpenRouter", "raw httpx", openrouter_subjects),
            ("Ollama", "raw httpx", ollama_subjects),
            ("Bedrock", "raw boto3", bedrock_subjects),
        ):
            log(f"{provider}: sync, stream, async")
            subjects = build(mock.url, settings.peers)
            sync = measure_sync(subjects, settings)
            streams = measure_streams(subjects, settings)
            aio = measure_async(subjects, settings, mock)
            for subject in subjects:
                for close in subject.close:
                    close()
            raw[provider] = {"sync": sync, "stream": streams, "async": aio}
            rows += sync_rows(provider, baseline, sync, streams, aio, settings.concurrency)

        log("the router's own cost")
        subjects = router_subjects(mock.url)
        router = measure_sync(subjects, settings)
        for subject in subjects:
            for close in subject.close:
                close()
        raw["router"] = router
        direct = median(router["llamaroute"])
        for name, figure, budget in (
            ("failover once", "fails over once (first route: a refused port)", "< 5 ms added"),
            ("breaker open", "first route's breaker open", ""),
        ):
            added = (median(router[name]) - direct) * 1e3
            values = {"raw httpx": stats(router["raw httpx"], 1e6),
                      "llamaroute": stats(router[name], 1e6)}  # fmt: skip
            row = Row(
                f"router: sync chat that {figure}",
                "µs",
                values,
                "raw httpx",
                budget=budget,
                note=f"{added:+.3f} ms over a direct llamaroute call",
            )
            if budget:
                row.budget_ok = added < 5
            rows.append(row)

        rows += surface_rows(mock, settings, raw)

        log("mock ceiling")
        ceiling = mock_ceiling(mock, settings)
        raw["mock_ceiling"] = ceiling

        log(f"RSS over {settings.rss_calls:,} calls (fresh processes)")
        rss = measure_rss(mock.url, settings)
        raw["rss"] = rss
        rows += rss_rows(rss, settings)
        raw["rss_flat"] = rows[-1].budget_ok

        log("estimate --workload throughput and memory (fresh processes)")
        rows += workload_rows(settings, smoke, raw)
    finally:
        mock.stop()
    return rows, raw


def workload_rows(settings: Settings, smoke: bool, raw: dict[str, Any]) -> list[Row]:
    workload = measure_workload(settings, 2 if smoke else 5)
    raw["workload"] = workload

    def cpu(name: str) -> str:
        return f"{median(workload[name + ' (CPU)']):,.0f} lines per CPU-second"

    rows = [Row(f"`llamaroute estimate --workload`, {settings.workload_lines:,} lines "
                "(heuristic token counter)", "lines/s",
                {k: stats(workload[k]) for k in ("json.loads per line", "llamaroute")},
                "json.loads per line", higher_is_better=True, budget="≥ 100k lines/s",
                note=f"{cpu('llamaroute')} (json.loads per line: "
                     f"{cpu('json.loads per line')}), start-up included, less a bare "
                     "interpreter's")]  # fmt: skip
    rows[0].budget_ok = median(workload["llamaroute"]) >= 100_000
    if "exact tokenizer" in workload:
        rows.append(Row(f"`llamaroute estimate --workload`, {settings.workload_lines:,} lines "
                        "(exact tokenizer, quicktok-v1)", "lines/s",
                        {"json.loads per line": stats(workload["json.loads per line"]),
                         "llamaroute": stats(workload["exact tokenizer"])},
                        "json.loads per line", higher_is_better=True,
                        note=f"{cpu('exact tokenizer')}, start-up included"))  # fmt: skip
    memory = measure_workload_memory(settings)
    raw["workload_memory"] = memory
    (small, low), (large, high) = memory["rss"].items()
    rows.append(Row(f"`llamaroute estimate --workload`, {large} (heuristic token counter, "
                    "one run)", "lines/s",
                    {k: {"median": v} for k, v in memory["lines_per_s"].items()},
                    "json.loads per line", higher_is_better=True))  # fmt: skip
    row = Row(f"`estimate --workload` peak RSS: {small} (baseline) vs {large}", "MiB",
              {small: {"median": low}, "llamaroute": {"median": high}}, small,
              budget="flat (< 5 MiB more)",
              note=f"{high - low:+.1f} MiB for 10x the lines")  # fmt: skip
    row.budget_ok = high - low < 5
    return [*rows, row]


def surface_rows(mock: Mock, settings: Settings, raw: dict[str, Any]) -> list[Row]:
    """Tool calls, structured output and the tool loop against raw httpx and the openai SDK;
    the Redis state backend against the in-memory state (``bench/surfaces.py``)."""
    sys.path.insert(0, str(HERE))
    import surfaces

    this = sys.modules[__name__]
    rows: list[Row] = []
    for kind, figure in (
        ("tool call", "OpenRouter: chat with tools=, per call"),
        ("structured", "OpenRouter: structured output (response_format=Model), per call"),
        ("tool loop", "OpenRouter: client.run tool loop (2 requests), per run"),
    ):
        log(f"{figure}")
        subjects = surfaces.tool_subjects(this, mock.url, settings.peers, kind)
        try:
            samples = measure_sync(subjects, settings)
        finally:
            for subject in subjects:
                for close in subject.close:
                    close()
        raw[f"surface: {kind}"] = samples
        rows.append(Row(figure, "µs", {k: stats(v, 1e6) for k, v in samples.items()},
                        "raw httpx"))  # fmt: skip
    if not surfaces.redis_answers():
        log("Redis state: no Redis on 127.0.0.1:6379, left out")
        return rows
    log("Redis state: per call, against the in-memory state")
    subjects, cleanup = surfaces.redis_subjects(this, mock.url)
    try:
        samples = measure_sync(subjects, settings)
        trips = surfaces.redis_round_trips(subjects[1])
    finally:
        for subject in subjects:
            for close in subject.close:
                close()
        cleanup()
    raw["redis_state"] = {"samples": samples, "round_trips_per_call": trips}
    added = (median(samples["llamaroute"]) - median(samples["in-memory state"])) * 1e6
    row = Row("OpenRouter: sync chat with `state=\"redis://...\"`, per call", "µs",
              {k: stats(v, 1e6) for k, v in samples.items()}, "in-memory state",
              budget="≤ 1 Redis round trip",
              note=f"{added:+,.0f} µs per call over the in-memory state; "
                   f"{trips:g} Redis round trip(s) per call")  # fmt: skip
    row.budget_ok = trips <= 1
    return [*rows, row]


def render(rows: list[Row], raw: dict[str, Any], settings: Settings, smoke: bool,
           seconds: float) -> str:  # fmt: skip
    ceiling = raw["mock_ceiling"]
    httpx_async = raw["OpenRouter"]["async"]["raw httpx"]
    notes = [f"- {row.figure}: {row.note}" for row in rows if row.note]
    info = machine()
    budget = [row for row in rows if row.budget_ok is not None]  # RSS growth is one of them
    met = sum(1 for row in budget if row.budget_ok)
    return "\n".join([
        table(rows),
        "",
        f"Budget lines met: {met} of {len(budget)}"
        + "".join(f"; missed: {row.figure}" for row in budget if not row.budget_ok) + ".",
        "",
        *notes,
        f"- mock ceiling: {ceiling['throughput']:,.0f} req/s with raw sockets "
        f"({settings.concurrency} connections; the mock used {ceiling['mock_cpu']:.0%} of a "
        f"core); raw httpx at {settings.concurrency} concurrent reached "
        f"{median(httpx_async['throughput']):,.0f} calls/s while the mock used "
        f"{median(httpx_async['mock_cpu']):.0%} of a core: the mock is not the bottleneck.",
        "",
        "- the gateway (`llamaroute serve`) against LiteLLM's proxy is a bench of its own, "
        "`python bench/gateway.py` (wrk at 10 and 100 connections; its figures are in "
        "bench/README.md).",
        "",
        f"{'Smoke run (tiny counts: figures are not meaningful)' if smoke else 'Full run'}: "
        f"{settings.rounds} interleaved rounds of {settings.calls} calls, {settings.streams} "
        f"streams of {CHUNKS} chunks and {settings.async_calls} async calls per client; "
        f"{settings.imports} fresh processes per import figure. Medians (p99); ratio = "
        "llamaroute / baseline of the same run (for calls/s and lines/s, higher is better). "
        f"Python {info['python']}, {info['cores']} cores ({info['cpu']}), "
        f"{datetime.now(UTC):%Y-%m-%d}, {seconds / 60:.1f} min.",
    ])  # fmt: skip


def _rounded(value: Any) -> Any:
    """Samples to 4 significant digits (the noise is larger), recursively."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def dump_json(payload: dict[str, Any]) -> str:
    """The results as JSON: one line per top-level key, samples rounded (a few hundred KB
    rather than megabytes, as they are committed)."""
    lines = [f" {json.dumps(key)}: {json.dumps(_rounded(value), default=str)}"
             for key, value in payload.items()]  # fmt: skip
    return "{\n" + ",\n".join(lines) + "\n}"


README = HERE.parent / "README.md"
START = "<!-- bench/run.py --readme: from here -->"
END = "<!-- bench/run.py --readme: to here -->"


def rewrite_readme(text: str, report: str) -> str:
    """``text`` (the README) with what lies between the two markers replaced by ``report``;
    everything else kept byte for byte. Raises ``ValueError`` unless each marker is there
    once, in order."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the README needs the markers {START!r} and {END!r}, once each")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{report.strip()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, seconds (for CI)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--no-peers", action="store_true", help="skip the openai SDK, LiteLLM")
    parser.add_argument("--out", type=Path, help="where to write latest.md/latest.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget line is missed")
    parser.add_argument("--readme", nargs="?", const=README, type=Path, metavar="PATH",
                        help="rewrite the README's Performance table (between its markers) "
                        "with this run's")  # fmt: skip
    parser.add_argument(
        "--sync-calls", type=int, help="override the sync calls per client per round"
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.url, args.calls)
        return 0
    settings = SMOKE if args.smoke else FULL
    if args.rounds:
        settings = Settings(**{**settings.__dict__, "rounds": args.rounds})
    if args.sync_calls:
        settings = Settings(**{**settings.__dict__, "calls": args.sync_calls})
    if args.no_peers:
        settings = Settings(**{**settings.__dict__, "peers": False})
    compile_llamaroute()
    started = time.perf_counter()
    rows, raw = run(settings, args.smoke)
    report = render(rows, raw, settings, args.smoke, time.perf_counter() - started)
    scratch = tempfile.TemporaryDirectory(prefix="llamaroute-bench-")
    # The smoke run's files go to a scratch directory (it only checks that they are written).
    out = args.out or (Path(scratch.name) if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(report + "\n", encoding="utf-8")
    payload = {"settings": settings.__dict__, "smoke": args.smoke, "machine": machine(),
               "rows": [row.__dict__ | {"ratio": row.ratio("llamaroute")} for row in rows],
               "samples": raw}  # fmt: skip
    (out / "latest.json").write_text(dump_json(payload) + "\n")
    print(report)
    log(f"wrote {out / 'latest.md'} and {out / 'latest.json'}")
    if args.readme:
        args.readme.write_text(rewrite_readme(args.readme.read_text(encoding="utf-8"), report),
                               encoding="utf-8")  # fmt: skip
        log(f"rewrote the Performance table in {args.readme}")
    scratch.cleanup()
    missed = [row.figure for row in rows if row.budget_ok is False]
    if not raw["rss_flat"]:
        missed.append("RSS flat")
    if args.check and missed:
        log("budget missed: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
