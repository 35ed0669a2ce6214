"""The catalog's TOML sources: reading, merging and dumping them.

``scripts/build_data.py`` merges the reviewed ``providers/*.toml`` and ``pricing/*.toml`` into
``_data/catalog.json`` with :func:`merge_sources` and :func:`dump_catalog`, requiring a source
and a date on every entry; :func:`load_catalog` merges a user's own files over the built-in
catalog at run time, with the same rules. Both use the runtime's own pydantic models, so the
shipped data and a user's overrides are checked alike.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._exceptions import ConfigurationError
from .._records import validation_message
from ._catalog import _IDENTITY_FIELDS, Catalog, CatalogData, ModelSpec, Route
from ._prices import match_prices, merge_price_entries, price_entries, validate_prices

__all__ = ["Source", "dump_catalog", "load_catalog", "merge_sources", "read_toml"]


def load_catalog(*paths: str | Path, base: Catalog | None = None) -> Catalog:
    """A catalog made of ``base`` (the built-in one by default) plus the given TOML files.

    A file may add or change models (``[models."<key>"]``) and routes (``[[routes]]``), in the
    same format as the package's ``providers/*.toml``. A route with the ``provider`` and
    ``model_id`` of an existing route changes only the fields it sets; a new route takes its
    limits from an existing route of the same provider and model, so a custom Ollama tag needs
    only ``provider``, ``model`` and ``model_id``::

        [[routes]]
        provider = "ollama"
        model = "llama-3.2-3b"
        model_id = "llama3.2:3b-instruct-q8_0"

    Raises :class:`ConfigurationError` naming the file and the problem.
    """
    start = (base or Catalog.builtin()).data
    return Catalog(merge_sources(start, [read_toml(Path(path)) for path in paths]))


class Source:
    """One parsed TOML file: its path (for messages) and its content."""

    def __init__(self, path: Path, content: Mapping[str, Any]) -> None:
        self.path = path
        self.content = content


def read_toml(path: Path) -> Source:
    try:
        with path.open("rb") as handle:
            return Source(path, tomllib.load(handle))
    except FileNotFoundError:
        raise ConfigurationError(f"catalog file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigurationError(f"catalog file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read catalog file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None


_FILE_KEYS = frozenset({"provider", "defaults", "models", "routes", "prices", "price_defaults"})


def merge_sources(
    base: CatalogData | None,
    sources: Sequence[Source],
    *,
    require_provenance: bool = False,
    generated_by: str = "",
) -> CatalogData:
    """Layer TOML sources over ``base`` and validate the result with the runtime models.

    With ``require_provenance`` (the package's own data), every model, route and price entry
    must state its ``source`` and ``checked`` date itself; user files may leave them out.
    """
    specs: dict[str, dict[str, Any]] = {}
    # Each route's fields, and where its last change came from (for error messages).
    routes: list[tuple[str, dict[str, Any]]] = []
    prices: list[tuple[str, dict[str, Any]]] = []
    if base is not None:
        for spec in base.models:
            specs[spec.key] = spec.model_dump(exclude={"routes"})
            routes.extend((f"route {route.pinned}", route.model_dump()) for route in spec.routes)
        prices.extend((f"price for {p.describe()}", p.model_dump()) for p in base.prices)

    for source in sources:
        where = str(source.path)
        unknown = set(source.content) - _FILE_KEYS
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown top-level keys {sorted(unknown)}; expected {sorted(_FILE_KEYS)}"
            )
        file_provider = source.content.get("provider")
        defaults = _as_table(source.content.get("defaults", {}), f"{where}: defaults")
        for key, fields in _as_table(source.content.get("models", {}), f"{where}: models").items():
            fields = _as_table(fields, f"{where}: models.{key}")
            _check_provenance(fields, f"{where}: models.{key}", require_provenance, source)
            specs[key] = {**specs.get(key, {}), **fields, "key": key}
        entries = source.content.get("routes", [])
        if not isinstance(entries, list):
            raise ConfigurationError(f"{where}: 'routes' must be an array of tables ([[routes]])")
        for number, entry in enumerate(entries, start=1):
            entry = _as_table(entry, f"{where}: routes #{number}")
            label = f"{where}: route #{number} ({entry.get('model_id', 'no model_id')})"
            _check_provenance(entry, label, require_provenance, source)
            fields = {**defaults, **entry}
            if file_provider is not None:
                fields.setdefault("provider", file_provider)
            _merge_route(routes, label, fields)
        for label, entry in price_entries(source.content, where, file_provider):
            _check_provenance(entry, label, require_provenance, source)
            if not require_provenance:
                # Said on every estimate and cost that uses it: which file set this price.
                entry["origin"] = str(source.path)
            merge_price_entries(prices, label, entry, override=not require_provenance)

    built: dict[str, ModelSpec] = {}
    for key, fields in specs.items():
        try:
            built[key] = ModelSpec.model_validate(fields)
        except ValidationError as error:
            raise ConfigurationError(
                f"invalid model entry {key!r}: {validation_message(error)}"
            ) from None
    attached: dict[str, list[Route]] = {key: [] for key in built}
    seen: set[tuple[str, str]] = set()
    for label, fields in routes:
        if fields.get("model") not in attached:
            raise ConfigurationError(
                f"{label}: model {fields.get('model')!r} is not a catalog key ({', '.join(built)})"
            )
        try:
            route = Route.model_validate(fields)
        except ValidationError as error:
            raise ConfigurationError(f"{label}: {validation_message(error)}") from None
        identity = (route.provider, route.model_id)
        if identity in seen:
            raise ConfigurationError(f"{label}: {route.pinned} is listed twice")
        seen.add(identity)
        attached[route.model].append(route)
    priced = validate_prices(prices)
    # Fails here, naming the file, if an entry prices no route or two price the same one.
    match_prices(
        priced,
        (route for found in attached.values() for route in found),
        labels=[label for label, _ in prices],
        strict=require_provenance,
    )
    return CatalogData(
        generated_by=generated_by,
        models=tuple(
            spec.model_copy(update={"routes": tuple(attached[key])}) for key, spec in built.items()
        ),
        prices=priced,
    )


def _merge_route(
    routes: list[tuple[str, dict[str, Any]]], label: str, fields: dict[str, Any]
) -> None:
    provider, model_id = fields.get("provider"), fields.get("model_id")
    if not provider or not model_id:
        raise ConfigurationError(f"{label}: a route needs 'provider' and 'model_id'")
    for index, (_, existing) in enumerate(routes):
        if existing["provider"] == provider and existing["model_id"] == model_id:
            routes[index] = (label, {**existing, **fields})
            return
    template = next(
        (
            existing
            for _, existing in routes
            if existing["provider"] == provider
            and existing["model"] == fields.get("model")
            and not existing.get("opt_in")
        ),
        None,
    )
    inherited = {k: v for k, v in (template or {}).items() if k not in _IDENTITY_FIELDS}
    routes.append((label, {**inherited, **fields}))


def _check_provenance(fields: Mapping[str, Any], label: str, required: bool, src: Source) -> None:
    if required:
        missing = [name for name in ("source", "checked") if name not in fields]
        if missing:
            raise ConfigurationError(f"{label}: every entry needs {' and '.join(missing)}")
    elif isinstance(fields, dict):
        # User files may leave provenance out: record the file itself as the source.
        fields.setdefault("source", f"file:{src.path}")
        fields.setdefault("checked", date.fromtimestamp(src.path.stat().st_mtime))


def _as_table(value: object, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{label}: expected a table, got {type(value).__name__}")
    return value


def dump_catalog(data: CatalogData) -> str:
    """The compiled catalog as stable, human-diffable JSON (what ``_data/catalog.json`` holds)."""
    return json.dumps(data.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n"
