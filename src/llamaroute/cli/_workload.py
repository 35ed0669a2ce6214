"""``llamaroute estimate --workload``: a JSONL file's totals per provider, the cheapest provider
for every line, and what it comes to at a given rate.

Money is printed rounded (for reading only) and written to ``--json`` as plain decimal strings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from .._exceptions import InvalidRequestError
from ..catalog import Catalog
from ..money import BadLine, WorkloadOption, WorkloadResult, estimate_workload
from ._output import Rate, dumps, money, print_origins, scale, text_table

__all__ = ["run_workload"]

# Bad workload lines echoed to stderr; past that they are only counted.
_SHOW_BAD = 1000


def run_workload(args: argparse.Namespace, catalog: Catalog, rate: Rate | None) -> int:
    """``estimate --workload FILE``: read the file, print the totals (or ``--json``)."""
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
            include_opt_in=args.include_opt_in, tokenizer=args.tokenizer, counter=args.counter,
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
    view = _View(result, args.requests, rate)
    if args.json:
        print(dumps(view.json()))
    else:
        view.print(path)
    return 0


class _View:
    """The workload's totals as printed: per provider option, scaled to ``--requests`` N
    requests of the workload's mix and projected at ``--rate``."""

    def __init__(self, result: WorkloadResult, requests: int | None, rate: Rate | None) -> None:
        self.result = result
        self.requests = requests
        self.rate = rate

    def scaled(self, amount: Decimal | None) -> Decimal | None:
        """``amount`` (over the workload's requests) for ``--requests`` N such requests."""
        assert self.requests is not None
        return scale(amount, Decimal(self.requests), self.result.requests)

    def per_day(self, amount: Decimal | None) -> Decimal | None:
        """``amount`` (over the workload's requests) for a day at ``--rate``."""
        assert self.rate is not None
        return self.rate.over(amount, self.result.requests, 1)

    def per_month(self, amount: Decimal | None) -> Decimal | None:
        """``amount`` (over the workload's requests) for a 30-day month at ``--rate``."""
        assert self.rate is not None
        return self.rate.over(amount, self.result.requests, 30)

    # --- text ----------------------------------------------------------------------------

    def print(self, path: Path) -> None:
        result = self.result
        models = ", ".join(f"{key} x{n:,}" for key, n in result.models.items())
        if len(result.models) == 1:
            models = next(iter(result.models))
        print(
            f"{models}: {result.lines:,} lines in {path}, {result.requests:,} requests "
            f"estimated, {result.bad_lines:,} bad lines\n"
        )
        headers = ["provider", "native id", "serves", "input tokens", "output (exp/max)", "low",
                   "expected", "high"]  # fmt: skip
        if self.requests is not None:
            headers += [f"expected x{self.requests:,}", f"high x{self.requests:,}"]
        if self.rate is not None:
            headers += ["expected a day", "expected a month"]
        options = result.ranked_options()
        print(text_table(headers, [self.row(item) for item in options]))
        print("\nserves: the requests each provider can take, of all the workload's requests.")
        if self.requests is not None:
            print(f"x{self.requests:,}: {self.requests:,} requests drawn from this workload's mix.")
        if self.rate is not None:
            print(f"a day, a month (30 days): at {self.rate}.")
        for item in options:
            for reason in item.reasons:
                print(f"{item.label} cannot serve {reason}")
        for skipped in result.skipped:
            print(f"skipped {skipped}")
        print()
        self.verdict(options)
        dated = [t.price.checked for t in result.routes if t.price is not None]
        if dated:
            print(
                f"Prices are dated snapshots (oldest read {min(dated).isoformat()}): "
                "`llamaroute prices` lists them with their sources."
            )
        print_origins(t.price for t in result.routes)

    def row(self, item: WorkloadOption) -> list[str]:
        tokens = item.tokens
        inputs = f"{tokens.input_low:,}"
        if tokens.input_high != tokens.input_low:
            inputs += f" to {tokens.input_high:,}"
        low, expected, high = item.costs if item.costs is not None else (None, None, None)
        row = [
            item.label, ", ".join(item.model_ids),
            f"{tokens.requests:,} of {self.result.requests:,}", inputs,
            f"{tokens.output_expected:,} / {tokens.output_high:,}",
            money(low), money(expected), money(high),
        ]  # fmt: skip
        if self.requests is not None:
            row += [money(self.scaled(expected)), money(self.scaled(high))]
        if self.rate is not None:
            row += [money(self.per_day(expected)), money(self.per_month(expected))]
        return row

    def verdict(self, options: list[WorkloadOption]) -> None:
        """The cheapest option for every line, and what free options there are."""
        best = self.result.cheapest()
        if best is None:
            print("No provider can serve every line of this workload (see above).")
        else:
            # Bad lines were never estimated: the verdict covers the lines that were.
            bad = self.result.bad_lines
            skipped = f"{bad:,} bad line{'' if bad == 1 else 's'} skipped"
            lines = f"every valid line ({skipped})" if bad else "every line"
            print(f"cheapest for {lines}: {self.describe(best)}")
        for item in options:
            if item is best or not item.free:
                continue
            notes = "; ".join(dict.fromkeys(t.price.notes for t in item.routes if t.price))
            why = f" ({notes})" if notes else ""
            if item.serves_all:
                print(f"{item.label} also serves every line, at $0 per token{why}")
            else:
                print(
                    f"not crowned: {item.label} costs $0 but cannot serve "
                    f"{item.unserved:,} of {self.result.requests:,} requests{why}"
                )

    def describe(self, item: WorkloadOption) -> str:
        assert item.costs is not None
        expected = item.costs[1]
        text = (
            f"{item.label} ({', '.join(item.model_ids)}), {money(expected)} expected for these "
            f"{self.result.requests:,} requests"
        )
        if self.requests is not None:
            text += f", {money(self.scaled(expected))} for {self.requests:,}"
        if self.rate is not None:
            text += (
                f"; {money(self.per_day(expected))} a day, {money(self.per_month(expected))} "
                f"a month at {self.rate}"
            )
        if item.free:
            notes = "; ".join(dict.fromkeys(t.price.notes for t in item.routes if t.price))
            text += f" (no priced provider serves every line{': ' + notes if notes else ''})"
        return text

    # --- JSON ----------------------------------------------------------------------------

    def json(self) -> dict[str, Any]:
        result = self.result
        best = result.cheapest()
        return {
            "model": result.model or None, "models": result.models, "lines": result.lines,
            "requests": result.requests, "bad_lines": result.bad_lines,
            "scaled_to": self.requests,
            "rate": None if self.rate is None else {
                "text": str(self.rate), "requests_per_day": self.rate.per_day},
            "cheapest": None if best is None else best.label,
            "options": [self.option_json(item) for item in result.ranked_options()],
            "routes": [self.route_json(item) for item in result.ranked()],
            "skipped": [{"provider": s.provider, "model_id": s.model_id, "reason": s.reason}
                        for s in result.skipped],
        }  # fmt: skip

    def amounts(self, costs: tuple[Decimal, Decimal, Decimal] | None) -> dict[str, Any]:
        low, expected, high = costs if costs is not None else (None, None, None)
        found: dict[str, Any] = {"low": low, "expected": expected, "high": high}
        if self.requests is not None:
            found["scaled"] = {"expected": self.scaled(expected), "high": self.scaled(high)}
        if self.rate is not None:
            found["per_day"] = {"expected": self.per_day(expected), "high": self.per_day(high)}
            found["per_month"] = {
                "expected": self.per_month(expected),
                "high": self.per_month(high),
            }
        return found

    def option_json(self, item: WorkloadOption) -> dict[str, Any]:
        return {
            "label": item.label, "provider": item.provider, "model_ids": list(item.model_ids),
            "serves_all": item.serves_all, "requests": item.tokens.requests,
            "unserved": item.unserved, "reasons": list(item.reasons), "free": item.free,
            **self.amounts(item.costs),
        }  # fmt: skip

    def route_json(self, item: Any) -> dict[str, Any]:
        tokens = item.tokens
        return {
            "model": item.route.model, "provider": item.route.provider,
            "model_id": item.route.model_id, "requests": tokens.requests,
            "images": tokens.images, "skipped": item.skipped,
            "skip_reason": item.skip_reason or None,
            "input_tokens_low": tokens.input_low,
            "input_tokens_expected": tokens.input_expected,
            "input_tokens_high": tokens.input_high,
            "output_tokens_expected": tokens.output_expected,
            "output_tokens_max": tokens.output_high,
            **self.amounts(item.costs()),
            "price": item.price.model_dump() if item.price else None,
        }  # fmt: skip


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
