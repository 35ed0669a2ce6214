"""``llamaroute prices refresh``: read the live price sources, write the dated user price file,
print what changed.

    llamaroute prices refresh [--out PATH] [--only openrouter|bedrock] [--region R ...]
                              [--openrouter-url URL] [--aws-endpoint-url URL] [--dry-run] [--json]

argparse cannot give ``prices`` both an optional model name and sub-commands, so ``main``
hands ``prices refresh ...`` to this parser (registered as ``prices-refresh``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._refresh import SOURCES, RefreshResult, refresh_prices
from ..catalog import PRICES_ENV, default_prices_path
from ._output import dumps, text_table

__all__ = ["COMMAND", "add_refresh_command"]

#: The name the parser is registered under; ``llamaroute prices refresh`` is rewritten to it.
COMMAND = "prices-refresh"


def add_refresh_command(commands: Any) -> None:
    """Register ``prices refresh`` on the ``llamaroute`` parser."""
    parser = commands.add_parser(
        COMMAND,
        prog="llamaroute prices refresh",
        help="(llamaroute prices refresh) read today's prices from OpenRouter and AWS",
        description="Read the live prices: OpenRouter's public model list (GET /api/v1/models "
        "and each model's /endpoints; no key needed) and, with AWS credentials, the AWS Price "
        "List API (on-demand rows for AmazonBedrock, per region) and Bedrock's "
        "ListFoundationModels (each model's lifecycle). Write them, dated and sourced, to the "
        f"user price file (--out, else ${PRICES_ENV}, else "
        "$XDG_CONFIG_HOME/llamaroute/prices.toml or ~/.config/llamaroute/prices.toml), which "
        "estimates, costs and `llamaroute prices` then use over the shipped prices, and print "
        "what changed. A source that fails is reported; the others are still written.",
    )
    parser.add_argument("--out", type=Path, metavar="PATH", help="write here instead")
    parser.add_argument(
        "--only", action="append", choices=SOURCES, help="only this source (repeatable)"
    )
    parser.add_argument(
        "--region",
        action="append",
        metavar="R",
        help="AWS region to price (repeatable; default: every region a Bedrock route is called "
        "from)",
    )
    parser.add_argument("--openrouter-url", metavar="URL", help="OpenRouter API base URL")
    parser.add_argument(
        "--aws-endpoint-url", metavar="URL", help="endpoint for the AWS pricing and bedrock APIs"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(command=_refresh)


def _refresh(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else default_prices_path()
    result = refresh_prices(
        out, sources=args.only or SOURCES, regions=args.region,
        openrouter_url=args.openrouter_url, aws_endpoint_url=args.aws_endpoint_url,
        dry_run=args.dry_run,
    )  # fmt: skip
    if args.json:
        print(dumps(_payload(result, out)))
    else:
        _print(result, out, dry_run=args.dry_run)
    for name, error in result.errors.items():
        print(f"llamaroute: error: {name}: {error}", file=sys.stderr)
    return 0 if result.ok else 1


def _payload(result: RefreshResult, out: Path) -> dict[str, Any]:
    return {
        "path": None if result.path is None else str(result.path),
        "target": str(out),
        "sources": result.sources,
        "changes": [
            {"route": c.route, "region": c.region, "what": c.what, "old": c.old, "new": c.new,
             "changed": c.changed}
            for c in result.changes
        ],
        "prices": [price.model_dump() for price in result.prices],
        "lifecycles": [vars(life) for life in result.lifecycles],
        "notes": result.notes,
        "errors": {name: str(error) for name, error in result.errors.items()},
    }  # fmt: skip


def _print(result: RefreshResult, out: Path, *, dry_run: bool) -> None:
    if result.changes:
        rows = [
            [c.route, c.region, c.what, c.old, c.new, "changed" if c.changed else "same"]
            for c in result.changes
        ]
        print(text_table(["route", "region", "what", "in use", "read now", ""], rows))
        print("\nprices: USD per million input/output tokens; img: USD per image.")
    else:
        print("nothing read")
    for note in result.notes:
        print(f"note: {note}")
    changed = sum(c.changed for c in result.changes)
    if result.path is not None:
        print(f"{changed} change(s); wrote {result.path}")
    elif dry_run and result.text:
        print(f"{changed} change(s); dry run: {out} not written")
    elif not result.text:
        print(f"no source could be read; {out} not written")
