"""The cost of a call after it: usage x the route's dated price, as exact Decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._records import Cost, Usage, trusted
from ..catalog import MILLION, Price

__all__ = ["cost_from_usage", "price_for", "tokens_cost", "trusted_cost"]

if TYPE_CHECKING:
    from ..catalog import Catalog, Route


def tokens_cost(
    price: Price, input_tokens: int, output_tokens: int, *, images: int = 0
) -> tuple[Decimal, Decimal]:
    """The exact (input, output) USD cost of these token counts at ``price``.

    The per-image price, if any, is part of the input cost. Nothing is rounded: the counts are
    integers and the prices decimals, so ``1_000_000 x 0.72 / 1_000_000`` is ``0.72`` exactly.
    """
    # Dividing by 10**6 is exact in Decimal (it only moves the point) and keeps the written
    # scale: 1.44, not 1.44000000.
    input_cost = price.input_per_mtok * input_tokens / MILLION
    if images and price.image is not None:
        input_cost += price.image * images
    return input_cost, price.output_per_mtok * output_tokens / MILLION


def cost_from_usage(
    usage: Usage, price: Price | None, *, images: int = 0, note: str | None = None
) -> Cost | None:
    """The cost of a finished call from the provider's token counts and our price table.

    Returns ``None`` when the price is unknown (never a made-up 0). ``images`` is the number of
    input images, billed at the price's per-image rate where it has one. A cost the provider
    reports itself (OpenRouter's ``usage.cost``) should be preferred over this one. The
    cost's ``table`` figure is its total; ``note`` says why the table was used, if it matters.
    """
    if price is None:
        return None
    input_cost, output_cost = tokens_cost(
        price, usage.input_tokens, usage.output_tokens, images=images
    )
    total = input_cost + output_cost
    fields = {"input": input_cost, "output": output_cost, "total": total,
              "source": "price_table", "price_source": price.source,
              "price_checked": price.checked, "price_origin": price.origin, "table": total,
              "note": note}  # fmt: skip
    if note is not None and type(note) is not str:  # a caller's odd note: validated, as ever
        return Cost(**fields)
    # Every other field is of its type already (Decimal arithmetic on a validated price and
    # counts): not validated again.
    return trusted_cost(**fields)


#: A cost's fields in declaration order, at their defaults (``total`` and ``source`` have
#: none: every caller gives them).
_COST_FIELDS = {name: info.default for name, info in Cost.model_fields.items()}


def trusted_cost(**given: Any) -> Cost:
    """A :class:`Cost` of the ``given`` fields, each already of its type, the others at their
    defaults: the cost the validating constructor would build from them, not validated again
    (see ``_records.trusted``)."""
    return trusted(Cost, {**_COST_FIELDS, **given}, given.keys())


def price_for(route: Route, catalog: Catalog | None = None) -> Price | None:
    """The price of ``route`` in ``catalog`` (the built-in one by default), or ``None`` when
    it is unknown."""
    if catalog is None:
        from ..catalog import default_catalog  # deferred: loaded on first use

        catalog = default_catalog()
    return catalog.price(route)
