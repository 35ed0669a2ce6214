"""Reading OpenRouter's model list into price entries, for ``llamaroute prices refresh``
(pure; the fetching is in ``_catalog_sources.py``).

``GET /api/v1/models``: ``pricing.prompt`` and ``pricing.completion`` are decimal strings in
USD per token (multiplied by 1,000,000 here, exactly, into USD per million), ``pricing.image``
is USD per input image, and ``"-1"`` marks a dynamic price, which is skipped with a note rather
than guessed. The route's price is the one ``/models`` lists for the slug (what OpenRouter bills
by default); ``/models/{author}/{slug}/endpoints`` gives each upstream's own price, recorded in
the entry's ``notes`` with their range.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from ...catalog import (
    Catalog,
    LiveRead,
    Price,
    exact_amount,
    per_million,
    plain_amount,
    short_amount,
)
from ._catalog_sources import fetch_openrouter_listing
from ._wire import NAME

__all__ = ["openrouter_prices", "read_openrouter_prices"]


def openrouter_prices(
    models: Any,
    endpoints: Mapping[str, Any],
    catalog: Catalog,
    *,
    source: str,
    checked: date,
) -> LiveRead:
    """Price entries for the catalog's OpenRouter routes from a ``/models`` answer, with each
    upstream's price from the ``/endpoints`` answers (keyed by slug) in the notes."""
    read = LiveRead()
    data = models.get("data") if isinstance(models, Mapping) else None
    if not isinstance(data, list):
        read.notes.append("openrouter: /models has no 'data' list; nothing read")
        return read
    routes = [r for spec in catalog.models() for r in spec.routes if r.provider == "openrouter"]
    by_id = {e.get("id"): e for e in data if isinstance(e, Mapping)}
    for route in routes:
        entry = next((by_id[i] for i in (route.model_id, *route.alternate_ids) if i in by_id), None)
        if entry is None:
            read.notes.append(f"openrouter: {route.model_id} is not in /models (not priced)")
            continue
        pricing = entry.get("pricing")
        if not isinstance(pricing, Mapping):
            read.notes.append(f"openrouter: {route.model_id} has no pricing")
            continue
        try:
            prompt = per_million(pricing.get("prompt"))
            completion = per_million(pricing.get("completion"))
            image = exact_amount(pricing["image"]) if pricing.get("image") is not None else None
            request = exact_amount(pricing.get("request") or "0")
        except ValueError as error:
            read.notes.append(f"openrouter: {route.model_id}: {error}; skipped")
            continue
        if prompt is None or completion is None:
            read.notes.append(
                f"openrouter: {route.model_id} has a dynamic price (-1); skipped, the shipped "
                "price (if any) stays in use"
            )
            continue
        notes = [f"listed by /models for {entry.get('id')}"]
        if request:
            notes.append(f"plus ${request:f} per request (not in estimates)")
        notes.extend(_upstream_notes(endpoints.get(route.model_id)))
        read.prices.append(
            Price(
                provider="openrouter", model_id=route.model_id, input_per_mtok=prompt,
                output_per_mtok=completion, image=None if image is None else plain_amount(image),
                notes="; ".join(notes), source=source, checked=checked,
            )
        )  # fmt: skip
    return read


def _upstream_notes(answer: Any) -> list[str]:
    """Each upstream's price from an ``/endpoints`` answer, and the range of input prices."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    rows = data.get("endpoints") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        return []
    seen: list[str] = []
    inputs: list[Decimal] = []
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("pricing"), Mapping):
            continue
        name = str(row.get("provider_name") or row.get("name") or "?")
        try:
            prompt = per_million(row["pricing"].get("prompt"))
            completion = per_million(row["pricing"].get("completion"))
        except ValueError:
            seen.append(f"{name} unreadable")
            continue
        if prompt is not None:
            inputs.append(prompt)
        seen.append(f"{name} {short_amount(prompt)}/{short_amount(completion)}")
    if not seen:
        return []
    span = f" (input {min(inputs):f} to {max(inputs):f} per M)" if inputs else ""
    return [f"upstreams in/out per M: {', '.join(seen)}{span}"]


def read_openrouter_prices(
    catalog: Catalog, *, base_url: str | None, timeout: float, checked: date
) -> LiveRead:
    """Fetch the model list and each catalogued slug's endpoints, and read them into price
    entries dated ``checked`` (what ``llamaroute prices refresh`` does for OpenRouter)."""
    slugs = [r.model_id for spec in catalog.models() for r in spec.routes
             if r.provider == NAME]  # fmt: skip
    listing = fetch_openrouter_listing(slugs, base_url=base_url, timeout=timeout)
    read = openrouter_prices(
        listing.models, listing.endpoints, catalog, source=listing.source, checked=checked
    )
    read.notes += [f"{NAME}: {error}" for error in listing.errors]
    return read
