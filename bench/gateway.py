"""The gateway's cost: its added latency over a direct ``AsyncClient`` call to the same mock
(p50, sequential, low load) and its throughput (req/s) under 10 and 100 connections, side by
side with LiteLLM's proxy on the same mock, with the same uvicorn worker count, in one run.

    python bench/gateway.py [--requests 2000] [--seconds 10] [--workers 1] [--pool N]
                            [--litellm PATH | --no-litellm]

Starts ``bench/mock_server.py`` (the loopback OpenRouter mock) and ``llamaroute serve`` (one
uvicorn worker unless told), each in its own process. First the upstream call's own CPU in
this process (``getrusage``: raw httpx and a direct ``AsyncClient``, 1 and 10 at a time: the
floor of the gateway's CPU per request). Latency: N sequential calls each way after a warm-up
(on uvloop when installed, as the gateway runs), plus raw httpx straight to the mock (one HTTP
hop); then the p50 of ``wrk -t1 -c1`` (a C client that costs next to nothing, so that its
difference to the direct call is the gateway's own), with the gateway's CPU per request
(``/proc/<pid>/stat`` over the run / wrk's count: the figure the machine's other load changes
least). Throughput:
``wrk`` (Debian's package) with a Lua script for the POST body, when installed; else 100
concurrent httpx requests from this process (then the load generator is the limit). Both with
the master key (no budget) and with a virtual key that has a budget and a rate (the SQLite
reservation on every request).

LiteLLM: ``litellm --config <yaml> --port P --num_workers W`` with an ``openai/`` model whose
``api_base`` is the same mock; found as ``--litellm``, else ``litellm`` beside this Python or on
PATH (``pip install 'litellm[proxy]==1.110.2'``, the bench extra); skipped, saying so, when
absent. Then wrk, with the same Lua POST script, hits the raw mock, the gateway and LiteLLM's
proxy at 10 and 100 connections, interleaved, and the table gives req/s and wrk's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from llamaroute import AsyncClient
from llamaroute.providers import OpenRouterProvider
from llamaroute.server import Store

HERE = Path(__file__).resolve().parent
MASTER = "bench-master-placeholder"
PLACEHOLDER_KEY = "placeholder-not-a-key"
T = TypeVar("T")
BODY = {"model": "llama-3.2-3b", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Tell me about llamas."}]}  # fmt: skip


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mock() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen([sys.executable, str(HERE / "mock_server.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().split()
    return process, int(line[-1])


def _wait(url: str, what: str, tries: int = 600) -> None:
    for _ in range(tries):
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def _gateway(
    mock_port: int, db: str, workers: int, pool: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    config = []
    if pool is not None:
        # The provider's HTTP pool: calls in flight at once and idle connections kept.
        config = ["--config", str(Path(db).with_suffix(".toml"))]
        Path(config[1]).write_text(
            f'[providers.openrouter]\nbase_url = "http://127.0.0.1:{mock_port}/api/v1"\n'
            f"max_connections = {pool}\nmax_keepalive_connections = {pool}\n"
        )
    env = {**os.environ, "OPENROUTER_API_KEY": PLACEHOLDER_KEY, "LLAMAROUTE_MASTER_KEY": MASTER,
           "OPENROUTER_BASE_URL": f"http://127.0.0.1:{mock_port}/api/v1"}  # fmt: skip
    env.pop("OLLAMA_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "llamaroute", "serve", "--port", str(port), "--db", db,
         "--workers", str(workers), "--log-level", "warning", *config],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait(f"{url}/healthz", "the gateway")
    return process, url


def _litellm_binary(given: str | None) -> str | None:
    if given:
        return given
    beside = Path(sys.executable).with_name("litellm")
    return str(beside) if beside.exists() else shutil.which("litellm")


def _litellm(
    binary: str, mock_port: int, folder: str, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    """LiteLLM's proxy forwarding an ``openai/`` model to the same mock, its master key the
    bench's (LiteLLM wants it to start with ``sk-``)."""
    port = _port()
    config = Path(folder) / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: llama-3.2-3b\n    litellm_params:\n"
        "      model: openai/meta-llama/llama-3.2-3b-instruct\n"
        f"      api_base: http://127.0.0.1:{mock_port}/api/v1\n"
        f"      api_key: {PLACEHOLDER_KEY}\n"
        f"general_settings:\n  master_key: sk-{MASTER}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LITELLM"))}
    process = subprocess.Popen(
        [binary, "--config", str(config), "--port", str(port), "--num_workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait(f"{url}/health/liveliness", "LiteLLM's proxy")
    return process, url


async def _direct(mock_port: int, n: int) -> list[float]:
    provider = OpenRouterProvider(PLACEHOLDER_KEY, base_url=f"http://127.0.0.1:{mock_port}/api/v1")
    async with AsyncClient(providers=[provider]) as client:
        times = []
        for i in range(n + 200):
            start = time.perf_counter()
            await client.chat(BODY["model"], messages=BODY["messages"], max_tokens=64)
            if i >= 200:
                times.append(time.perf_counter() - start)
    return times


async def _http(url: str, key: str, n: int) -> list[float]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
        times = []
        for i in range(n + 200):
            start = time.perf_counter()
            response = await http.post(url, json=BODY)
            response.read()
            if i >= 200:
                times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    return times


def _wrk(
    url: str, key: str, seconds: int, connections: int = 100
) -> tuple[float, float, int] | None:
    """wrk's req/s, p50 (ms) and request count for POST ``url`` (the full endpoint), or
    ``None`` without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n'
                     f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
                     'wrk.headers["Content-Type"] = "application/json"\n'
                     f'wrk.headers["Authorization"] = "Bearer {key}"\n')  # fmt: skip
    threads = min(2, connections)
    requests = 0
    try:
        out = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-s", script.name, url], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    for line in out.splitlines():
        if "Non-2xx" in line or "Socket errors" in line:  # timeouts: wrk's 2 s per request
            print(f"  ({url}: {line.strip()})")
    rate = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1])
    requests = int(next(line for line in out.splitlines() if "requests in" in line).split()[0])
    p50 = next(line for line in out.splitlines() if line.strip().startswith("50%")).split()[-1]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    unit = p50.lstrip("0123456789.")
    return rate, float(p50[: -len(unit)]) * scale[unit], requests


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _concurrent(url: str, key: str, seconds: int) -> float:
    done = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, limits=limits) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await http.post(f"{url}/v1/chat/completions", json=BODY)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(100)))
    return done / (time.perf_counter() - start)


async def _floor(mock_port: int, calls: int) -> None:
    """The upstream call's own CPU, in this process (``getrusage``): raw httpx and a direct
    ``AsyncClient`` to the mock, 1 and 10 at a time. The gateway makes the second for every
    request, so its CPU per request cannot be below it."""
    base = f"http://127.0.0.1:{mock_port}/api/v1"
    provider = OpenRouterProvider(PLACEHOLDER_KEY, base_url=base)
    headers = {"Authorization": f"Bearer {PLACEHOLDER_KEY}"}
    async with (
        httpx.AsyncClient(headers=headers) as http,
        AsyncClient(providers=[provider]) as client,
    ):

        async def raw() -> None:
            (await http.post(f"{base}/chat/completions", json=BODY)).read()

        async def direct() -> None:
            await client.chat(BODY["model"], messages=BODY["messages"], max_tokens=64)

        print(f"CPU per call in this process, {calls} calls (ms):")
        for name, call in (("raw httpx -> mock", raw), ("AsyncClient -> mock", direct)):
            for concurrency in (1, 10):
                left = calls

                async def worker(call: Callable[[], Awaitable[None]] = call) -> None:
                    nonlocal left
                    while left > 0:
                        left -= 1
                        await call()

                for _ in range(200):
                    await call()
                before = resource.getrusage(resource.RUSAGE_SELF)
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                after = resource.getrusage(resource.RUSAGE_SELF)
                used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                print(f"  {name:22} x{concurrency:<3} {used / calls * 1000:7.3f}")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed, as uvicorn runs the gateway: the direct call and
    the gateway's own upstream call then use the same event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--pool",
        type=int,
        default=None,
        help="the gateway's upstream pool (max_connections and keep-alive)",
    )
    parser.add_argument("--litellm", default=None, help="the litellm executable")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    mock, mock_port = _mock()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "gw.sqlite3")
        store = Store(db)
        _, budgeted = store.create_key("bench", budget=__import__("decimal").Decimal(10**6),
                                       rpm=10**9)  # fmt: skip
        store.close()
        try:
            gateway, url = _gateway(mock_port, db, args.workers, args.pool)
            processes.append(gateway)
            binary = None if args.no_litellm else _litellm_binary(args.litellm)
            litellm_url = None
            if binary is not None:
                litellm, litellm_url = _litellm(binary, mock_port, folder, args.workers)
                processes.append(litellm)
            _run(_floor(mock_port, args.requests))
            args.gateway_pid = gateway.pid
            direct = _latency(mock_port, url, budgeted, args.requests)
            _wrk_latency(mock_port, url, budgeted, litellm_url, args, direct)
            if litellm_url is not None:
                proxy = _run(_http(f"{litellm_url}/v1/chat/completions", f"sk-{MASTER}",
                                          args.requests))  # fmt: skip
                print(f"  httpx -> LiteLLM proxy -> mock          {_p50(proxy):7.3f}")
            else:
                print("LiteLLM's proxy: skipped (not installed: pip install "
                      "'litellm[proxy]==1.110.2', or pass --litellm PATH)")  # fmt: skip
            _throughput(mock_port, url, budgeted, litellm_url, args)
        finally:
            for process in processes:
                process.terminate()
                process.wait()
            mock.terminate()
            mock.wait()


def _latency(mock_port: int, url: str, budgeted: str, n: int) -> float:
    """Sequential calls with an httpx client (its own cost included); the direct p50 (ms)."""
    direct = _run(_direct(mock_port, n))
    raw = _run(_http(f"http://127.0.0.1:{mock_port}/api/v1/chat/completions",
                            PLACEHOLDER_KEY, n))  # fmt: skip
    master = _run(_http(f"{url}/v1/chat/completions", MASTER, n))
    keyed = _run(_http(f"{url}/v1/chat/completions", budgeted, n))
    print(f"p50 over {n} sequential calls (ms):")
    print(f"  raw httpx -> mock (one HTTP hop)        {_p50(raw):7.3f}")
    print(f"  AsyncClient -> mock (direct)            {_p50(direct):7.3f}")
    print(f"  httpx -> gateway -> mock, master key    {_p50(master):7.3f}"
          f"   added over direct: {_p50(master) - _p50(direct):.3f}")  # fmt: skip
    print(f"  httpx -> gateway -> mock, budgeted key  {_p50(keyed):7.3f}"
          f"   added over direct: {_p50(keyed) - _p50(direct):.3f}")  # fmt: skip
    return _p50(direct)


def _wrk_latency(
    mock_port: int,
    url: str,
    budgeted: str,
    litellm_url: str | None,
    args: argparse.Namespace,
    direct: float,
) -> None:
    """p50 with one wrk connection: a client that costs next to nothing (C, no Python), so
    the difference to the direct call is what the gateway adds (its HTTP hop, uvicorn, its glue)
    over the same upstream call, without the measuring client's own cost."""
    if shutil.which("wrk") is None:
        return
    seconds = min(args.seconds, 5)
    print(f"p50 with wrk -t1 -c1 -d{seconds}s (ms):")
    for name, target, key in _targets(mock_port, url, budgeted, litellm_url):
        before = _cpu_seconds(args.gateway_pid)
        found = _wrk(target, key, seconds, 1)
        assert found is not None
        added = "" if name == "raw mock" else f"   added over direct: {found[1] - direct:.3f}"
        if "gateway" in name and args.workers == 1:
            used = (_cpu_seconds(args.gateway_pid) - before) / max(found[2], 1) * 1000
            added += f"  gateway CPU {used:.2f} ms/request"
        print(f"  {name:34} {found[1]:7.3f}{added}")


def _targets(
    mock_port: int, url: str, budgeted: str, litellm_url: str | None
) -> list[tuple[str, str, str]]:
    targets = [
        ("raw mock", f"http://127.0.0.1:{mock_port}/api/v1/chat/completions", PLACEHOLDER_KEY),
        ("llamaroute gateway, master key", f"{url}/v1/chat/completions", MASTER),
        ("llamaroute gateway, budgeted key", f"{url}/v1/chat/completions", budgeted),
    ]
    if litellm_url is not None:
        targets.append(("LiteLLM proxy, master key", f"{litellm_url}/v1/chat/completions",
                        f"sk-{MASTER}"))  # fmt: skip
    return targets


def _rss(pid: int, workers: int) -> None:
    """The gateway's resident memory now (with one worker: its only process)."""
    status = Path(f"/proc/{pid}/status")
    if workers != 1 or not status.exists():
        return
    kib = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS"))
    print(f"         gateway RSS now: {int(kib.split()[1]) / 1024:.1f} MiB")


def _throughput(
    mock_port: int, url: str, budgeted: str, litellm_url: str | None, args: argparse.Namespace
) -> None:
    targets = _targets(mock_port, url, budgeted, litellm_url)
    if shutil.which("wrk") is None:
        for name, target, key in targets[1:3]:
            rate = asyncio.run(_concurrent(target.rsplit("/v1/", 1)[0], key, args.seconds))
            print(f"throughput, {name}, {args.workers} worker(s), httpx x100: {rate:,.0f} req/s")
        return
    print(f"wrk -t2 -d{args.seconds}s --latency, {args.workers} worker(s) each "
          "(req/s, p50 ms):")  # fmt: skip
    for connections in (10, 100):
        for name, target, key in targets:  # one after the other: the same machine state
            before = _cpu_seconds(args.gateway_pid)
            found = _wrk(target, key, args.seconds, connections)
            assert found is not None
            line = f"  -c{connections:<4} {name:34} {found[0]:10,.0f} req/s  p50 {found[1]:8.2f} ms"
            if "gateway" in name and args.workers == 1:
                # CPU per request: the figure the machine's other load changes least.
                used = (_cpu_seconds(args.gateway_pid) - before) / max(found[2], 1) * 1000
                line += f"  gateway CPU {used:.2f} ms/request"
            print(line)
            if "gateway" in name:
                _rss(args.gateway_pid, args.workers)


if __name__ == "__main__":
    main()
