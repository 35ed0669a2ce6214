"""Estimate what a vision request costs on every provider, and which provider is cheapest for
a whole workload per month, offline, with the Python API.

    python examples/estimate_costs.py

No network and no credentials: llamaroute prices the request from its dated price table and the
Llama 3 token count (exact with ``pip install 'llamaroute[tokens]'``, else an estimate with a
range). Amounts are exact ``Decimal`` USD.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import llamaroute
from llamaroute.money import estimate_workload

HERE = Path(__file__).resolve().parent
CHART = HERE / "chart.png"
QUESTION = "What does this chart show? Name the month with the sharpest drop."


def show(estimates: list[llamaroute.Estimate], requests: int) -> None:
    for item in estimates:
        if item.expected is None or item.high is None:
            print(f"  {item.provider:<10} {item.model_id:<42} price unknown")
            continue
        print(
            f"  {item.provider:<10} {item.model_id:<42} expected ${item.expected:.6f}, "
            f"at most ${item.high:.6f}; x{requests:,}: ${item.expected * requests:.2f}"
        )


def main() -> None:
    estimates = llamaroute.estimate(
        "llama-3.2-90b-vision", QUESTION, image=CHART, max_tokens=400, expected_output_tokens=150
    )
    first = estimates[0]
    print(
        f"{first.model}: {first.input_tokens_low} to {first.input_tokens_high} prompt tokens "
        f"(counted by: {first.tokenizer}); each provider bills the chart its own way "
        "(cheapest first):"
    )
    for item in estimates:
        print(
            f"  {item.provider:<10} image tokens {item.image_tokens_low} to "
            f"{item.image_tokens_high}, {item.image_tokens_expected} expected"
        )
    show(estimates, 10_000)

    # The price table is data: 1M input + 1M output tokens on Bedrock 90B (US) is exactly $1.44.
    bedrock = next(item for item in estimates if item.provider == "bedrock")
    assert bedrock.price is not None
    million = bedrock.price.input_per_mtok + bedrock.price.output_per_mtok
    assert million == Decimal("1.44"), million
    print(f"\nBedrock 90B: ${million} per million input + million output tokens "
          f"(checked {bedrock.price.checked}, {bedrock.price.source})")  # fmt: skip

    # Ollama is free by default; count your own local cost (power, hardware) with a catalog file.
    with tempfile.TemporaryDirectory() as folder:
        mine = Path(folder) / "local-cost.toml"
        mine.write_text(
            '[[prices]]\nprovider = "ollama"\ninput_per_mtok = "0.02"\noutput_per_mtok = "0.06"\n'
        )
        catalog = llamaroute.load_catalog(mine)
        local = llamaroute.estimate(
            "llama-3.2-90b-vision", QUESTION, image=CHART, max_tokens=400,
            providers=["ollama"], catalog=catalog,
        )  # fmt: skip
    print("\nWith a local cost of $0.02/$0.06 per million tokens for Ollama:")
    show(local, 10_000)

    # A workload: one request a line, each line may name its own model (here 90B Vision by
    # default, 3B for the support tickets). Which provider serves every line cheapest, and
    # what does that come to a month at 10,000 requests a day?
    with (HERE / "workload.jsonl").open() as lines:
        result = estimate_workload(lines, "llama-3.2-90b-vision", base_dir=HERE)
    best = result.cheapest()
    assert best is not None
    assert best.costs is not None
    month = best.costs[1] * 10_000 * 30 / result.requests
    print(f"\nWorkload of {result.requests} requests ({result.models}):")
    for option in result.ranked_options():
        serves = "every line" if option.serves_all else f"not: {'; '.join(option.reasons)}"
        expected = "unknown" if option.costs is None else f"${option.costs[1]:.6f}"
        print(f"  {option.label:<12} {expected:>10}  {serves}")
    print(f"cheapest for every line: {best.label}, about ${month:,.2f} a month at 10,000 a day")


if __name__ == "__main__":
    main()
