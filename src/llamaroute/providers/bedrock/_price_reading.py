"""Reading AWS's price rows and Bedrock's model lifecycles into catalog entries, for
``llamaroute prices refresh`` (pure; the fetching is in ``_catalog_sources.py``).

- The AWS Price List API (``pricing.get_products`` for ``AmazonBedrock``): each ``PriceList``
  item is a JSON string with ``product.attributes`` (``model`` is a display name such as
  "Llama 3.2 1B Instruct", matched here to the catalog; ``inferenceType``, ``feature``,
  ``usagetype``, ``regionCode``) and ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD``
  per "1K tokens" (or per million). Only on-demand rows price a route; batch rows go to the
  notes; latency-optimised, flex, priority, provisioned, extended-access and cross-region or
  global rows are told apart and left out. A row's region selects the ``us.``/``eu.`` profile
  whose source regions contain it, giving one entry per region (``regions = [region]``).
- Bedrock ``ListFoundationModels``: ``modelLifecycle`` per foundation-model ID becomes the
  ``lifecycle``, ``legacy_date`` and ``end_of_life`` of the routes built on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from ...catalog import (
    MILLION,
    Catalog,
    LiveRead,
    Price,
    Route,
    RouteLifecycle,
    exact_amount,
    plain_amount,
)
from ._catalog_sources import (
    LIFECYCLE_SOURCE,
    PRICE_LIST_SOURCE,
    fetch_bedrock_lifecycle,
    fetch_bedrock_price_rows,
)
from ._mapping import NAME

__all__ = [
    "RowKind",
    "bedrock_lifecycle",
    "bedrock_prices",
    "classify_aws_row",
    "read_bedrock_prices",
]

#: How an AWS price row is billed; only ``on_demand`` prices a route.
RowKind = Literal[
    "on_demand", "batch", "latency_optimized", "flex", "priority", "provisioned",
    "extended_access", "cross_region", "other",
]  # fmt: skip


_SIZE = re.compile(r"\b(1|3|11|90)\s*b\b", re.IGNORECASE)


def _our_size(model_name: str) -> str | None:
    """``"1b"`` for "Llama 3.2 1B Instruct" and its spellings; ``None`` if not Llama 3.2."""
    text = model_name.lower().replace("-", " ").replace("_", " ")
    if not re.search(r"llama\s*3\.?2\b|llama3\s*2\b|llama32", text):
        return None
    found = _SIZE.search(text)
    return f"{found.group(1)}b" if found else None


def classify_aws_row(attributes: Mapping[str, Any]) -> RowKind:
    """How a Price List row is billed, from its attributes (``feature``, ``inferenceType``,
    ``usagetype``, ``model``). Only ``"on_demand"`` rows price a route."""
    text = " ".join(
        str(attributes.get(k, ""))
        for k in ("feature", "inferenceType", "usagetype", "model", "operation")
    ).lower()
    if "latency" in text and "optimi" in text:
        return "latency_optimized"
    if "extended" in text:
        return "extended_access"
    if "batch" in text:
        return "batch"
    if "flex" in text:
        return "flex"
    if "priority" in text:
        return "priority"
    if "provisioned" in text or "model unit" in text:
        return "provisioned"
    if "cross region" in text or "cross-region" in text or "global" in text:
        return "cross_region"
    if "on-demand" in text or "on demand" in text or "ondemand" in text:
        return "on_demand"
    return "on_demand" if not attributes.get("feature") else "other"


def _direction(attributes: Mapping[str, Any]) -> str | None:
    text = f"{attributes.get('inferenceType', '')} {attributes.get('usagetype', '')}".lower()
    if "cache" in text:
        return None
    if "input" in text:
        return "input"
    if "output" in text:
        return "output"
    return None


def _usd_per_million(dimension: Mapping[str, Any]) -> Decimal:
    unit = str(dimension.get("unit", "")).lower()
    price = dimension.get("pricePerUnit", {})
    amount = exact_amount(price.get("USD") if isinstance(price, Mapping) else None)
    if amount is None:
        raise ValueError("dynamic price")
    if unit in ("1k tokens", "1k token", "thousand tokens"):
        return plain_amount(amount * 1000)
    if unit in ("1m tokens", "million tokens", "units", "unit", "1m units"):
        return plain_amount(amount)
    if unit in ("tokens", "token"):
        return plain_amount(amount * MILLION)
    raise ValueError(f"unknown unit {dimension.get('unit')!r}")


def bedrock_prices(
    rows: Iterable[str | Mapping[str, Any]],
    catalog: Catalog,
    *,
    source: str,
    checked: date,
) -> LiveRead:
    """Per-region price entries for the catalog's Bedrock routes from Price List rows (the
    JSON strings of ``get_products``' ``PriceList``, or already parsed)."""
    read = LiveRead()
    # (size, region) -> {"input": amount, "output": amount}, for on-demand and batch rows.
    found: dict[str, dict[tuple[str, str], dict[str, Decimal]]] = {"on_demand": {}, "batch": {}}
    skipped: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        try:
            item = json.loads(row, parse_float=Decimal) if isinstance(row, str) else row
        except ValueError:
            read.notes.append(f"bedrock: price row #{number} is not JSON; skipped")
            continue
        product = item.get("product") if isinstance(item, Mapping) else None
        attributes = product.get("attributes") if isinstance(product, Mapping) else None
        if not isinstance(attributes, Mapping):
            continue
        size = _our_size(str(attributes.get("model") or attributes.get("usagetype") or ""))
        region = attributes.get("regionCode")
        direction = _direction(attributes)
        if size is None or not isinstance(region, str) or direction is None:
            continue
        kind = classify_aws_row(attributes)
        if kind not in found:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        for dimension in _dimensions(item):
            try:
                amount = _usd_per_million(dimension)
            except ValueError as error:
                read.notes.append(f"bedrock: {attributes.get('usagetype')}: {error}; skipped")
                continue
            found[kind].setdefault((size, region), {})[direction] = amount
    for left_out, count in sorted(skipped.items()):
        read.notes.append(f"bedrock: {count} {left_out.replace('_', '-')} row(s) left out")
    routes = [r for spec in catalog.models() for r in spec.routes if r.provider == "bedrock"]
    for (size, region), amounts in sorted(found["on_demand"].items()):
        route = _bedrock_route(routes, size, region)
        if route is None:
            read.notes.append(f"bedrock: Llama 3.2 {size} in {region}: no route from that region")
            continue
        if set(amounts) != {"input", "output"}:
            read.notes.append(f"bedrock: {route.model_id} in {region}: only {sorted(amounts)}")
            continue
        notes = f"on-demand, {region}"
        batch = found["batch"].get((size, region), {})
        if batch:
            amounts_text = "/".join(f"{batch[k]:f}" for k in ("input", "output") if k in batch)
            notes += f"; batch {amounts_text} per M (not used by estimates)"
        read.prices.append(
            Price(
                provider="bedrock", model_id=route.model_id, regions=(region,),
                input_per_mtok=amounts["input"], output_per_mtok=amounts["output"],
                notes=notes, source=source, checked=checked,
            )
        )  # fmt: skip
    return read


