"""How closely OllamaProvider holds a call's timeout against a hostile server, and how much
memory an endless answer costs (issue 15 items 1 and 2).

    python bench/ollama_hostile.py              # T = 0.5 s, 5 tries each
    python bench/ollama_hostile.py --t 1 --n 10

For each of sync/async, chat/stream and each hostile answer of the fake Ollama (``trickle``:
one byte every 50 ms for ever; ``keep_alive``: a line with no text every 20 ms for ever;
``flood``: an endless body at full speed, caps raised so that only the deadline can stop it),
the time past T at which the call ended (max and median over the tries), then the peak of
Python allocations (tracemalloc) while an endless body runs into an 8 MiB cap.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from typing import Any

from llamaroute import ChatRequest, LlamarouteError, get_model
from llamaroute.providers import OllamaProvider, ProviderCall
from llamaroute.testing import FakeOllama

ROUTE = get_model("llama-3.2-3b").route("ollama")
MiB = 2**20


def call(timeout: float | None) -> ProviderCall:
    return ProviderCall(ChatRequest.create("llama-3.2-3b", "hi"), ROUTE, timeout=timeout)


async def once(provider: OllamaProvider, mode: str, streaming: bool, timeout: float) -> str:
    try:
        if streaming and mode == "sync":
            list(provider.stream(call(timeout)))
        elif streaming:
            [item async for item in provider.astream(call(timeout))]
        elif mode == "sync":
            provider.chat(call(timeout))
        else:
            await provider.achat(call(timeout))
    except LlamarouteError as error:
        return f"{type(error).__name__} {error.code}"
    return "success"


async def deadlines(t: float, n: int) -> None:
    kinds: dict[str, dict[str, Any]] = {
        "trickle": {"interval": 0.05}, "keep_alive": {"interval": 0.02}, "flood": {},
    }  # fmt: skip
    with FakeOllama() as fake:
        provider = OllamaProvider(host=fake.url, max_response_bytes=2**40,
                                  max_line_bytes=2**40, max_stream_bytes=2**40)  # fmt: skip
        for mode in ("sync", "async"):
            for streaming in (False, True):
                for kind, options in kinds.items():
                    over, outcome = [], ""
                    for _ in range(n):
                        getattr(fake, kind)(**options)
                        started = time.perf_counter()
                        outcome = await once(provider, mode, streaming, t)
                        over.append((time.perf_counter() - started - t) * 1000)
                    what = "stream" if streaming else "chat"
                    print(f"{mode:5} {what:6} {kind:10}  past T: max {max(over):5.1f} ms, "
                          f"median {statistics.median(over):5.1f} ms  ({outcome})")  # fmt: skip
        await provider.aclose()


async def memory() -> None:
    cap = 8 * MiB
    with FakeOllama() as fake:
        provider = OllamaProvider(host=fake.url, max_response_bytes=cap, max_line_bytes=cap,
                                  max_stream_bytes=cap)  # fmt: skip
        await once(provider, "sync", False, 5)  # clients built before measuring
        await once(provider, "async", False, 5)
        for mode in ("sync", "async"):
            for streaming in (False, True):
                fake.flood()
                tracemalloc.start()
                outcome = await once(provider, mode, streaming, 30)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                what = "stream" if streaming else "chat"
                print(f"{mode:5} {what:6} endless body, cap {cap / MiB:.0f} MiB: peak "
                      f"{peak / MiB:.1f} MiB  ({outcome})")  # fmt: skip
        await provider.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--t", type=float, default=0.5, help="the call's timeout, seconds")
    parser.add_argument("--n", type=int, default=5, help="tries per case")
    args = parser.parse_args()
    asyncio.run(deadlines(args.t, args.n))
    asyncio.run(memory())


if __name__ == "__main__":
    main()
