"""What ``llamaroute doctor`` asks OpenRouter (or an OpenAI-compatible gateway in its place),
spending nothing: ``GET /models`` (no key needed) and then ``GET /key`` (the key's own record,
free and authenticated). The answers come back as plain facts; the command words them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OpenRouterProbe", "probe_openrouter"]


@dataclass(frozen=True, slots=True)
class OpenRouterProbe:
    """What the two requests found. ``unreachable``: the httpx error when a request could not be
    made (the rest is then unknown); ``models_status``: ``GET /models``' HTTP
    status; ``slugs``: the model ids it listed (``None`` when the answer was not a model list,
    or was not a 200); ``key_status``: ``GET /key``'s HTTP status (``None``: not asked, because
    the listing already failed)."""

    unreachable: Exception | None = None
    models_status: int | None = None
    slugs: frozenset[str] | None = None
    key_status: int | None = None


def probe_openrouter(base_url: str, api_key: str, timeout: float) -> OpenRouterProbe:
    """List the models at ``base_url``, then check ``api_key``; never raises for what the
    server answers or for a failed connection."""
    import httpx

    try:
        with httpx.Client(timeout=timeout) as http:
            listing = http.get(f"{base_url}/models")
            if listing.status_code != 200:
                return OpenRouterProbe(models_status=listing.status_code)
            slugs = _slugs(listing)
            if slugs is None:
                return OpenRouterProbe(models_status=200)
            checked = http.get(f"{base_url}/key", headers={"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as error:
        return OpenRouterProbe(unreachable=error)
    return OpenRouterProbe(None, 200, slugs, checked.status_code)


def _slugs(response: Any) -> frozenset[str] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return frozenset(
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    )
