"""``refresh_prices()``: read the live price sources and write the dated user price file.

The orchestration of ``llamaroute prices refresh``, above the providers (which do the I/O) and
the catalog (which reads the answers, writes the TOML and computes the diff). Nothing here runs
at import. Each source is refreshed on its own: one that fails is reported in
:attr:`RefreshResult.errors` and the others are still read and written; entries already in the
file from a source that was not read (or failed) this time are kept.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ._exceptions import ConfigurationError, LlamarouteError
from .catalog import (
    Catalog,
    LiveRead,
    Price,
    PriceChange,
    RouteLifecycle,
    default_catalog,
    default_prices_path,
    diff_prices,
    render_price_file,
    toml_table,
    write_atomically,
)

__all__ = ["SOURCES", "RefreshResult", "refresh_prices"]

#: The sources ``refresh_prices`` can read, by the provider they price.
SOURCES = ("openrouter", "bedrock")


@dataclass
class RefreshResult:
    """What a refresh read, changed and wrote.

    ``prices`` and ``lifecycles`` are what was read this time; ``changes`` compares them with
    the catalog in use before the refresh; ``path`` is the file written (``None`` on a dry run
    or when nothing could be read); ``errors`` maps each source that failed to its error;
    ``notes`` says what was skipped and why (dynamic prices, unmatched rows, batch prices).
    """

    prices: list[Price] = field(default_factory=list)
    lifecycles: list[RouteLifecycle] = field(default_factory=list)
    changes: list[PriceChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, LlamarouteError] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    path: Path | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """Whether every source asked for was read."""
        return not self.errors


def refresh_prices(
    out: str | Path | None = None,
    *,
    sources: Sequence[str] = SOURCES,
    regions: Sequence[str] | None = None,
    openrouter_url: str | None = None,
    aws_endpoint_url: str | None = None,
    pricing_region: str = "us-east-1",
    catalog: Catalog | None = None,
    dry_run: bool = False,
    timeout: float = 30.0,
    today: date | None = None,
    aws_session: Any | None = None,
) -> RefreshResult:
    """Read the live prices and write them to ``out`` (default: :func:`default_prices_path`,
    ``$LLAMAROUTE_PRICES`` or ``~/.config/llamaroute/prices.toml``).

    ``sources`` picks ``"openrouter"`` (``GET /models`` and each model's ``/endpoints``, no
    key) and ``"bedrock"`` (the AWS Price List API for each of ``regions``, by default every
    region a Bedrock route is called from, and ``ListFoundationModels`` for the lifecycle;
    AWS credentials needed). ``openrouter_url`` and ``aws_endpoint_url`` point them elsewhere
    (a test server). The diff is against ``catalog`` (by default the one in use, refreshed
    file included). With ``dry_run`` nothing is written.

    Raises :class:`ConfigurationError` for an unknown source; a source that fails is in
    ``errors``, not raised.
    """
    unknown = [name for name in sources if name not in SOURCES]
    if unknown or not sources:
        raise ConfigurationError(
            f"unknown price source(s) {unknown or '(none given)'}; known: {', '.join(SOURCES)}"
        )
    in_use = catalog or default_catalog()
    checked = today or date.today()
    result = RefreshResult(sources=list(dict.fromkeys(sources)))
    reads: dict[str, LiveRead] = {}
    # Each provider reads its own sources (providers/<name>/_price_reading.py); imported here,
    # on use, so that importing llamaroute loads neither.
    if "openrouter" in sources:
        from .providers.openrouter import read_openrouter_prices

        _guarded(result, "openrouter", reads, lambda: read_openrouter_prices(
            in_use, base_url=openrouter_url, timeout=timeout, checked=checked))  # fmt: skip
    if "bedrock" in sources:
        from .providers.bedrock import read_bedrock_prices

        _guarded(result, "bedrock", reads, lambda: read_bedrock_prices(
            in_use, regions=regions, pricing_region=pricing_region,
            endpoint_url=aws_endpoint_url, timeout=timeout, checked=checked,
            session=aws_session))  # fmt: skip
    for read in reads.values():
        result.prices += read.prices
        result.lifecycles += read.lifecycles
        result.notes += read.notes
    result.changes = diff_prices(in_use, result.prices, result.lifecycles)
    if not reads:
        return result
    path = Path(out).expanduser() if out is not None else default_prices_path()
    kept_prices, kept_routes = _kept(path, refreshed=set(reads))
    header = [
        f"Written by `llamaroute prices refresh` on {checked.isoformat()} from: "
        + ", ".join(reads) + ".",
        "Layered over the prices shipped with llamaroute; every entry names its source and",
        "the date it was read. Run the command again to update it; delete it to go back to",
        "the shipped prices.",
    ]  # fmt: skip
    result.text = render_price_file(
        [*kept_prices, *result.prices], result.lifecycles, in_use, header=header
    )
    if kept_routes:
        result.text += "".join(toml_table("routes", route) for route in kept_routes)
    if not dry_run:
        write_atomically(path, result.text)
        result.path = path
    return result


def _guarded(result: RefreshResult, name: str, reads: dict[str, LiveRead], read: Any) -> None:
    try:
        reads[name] = read()
    except LlamarouteError as error:
        result.errors[name] = error


def _kept(path: Path, *, refreshed: set[str]) -> tuple[list[Price], list[dict[str, Any]]]:
    """The entries of an earlier refresh at ``path`` for the sources not read this time."""
    try:
        with path.open("rb") as handle:
            content = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return [], []
    prices = []
    for entry in content.get("prices", []):
        if isinstance(entry, dict) and entry.get("provider") not in refreshed:
            try:
                prices.append(Price.model_validate(entry))
            except ValueError:
                continue
    routes = [
        entry for entry in content.get("routes", [])
        if isinstance(entry, dict) and entry.get("provider") not in refreshed
    ]  # fmt: skip
    return prices, routes
