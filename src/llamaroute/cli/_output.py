"""Output helpers shared by the ``llamaroute`` subcommands: tables, money for reading and for
JSON, rates and projections."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..catalog import Price, default_prices_path

__all__ = [
    "Rate", "dumps", "money", "parse_rate", "plain", "print_origins", "scale", "text_table",
]  # fmt: skip


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns padded to their widest cell, trailing blanks trimmed."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def money(amount: Decimal | None) -> str:
    """An amount for reading: ``$1.44``, ``$0.000123``; ``unknown`` for ``None``. Rounded
    half up for display only."""
    if amount is None:
        return "unknown"
    if amount == 0:
        return "$0"
    if amount < Decimal("0.000001"):
        return "<$0.000001"
    places = 6 if amount < 1 else 4 if amount < 1000 else 2
    text = f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,}"
    if "." in text:
        whole, fraction = text.split(".")
        text = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"${text}"


def plain(amount: Decimal) -> str:  # the CLI's name for _records.plain_decimal
    """An exact amount as a plain decimal string: ``"0.00000024"``, never ``"2.4E-7"``."""
    return f"{amount:f}"


def _jsonable(value: object) -> Any:
    # Decimal amounts as plain strings, dates as ISO days; containers walked.
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def dumps(payload: object) -> str:
    """``payload`` as indented JSON, every ``Decimal`` a plain decimal string (give pydantic
    models as ``model_dump()``, Python mode, so that their amounts are still ``Decimal``)."""
    return json.dumps(_jsonable(payload), indent=2, ensure_ascii=False)


#: Projections divide by the workload's size: rounded to this many places of a dollar.
_PLACES = Decimal(1).scaleb(-10)


def scale(amount: Decimal | None, times: Decimal, per: Decimal | int) -> Decimal | None:
    """``amount x times / per`` (``None`` stays ``None``): exact when the division is,
    else rounded half up to 10 decimal places."""
    if amount is None:
        return None
    value = amount * times / per
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -10:
        value = value.quantize(_PLACES, rounding=ROUND_HALF_UP)
    return value


# Requests per period -> per day, as (multiply, divide): kept apart so that 1000/month is
# exactly 1000 a month, not 30 x 33.333... a day.
_PERIODS = {"hour": (24, 1), "day": (1, 1), "week": (1, 7), "month": (1, 30)}
_RATE = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(?:/|\s+per\s+|\s+an?\s+)\s*(\w+)\s*$")


@dataclass(frozen=True)
class Rate:
    """Requests per period, as given (``10000/day``): ``requests`` every ``days`` days (a
    month is 30 days)."""

    text: str
    requests: Decimal
    days: Decimal

    def __str__(self) -> str:
        return self.text

    @property
    def per_day(self) -> Decimal | None:
        """Requests a day (rounded like :func:`scale` when not exact)."""
        return scale(self.requests, Decimal(1), self.days)

    def over(self, amount: Decimal | None, workload: int, days: int) -> Decimal | None:
        """``amount``, the cost of ``workload`` requests, for ``days`` days at this rate."""
        return scale(amount, self.requests * days, self.days * workload)


def parse_rate(text: str) -> Rate:
    """``"10000/day"``, ``"300,000/month"``, ``"50/hour"`` or ``"2000/week"`` as a
    :class:`Rate`; :class:`ValueError` with what is expected otherwise."""
    found = _RATE.match(text)
    unit = found.group(2).lower().removesuffix("s") if found else ""
    if found is None or unit not in _PERIODS:
        raise ValueError(
            f"a rate is requests per hour, day, week or month, e.g. 10000/day, not {text!r}"
        )
    count = Decimal(found.group(1).replace(",", "").replace("_", ""))
    if count <= 0:
        raise ValueError(f"a rate must be above 0, not {text!r}")
    multiply, divide = _PERIODS[unit]
    article = "an" if unit == "hour" else "a"
    return Rate(f"{count:,f} requests {article} {unit}", count * multiply, Decimal(divide))


def print_origins(prices: Iterable[Price | None]) -> None:
    """Name the user files (the refreshed price file first of all) that set any of ``prices``,
    with the sources and dates they were read from."""
    files: dict[str, list[Price]] = {}
    for price in prices:
        if price is not None and price.origin is not None:
            files.setdefault(price.origin, []).append(price)
    refreshed = str(default_prices_path())
    for origin, used in files.items():
        what = "refreshed prices" if origin == refreshed else "prices"
        sources = sorted({f"{p.source} ({p.checked.isoformat()})" for p in used})
        print(f"Using {what} from {origin}: {'; '.join(sources)}")
