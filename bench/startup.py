"""Start-up costs, each in fresh processes against the loopback mock (``bench/mock_server.py``).

    python bench/startup.py              # 15 runs of each; medians (p90 beside them)
    python bench/startup.py --runs 5     # quicker

Per provider (OpenRouter, Ollama, Bedrock), one fresh process each run measures, in turn:

* **import**: ``import llamaroute`` and the names used (``llamaroute.Client``, the provider class);
* **construct**: ``Client([Provider(...)])`` with that one provider configured: what the budget
  of at most 5 ms is about (nothing is connected, no pool, SSL context or boto3 client built);
* **first call**: the first ``client.chat(...)``: the pool (or boto3 client) built on first use,
  the catalog read, the lazy imports of the call path, and the request itself;
* **warm call**: the second ``client.chat(...)``, for comparison.

Each phase is given as wall time and as the process thread's CPU time ("(CPU)"): on a shared
machine the CPU time is the steadier figure (a busy neighbour delays the wall clock, not it).

Then **cold start to the first response**: a fresh process that imports, constructs and gets
one answer from the mock, against raw httpx doing the same (import httpx, a client, one POST,
read the JSON), interleaved, the bare interpreter's median subtracted from both. The budget
is at most 1.1x raw httpx.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    AWS,
    CHILD_ENV,
    KEY,
    MODEL,
    PROMPT,
    PY,
    Mock,
    cold_start_code,
    compile_llamaroute,
)

CHILD = """
import time, json, sys
marks = []
def mark():
    marks.append((time.perf_counter(), time.thread_time()))
mark()
import llamaroute
from llamaroute import Client
from llamaroute.providers import {cls}
mark()
client = Client([{make}])
mark()
first = client.chat({model!r}, {prompt!r})
mark()
client.chat({model!r}, {prompt!r})
mark()
assert first.text
client.close()
phases = ("import", "construct", "first call", "warm call")
out = {{}}
for name, (a, b) in zip(phases, zip(marks, marks[1:])):
    out[name] = b[0] - a[0]
    out[name + " (CPU)"] = b[1] - a[1]
print(json.dumps(out))
"""


def child_code(provider: str, url: str) -> str:
    make = {
        "openrouter": ("OpenRouterProvider", f"OpenRouterProvider(api_key={KEY!r}, "
                                             f"base_url={url + '/api/v1'!r})"),
        "ollama": ("OllamaProvider", f"OllamaProvider({url!r})"),
        "bedrock": ("BedrockProvider", f"BedrockProvider(region='us-east-1', "
                                       f"endpoint_url={url!r}, **{AWS!r})"),
    }[provider]  # fmt: skip
    return CHILD.format(cls=make[0], make=make[1], model=MODEL, prompt=PROMPT)


def run_child(code: str) -> dict[str, float]:
    done = subprocess.run([PY, "-c", code], env=CHILD_ENV, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=CHILD_ENV, capture_output=True, check=True)
    return time.perf_counter() - started


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args()
    compile_llamaroute()
    mock = Mock()
    samples: dict[str, dict[str, list[float]]] = {}
    cold: dict[str, list[float]] = {"bare interpreter": [], "raw httpx": [], "llamaroute": []}
    try:
        providers = ("openrouter", "ollama", "bedrock")
        codes = {p: child_code(p, mock.url) for p in providers}
        cold_codes = {name: cold_start_code(name, mock.url) for name in ("raw httpx", "llamaroute")}
        for index in range(args.runs):
            # Interleaved, the order rotating, so that a busy machine's drift hits all alike.
            shift = index % len(providers)
            for provider in providers[shift:] + providers[:shift]:
                for phase, seconds in run_child(codes[provider]).items():
                    samples.setdefault(provider, {}).setdefault(phase, []).append(seconds)
            cold["bare interpreter"].append(wall([PY, "-c", "pass"]))
            order = ["raw httpx", "llamaroute"] if index % 2 == 0 else ["llamaroute", "raw httpx"]
            for name in order:
                cold[name].append(wall([PY, "-c", cold_codes[name]]))
    finally:
        mock.stop()
    print(f"fresh processes, {args.runs} runs each; median (p90), milliseconds\n")
    print(f"| provider | {' | '.join(next(iter(samples.values())))} |")
    print("|---|" + "---|" * len(next(iter(samples.values()))))
    for provider, phases in samples.items():
        cells = [f"{statistics.median(v) * 1e3:.2f} ({p90(v) * 1e3:.2f})" for v in phases.values()]
        print(f"| {provider} | {' | '.join(cells)} |")
    bare = statistics.median(cold["bare interpreter"])
    raw = statistics.median(cold["raw httpx"]) - bare
    ours = statistics.median(cold["llamaroute"]) - bare
    print(
        f"\ncold start to the first response (OpenRouter), minus the bare interpreter "
        f"({bare * 1e3:.0f} ms): raw httpx {raw * 1e3:.0f} ms, llamaroute {ours * 1e3:.0f} ms: "
        f"{ours / raw:.2f}x (budget 1.1x); whole processes: "
        f"{statistics.median(cold['llamaroute']) / statistics.median(cold['raw httpx']):.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps({"phases": samples, "cold_start": cold}, indent=1))


if __name__ == "__main__":
    main()
