"""The gateway's cost: its added latency over a direct ``AsyncClient`` call to the same mock
(p50, sequential, low load) and its throughput (req/s) under 100 concurrent connections.

    python bench/gateway.py [--requests 2000] [--seconds 10] [--workers 1]

Starts ``bench/mock_server.py`` (the loopback OpenRouter mock) and ``llamaroute serve`` (one
uvicorn worker unless told), each in its own process. Latency: N sequential calls each way
after a warm-up, plus raw httpx straight to the mock (one HTTP hop, the floor). Throughput:
``wrk`` (Debian's package) with a Lua script for the POST body, when installed; else 100
concurrent httpx requests from this process (then the load generator is the limit). Both with
the master key (no budget) and with a virtual key that has a budget and a rate (the SQLite
reservation on every request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from llamaroute import AsyncClient
from llamaroute.providers import OpenRouterProvider
from llamaroute.server import Store

HERE = Path(__file__).resolve().parent
MASTER = "bench-master-placeholder"
PLACEHOLDER_KEY = "placeholder-not-a-key"
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


def _gateway(mock_port: int, db: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {**os.environ, "OPENROUTER_API_KEY": PLACEHOLDER_KEY, "LLAMAROUTE_MASTER_KEY": MASTER,
           "OPENROUTER_BASE_URL": f"http://127.0.0.1:{mock_port}/api/v1"}  # fmt: skip
    env.pop("OLLAMA_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "llamaroute", "serve", "--port", str(port), "--db", db,
         "--workers", str(workers), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the gateway did not start")


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


def _wrk(url: str, key: str, seconds: int) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n'
                     f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
                     'wrk.headers["Content-Type"] = "application/json"\n'
                     f'wrk.headers["Authorization"] = "Bearer {key}"\n')  # fmt: skip
    try:
        out = subprocess.run([wrk, "-t2", "-c100", f"-d{seconds}s", "-s", script.name,
                              f"{url}/v1/chat/completions"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        print(out)
    return float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1])


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


def _p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    mock, mock_port = _mock()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "gw.sqlite3")
        store = Store(db)
        _, budgeted = store.create_key("bench", budget=__import__("decimal").Decimal(10**6),
                                       rpm=10**9)  # fmt: skip
        store.close()
        gateway, url = _gateway(mock_port, db, args.workers)
        try:
            direct = asyncio.run(_direct(mock_port, args.requests))
            raw = asyncio.run(_http(f"http://127.0.0.1:{mock_port}/api/v1/chat/completions",
                                    PLACEHOLDER_KEY, args.requests))  # fmt: skip
            master = asyncio.run(_http(f"{url}/v1/chat/completions", MASTER, args.requests))
            keyed = asyncio.run(_http(f"{url}/v1/chat/completions", budgeted, args.requests))
            print(f"p50 over {args.requests} sequential calls (ms):")
            print(f"  raw httpx -> mock (one HTTP hop)        {_p50(raw):7.3f}")
            print(f"  AsyncClient -> mock (direct)            {_p50(direct):7.3f}")
            print(f"  httpx -> gateway -> mock, master key    {_p50(master):7.3f}"
                  f"   added over direct: {_p50(master) - _p50(direct):.3f}")  # fmt: skip
            print(f"  httpx -> gateway -> mock, budgeted key  {_p50(keyed):7.3f}"
                  f"   added over direct: {_p50(keyed) - _p50(direct):.3f}")  # fmt: skip
            for name, key in (("master key", MASTER), ("budgeted key", budgeted)):
                rate = _wrk(url, key, args.seconds)
                tool = "wrk -t2 -c100"
                if rate is None:
                    rate, tool = asyncio.run(_concurrent(url, key, args.seconds)), "httpx x100"
                print(f"throughput, {name}, {args.workers} worker(s), {tool}: {rate:,.0f} req/s")
        finally:
            gateway.terminate()
            gateway.wait()
            mock.terminate()
            mock.wait()


if __name__ == "__main__":
    main()
