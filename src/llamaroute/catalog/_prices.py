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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .._exceptions import ConfigurationError
from .._records import validation_message

__all__ = [
    "MILLION",
    "Money",
    "Price",
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


Money = Annotated[Decimal, BeforeValidator(_exact_amount), Field(ge=0, allow_inf_nan=False)]
"""A non-negative USD amount held as an exact :class:`~decimal.Decimal`."""


class Price(BaseModel):
    """What one route costs, in USD, with where the figure came from and when it was checked.

    ``input_per_mtok`` and ``output_per_mtok`` are USD per million input and output tokens;
    ``image`` is USD per input image where the provider charges one (``None``: no separate
    charge is known). ``image_tokens_low`` and ``image_tokens_high`` override, for the routes
    this price covers, how many input tokens one image may be billed as (by default 0 and
    560 px tiles x 1601). ``provider``, ``model``, ``model_id`` and ``regions`` say which routes
    the price applies to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str | None = None
    model_id: str | None = None
    regions: tuple[str, ...] = ()
    input_per_mtok: Money
    output_per_mtok: Money
    image: Money | None = None
    image_tokens_low: int | None = Field(default=None, ge=0)
    image_tokens_high: int | None = Field(default=None, ge=0)
    notes: str = ""
    source: str = Field(min_length=1)
    checked: date
    #: The user file this entry came from (the refreshed price file of ``llamaroute prices
    #: refresh``, or a ``--catalog`` file); ``None`` for the data shipped with the package.
    origin: str | None = None

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
    """The ``[[prices]]`` entries of one parsed TOML file, each with a label for messages and
    the file's top-level ``provider`` filled in."""
    entries = content.get("prices", [])
    if not isinstance(entries, list):
        raise ConfigurationError(f"{where}: 'prices' must be an array of tables ([[prices]])")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: prices #{number}: expected a table")
        what = entry.get("model_id") or entry.get("model") or "every route"
        fields = dict(entry)
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


def match_prices(
    prices: Iterable[Price],
    routes: Iterable[PricedRoute],
    *,
    labels: Sequence[str] = (),
    strict: bool = False,
) -> dict[tuple[str, str], Price]:
    """Each route's price, keyed by ``(provider, model_id)``: the most specific entry that
    selects it; between equally specific ones, the later (a user file comes after the package
    data). Raises :class:`ConfigurationError` for an entry that selects no route and, when
    ``strict`` (the package's own data), for two equally specific entries for one route."""
    routes = list(routes)
    chosen: dict[tuple[str, str], Price] = {}
    for number, price in enumerate(prices):
        label = labels[number] if number < len(labels) else f"price for {price.describe()}"
        selected = [route for route in routes if price.selects(route)]
        if not selected:
            raise ConfigurationError(
                f"{label}: the price for {price.describe()} matches no route in the catalog"
            )
        for route in selected:
            key = (route.provider, route.model_id)
            held = chosen.get(key)
            if held is None or price.specificity > held.specificity:
                chosen[key] = price
            elif price.specificity == held.specificity:
                if not strict:
                    chosen[key] = price
                    continue
                raise ConfigurationError(
                    f"{label}: {route.pinned} is priced twice ({held.describe()} and "
                    f"{price.describe()}); narrow one of them with model_id or regions"
                )
    return chosen
