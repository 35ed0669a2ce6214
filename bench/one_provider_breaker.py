"""Does the default circuit breaker make a one-provider app fail more often? (issue 16, item 2)

The setup a new user had: a FastAPI app whose handler calls one shared ``AsyncClient`` with a
single provider, OpenRouter, that fails 30 % of requests at random, and 200 concurrent
requests to the app. Each run starts a fresh fake OpenRouter (plain Starlette, written here,
not llamaroute's testing kit: a 503 in OpenRouter's error shape with probability ``--fault``,
otherwise a chat completion, after a few milliseconds of jitter), a fresh app with a fresh
client, and sends the requests over real HTTP on 127.0.0.1. Runs alternate between the default
``BreakerPolicy()`` and ``BreakerPolicy(failures=0)`` (breakers off), so both meet the same
machine load. Retries are the default policy (3 attempts per route, real backoff).

    PYTHONPATH=src python bench/one_provider_breaker.py --runs 3

prints, per run, the share of the app's requests that failed, and the medians. With 30 %
faults and 3 attempts a request fails when all three do: about 0.3**3 = 2.7 %, whichever
breaker, since with one route the breaker is never what ends a call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import llamaroute
from llamaroute import AsyncClient, BreakerPolicy
from llamaroute.providers import OpenRouterProvider

MODEL = "llama-3.2-3b"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def flaky_openrouter(fault: float, seed: int) -> Starlette:
    """OpenRouter's chat completions endpoint, failing ``fault`` of requests with a 503."""
    coin = random.Random(seed)

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(coin.uniform(0.002, 0.02))
        if coin.random() < fault:
            error = {"code": 503, "message": "No instances available", "metadata": {}}
            return JSONResponse({"error": error}, status_code=503)
        return JSONResponse(
            {
                "id": f"gen-{coin.getrandbits(32)}",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
            }
        )

    return Starlette(routes=[Route("/api/v1/chat/completions", completions, methods=["POST"])])


def the_app(base_url: str, breaker: BreakerPolicy) -> FastAPI:
    """The user's app: one handler, one shared AsyncClient with one provider."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = "bench-" + "k" * 8
        provider = OpenRouterProvider(api_key=key, base_url=base_url)
        async with AsyncClient([provider], breaker=breaker) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/ask")
    async def ask(request: Request) -> JSONResponse:
        try:
            reply = await request.app.state.client.chat(MODEL, "hi")
        except llamaroute.LlamarouteError as error:
            return JSONResponse({"error": str(error)}, status_code=502)
        return JSONResponse({"text": reply.text})

    return app


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a thread of its own; yield its base URL."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def _load(url: str, requests: int) -> int:
    limits = httpx.Limits(max_connections=requests)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        answers = await asyncio.gather(*(http.get(f"{url}/ask") for _ in range(requests)))
    return sum(answer.status_code != 200 for answer in answers)


def one_run(breaker: BreakerPolicy, *, requests: int, fault: float, seed: int) -> float:
    """The share of the app's requests that failed, in percent."""
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(serving(flaky_openrouter(fault, seed)))
        app = stack.enter_context(serving(the_app(f"{upstream}/api/v1", breaker)))
        failed = asyncio.run(_load(app, requests))
    return 100 * failed / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--fault", type=float, default=0.3)
    options = parser.parse_args()
    sides = {"default breaker": BreakerPolicy(), "breakers off": BreakerPolicy(failures=0)}
    shares: dict[str, list[float]] = {name: [] for name in sides}
    for run in range(options.runs):
        for name, breaker in sides.items():  # interleaved: both sides meet the same load
            share = one_run(breaker, requests=options.requests, fault=options.fault, seed=run)
            shares[name].append(share)
            print(f"run {run + 1}  {name:<16} {share:5.1f} % of {options.requests} failed")
    for name, values in shares.items():
        listed = ", ".join(f"{value:.1f}" for value in values)
        print(f"{name:<16} failed: {listed} %  (median {statistics.median(values):.1f} %)")


if __name__ == "__main__":
    main()
