"""What the live price sources give, whichever provider they come from: the records
``llamaroute prices refresh`` collects (:class:`LiveRead`, :class:`RouteLifecycle`) and exact
amounts read from JSON prices. Pure functions, no I/O.

Each provider reads its own answers (``providers/openrouter/_price_reading.py``,
``providers/bedrock/_price_reading.py``); the fetching lives beside them in
``_catalog_sources.py``, and :mod:`llamaroute._refresh` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

from ._prices import MILLION, Price

__all__ = [
    "LiveRead",
    "RouteLifecycle",
    "exact_amount",
    "per_million",
    "plain_amount",
    "short_amount",
]


@dataclass(frozen=True)
class RouteLifecycle:
    """A route's lifecycle as read from Bedrock (written as a ``[[routes]]`` override)."""

    provider: str
    model_id: str
    lifecycle: Literal["active", "legacy", "eol"]
    legacy_date: date | None
    end_of_life: date | None
    source: str
    checked: date


@dataclass
class LiveRead:
    """What one source gave: price entries, route lifecycles, and notes on what was skipped."""

    prices: list[Price] = field(default_factory=list)
    lifecycles: list[RouteLifecycle] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- amounts --------------------------------------------------------------------------------


def exact_amount(value: object) -> Decimal | None:
    """An exact Decimal from a JSON price (a string, or a number parsed as Decimal); ``None``
    for the dynamic marker ``-1``; ValueError for anything else."""
    if isinstance(value, bool | float):
        raise ValueError(f"price {value!r} is not an exact decimal")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"price {value!r} is not a decimal number") from None
    else:
        raise ValueError(f"price {value!r} is not a decimal string")
    if not amount.is_finite():
        raise ValueError(f"price {value!r} is not finite")
    if amount == -1:
        return None
    if amount < 0:
        raise ValueError(f"price {value!r} is negative")
    return amount


def per_million(per_token: object) -> Decimal | None:
    """USD per token (OpenRouter's decimal string) as USD per million tokens, exactly;
    ``None`` for a dynamic price (``"-1"``)."""
    amount = exact_amount(per_token)
    return None if amount is None else plain_amount(amount * MILLION)


def plain_amount(amount: Decimal) -> Decimal:
    """``amount`` without trailing zeros, exactly (``0.35000000`` is ``0.35``)."""
    # 0.00000035 x 1e6 is Decimal("0.35000000"): drop the trailing zeros, keep it exact.
    normal = amount.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal


def short_amount(amount: Decimal | None) -> str:
    """An amount for a note: its digits, or ``dynamic`` for a price that has none."""
    return "dynamic" if amount is None else f"{amount:f}"
