"""How far past its deadline an OpenRouter call ends against a server that keeps sending, and
how much memory an answer over its size cap costs (issue 15 items 1 and 2).

    python bench/openrouter_hostile.py            # 10 tries per case
    python bench/openrouter_hostile.py --tries 3

Each deadline case runs the real provider, sync and async, against the fake OpenRouter with
``timeout=1.0`` and prints the overshoot past 1.0 s (median and worst, in milliseconds). Each
size case reads an answer of 50 MB or more (or an endless one) with a 1 MiB cap and prints the
peak of traced memory above the level before the call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import statistics
import time
import tracemalloc
from typing import Any

from llamaroute import ChatRequest, LlamarouteError, get_model
from llamaroute.providers import OpenRouterProvider, ProviderCall
from llamaroute.testing import FakeOpenRouter, Step

KEY = "bench-placeholder-not-a-key"  # the fake server accepts any key
ROUTE = get_model("llama-3.2-3b").route("openrouter")
MIB = 1024 * 1024

DEADLINE_CASES: dict[str, tuple[Step, bool]] = {
    "chat: headers 5 s late": (Step(delay=5), False),
    "chat: body 1 byte / 0.5 s": (Step(trickle=0.5), False),
    "chat: body 1 byte / 0.3 s": (Step(trickle=0.3), False),
    "chat: endless body": (Step(endless=b" " * 1024, chunk_delay=0.01), False),
    "stream: keep-alives forever": (Step(endless=b": keep-alive\n\n", chunk_delay=0.05), True),
    "stream: empty events forever": (
        Step(endless=b'data: {"choices":[]}\n\n', chunk_delay=0.05),
        True,
    ),
    "stream: 1 byte / 0.3 s": (Step(trickle=0.3), True),
}
SIZE_CASES: dict[str, tuple[Step, bool]] = {
    "chat: endless body": (Step(endless=b"x" * 65536), False),
    "chat: gzip bomb (50 MB)": (
        Step(raw_body=gzip.compress(b"\0" * 50 * MIB), headers={"Content-Encoding": "gzip"}),
        False,
    ),
    "stream: 50 MB line": (Step(endless=b"a" * 65536, endless_after=1), True),
    "stream: endless events": (
        Step(endless=b'data: {"choices":[]}\n\n' * 500, endless_after=1),
        True,
    ),
}


def call(timeout: float | None) -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", "hi"), ROUTE, timeout=timeout)


async def once(
    provider: OpenRouterProvider, mode: str, streaming: bool, timeout: float | None
) -> Any:
    if mode == "sync":
        return list(provider.stream(call(timeout))) if streaming else provider.chat(call(timeout))
    if streaming:
        return [item async for item in provider.astream(call(timeout))]
    return await provider.achat(call(timeout))


async def deadlines(tries: int) -> None:
    print(f"deadline overshoot past T = 1.0 s ({tries} tries; ms: median / worst)")
    for name, (step, streaming) in DEADLINE_CASES.items():
        row = []
        for mode in ("sync", "async"):
            overshoots = []
            for _ in range(tries):
                with FakeOpenRouter(step) as fake:
                    provider = OpenRouterProvider(api_key=KEY, base_url=fake.base_url)
                    started = time.monotonic()
                    with contextlib.suppress(LlamarouteError):
                        await once(provider, mode, streaming, 1.0)
                    overshoots.append((time.monotonic() - started - 1.0) * 1000)
                    provider.close()
                    await provider.aclose()
            row.append(f"{mode} {statistics.median(overshoots):5.1f} / {max(overshoots):5.1f}")
        print(f"  {name:32} {'   '.join(row)}")


async def sizes() -> None:
    cap = MIB
    print(f"peak traced memory for answers over a {cap // MIB} MiB cap")
    for name, (step, streaming) in SIZE_CASES.items():
        row = []
        for mode in ("sync", "async"):
            with FakeOpenRouter(Step(), step) as fake:
                provider = OpenRouterProvider(api_key=KEY, base_url=fake.base_url,
                                              max_response_bytes=cap, max_stream_bytes=cap,
                                              max_event_bytes=cap)  # fmt: skip
                await once(provider, mode, False, None)  # build the pool first
                gc.collect()
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                outcome = "ok"
                try:
                    await once(provider, mode, streaming, 30)
                except LlamarouteError as error:
                    outcome = str(getattr(error, "code", type(error).__name__))
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
                provider.close()
                await provider.aclose()
            row.append(f"{mode} {peak / MIB:4.2f} MiB ({peak / cap:.2f}x, {outcome})")
        print(f"  {name:26} {'   '.join(row)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(deadlines(args.tries))
    asyncio.run(sizes())


if __name__ == "__main__":
    main()
