"""The refreshed price file: where it lives, what it holds, how it differs from what is in use,
and the default catalog that layers it over the shipped data.

``llamaroute prices refresh`` writes a TOML file in the format of the package's
``pricing/*.toml`` and ``providers/*.toml``: ``[[prices]]`` entries (each with the ``source``
URL or API that was read and the ``checked`` date it was read) and ``[[routes]]`` overrides
carrying Bedrock's lifecycle. Its default location is ``$LLAMAROUTE_PRICES`` if set, else
``$XDG_CONFIG_HOME/llamaroute/prices.toml``, else ``~/.config/llamaroute/prices.toml``.

When that file exists, :func:`default_catalog` (what ``Client()``, :func:`~llamaroute.estimate`
and the ``llamaroute`` command use when no catalog is given) is the shipped catalog with the
file layered over it; every price it sets carries the file's path in ``Price.origin``. The
file is read on first use, never at import, and read again only when it changes.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from .._exceptions import ConfigurationError
from ._catalog import Catalog, Route
from ._live_prices import RouteLifecycle
from ._prices import Price

__all__ = [
    "PRICES_ENV",
    "PriceChange",
    "default_catalog",
    "default_prices_path",
    "diff_prices",
    "render_price_file",
    "toml_table",
    "write_atomically",
]

PRICES_ENV = "LLAMAROUTE_PRICES"


def default_prices_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where refreshed prices are written and read: ``$LLAMAROUTE_PRICES``, else
    ``$XDG_CONFIG_HOME/llamaroute/prices.toml``, else ``~/.config/llamaroute/prices.toml``."""
    env = os.environ if environ is None else environ
    if env.get(PRICES_ENV):
        return Path(env[PRICES_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    return (base or Path.home() / ".config") / "llamaroute" / "prices.toml"


def default_catalog(environ: Mapping[str, str] | None = None) -> Catalog:
    """The shipped catalog, with the refreshed price file layered over it when that file
    exists (see :func:`default_prices_path`). A file that no longer fits the catalog is a
    :class:`~llamaroute.ConfigurationError` naming it: run the refresh again, or delete it."""
    path = default_prices_path(environ)
    try:
        stat = path.stat()
    except OSError:
        return Catalog.builtin()
    return _layered(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _layered(path: str, mtime_ns: int, size: int) -> Catalog:
    # Keyed by the file's identity: a refresh in the same process is picked up at once.
    from ._sources import load_catalog

    try:
        return load_catalog(path, base=Catalog.builtin())
    except ConfigurationError as error:
        raise ConfigurationError(
            f"the refreshed price file does not fit this llamaroute's catalog ({error}); run "
            f"`llamaroute prices refresh` again, or delete {path} to use the shipped prices"
        ) from None


# --- writing --------------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    # JSON's escapes (\", \\, \n, \uXXXX) are valid in TOML basic strings.
    return json.dumps(text, ensure_ascii=True)


def _toml_value(value: object) -> str:
    if isinstance(value, Decimal):
        return _toml_string(f"{value:f}")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _toml_string(str(value))


def toml_table(name: str, fields: Mapping[str, object]) -> str:
    """One ``[[name]]`` table of the price file, for entries kept from an earlier refresh."""
    lines = ["", f"[[{name}]]", *(f"{key} = {_toml_value(value)}" for key, value in fields.items())]
    return "\n".join(lines) + "\n"


def render_price_file(
    prices: Sequence[Price],
    lifecycles: Sequence[RouteLifecycle],
    catalog: Catalog,
    *,
    header: Sequence[str] = (),
) -> str:
    """The refreshed data as TOML (the format of ``pricing/*.toml``).

    A Bedrock route gets one entry per source region read (``regions = [region]``): a
    cross-region profile bills at its source region's price, and the catalog prices a route
    for the region its provider is configured in.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    for price in _ordered(prices, catalog):
        lines += ["", "[[prices]]"]
        fields = price.model_dump(exclude_defaults=True, exclude={"origin"})
        for name in ("provider", "model_id", "regions", "input_per_mtok", "output_per_mtok",
                     "image", "notes", "source", "checked"):  # fmt: skip
            if name in fields:
                lines.append(f"{name} = {_toml_value(fields[name])}")
    routes = _routes(catalog)
    for life in lifecycles:
        route = routes.get((life.provider, life.model_id))
        if route is None:
            continue
        lines += ["", "[[routes]]"]
        lines.append(f"provider = {_toml_string(life.provider)}")
        lines.append(f"model_id = {_toml_string(life.model_id)}")
        lines.append(f"model = {_toml_string(route.model)}")
        lines.append(f"lifecycle = {_toml_string(life.lifecycle)}")
        if life.legacy_date is not None:
            lines.append(f"legacy_date = {life.legacy_date.isoformat()}")
        if life.end_of_life is not None:
            lines.append(f"end_of_life = {life.end_of_life.isoformat()}")
        # The route's limits keep their own provenance; the lifecycle names where it was read.
        lines.append(f"lifecycle_source = {_toml_string(life.source)}")
        lines.append(f"lifecycle_checked = {life.checked.isoformat()}")
    return "\n".join(lines) + "\n"


def _routes(catalog: Catalog) -> dict[tuple[str, str], Route]:
    return {(r.provider, r.model_id): r for spec in catalog.models() for r in spec.routes}


def _ordered(prices: Sequence[Price], catalog: Catalog) -> list[Price]:
    routes = _routes(catalog)

    def key(price: Price) -> tuple[str, str, int, str]:
        route = routes.get((price.provider, price.model_id or ""))
        first = route.regions[0] if route and route.regions else None
        region = price.regions[0] if price.regions else ""
        return (price.provider, price.model_id or "", int(region == first), region)

    return sorted(prices, key=key)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the diff against what is in use -------------------------------------------------------


@dataclass(frozen=True)
class PriceChange:
    """One line of the refresh's diff: a route (and region), what was in use, what was read."""

    route: str
    region: str
    what: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def _price_text(price: Price | None) -> str:
    if price is None:
        return "unknown"
    image = "" if price.image is None else f" img {_num(price.image)}"
    return f"{_num(price.input_per_mtok)}/{_num(price.output_per_mtok)}{image}"


def _num(amount: Decimal) -> str:
    # 0.10 (shipped) and 0.1 (read) are the same price: compare and show them alike.
    return f"{amount.normalize():f}"


def diff_prices(
    catalog: Catalog, prices: Sequence[Price], lifecycles: Sequence[RouteLifecycle]
) -> list[PriceChange]:
    """What the refreshed data changes against ``catalog`` (the one in use): per route and
    region, the old and new price (``in/out`` USD per million, ``img`` per image), and each
    lifecycle change."""
    routes = _routes(catalog)
    changes = []
    for price in prices:
        route = routes.get((price.provider, price.model_id or ""))
        if route is None:
            continue
        changes.append(
            PriceChange(
                route=route.pinned, region=", ".join(price.regions) or "any", what="price",
                old=_price_text(catalog.price(route)), new=_price_text(price),
            )
        )  # fmt: skip
    for life in lifecycles:
        route = routes.get((life.provider, life.model_id))
        if route is None:
            continue
        old = _life_text(route.lifecycle, route.legacy_date, route.end_of_life)
        new = _life_text(life.lifecycle, life.legacy_date, life.end_of_life)
        changes.append(PriceChange(route.pinned, "-", "lifecycle", old, new))
    return changes


def _life_text(status: str, legacy: date | None, end: date | None) -> str:
    parts = [status]
    if legacy is not None:
        parts.append(f"legacy {legacy.isoformat()}")
    if end is not None:
        parts.append(f"eol {end.isoformat()}")
    return ", ".join(parts)
