"""The ``llamaroute prices`` and ``llamaroute estimate`` commands.

Money is printed rounded (for reading only; every sum is exact) and written to ``--json`` as
exact decimal strings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any

from .._exceptions import ConfigurationError, InvalidRequestError
from ..catalog._catalog import Catalog, Route
from ..catalog._prices import Price
from ..money._estimate import DEFAULT_EXPECTED_OUTPUT_TOKENS, Estimate, estimate
from ..money._workload import BadLine, RouteTotals, WorkloadResult, estimate_workload
from ._output import text_table

__all__ = ["STALE_DAYS", "add_cost_commands", "money"]

#: A price checked longer ago than this is flagged: provider prices move.
STALE_DAYS = 90
# Bad workload lines echoed to stderr; past that they are only counted.
_SHOW_BAD = 1000

Subparsers = Any  # argparse's _SubParsersAction is private


def add_cost_commands(
    commands: Subparsers,
    add_catalog_option: Callable[[argparse.ArgumentParser], None],
    load: Callable[[argparse.Namespace], Catalog],
) -> None:
    """Register ``prices`` and ``estimate`` on the ``llamaroute`` parser."""
    prices = commands.add_parser(
        "prices",
        help="list each route's price with its source and checked date",
        description="List the price of every route (USD per million input and output tokens, "
        f"per image where charged), its source and the date it was checked. Entries checked "
        f"more than {STALE_DAYS} days ago are marked '!' and warned about.",
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
        "With --workload, estimate every line of a JSONL file and print totals per route.",
    )
    est.add_argument("--model", required=True, help="model key, alias or provider:model_id")
    what = est.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the prompt text")
    what.add_argument("--prompt-file", type=Path, metavar="FILE", help="read the prompt from FILE")
    what.add_argument(
        "--workload",
        type=Path,
        metavar="FILE",
        help="JSONL, one request a line: prompt or messages, optional system, image (path "
        "relative to the file), max_tokens, expected_output_tokens",
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
        "--requests", type=int, default=1000, metavar="N", help="also total N such requests"
    )
    est.add_argument("--provider", action="append", help="only this provider (repeatable)")
    est.add_argument("--region", help="only routes usable from this region (e.g. us-east-1)")
    est.add_argument(
        "--include-opt-in", action="store_true", help="add opt-in routes (OpenRouter :free)"
    )
    est.add_argument("--tokenizer", metavar="FILE", help="Llama 3 tokenizer.json: exact counts")
    est.add_argument("--json", action="store_true", help="machine-readable output")
    add_catalog_option(est)
    est.set_defaults(command=lambda args: _estimate(args, load(args), est))


# --- prices ---------------------------------------------------------------------------------


def _prices(args: argparse.Namespace, catalog: Catalog) -> int:
    specs = [catalog.get(args.name)] if args.name else catalog.models()
    today = date.today()
    entries = [(spec.key, route, catalog.price(route)) for spec in specs for route in spec.routes]
    stale = [price for _, _, price in entries if price and _age(price, today) > STALE_DAYS]
    if args.json:
        payload = [
            {"model": key, "provider": route.provider, "model_id": route.model_id,
             "regions": list(route.regions), "opt_in": route.opt_in,
             "price": price.model_dump(mode="json") if price else None,
             "age_days": _age(price, today) if price else None,
             "stale": bool(price and _age(price, today) > STALE_DAYS)}
            for key, route, price in entries
        ]  # fmt: skip
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        headers = ["model", "provider", "native id", "regions", "in $/M", "out $/M", "image",
                   "checked", "source"]  # fmt: skip
        print(
            text_table(
                headers, [_price_row(key, route, price, today) for key, route, price in entries]
            )
        )
        print(
            "\nUSD per million tokens; 'unknown' = no price known (cost reported as None, "
            f"not 0); ! = checked more than {STALE_DAYS} days ago."
        )
    if stale:
        oldest = min(price.checked for price in stale)
        print(
            f"llamaroute: warning: {len(stale)} price entries were checked more than {STALE_DAYS} "
            f"days ago (oldest {oldest.isoformat()}); prices move, check the sources",
            file=sys.stderr,
        )
    return 0


def _age(price: Price, today: date) -> int:
    return (today - price.checked).days


def _price_row(key: str, route: Route, price: Price | None, today: date) -> list[str]:
    where = ", ".join(route.regions) or "any"
    if price is None:
        return [key, route.provider, route.model_id, where, "unknown", "unknown", "-", "-", "-"]
    flag = " !" if _age(price, today) > STALE_DAYS else ""
    return [
        key, route.provider, route.model_id, where, str(price.input_per_mtok),
        str(price.output_per_mtok), "-" if price.image is None else f"${price.image}",
        price.checked.isoformat() + flag, price.source,
    ]  # fmt: skip


# --- estimate -------------------------------------------------------------------------------


def money(amount: Decimal | None) -> str:
    """An amount for reading: ``$1.44``, ``$0.000123``; ``unknown`` for ``None``. Rounded
    half up for display only."""
    if amount is None:
        return "unknown"
    if amount == 0:
        return "$0"
    if amount < Decimal("0.000001"):
        return "<$0.000001"
    places = 6 if amount < 1 else 4 if amount < 1000 else 2
    text = f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,}"
    if "." in text:
        whole, fraction = text.split(".")
        text = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"${text}"


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
        return _workload(args, catalog)
    if args.requests < 1:
        raise InvalidRequestError(f"--requests must be at least 1, not {args.requests}")
    prompt = args.prompt if args.prompt is not None else _read_prompt(args.prompt_file)
    results = estimate(
        args.model, prompt, image=args.image, system=args.system, max_tokens=args.max_tokens,
        expected_output_tokens=args.expected_output_tokens, providers=args.provider,
        region=args.region, include_opt_in=args.include_opt_in, catalog=catalog,
        tokenizer=args.tokenizer,
    )  # fmt: skip
    skipped = getattr(results, "skipped", ())
    n = args.requests
    if args.json:
        print(json.dumps({
            "model": results[0].model, "requests": n,
            "estimates": [
                {**item.model_dump(mode="json"),
                 "totals": {k: _exact(_times(getattr(item, k), n))
                            for k in ("low", "expected", "high")}}
                for item in results
            ],
            "skipped": [{"provider": s.provider, "model_id": s.model_id, "reason": s.reason}
                        for s in skipped],
        }, indent=2, ensure_ascii=False))  # fmt: skip
        return 0
    first = results[0]
    images = ""
    if first.image_tokens_high:
        images = f" + 1 image (0 to {first.image_tokens_high:,} image tokens)"
    print(f"{first.model}: about {first.input_tokens:,} prompt tokens{images}\n")
    headers = ["provider", "native id", "output (exp/max)", "low", "expected", "high",
               f"expected x{n:,}", f"high x{n:,}"]  # fmt: skip
    print(text_table(headers, [_estimate_row(item, n) for item in results]))
    print(
        "\nlow: the prompt alone (image as 0 tokens, no output). expected: the image in full "
        "(1601 tokens per 560 px tile)\nand the expected output. high: the image in full and "
        "every allowed output token."
    )
    for item in skipped:
        print(f"skipped {item}")
    _footer(results)
    return 0


def _read_prompt(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"prompt file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRequestError(f"cannot read prompt file {path}: {error}") from None


def _times(amount: Decimal | None, n: int) -> Decimal | None:
    return None if amount is None else amount * n


def _exact(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _estimate_row(item: Estimate, n: int) -> list[str]:
    return [
        item.provider, item.model_id,
        f"{item.expected_output_tokens:,} / {item.max_output_tokens:,}",
        money(item.low), money(item.expected), money(item.high),
        money(_times(item.expected, n)), money(_times(item.high, n)),
    ]  # fmt: skip


def _footer(prices: list[Estimate] | list[RouteTotals]) -> None:
    dated = [item.price.checked for item in prices if item.price is not None]
    if dated:
        print(
            f"Prices are dated snapshots (oldest checked {min(dated).isoformat()}): "
            "`llamaroute prices` lists them with their sources."
        )


# --- workload -------------------------------------------------------------------------------


def _workload(args: argparse.Namespace, catalog: Catalog) -> int:
    path: Path = args.workload
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InvalidRequestError(f"workload file not found: {path}") from None
    except OSError as error:
        raise InvalidRequestError(f"cannot read workload file {path}: {error}") from None
    progress = _Progress(path, sys.stderr) if sys.stderr.isatty() else None
    shown = 0

    def bad_line(bad: BadLine) -> None:
        nonlocal shown
        shown += 1
        if shown <= _SHOW_BAD:
            if progress is not None:
                progress.clear()
            print(f"line {bad.line}: {bad.error}", file=sys.stderr)

    with handle:
        lines = progress.track(handle) if progress is not None else handle
        result = estimate_workload(
            lines, args.model, catalog=catalog, providers=args.provider, region=args.region,
            include_opt_in=args.include_opt_in, tokenizer=args.tokenizer,
            base_dir=path.parent, on_bad_line=bad_line,
            on_progress=progress.show if progress is not None else None,
        )  # fmt: skip
    if progress is not None:
        progress.clear()
    if shown > _SHOW_BAD:
        print(f"... {shown - _SHOW_BAD:,} more bad lines not shown", file=sys.stderr)
    if not result.requests:
        raise InvalidRequestError(
            f"no request in {path} could be estimated ({result.bad_lines:,} bad lines)"
        )
    if args.json:
        print(json.dumps(_workload_json(result), indent=2, ensure_ascii=False))
        return 0
    print(
        f"{result.model}: {result.lines:,} lines in {path}, {result.requests:,} requests "
        f"estimated, {result.bad_lines:,} bad lines\n"
    )
    headers = ["provider", "native id", "requests", "input tokens", "output (exp/max)", "low",
               "expected", "high"]  # fmt: skip
    print(text_table(headers, [_totals_row(item) for item in result.ranked()]))
    for item in result.routes:
        if item.skipped:
            print(f"{item.route.pinned}: {item.skipped:,} requests skipped ({item.skip_reason})")
    _footer(result.routes)
    return 0


def _totals_row(item: RouteTotals) -> list[str]:
    tokens, costs = item.tokens, item.costs()
    inputs = f"{tokens.input_low:,}"
    if tokens.input_high != tokens.input_low:
        inputs += f" to {tokens.input_high:,}"
    low, expected, high = costs if costs is not None else (None, None, None)
    return [
        item.route.provider, item.route.model_id, f"{tokens.requests:,}", inputs,
        f"{tokens.output_expected:,} / {tokens.output_high:,}",
        money(low), money(expected), money(high),
    ]  # fmt: skip


def _workload_json(result: WorkloadResult) -> dict[str, Any]:
    routes = []
    for item in result.ranked():
        costs = item.costs()
        tokens = item.tokens
        routes.append({
            "provider": item.route.provider, "model_id": item.route.model_id,
            "requests": tokens.requests, "images": tokens.images, "skipped": item.skipped,
            "skip_reason": item.skip_reason or None,
            "input_tokens_low": tokens.input_low, "input_tokens_high": tokens.input_high,
            "output_tokens_expected": tokens.output_expected,
            "output_tokens_max": tokens.output_high,
            **dict(zip(("low", "expected", "high"),
                       map(_exact, costs or (None, None, None)), strict=True)),
            "price": item.price.model_dump(mode="json") if item.price else None,
        })  # fmt: skip
    return {"model": result.model, "lines": result.lines, "requests": result.requests,
            "bad_lines": result.bad_lines, "routes": routes}  # fmt: skip


class _Progress:
    """A one-line progress bar on a terminal's stderr, by bytes of the file read."""

    def __init__(self, path: Path, stream: IO[str]) -> None:
        self.stream = stream
        self.size = max(path.stat().st_size, 1)
        self.done = 0

    def track(self, lines: IO[bytes]) -> Iterator[bytes]:
        for raw in lines:
            self.done += len(raw)
            yield raw

    def show(self, count: int) -> None:
        share = min(self.done / self.size, 1.0)
        bar = "#" * int(share * 30)
        self.stream.write(f"\r[{bar:<30}] {share:4.0%} {count:,} lines")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()
