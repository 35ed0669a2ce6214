"""The gateway's commands (see ``cli/__init__.py``): ``serve``, ``keys`` and ``spend --by``.

    llamaroute serve [--port 4000] [--host 127.0.0.1] [--config FILE] [--db PATH] [--workers N]
    llamaroute keys create --name N [--budget USD] [--rpm N] [--models a,b] [--tags t,u] [--db PATH]
    llamaroute keys list [--json] [--db PATH]
    llamaroute keys revoke KEY_ID|NAME [--db PATH]
    llamaroute keys rotate KEY_ID|NAME [--db PATH]
    llamaroute spend --by key|tag|user|provider|model|day [--since DATE] [--json] [--db PATH]

The server and its store are imported only when these commands run (the ``server`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing
from decimal import Decimal, InvalidOperation
from typing import Any

from .._exceptions import ConfigurationError
from ._output import dumps, text_table

__all__ = ["add_gateway_commands", "add_spend_by_options", "spend_by"]

_EXTRA = "the gateway needs the server extra: pip install 'llamaroute[server]'"


def _server() -> Any:
    try:
        from .. import server
    except ImportError as error:
        raise ConfigurationError(f"{_EXTRA} ({error})") from None
    return server


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        help="the gateway's SQLite file (default $LLAMAROUTE_GATEWAY_DB, "
        "else ~/.local/share/llamaroute/gateway.sqlite3)",
    )


def add_spend_by_options(spend: argparse.ArgumentParser) -> None:
    """``spend --by`` and ``--db``: the gateway's spend, grouped."""
    spend.add_argument(
        "--by",
        choices=("key", "tag", "user", "provider", "model", "day"),
        help="the gateway's spend grouped by this (reads --db)",
    )
    _db_option(spend)


def add_gateway_commands(commands: Any) -> None:
    """Register ``serve`` and ``keys``."""
    serve = commands.add_parser(
        "serve",
        help="run the OpenAI-compatible gateway",
        description="Serve /v1/chat/completions, /v1/models, /v1/estimate, /v1/spend, /metrics "
        "and /ui over the configured providers. Without --config the providers come from the "
        "environment, as for Client(); the master key from $LLAMAROUTE_MASTER_KEY.",
    )
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--config", help="the gateway's TOML file")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--log-level", default="info")
    _db_option(serve)
    serve.set_defaults(command=_serve)

    keys = commands.add_parser("keys", help="the gateway's virtual keys")
    actions = keys.add_subparsers(metavar="ACTION")
    create = actions.add_parser("create", help="a new key; prints it once, on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--budget", help="USD this key may spend in total")
    create.add_argument("--rpm", type=int, help="requests a minute")
    create.add_argument("--models", help="comma-separated model keys it may use (default all)")
    create.add_argument("--tags", help="comma-separated tags its spend carries")
    _db_option(create)
    create.set_defaults(command=_create)
    listing = actions.add_parser("list", help="every key (never the secrets)")
    listing.add_argument("--json", action="store_true")
    _db_option(listing)
    listing.set_defaults(command=_list)
    for name, helptext in (
        ("revoke", "revoke a key: 401 from now on"),
        ("rotate", "a new secret for a key, printed once; the old one stops"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("key", help="the key's id or name")
        _db_option(action)
        action.set_defaults(command=_revoke if name == "revoke" else _rotate)
    keys.set_defaults(command=lambda args: (keys.print_help(sys.stderr), 2)[1])


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:
    server = _server()
    path = args.db or server.default_db_path()
    if not create and not os.path.exists(path):
        raise ConfigurationError(f"no gateway database at {path} (pass --db, or create a key)")
    return server.Store(path)


def _serve(args: argparse.Namespace) -> int:
    server = _server()
    import uvicorn

    config = server.load_config(args.config)
    db = args.db or config.db or str(server.default_db_path())
    server.Store(db).close()  # fail here, in the parent, on a database that cannot be opened
    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    os.environ[server.CONFIG_ENV] = os.path.abspath(args.config) if args.config else ""
    os.environ[server.DB_ENV] = db
    if not config.master_key():
        print(
            f"llamaroute: no ${config.master_key_env}: /v1/spend and /ui are closed; "
            "virtual keys still work",
            file=sys.stderr,
        )
    uvicorn.run(
        "llamaroute.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(config.grace_period) or None,
        log_config=_log_config(uvicorn),
        proxy_headers=False,
        server_header=False,
    )
    return 0


def _log_config(uvicorn: Any) -> dict[str, Any]:
    """uvicorn's logging, plus the gateway's JSON access log: one line per call on stdout."""
    import copy

    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["gateway_json"] = {"format": "%(message)s"}
    config["handlers"]["gateway_access"] = {
        "formatter": "gateway_json", "class": "logging.StreamHandler", "stream": "ext://sys.stdout",
    }  # fmt: skip
    config["loggers"]["llamaroute.gateway.access"] = {
        "handlers": ["gateway_access"], "level": "INFO", "propagate": False,
    }  # fmt: skip
    return config


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigurationError(f"--budget must be an amount in USD, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigurationError(f"--budget must be an amount >= 0, not {text!r}")
    return value


def _split(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _create(args: argparse.Namespace) -> int:
    with closing(_store(args, create=True)) as store:
        models = _split(args.models)
        if models:
            from ..catalog import default_catalog

            catalog = default_catalog()
            models = [catalog.resolve(name).model.key for name in models]  # unknown: an error
        record, secret = store.create_key(
            args.name,
            budget=_amount(args.budget),
            rpm=args.rpm,
            models=models,
            tags=_split(args.tags),
        )
    print(f"created {record.id} ({record.name}); the key is shown once, keep it now:")
    print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        records = [record.as_dict() for record in store.list_keys()]
    if args.json:
        print(dumps(records))
        return 0
    rows = [
        [
            r["id"],
            r["name"],
            f"{r['prefix']}...",
            r["budget"] or "-",
            r["spent"],
            r["remaining"] or "-",
            r["rpm"] or "-",
            ",".join(r["models"]) or "all",
            "revoked" if r["revoked"] else "active",
        ]
        for r in records
    ]
    print(
        text_table(
            ["id", "name", "key", "budget", "spent", "left", "rpm", "models", "status"], rows
        )
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        record = store.revoke(args.key)
    print(f"revoked {record.id} ({record.name})")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        record, secret = store.rotate(args.key)
    print(f"rotated {record.id} ({record.name}); the old key no longer works. New key:")
    print(secret)
    return 0


def spend_by(args: argparse.Namespace) -> int:
    """``spend --by``: the gateway's spend grouped by key, tag, user, provider, model or day."""
    with closing(_store(args)) as store:
        result = store.spend(args.by or "key", args.since)
    if args.json:
        print(dumps(result))
        return 0
    by = result["by"]
    groups: list[dict[str, Any]] = result["groups"]
    print(f"{result['total']} USD" + (f" since {args.since}" if args.since else "") + f", by {by}")
    head = [
        str(by),
        *(["name"] if by == "key" else []),
        "cost (USD)",
        "requests",
        "input tokens",
        "output tokens",
    ]
    rows = [
        [
            g[by] or "-",
            *([g["name"]] if by == "key" else []),
            g["cost"],
            g["requests"],
            g["input_tokens"],
            g["output_tokens"],
        ]
        for g in groups
    ]
    print(text_table(head, rows))
    return 0