def _dimensions(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    terms = item.get("terms", {})
    on_demand = terms.get("OnDemand", {}) if isinstance(terms, Mapping) else {}
    dimensions: list[Mapping[str, Any]] = []
    for term in on_demand.values() if isinstance(on_demand, Mapping) else ():
        if isinstance(term, Mapping) and isinstance(term.get("priceDimensions"), Mapping):
            dimensions.extend(d for d in term["priceDimensions"].values() if isinstance(d, Mapping))
    return dimensions


def _bedrock_route(routes: Sequence[Route], size: str, region: str) -> Route | None:
    """The Bedrock route for a model size that a client in ``region`` calls."""
    for route in routes:
        if f"llama3-2-{size}-" in route.model_id and region in route.regions:
            return route
    return None


# --- Bedrock lifecycle ----------------------------------------------------------------------


def bedrock_lifecycle(answer: Any, catalog: Catalog, *, source: str, checked: date) -> LiveRead:
    """Each Bedrock route's lifecycle from a ``ListFoundationModels`` answer, matched by the
    route's ``foundation_model_id``."""
    read = LiveRead()
    summaries = answer.get("modelSummaries") if isinstance(answer, Mapping) else None
    if not isinstance(summaries, list):
        read.notes.append("bedrock: ListFoundationModels has no modelSummaries; nothing read")
        return read
    by_id = {s.get("modelId"): s for s in summaries if isinstance(s, Mapping)}
    for spec in catalog.models():
        for route in spec.routes:
            summary = by_id.get(route.foundation_model_id)
            if route.provider != "bedrock" or summary is None:
                continue
            life = summary.get("modelLifecycle")
            if not isinstance(life, Mapping):
                continue
            end = _day(life.get("endOfLifeTime"))
            status = str(life.get("status", "ACTIVE")).upper()
            lifecycle: Literal["active", "legacy", "eol"] = (
                "eol" if end is not None and end <= checked
                else "legacy" if status == "LEGACY"
                else "active"
            )  # fmt: skip
            extended = _day(life.get("publicExtendedAccessTime"))
            if extended is not None:
                read.notes.append(
                    f"bedrock: {route.model_id}: public extended access (higher prices) from "
                    f"{extended.isoformat()}"
                )
            read.lifecycles.append(
                RouteLifecycle(
                    provider="bedrock", model_id=route.model_id, lifecycle=lifecycle,
                    legacy_date=_day(life.get("legacyTime")), end_of_life=end,
                    source=source, checked=checked,
                )
            )  # fmt: skip
    return read


def _day(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def read_bedrock_prices(
    catalog: Catalog,
    *,
    regions: Sequence[str] | None,
    pricing_region: str,
    endpoint_url: str | None,
    timeout: float,
    checked: date,
    session: Any | None,
) -> LiveRead:
    """Fetch the on-demand price rows of ``regions`` (by default every region a Bedrock route
    is called from) and the model lifecycles, and read them into entries dated ``checked``
    (what ``llamaroute prices refresh`` does for Bedrock)."""
    wanted = list(regions or dict.fromkeys(
        region for spec in catalog.models() for r in spec.routes if r.provider == NAME
        for region in r.regions
    ))  # fmt: skip
    for region in wanted:
        catalog.check_region(region)
    rows = fetch_bedrock_price_rows(
        wanted, pricing_region=pricing_region, endpoint_url=endpoint_url, timeout=timeout,
        session=session,
    )  # fmt: skip
    read = LiveRead()
    for region, found in rows.items():
        part = bedrock_prices(
            found, catalog, source=PRICE_LIST_SOURCE.format(region=region), checked=checked
        )
        read.prices += part.prices
        read.notes += part.notes
        if not part.prices:
            read.notes.append(f"{NAME}: no Llama 3.2 on-demand price found for {region}")
    life_region = regions[0] if regions else pricing_region
    answer = fetch_bedrock_lifecycle(
        life_region, endpoint_url=endpoint_url, timeout=timeout, session=session
    )
    lives = bedrock_lifecycle(
        answer, catalog, source=LIFECYCLE_SOURCE.format(region=life_region), checked=checked
    )
    read.lifecycles += lives.lifecycles
    read.notes += lives.notes
    return read
