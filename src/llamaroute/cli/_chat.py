"""The ``chat``, ``doctor`` and ``spend`` commands of ``llamaroute`` (see ``cli/__init__.py``).

    llamaroute chat --model KEY [--image F] [--provider P ...] [--strategy S] [--stream]
                    [--max-cost X] [--max-tokens N] [--system TEXT] [--timeout S]
                    [--ledger F] PROMPT
    llamaroute doctor [--json]      (exit 1 when a configured provider is not usable)
    llamaroute spend [--ledger F] [--since DATE] [--reconcile] [--json]

``chat`` prints the answer on stdout and, on stderr, where it came from, the tokens, the cost
and every attempt, so that ``llamaroute chat ... > answer.txt`` keeps only the answer.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, InvalidRequestError
from ..catalog import Catalog
from ._output import dumps, text_table

if TYPE_CHECKING:  # imported where used: `llamaroute estimate` needs neither
    from .._response import ChatResponse
    from ..money import RouteDrift

__all__ = ["LEDGER_ENV", "add_chat_commands"]

LEDGER_ENV = "LLAMAROUTE_LEDGER"
STRATEGIES = ("ordered", "cheapest", "fastest", "local_first")


def add_chat_commands(
    commands: Any,
    add_catalog_option: Callable[[argparse.ArgumentParser], None],
    catalog_of: Callable[[argparse.Namespace], Catalog],
) -> None:
    """Register ``chat``, ``doctor`` and ``spend`` on the ``llamaroute`` parser."""
    chat = commands.add_parser(
        "chat",
        help="ask a model, with fallback; the answer on stdout, the details on stderr",
        description="Ask a Llama 3.2 model through the providers configured in the "
        "environment (OLLAMA_HOST, OPENROUTER_API_KEY, AWS credentials). The answer goes to "
        "stdout; provider, tokens, cost and attempts go to stderr.",
    )
    chat.add_argument("prompt", help="what to ask; - reads it from stdin")
    chat.add_argument("--model", required=True, help="model key, alias or provider:model_id")
    chat.add_argument("--image", help="an image file or URL (vision models)")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--provider", action="append", dest="providers", metavar="P",
                      help="use this provider (repeatable, in order)")  # fmt: skip
    chat.add_argument("--strategy", choices=STRATEGIES, default="ordered")
    chat.add_argument("--stream", action="store_true", help="print the answer as it comes")
    chat.add_argument("--max-cost", help="refuse routes that could cost more (USD)")
    chat.add_argument("--max-tokens", type=int, help="cap the answer's length")
    chat.add_argument("--timeout", type=float, help="seconds for the whole call")
    chat.add_argument("--ledger", help=f"record the cost in this SQLite ledger (${LEDGER_ENV})")
    add_catalog_option(chat)
    chat.set_defaults(command=lambda args: _chat(args, catalog_of(args)))

    doctor = commands.add_parser(
        "doctor",
        help="which providers are configured and usable, and which models each serves",
        description="Check each provider the environment configures, cheaply and without "
        "spending: Ollama's pulled tags, OpenRouter's model list and API key, Bedrock's "
        "credentials (ListFoundationModels). Exits 1 when a configured provider is not usable.",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    add_catalog_option(doctor)
    doctor.set_defaults(command=lambda args: _doctor(args, catalog_of(args)))

    spend = commands.add_parser("spend", help="what a spend ledger has recorded")
    spend.add_argument("--ledger", help=f"the SQLite ledger file (default ${LEDGER_ENV})")
    spend.add_argument("--since", help="only from this day on (YYYY-MM-DD)")
    spend.add_argument("--json", action="store_true", help="machine-readable output")
    spend.add_argument(
        "--reconcile", action="store_true",
        help="per route: the provider's reported costs beside the price table's, and the drift",
    )  # fmt: skip
    from ._gateway import add_spend_by_options  # the gateway's spend by key, tag, user, ...

    add_spend_by_options(spend)
    spend.set_defaults(command=_spend)


def _max_cost(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRequestError(f"--max-cost must be an amount in USD, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequestError(f"--max-cost must be an amount >= 0, not {text!r}")
    return value


def _chat(args: argparse.Namespace, catalog: Catalog) -> int:
    from ..client import Client  # deferred: the other commands need no client

    max_cost = _max_cost(args.max_cost)
    prompt = _stdin_prompt() if args.prompt == "-" else args.prompt
    ledger = args.ledger or os.environ.get(LEDGER_ENV) or None
    with Client(catalog=catalog, strategy=args.strategy, ledger=ledger) as client:
        options: dict[str, Any] = {
            "image": args.image, "system": args.system, "providers": args.providers,
            "max_cost": max_cost, "max_tokens": args.max_tokens, "timeout": args.timeout,
        }  # fmt: skip
        if args.stream:
            with client.stream(args.model, prompt, **options) as stream:
                for chunk in stream:
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
            response = stream.response
            sys.stdout.write("\n")
        else:
            response = client.chat(args.model, prompt, **options)
            print(response.text)
    _report(response)
    return 0


def _stdin_prompt() -> str:
    """The prompt piped in for ``chat -`` (``echo "hi" | llamaroute chat --model ... -``)."""
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRequestError(f"cannot read the prompt from stdin: {error}") from None
    # The newline that ends a piped line is not part of the question.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise InvalidRequestError("the prompt read from stdin (chat -) is empty")
    return text


def _report(response: ChatResponse) -> None:
    cost = "unknown"
    if response.cost is not None:
        cost = f"{response.cost.total:f} USD ({response.cost.source})"
        if response.total_cost is not None and response.total_cost != response.cost.total:
            cost += f", {response.total_cost:f} USD for the whole call"
    usage = response.usage
    lines = [
        f"{response.provider} {response.provider_model_id} ({response.model}), "
        f"{usage.input_tokens} in / {usage.output_tokens} out tokens, {cost}, "
        f"{response.latency_s:.2f} s",
    ]
    for number, attempt in enumerate(response.attempts, start=1):
        outcome = attempt.outcome if attempt.outcome != "error" else attempt.error_type
        status = f" HTTP {attempt.status_code}" if attempt.status_code else ""
        lines.append(f"  attempt {number}: {attempt.provider} {attempt.model_id}: "
                     f"{outcome}{status} ({attempt.elapsed_s:.2f} s)")  # fmt: skip
    print("\n".join(lines), file=sys.stderr)


def _doctor(args: argparse.Namespace, catalog: Catalog) -> int:
    from ..providers import discover
    from ._doctor import check_provider, environment_notes

    providers = discover()
    findings = []
    for provider in providers:
        try:
            findings.append(check_provider(provider, catalog))
        finally:
            provider.close()
    notes = environment_notes([finding.provider for finding in findings])
    unusable = [finding.provider for finding in findings if not finding.usable]
    code = 1 if unusable or not findings else 0
    if args.json:
        print(dumps({"providers": [finding.as_dict() for finding in findings],
                     "usable": code == 0, "notes": notes}))  # fmt: skip
        return code
    if not findings:
        print("No provider is configured. Set one or more of: OLLAMA_HOST (a local Ollama), "
              "OPENROUTER_API_KEY, AWS credentials with AWS_REGION (Bedrock).")  # fmt: skip
    for finding in findings:
        print(f"{finding.provider}: {finding.status}")
        print(f"  serves: {', '.join(finding.models) or 'none of the catalog models'}")
        for note in finding.notes:
            print(f"  note: {note}")
    for note in notes:
        print(f"note: {note}")
    if unusable:
        print(f"not usable: {', '.join(unusable)} (see above)")
    return code


def _spend(args: argparse.Namespace) -> int:
    if args.by is not None or args.db is not None:
        from ._gateway import spend_by

        return spend_by(args)
    path = args.ledger or os.environ.get(LEDGER_ENV)
    if not path:
        raise ConfigurationError(f"no ledger: pass --ledger FILE or set {LEDGER_ENV}")
    served = path.startswith(("postgresql://", "postgres://"))  # a fleet's ledger (issue 21)
    if not served and not os.path.exists(path):
        raise ConfigurationError(f"no ledger file at {path}")
    since = None
    if args.since:
        try:
            since = date.fromisoformat(args.since)
        except ValueError:
            raise InvalidRequestError(
                f"--since takes a day as YYYY-MM-DD, not {args.since!r}"
            ) from None
    from ..money import PostgresLedger, SqliteLedger  # deferred: only `spend` reads a ledger

    # Read-only: reading needs no write access to the file (or its folder).
    ledger: SqliteLedger | PostgresLedger
    ledger = PostgresLedger(path) if served else SqliteLedger(path, read_only=True)
    try:
        if args.reconcile:
            return _reconcile(ledger.reconcile(since), json_output=args.json)
        summary = ledger.summary(since)
    finally:
        ledger.close()
    if args.json:
        # Built here from the Decimal figures, not from as_dict(): str(Decimal) can write
        # "2.4E-7", and money in JSON is always a plain decimal string.
        print(dumps({
            "total": summary.total, "calls": summary.calls,
            "by_provider": summary.by_provider, "by_model": summary.by_model,
            "by_day": summary.by_day, "skipped_rows": summary.skipped_rows,
        }))  # fmt: skip
        return 0
    print(f"{summary.total:f} USD over {summary.calls} billed attempt(s)"
          + (f" since {since}" if since else ""))  # fmt: skip
    if summary.skipped_rows:
        print(f"{summary.skipped_rows} row(s) left out: their cost is not an amount")
    for title, table in (("by provider", summary.by_provider), ("by model", summary.by_model),
                         ("by day", summary.by_day)):  # fmt: skip
        if table:
            print(f"{title}:")
            for name, amount in sorted(table.items()):
                print(f"  {name:<24} {amount:f}")
    return 0


def _reconcile(routes: list[RouteDrift], *, json_output: bool) -> int:
    """``spend --reconcile``: per route, the provider's figures beside the table's."""
    if json_output:
        print(dumps({"routes": [route.as_dict() for route in routes]}))
        return 0
    if not routes:
        print("the ledger has no billed attempts")
        return 0
    rows = []
    for route in routes:
        share = route.drift_share
        rows.append([
            f"{route.provider}:{route.model_id}", str(route.calls), f"{route.spent:f}",
            str(route.compared), f"{route.reported:f}", f"{route.table:f}", f"{route.drift:+f}",
            "-" if share is None else f"{share * 100:+.2f}%",
        ])  # fmt: skip
    print(text_table(["route", "calls", "spent", "compared", "reported", "table", "drift",
                      "drift %"], rows))  # fmt: skip
    print("compared: calls with both the provider's reported cost and the table's figure "
          "(estimates and providers that report no cost are not compared)")  # fmt: skip
    return 0
