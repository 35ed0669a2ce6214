"""The ``llamaroute`` command.

    llamaroute models [NAME] [--json] [--catalog FILE ...]
    llamaroute prices [NAME] [--json] [--catalog FILE ...]
    llamaroute prices refresh [--out PATH] [--only SOURCE] [--region R ...] [--dry-run] [--json]
    llamaroute estimate --model KEY (--prompt TEXT | --prompt-file F) [--requests N] [--rate N/day]
    llamaroute estimate [--model KEY] --workload FILE.jsonl [--requests N] [--rate N/day] ...
    llamaroute chat --model KEY [--image F] [--provider P ...] [--strategy S] [--stream] PROMPT|-
    llamaroute doctor [--json]
    llamaroute spend [--ledger F] [--since DATE] [--json]
    llamaroute spend --by key|tag|user|provider|model|day [--db PATH] [--since DATE] [--json]
    llamaroute serve [--port P] [--host H] [--config FILE] [--db PATH] [--workers N]
    llamaroute keys create --name N [--budget USD] [--rpm N] [--models a,b] [--db PATH]
    llamaroute keys list|revoke|rotate ... [--db PATH]
    llamaroute --version

Errors print one line (``llamaroute: error: ...``) and exit with status 1; usage mistakes exit
with status 2, with the subcommand's own usage. ``doctor`` exits 1 when a configured provider is
not usable. Tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import NoReturn

from .._exceptions import LlamarouteError
from .._version import __version__
from ..catalog import Catalog, ModelSpec, Route, default_catalog, load_catalog
from ._costs import money  # how amounts are rounded for display (tested on its own)
from ._output import dumps, text_table

__all__ = ["CATALOG_ENV", "main", "money"]

CATALOG_ENV = "LLAMAROUTE_CATALOG"

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["prices", "refresh"]:
        from ._refresh import COMMAND

        argv = [COMMAND, *argv[2:]]
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except LlamarouteError as error:
        print(f"llamaroute: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `llamaroute models | head`: the reader left; say nothing more.
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = _TopParser(
        prog="llamaroute",
        description="Llama 3.2 on OpenRouter, AWS Bedrock and Ollama: models, routes and costs.",
    )
    parser.add_argument("--version", action="version", version=f"llamaroute {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", parser_class=_CommandParser)

    models = commands.add_parser(
        "models",
        help="list the model keys and every provider's native ID and limits",
        description="List the Llama 3.2 model keys and, per provider, the native model ID, "
        "regions, context window, max output, images per request and tool support. "
        "A value marked '?' is a cautious assumption that the provider does not document.",
    )
    models.add_argument("name", nargs="?", help="show one model (key, alias or provider:model_id)")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    _add_catalog_option(models)
    models.set_defaults(command=_models)

    from ._costs import add_cost_commands  # the prices and estimate commands

    add_cost_commands(commands, _add_catalog_option, _catalog)

    from ._refresh import add_refresh_command  # prices refresh

    add_refresh_command(commands)

    from ._chat import add_chat_commands  # the chat, doctor and spend commands

    add_chat_commands(commands, _add_catalog_option, _catalog)

    from ._gateway import add_gateway_commands  # serve and keys

    add_gateway_commands(commands)
    return parser


class _TopParser(argparse.ArgumentParser):
    """The top-level parser: a mistyped command (``estimat``) gets the closest command's name
    after argparse's list of choices."""

    def error(self, message: str) -> NoReturn:
        typed = re.search(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if typed:
            commands = [name for action in self._actions
                        if isinstance(action, argparse._SubParsersAction)
                        for name in action.choices]  # fmt: skip
            close = difflib.get_close_matches(typed.group(1), commands, n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
        super().error(message)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an argument it does not know is its own usage error.

    argparse hands a subcommand's unknown arguments back to the top-level parser, which then
    prints the top-level usage (``llamaroute [-h] [--version] COMMAND ...``), useless to
    someone who mistyped ``--modle``. Here the subcommand reports it, with its own usage and
    the closest option names.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._hint(extras)}")
        return parsed, extras

    def _hint(self, extras: Sequence[str]) -> str:
        options = [name for name in self._option_string_actions if name.startswith("--")]
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], options, n=1)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""


def _add_catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="FILE",
        help=f"extra catalog TOML layered over the built-in one (repeatable; also ${CATALOG_ENV}, "
        "a list of paths separated by the platform's path separator)",
    )


def _catalog(args: argparse.Namespace) -> Catalog:
    paths = [p for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p]
    paths += args.catalog
    return load_catalog(*paths, base=default_catalog()) if paths else default_catalog()


def _models(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    specs = [catalog.get(args.name)] if args.name else catalog.models()
    if args.json:
        print(dumps([spec.model_dump() for spec in specs]))
        return 0
    for number, spec in enumerate(specs):
        if number:
            print()
        print(f"{spec.key}  {_describe_model(spec)}")
        today = catalog.today()
        print(text_table(["provider", "native id", "regions", "context", "max out", "images",
                          "tools", "lifecycle", "notes"],
                         [_route_row(route, today) for route in spec.routes]))  # fmt: skip
    print("\n? = cautious value the provider does not document; opt-in = used only when asked;")
    print("lifecycle: active, legacy or eol (a route past a confirmed end of life is skipped)")
    return 0


def _describe_model(spec: ModelSpec) -> str:
    billions = spec.parameters / 1e9
    inputs = " + ".join(spec.input_modalities)
    return (
        f"({spec.name}; {billions:.2f}B parameters; {inputs} in; "
        f"{spec.context_window // 1024}K context; knowledge to {spec.knowledge_cutoff})"
    )


def _route_row(route: Route, today: date) -> list[str]:
    def mark(field: str, text: str) -> str:
        return f"{text}?" if field in route.unconfirmed else text

    images = "-"
    if route.max_images:
        side = f" <={route.max_image_side}px" if route.max_image_side else ""
        images = mark("max_image_side", f"{route.max_images}{side}")
    tools = mark("tools", "yes" if route.tools else "no")
    if route.tools and not route.tools_streaming:
        tools += mark("tools_streaming", " (not streaming)")
    notes = []
    if route.opt_in:
        notes.append(f"opt-in ({route.variant})" if route.variant else "opt-in")
    if route.foundation_model_id:
        notes.append(f"profile of {route.foundation_model_id}")
    return [
        route.provider,
        route.model_id,
        ", ".join(route.regions) or "any",
        mark("context_window", f"{route.context_window:,}"),
        mark(
            "max_output_tokens", f"{route.max_output_tokens:,}" if route.max_output_tokens else "-"
        ),
        images,
        tools,
        _lifecycle(route, today),
        "; ".join(notes),
    ]


def _lifecycle(route: Route, today: date) -> str:
    text = route.lifecycle_text(today)
    # An unconfirmed status reads "legacy?"; an unconfirmed date is marked by lifecycle_text.
    if "lifecycle" in route.unconfirmed and not route.past_end_of_life(today):
        head, sep, tail = text.partition(",")
        text = f"{head}?{sep}{tail}" if not head.endswith("?") else text
    return text
