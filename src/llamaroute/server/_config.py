"""The gateway's configuration: a TOML file (documented in the README, example in
``examples/gateway/gateway.toml``), or, without one, the environment exactly as ``Client()``
reads it.

```toml
[gateway]
db = "gateway.sqlite3"        # keys and spend (default: $LLAMAROUTE_GATEWAY_DB, else per user)
max_body_bytes = 4000000      # larger request bodies get 413
timeout = 60                  # seconds for a whole call, fallback included
grace_period = 10             # seconds in-flight streams get to finish on shutdown
master_key_env = "LLAMAROUTE_MASTER_KEY"
log_prompts = false           # access logs never carry prompt text unless this is true

[routing]
strategy = "ordered"          # ordered, cheapest, fastest, least_busy, weighted, local_first
retries = 2
state = "redis://127.0.0.1:6379/0"     # optional: breakers, rate limits, latency on Redis
ledger = "postgresql://127.0.0.1/test" # optional: every billed attempt also written here

[providers.ollama]
host = "http://127.0.0.1:11434"
[[providers.openrouter]]      # several deployments: an array of tables, each named
deployment = "or-a"
api_key_env = "OPENROUTER_KEY_A"     # pragma: allowlist secret (a variable's name)
rpm = 600
max_connections = 100             # calls in flight at once (more wait for a connection)
max_keepalive_connections = 20    # idle connections kept open for reuse
[[providers.openrouter]]
deployment = "or-b"
api_key_env = "OPENROUTER_KEY_B"     # pragma: allowlist secret (a variable's name)
rpm = 600
[providers.bedrock]
region = "us-east-1"

[[keys]]                      # keys kept in the file; each secret comes from a variable
name = "team-a"
key_env = "TEAM_A_KEY"
budget = "50"                 # USD, as a string (exact)
rpm = 600
models = ["llama-3.2-3b"]
tags = ["team-a"]
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError
from ..providers import TABLE_FIELDS, Provider, discover, from_table

__all__ = ["MASTER_KEY_ENV", "GatewayConfig", "load_config"]

MASTER_KEY_ENV = "LLAMAROUTE_MASTER_KEY"
_SECTIONS = {"gateway", "routing", "providers", "keys"}
_KEYS = {"name", "key_env", "budget", "rpm", "models", "tags"}
_GATEWAY = {"db", "max_body_bytes", "timeout", "grace_period", "master_key_env", "log_prompts"}
_ROUTING = {"strategy", "retries", "state", "ledger"}


@dataclass
class GatewayConfig:
    """What the gateway runs with. ``providers`` is a table per provider name (``None``: find
    them in the environment as ``Client()`` does)."""

    db: str | None = None
    max_body_bytes: int = 4_000_000
    timeout: float = 60.0
    grace_period: float = 10.0
    master_key_env: str = MASTER_KEY_ENV
    log_prompts: bool = False
    strategy: str = "ordered"
    retries: int | None = None
    state: str | None = None
    ledger: str | None = None
    providers: dict[str, list[dict[str, Any]]] | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = field(default=None, repr=False)

    def master_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The master key from the environment (``None``: no admin access)."""
        env = os.environ if environ is None else environ
        return env.get(self.master_key_env) or None

    def provision_keys(self, store: Any, environ: Mapping[str, str] | None = None) -> None:
        """Create or update the ``[[keys]]`` of the file in ``store``: each key's secret comes
        from the variable ``key_env`` names, never from the file."""
        env = os.environ if environ is None else environ
        for entry in self.keys:
            secret = env.get(entry["key_env"])
            if not secret:
                raise ConfigurationError(
                    f"{self.source}: key {entry['name']}: ${entry['key_env']} is not set"
                )
            try:
                budget = None if entry.get("budget") is None else Decimal(str(entry["budget"]))
            except InvalidOperation:
                raise ConfigurationError(f"key {entry['name']}: budget must be USD") from None
            if isinstance(entry.get("budget"), float):
                raise ConfigurationError(f"key {entry['name']}: write the budget as a string")
            store.provision(entry["name"], secret, budget=budget, rpm=entry.get("rpm"),
                            models=entry.get("models", ()), tags=entry.get("tags", ()))  # fmt: skip

    def build_providers(self, environ: Mapping[str, str] | None = None) -> list[Provider]:
        """The configured providers, in the file's order (Ollama, OpenRouter, Bedrock without
        a file, as ``Client()`` finds them)."""
        if self.providers is None:
            return discover(environ)
        return [from_table(name, table, environ, self.source)
                for name, tables in self.providers.items() for table in tables]  # fmt: skip


def load_config(path: str | os.PathLike[str] | None) -> GatewayConfig:
    """Read the gateway's TOML file (``None``: the defaults and the environment). Unknown
    sections and keys are errors, so that a typo does not go unnoticed."""
    if path is None:
        return GatewayConfig()
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"cannot read the gateway config {where}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{where} is not valid TOML: {error}") from None
    _known(data, _SECTIONS, where)
    gateway, routing = data.get("gateway", {}), data.get("routing", {})
    _known(gateway, _GATEWAY, f"{where} [gateway]")
    _known(routing, _ROUTING, f"{where} [routing]")
    providers = data.get("providers")
    if providers is not None:
        _known(providers, set(TABLE_FIELDS), f"{where} [providers]")
        # One table per provider, or an array of tables: one per deployment.
        providers = {name: table if isinstance(table, list) else [table]
                     for name, table in providers.items()}  # fmt: skip
        for name, tables in providers.items():
            for table in tables:
                _known(table, TABLE_FIELDS[name], f"{where} [providers.{name}]")
    keys = data.get("keys", [])
    if not isinstance(keys, list):
        raise ConfigurationError(f"{where}: keys must be an array of tables ([[keys]])")
    for entry in keys:
        _known(entry, _KEYS, f"{where} [[keys]]")
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("key_env"), str):
            raise ConfigurationError(f"{where} [[keys]]: each key needs a name and a key_env")
    config = GatewayConfig(providers=providers, keys=keys, source=where)
    try:
        if "db" in gateway:
            config.db = str(Path(where).parent / str(gateway["db"]))
        config.max_body_bytes = int(gateway.get("max_body_bytes", config.max_body_bytes))
        config.timeout = float(gateway.get("timeout", config.timeout))
        config.grace_period = float(gateway.get("grace_period", config.grace_period))
        config.master_key_env = str(gateway.get("master_key_env", config.master_key_env))
        config.log_prompts = bool(gateway.get("log_prompts", False))
        config.strategy = str(routing.get("strategy", config.strategy))
        config.retries = None if "retries" not in routing else int(routing["retries"])
        config.state = None if "state" not in routing else str(routing["state"])
        config.ledger = None if "ledger" not in routing else str(routing["ledger"])
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"{where}: {error}") from None
    if config.max_body_bytes < 1024 or config.timeout <= 0 or config.grace_period < 0:
        raise ConfigurationError(f"{where}: max_body_bytes >= 1024, timeout > 0, grace_period >= 0")
    return config


def _known(table: object, allowed: AbstractSet[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
