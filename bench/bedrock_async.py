"""Bedrock async at 100 concurrent: throughput and the process's CPU per call, raw boto3 in
threads against llamaroute's AsyncClient, interleaved (see "the GIL" in bench/README.md).

    python bench/bedrock_async.py [--rounds 4] [--calls 600] [--profile]

Both sides run the same boto3 calls in 64 worker threads (``bench/run.py``'s
``bedrock_subjects``). With the GIL, throughput is about the inverse of the CPU one call costs
in all threads together, so the CPU figure says where the ratio comes from. ``--profile``
adds a cProfile of the event-loop thread for each side, by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run

CONCURRENCY = 100


async def burst(
    achat: run.Callable[[], run.Awaitable[object]], total: int, concurrency: int = CONCURRENCY
) -> None:
    """``total`` calls of ``achat``, ``concurrency`` in flight at a time."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await achat()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(subjects: dict[str, run.Subject], rounds: int, calls: int, profile: bool) -> None:
    chats = {name: subject.achat for name, subject in subjects.items()}
    for achat in chats.values():
        assert achat is not None
        await burst(achat, 2 * CONCURRENCY)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in chats}
    for index in range(rounds):
        for name in run.rotated(list(chats), index):
            achat = chats[name]
            assert achat is not None
            cpu, wall = time.process_time(), time.perf_counter()
            await burst(achat, calls)
            results[name].append((calls / (time.perf_counter() - wall),
                                  (time.process_time() - cpu) / calls))  # fmt: skip
    base = statistics.median(r[0] for r in results["raw boto3"])
    for name, values in results.items():
        throughput = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"{name:12s} {throughput:7.1f} calls/s ({throughput / base:.2f}x), "
              f"process CPU {cpu * 1e6:7.1f} µs a call")  # fmt: skip
    if profile:
        for name, achat in chats.items():
            assert achat is not None
            profiler = cProfile.Profile()
            profiler.enable()
            await burst(achat, calls)
            profiler.disable()
            print(f"\n== {name}: the event-loop thread, by own time")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    mock = run.Mock()
    try:
        subjects = {s.name: s for s in run.bedrock_subjects(mock.url, False)}
        asyncio.run(measure(subjects, args.rounds, args.calls, args.profile))
        for subject in subjects.values():
            for close in subject.close:
                close()
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
