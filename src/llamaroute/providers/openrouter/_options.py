"""The ``openrouter`` namespace of a call's ``extra=`` options, applied to the request body
(pure). The options were checked when the request was built (``llamaroute._extra``): what
would break llamaroute's guarantees never gets here.

``provider`` preferences merge with the ones llamaroute sets: the caller's ``order``,
``only``, ``data_collection``... are kept; ``require_parameters`` set by llamaroute (for tools
or a schema) stays on; ``max_price`` keeps, field by field, the stricter (lower) of the
caller's ceiling and the one the budget reservation was computed at, so a caller can tighten
the ceiling but never loosen it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..._extra import price_amount

__all__ = ["apply_options"]


def apply_options(payload: dict[str, Any], options: dict[str, Any] | None) -> None:
    """Add the call's OpenRouter options (``extra["openrouter"]``) to ``payload``."""
    if not options:
        return
    for key, value in options.items():
        if key not in ("provider", "usage"):  # usage is {"include": True}: already sent
            payload[key] = value
    preferences = options.get("provider")
    if not preferences:
        return
    ours: dict[str, Any] = payload.get("provider", {})
    merged = {**preferences}
    if ours.get("require_parameters"):
        merged["require_parameters"] = True
    if "max_price" in ours or "max_price" in preferences:
        merged["max_price"] = _stricter(ours.get("max_price", {}),
                                        preferences.get("max_price", {}))  # fmt: skip
    payload["provider"] = merged


def _stricter(ours: dict[str, str], theirs: dict[str, Any]) -> dict[str, str]:
    """Each ceiling field at the lower of the two (a field only one side sets is kept)."""
    ceiling: dict[str, Decimal] = {key: Decimal(value) for key, value in ours.items()}
    for key, value in theirs.items():
        amount = price_amount(value, key)
        ceiling[key] = min(amount, ceiling[key]) if key in ceiling else amount
    return {key: f"{amount:f}" for key, amount in ceiling.items()}
