"""Prices as reviewed data: dated USD amounts per route, and which routes an entry selects.

Prices are reviewed data (``pricing/*.toml``, compiled into ``_data/catalog.json`` with the
catalog). Every amount is a :class:`~decimal.Decimal` from the file to the result: a TOML price
is written as a string (``input_per_mtok = "0.72"``) or an integer, and a float is refused at
validation, so no binary float ever enters a sum. Amounts are rounded only for display.

A price entry selects routes by ``provider`` and then, from the most specific to the least,
``model_id``, ``model`` (a catalog key) or nothing (every route of the provider); ``regions``
narrows it to routes usable from those regions. A route that no entry selects has an unknown
price, and its cost is ``None``, never 0. What a call costs is computed in
:mod:`llamaroute.money`.

A regional route can have one price per region: AWS bills a cross-region inference profile at
the price of the *source* region (the region the client calls from), and the ``eu.`` profiles
cost a different amount from eu-central-1, eu-west-1 and eu-west-3. :func:`match_prices` keeps,
per route, the price for each of its regions; ``Catalog.price(route, region=...)`` picks one.

Dates: ``checked`` is the date the ``source`` was read (not the date someone last looked at
the entry). A price's age is counted from it, and ``stale_after_days`` (per provider, in the
data) says when that age is too old to trust: OpenRouter's prices follow its upstreams and
move within weeks, AWS's within months, a local Ollama's never.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .._exceptions import ConfigurationError
from .._records import Amount, validation_message

__all__ = [
    "MILLION",
    "Money",
    "Price",
    "RoutePrices",
    "match_prices",
    "merge_price_entries",
    "price_entries",
    "validate_prices",
]


class PricedRoute(Protocol):
    """What a price entry looks at to select a route (the catalog's ``Route`` has it all);
    a protocol, so that the price records need not import the catalog that holds them."""

    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def regions(self) -> tuple[str, ...]: ...
    @property
    def pinned(self) -> str: ...
    def answers_to(self, model_id: str) -> bool: ...


MILLION = 1_000_000


def _exact_amount(value: object) -> object:
    # A float has already lost the decimal the author wrote (0.1 is 0.1000000000000000055...),
    # so it is refused rather than converted. Strings and integers are exact.
    if isinstance(value, float):
        raise ValueError(
            f'write amounts as strings (for example "{value}") or integers, not floats, '
            "so that they stay exact"
        )
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not a boolean")
    return value


Money = Annotated[Amount, BeforeValidator(_exact_amount), Field(ge=0, allow_inf_nan=False)]
"""A non-negative USD amount held as an exact :class:`~decimal.Decimal` (a plain decimal
string in JSON)."""


class Price(BaseModel):
    """What one route costs, in USD, with where the figure came from and when it was read.

    ``input_per_mtok`` and ``output_per_mtok`` are USD per million input and output tokens;
    ``image`` is USD per input image where the provider charges one (``None``: no separate
    charge is known). ``batch_input_per_mtok`` and ``batch_output_per_mtok`` are the batch
    (asynchronous) prices where the provider offers batch for the route (``None``: not offered,
    or not known). ``checked`` is the date ``source`` was read; ``stale_after_days`` is how
    old that reading may get before llamaroute warns that the price may have moved (``None``:
    never, as for a local model). ``image_tokens_low`` and ``image_tokens_high`` override, for
    the routes this price covers, how many input tokens one image may be billed as (by
    default 0 and 560 px tiles x 1601). ``provider``, ``model``, ``model_id`` and ``regions``
    say which routes the price applies to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str | None = None
    model_id: str | None = None
    regions: tuple[str, ...] = ()
    input_per_mtok: Money
    output_per_mtok: Money
    image: Money | None = None
    batch_input_per_mtok: Money | None = None
    batch_output_per_mtok: Money | None = None
    image_tokens_low: int | None = Field(default=None, ge=0)
    image_tokens_high: int | None = Field(default=None, ge=0)
    stale_after_days: int | None = Field(default=None, gt=0)
    notes: str = ""
    source: str = Field(min_length=1)
    checked: date
    #: The user file this entry came from (the refreshed price file of ``llamaroute prices
    #: refresh``, or a ``--catalog`` file); ``None`` for the data shipped with the package.
    origin: str | None = None

    @model_validator(mode="after")
    def _batch_pair(self) -> Price:
        # Half a batch price would price one side of a batch job at 0 or at on-demand rates.
        if (self.batch_input_per_mtok is None) != (self.batch_output_per_mtok is None):
            raise ValueError("give both batch_input_per_mtok and batch_output_per_mtok, or neither")
        return self

    def age_days(self, today: date) -> int:
        """Days from the date the source was read (``checked``) to ``today``."""
        return (today - self.checked).days

    def is_stale(self, today: date) -> bool:
        """Whether the price is older than its provider's ``stale_after_days``."""
        return self.stale_after_days is not None and self.age_days(today) > self.stale_after_days

    @property
    def dearness(self) -> Decimal:
        """Input plus output per million tokens: how two prices are compared when the cautious
        (highest) one must be chosen."""
        return self.input_per_mtok + self.output_per_mtok

    @property
    def selector(self) -> tuple[str, str | None, str | None, tuple[str, ...]]:
        """The routes this entry applies to: (provider, model, model_id, regions)."""
        return (self.provider, self.model, self.model_id, self.regions)

    @property
    def specificity(self) -> int:
        """How narrowly the entry selects: 2 for a model ID, 1 for a model key, 0 otherwise."""
        return 2 if self.model_id is not None else 1 if self.model is not None else 0

    def selects(self, route: PricedRoute) -> bool:
        """Whether this price applies to ``route``."""
        if route.provider != self.provider:
            return False
        if self.model_id is not None and not route.answers_to(self.model_id):
            return False
        if self.model is not None and route.model != self.model:
            return False
        return not (self.regions and route.regions and not set(self.regions) & set(route.regions))

    def describe(self) -> str:
        """A short human label of what the entry selects (for messages)."""
        what = self.model_id or self.model or "every route"
        where = f" in {', '.join(self.regions)}" if self.regions else ""
        return f"{self.provider} {what}{where}"


# --- building the price table ---------------------------------------------------------------


def price_entries(
    content: Mapping[str, Any], where: str, file_provider: object
) -> Iterable[tuple[str, dict[str, Any]]]:
    """The ``[[prices]]`` entries of one parsed TOML file, each with a label for messages, the
    file's top-level ``provider`` filled in and its ``[price_defaults]`` (such as the provider's
    ``stale_after_days``) under the entry's own fields."""
    entries = content.get("prices", [])
    if not isinstance(entries, list):
        raise ConfigurationError(f"{where}: 'prices' must be an array of tables ([[prices]])")
    defaults = content.get("price_defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigurationError(f"{where}: 'price_defaults' must be a table")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: prices #{number}: expected a table")
        what = entry.get("model_id") or entry.get("model") or "every route"
        fields = {**defaults, **entry}
        if file_provider is not None:
            fields.setdefault("provider", file_provider)
        yield f"{where}: price #{number} ({what})", fields


def merge_price_entries(
    entries: list[tuple[str, dict[str, Any]]],
    label: str,
    fields: dict[str, Any],
    *,
    override: bool = True,
) -> None:
    """Add one ``[[prices]]`` entry, or (with ``override``) change the fields of an earlier
    entry that selects the same routes: a user file setting a local cost for Ollama, say.
    Without ``override`` (the package's own data) a repeated selector is an error."""
    if not fields.get("provider"):
        raise ConfigurationError(f"{label}: a price needs 'provider'")
    key = _selector(fields)
    for index, (earlier, existing) in enumerate(entries):
        if _selector(existing) == key:
            if not override:
                raise ConfigurationError(
                    f"{label}: the same routes are already priced by {earlier}"
                )
            entries[index] = (label, {**existing, **fields})
            return
    entries.append((label, fields))


def _selector(fields: Mapping[str, Any]) -> tuple[object, ...]:
    regions = fields.get("regions") or ()
    return (
        fields.get("provider"),
        fields.get("model"),
        fields.get("model_id"),
        tuple(regions) if isinstance(regions, list | tuple) else regions,
    )


def validate_prices(entries: Sequence[tuple[str, dict[str, Any]]]) -> tuple[Price, ...]:
    """The entries as :class:`Price` models; a bad field is a :class:`ConfigurationError`
    naming the entry."""
    prices = []
    for label, fields in entries:
        try:
            prices.append(Price.model_validate(fields))
        except ValidationError as error:
            raise ConfigurationError(f"{label}: {validation_message(error)}") from None
    return tuple(prices)


class RoutePrices(dict[str | None, Price]):
    """One route's prices: by source region for a regional route, else under the key ``None``.

    :meth:`pick` chooses the price for a client in ``region``.
    """

    def pick(self, region: str | None) -> Price | None:
        """The price for a client in ``region``: that region's entry; else, for a route with
        no per-region prices, its one entry; else (the region is not known, or not priced)
        the dearest of the regional prices, because an estimate or a budget check that
        guesses low is the failure that costs money."""
        if region is not None and region in self:
            return self[region]
        if None in self:
            return self[None]
        return max(self.values(), key=lambda price: price.dearness, default=None)


def match_prices(
    prices: Iterable[Price],
    routes: Iterable[PricedRoute],
    *,
    labels: Sequence[str] = (),
    strict: bool = False,
) -> dict[tuple[str, str], RoutePrices]:
    """Each route's prices, keyed by ``(provider, model_id)``.

    For a route with ``regions``, each region gets the most specific entry that applies there
    (a ``model_id`` beats a ``model`` beats a provider-wide entry; then an entry naming only
    some of the route's regions beats one that covers them all, or names none); a route with
    no regions gets one entry, under ``None``. Between equally specific entries the later
    wins (a user file comes after the package data). Raises :class:`ConfigurationError` for
    an entry that selects no route and, when ``strict`` (the package's own data), for two
    equally specific entries for one route and region.
    """
    prices = list(prices)
    routes = list(routes)
    named = [
        (labels[n] if n < len(labels) else f"price for {price.describe()}", price)
        for n, price in enumerate(prices)
    ]
    for label, price in named:
        if not any(price.selects(route) for route in routes):
            raise ConfigurationError(
                f"{label}: the price for {price.describe()} matches no route in the catalog"
            )
    chosen: dict[tuple[str, str], RoutePrices] = {}
    for route in routes:
        applicable = [(label, price) for label, price in named if price.selects(route)]
        if not applicable:
            continue
        table = RoutePrices()
        for region in route.regions or (None,):
            best = _best(route, region, applicable, strict)
            if best is not None:
                table[region] = best
        if table:
            chosen[(route.provider, route.model_id)] = table
    return chosen


def _best(
    route: PricedRoute,
    region: str | None,
    applicable: Sequence[tuple[str, Price]],
    strict: bool,
) -> Price | None:
    held: Price | None = None
    for label, price in applicable:
        if region is not None and price.regions and region not in price.regions:
            continue
        rank = (price.specificity, _narrower(price, route))
        if held is not None:
            held_rank = (held.specificity, _narrower(held, route))
            if rank < held_rank:
                continue
            if rank == held_rank and strict:
                where = f" in {region}" if region else ""
                raise ConfigurationError(
                    f"{label}: {route.pinned}{where} is priced twice ({held.describe()} and "
                    f"{price.describe()}); narrow one of them with model_id or regions"
                )
        held = price
    return held


def _narrower(price: Price, route: PricedRoute) -> bool:
    # An entry for only some of the route's regions is more specific than one for all of them
    # (or for none): a user's region-less override still replaces a shipped all-US entry.
    return bool(price.regions) and not set(route.regions) <= set(price.regions)
