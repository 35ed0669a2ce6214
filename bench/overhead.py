"""llamaroute's own cost per call, with the network taken away.

    python bench/overhead.py            # sync chat, sync stream, async chat (100 in flight)
    python bench/overhead.py --profile  # and a cProfile of 5,000 sync calls, by own time

A provider that answers at once (no socket, no parsing) stands in for a real one, so what is
measured is only llamaroute's work around a call: validating the request, planning routes,
the attempt loop, breakers, pricing the answer, the ledger and the events. Each figure is the
fastest of 25 rounds (the least disturbed by other work on the machine), in microseconds.
``bench/run.py`` measures the same client against real sockets; this script is for finding
where llamaroute's own time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import AsyncGenerator, Callable, Generator

import llamaroute
from llamaroute import Usage
from llamaroute.providers import Provider, ProviderCall, ProviderResult, StreamItem

MODEL, PROMPT, CHUNKS = "llama-3.2-3b", "Say hi", 50


class Instant(Provider):
    """An OpenRouter stand-in that answers at once."""

    name = "openrouter"

    def chat(self, call: ProviderCall) -> ProviderResult:
        return ProviderResult("hi", "stop", Usage(input_tokens=10, output_tokens=5))

    async def achat(self, call: ProviderCall) -> ProviderResult:
        return self.chat(call)

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        for _ in range(CHUNKS):
            yield "x"
        yield self.chat(call)

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        for _ in range(CHUNKS):
            yield "x"
        yield self.chat(call)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def fastest(run: Callable[[], object], per_round: int, rounds: int = 25) -> float:
    """Seconds per ``run()``: the fastest round's mean, after a warm-up."""
    for _ in range(per_round):
        run()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            run()
        best = min(best, (time.perf_counter() - started) / per_round)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile 5,000 sync calls")
    args = parser.parse_args()
    client = llamaroute.Client([Instant()])
    aclient = llamaroute.AsyncClient([Instant()])
    loop = asyncio.new_event_loop()

    def chat() -> None:
        client.chat(MODEL, PROMPT)

    def stream() -> None:
        for _ in client.stream(MODEL, PROMPT):
            pass

    def hundred_async() -> None:
        async def calls() -> None:
            await asyncio.gather(*(aclient.chat(MODEL, PROMPT) for _ in range(100)))

        loop.run_until_complete(calls())

    print(f"sync chat:               {fastest(chat, 1000) * 1e6:7.1f} µs a call")
    print(f"sync stream, {CHUNKS} chunks:  {fastest(stream, 300) * 1e6:7.1f} µs a stream")
    print(f"async chat, 100 at once: {fastest(hundred_async, 10) / 100 * 1e6:7.1f} µs a call")
    loop.close()
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(5000):
            chat()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
