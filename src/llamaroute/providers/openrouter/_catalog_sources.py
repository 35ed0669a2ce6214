"""Reading OpenRouter's public model list for ``llamaroute prices refresh``: the I/O only.

``GET {base_url}/models`` and ``GET {base_url}/models/{author}/{slug}/endpoints`` need no key.
Each answer is read under a size cap and a finite timeout and parsed with decimals kept exact
(``parse_float=Decimal``); every failure is a typed llamaroute error. What the JSON means is
read by :func:`._price_reading.openrouter_prices`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from ..._exceptions import MalformedResponseError, ProviderError
from .._errors import status_rule
from .._http import check_base_url, transport_failure
from ._provider import DEFAULT_BASE_URL

__all__ = ["MAX_CATALOG_BYTES", "OpenRouterListing", "fetch_openrouter_listing"]

#: The full model list is a few MB; more than this is not a model list.
MAX_CATALOG_BYTES = 32 * 1024 * 1024
_NAME = "openrouter"


@dataclass
class OpenRouterListing:
    """What was read: the ``/models`` answer, the ``/endpoints`` answers by slug, the URL of
    the model list (the price entries' ``source``) and the endpoint failures (not fatal)."""

    models: Any
    endpoints: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    errors: list[ProviderError] = field(default_factory=list)


def fetch_openrouter_listing(
    slugs: Iterable[str],
    *,
    base_url: str | None = None,
    timeout: float = 30.0,
    max_bytes: int = MAX_CATALOG_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> OpenRouterListing:
    """``/models``, then ``/endpoints`` for each of ``slugs`` that the list has (a ``:free``
    variant shares its model's endpoints). A failed ``/models`` raises; a failed
    ``/endpoints`` is kept in ``errors`` (the listed price does not need it)."""
    base = check_base_url(base_url or DEFAULT_BASE_URL, what="OpenRouter URL")
    with httpx.Client(
        timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False
    ) as client:
        source = f"{base}/models"
        listing = OpenRouterListing(models=_get(client, source, max_bytes), source=source)
        data = listing.models.get("data") if isinstance(listing.models, dict) else None
        if not isinstance(data, list):
            raise MalformedResponseError(
                f"{source}: the answer has no 'data' list", provider=_NAME, model_id=""
            )
        listed = {entry.get("id") for entry in data if isinstance(entry, dict)}
        for slug in dict.fromkeys(s.split(":", 1)[0] for s in slugs):
            if slug not in listed:
                continue
            try:
                listing.endpoints[slug] = _get(client, f"{base}/models/{slug}/endpoints", max_bytes)
            except ProviderError as error:
                listing.errors.append(error)
    return listing


def _get(client: httpx.Client, url: str, max_bytes: int) -> Any:
    failure: ProviderError | None = None
    try:
        with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise MalformedResponseError(
                        f"{url}: the answer is over {max_bytes:,} bytes; not read further",
                        provider=_NAME, model_id="", code="too_large",
                    )  # fmt: skip
            status = response.status_code
    except httpx.HTTPError as error:
        failure = transport_failure(error, _NAME, "")
    if failure is not None:
        failure.message = f"{url}: {failure.message}"
        failure.args = (failure.message,)
        raise failure
    if status >= 400:
        raise status_rule(status).build(
            f"{url} answered HTTP {status}", provider=_NAME, model_id="", status_code=status
        )
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        raise MalformedResponseError(
            f"{url}: the answer is not valid JSON ({type(error).__name__})",
            provider=_NAME, model_id="",
        ) from None  # fmt: skip
