"""The ``llamaroute prices`` and ``llamaroute estimate`` commands (``--workload`` is in
``_workload.py``).

Money is printed rounded (for reading only; every sum is exact) and written to ``--json`` as
exact, plain decimal strings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError, InvalidRequestError
from ..catalog import Catalog, Price, Route
from ..money import DEFAULT_EXPECTED_OUTPUT_TOKENS, Estimate, estimate
from ._output import Rate, dumps, money, parse_rate, print_origins, scale, text_table

__all__ = ["DEFAULT_REQUESTS", "add_cost_commands", "money"]
#: What ``estimate --prompt`` totals when no ``--requests`` is given.
DEFAULT_REQUESTS = 1000

Subparsers = Any  # argparse's _SubParsersAction is private


def add_cost_commands(
    commands: Subparsers,
    add_catalog_option: Callable[[argparse.ArgumentParser], None],
    load: Callable[[argparse.Namespace], Catalog],
) -> None:
    """Register ``prices`` and ``estimate`` on the ``llamaroute`` parser."""
    prices = commands.add_parser(
        "prices",
        help="list each route's price with its source, the date it was read and its age",
        description="List the price of every route (USD per million input and output tokens, "
        "per image where charged, batch where offered; one row per source region where the "
        "price depends on it), its source, the date that source was read and the price's "
        "age in days. Prices older than their provider's threshold (OpenRouter 30 days, "
        "Bedrock 90) are marked '!' and warned about. "
        "`llamaroute prices refresh` reads today's prices from the providers.",
    )
    prices.add_argument("name", nargs="?", help="one model (key, alias or provider:model_id)")
    prices.add_argument("--json", action="store_true", help="machine-readable output")
    add_catalog_option(prices)
    prices.set_defaults(command=lambda args: _prices(args, load(args)))

    est = commands.add_parser(
        "estimate",
        help="estimate what a request, or a JSONL workload, costs on each provider (offline)",
        description="Estimate, without any network, what a request costs on every route of a "
        "model, side by side: low (prompt only), expected, high (every allowed output token). "
        "With --workload, estimate every line of a JSONL file (each line may name its own "
        "model) and print the totals per provider and the cheapest provider that can serve "
        "every line; --rate projects them per day and per month.",
    )
    est.add_argument(
        "--model",
        help="model key, alias or provider:model_id (with --workload: the default for lines "
        "that name no model)",
    )
    what = est.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the prompt text")
    what.add_argument("--prompt-file", type=Path, metavar="FILE", help="read the prompt from FILE")
    what.add_argument(
        "--workload",
        type=Path,
        metavar="FILE",
        help="JSONL, one request a line: prompt or messages, optional model, system, image "
        "(path relative to the file), max_tokens, expected_output_tokens, id",
    )
    est.add_argument("--system", help="a system prompt")
    est.add_argument("--image", metavar="FILE", help="an image file (or data:/http(s) URL)")
    est.add_argument("--max-tokens", type=int, metavar="N", help="max output tokens")
    est.add_argument(
        "--expected-output-tokens",
        type=int,
        metavar="N",
        help=f"your guess of the answer's length (default {DEFAULT_EXPECTED_OUTPUT_TOKENS})",
    )
    est.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help=f"also total N such requests (default {DEFAULT_REQUESTS:,}); with --workload, N "
        "requests drawn from the workload's mix",
    )
    est.add_argument(
        "--rate",
        metavar="N/PERIOD",
        help="project the expected cost per day and per month (30 days) at this many requests "
        "per hour, day, week or month, e.g. 10000/day",
    )
    est.add_argument("--provider", action="append", help="only this provider (repeatable)")
    est.add_argument("--region", help="only routes usable from this region (e.g. us-east-1)")
    est.add_argument(
        "--include-opt-in", action="store_true", help="add opt-in routes (OpenRouter :free)"
    )
    est.add_argument("--tokenizer", metavar="FILE", help="Llama 3 tokenizer.json: exact counts")
    est.add_argument(
        "--counter", choices=("auto", "exact", "heuristic"), default="auto",
        help="count text exactly (needs llamaroute[tokens]; auto: when installed) or estimate",
    )  # fmt: skip
    est.add_argument("--json", action="store_true", help="machine-readable output")
    add_catalog_option(est)
    est.set_defaults(command=lambda args: _estimate(args, load(args), est))


# --- prices ---------------------------------------------------------------------------------


def _prices(args: argparse.Namespace, catalog: Catalog) -> int:
    specs = [catalog.get(args.name)] if args.name else catalog.models()
    today = catalog.today()
    entries = [
        (spec.key, route, where, price)
        for spec in specs
        for route in spec.routes
        for where, price in _by_region(catalog, route)
    ]
    stale = {id(price): price for *_, price in entries if price and price.is_stale(today)}
    if args.json:
        payload = [
            {"model": key, "provider": route.provider, "model_id": route.model_id,
             "regions": [where] if where else list(route.regions), "opt_in": route.opt_in,
             "price": price.model_dump() if price else None,
             "age_days": price.age_days(today) if price else None,
             "stale": bool(price and price.is_stale(today))}
            for key, route, where, price in entries
        ]  # fmt: skip
        print(dumps(payload))
    else:
        headers = ["model", "provider", "native id", "regions", "in $/M", "out $/M", "image",
                   "batch in/out $/M", "read", "age", "source"]  # fmt: skip
        print(text_table(headers, [_price_row(*entry, today) for entry in entries]))
        print(
            "\nUSD per million tokens; 'unknown' = no price known (cost reported as None, "
            "not 0); read = the date the source was read; ! = older than the provider's "
            "threshold; batch '-' = not offered or not known."
        )
        print_origins(price for *_, price in entries)
    if stale:
        oldest = min(price.checked for price in stale.values())
        print(
            f"llamaroute: warning: {len(stale)} price entries are older than their provider's "
            f"threshold (oldest read {oldest.isoformat()}); prices move, check the sources",
            file=sys.stderr,
        )
    return 0


def _by_region(catalog: Catalog, route: Route) -> list[tuple[str | None, Price | None]]:
    # A route priced per source region gets one row per distinct price, naming its regions.
    groups: dict[int, tuple[list[str], Price]] = {}
    for region, price in catalog.regional_prices(route).items():
        regions, _ = groups.setdefault(id(price), ([], price))
        if region is not None:
            regions.append(region)
    if not groups:
        return [(None, None)]
    if len(groups) == 1:
        return [(None, price) for _, price in groups.values()]
    return [(", ".join(regions), price) for regions, price in groups.values()]


def _price_row(
    key: str, route: Route, where: str | None, price: Price | None, today: date
) -> list[str]:
    regions = where or ", ".join(route.regions) or "any"
    if price is None:
        return [key, route.provider, route.model_id, regions, "unknown", "unknown", "-", "-",
                "-", "-", "-"]  # fmt: skip
    flag = " !" if price.is_stale(today) else ""
    batch = "-"
    if price.batch_input_per_mtok is not None and price.batch_output_per_mtok is not None:
        batch = f"{price.batch_input_per_mtok:f} / {price.batch_output_per_mtok:f}"
    return [
        key, route.provider, route.model_id, regions, f"{price.input_per_mtok:f}",
        f"{price.output_per_mtok:f}", "-" if price.image is None else f"${price.image:f}",
        batch, price.checked.isoformat(), f"{price.age_days(today)}d{flag}", price.source,
    ]  # fmt: skip


# --- estimate -------------------------------------------------------------------------------


def _estimate(args: argparse.Namespace, catalog: Catalog, parser: argparse.ArgumentParser) -> int:
    if args.region is not None:
        try:
            catalog.check_region(args.region)
        except ConfigurationError as error:
            # A usage mistake (exit 2), but one line: the suggestion is what helps, not usage.
            print(f"llamaroute estimate: error: --region: {error}", file=sys.stderr)
            return 2
    if args.workload is not None:
        given = {"--system": args.system, "--image": args.image, "--max-tokens": args.max_tokens,
                 "--expected-output-tokens": args.expected_output_tokens}  # fmt: skip
        extra = [flag for flag, value in given.items() if value is not None]
        if extra:
            parser.error(f"{', '.join(extra)}: with --workload, give these on each line")
    elif args.model is None:
        parser.error("the following argument is required: --model (with --prompt or --prompt-file)")
    if args.requests is not None and args.requests < 1:
        raise InvalidRequestError(f"--requests must be at least 1, not {args.requests}")
    rate = None
    if args.rate is not None:
        try:
            rate = parse_rate(args.rate)
        except ValueError as error:
            parser.error(f"--rate: {error}")
    if args.workload is not None:
        from ._workload import run_workload

        return run_workload(args, catalog, rate)
    return _single(args, catalog, rate)


def _single(args: argparse.Namespace, catalog: Catalog, rate: Rate | None) -> int:
    prompt = args.prompt if args.prompt is not None else _read_prompt(args.prompt_file)
    results = estimate(
        args.model, prompt, image=args.image, system=args.system, max_tokens=args.max_tokens,
        expected_output_tokens=args.expected_output_tokens, providers=args.provider,
        region=args.region, include_opt_in=args.include_opt_in, catalog=catalog,
        tokenizer=args.tokenizer, counter=args.counter,
    )  # fmt: skip
    skipped = getattr(results, "skipped", ())
    n = args.requests if args.requests is not None else DEFAULT_REQUESTS
    if args.json:
        print(dumps({
            "model": results[0].model, "requests": n,
            "rate": None if rate is None else {"text": str(rate), "requests_per_day": rate.per_day},
            "estimates": [
                {**item.model_dump(),
                 "totals": {k: _times(getattr(item, k), n) for k in ("low", "expected", "high")},
                 **_projection(item, rate)}
                for item in results
            ],
            "skipped": [{"provider": s.provider, "model_id": s.model_id, "reason": s.reason}
                        for s in skipped],
        }))  # fmt: skip
        return 0
    first = results[0]
    images = " + 1 image" if args.image is not None else ""
    prompt_tokens = first.input_tokens - first.template_tokens
    about = "" if "exact" in first.tokenizer else "about "
    print(f"{first.model}: {about}{prompt_tokens:,} prompt tokens in Meta's chat format"
          f"{images} (counted by: {first.tokenizer})\n")  # fmt: skip
    headers = ["provider", "native id", "input (low/exp/high)", "output (exp/max)", "low",
               "expected", "high",
               f"expected x{n:,}", f"high x{n:,}", "price age"]  # fmt: skip
    rows = [_estimate_row(item, n) for item in results]
    if rate is not None:
        headers += ["expected a day", "expected a month"]
        for row, item in zip(rows, results, strict=True):
            row += [money(rate.over(item.expected, 1, 1)), money(rate.over(item.expected, 1, 30))]
    print(text_table(headers, rows))
    print(
        "\ninput: prompt + chat template + image tokens as the route bills them (Bedrock counts "
        "about 0 for an image,\nOpenRouter charges its per-image price instead; high: the padded "
        "4 tiles x 1601). low: the fewest input\ntokens, no output. expected: the expected "
        "input and output. high: the most input tokens and every\nallowed output token."
    )
    if rate is not None:
        print(f"a day, a month (30 days): at {rate}.")
    for item in skipped:
        print(f"skipped {item}")
    _footer(results)
    return 0


def _projection(item: Estimate, rate: Rate | None) -> dict[str, Any]:
    if rate is None:
        return {}
    return {
        f"per_{period}": {k: rate.over(getattr(item, k), 1, days) for k in ("expected", "high")}
        for period, days in (("day", 1), ("month", 30))
    }


def _read_prompt(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"prompt file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRequestError(f"cannot read prompt file {path}: {error}") from None


def _times(amount: Decimal | None, n: int) -> Decimal | None:
    return scale(amount, Decimal(n), 1)


def _estimate_row(item: Estimate, n: int) -> list[str]:
    return [
        item.provider, item.model_id,
        f"{item.input_tokens_low + item.image_tokens_low:,} / "
        f"{item.input_tokens + item.image_tokens_expected:,} / "
        f"{item.input_tokens_high + item.image_tokens_high:,}",
        f"{item.expected_output_tokens:,} / {item.max_output_tokens:,}",
        money(item.low), money(item.expected), money(item.high),
        money(_times(item.expected, n)), money(_times(item.high, n)), _age_text(item),
    ]  # fmt: skip


def _age_text(item: Estimate) -> str:
    if item.price_age_days is None:
        return "-"
    return f"{item.price_age_days}d" + (" !" if item.price_stale else "")


def _footer(prices: list[Estimate]) -> None:
    dated = [item.price.checked for item in prices if item.price is not None]
    if dated:
        print(
            f"Prices are dated snapshots (oldest read {min(dated).isoformat()}): "
            "`llamaroute prices` lists them with their sources."
        )
    print_origins([item.price for item in prices])
    stale = [item.pinned for item in prices if item.price_stale]
    if stale:
        print(
            f"llamaroute: warning: the prices of {', '.join(stale)} are older than their "
            "provider's threshold (marked '!'); costs may be off",
            file=sys.stderr,
        )
