"""OpenRouter's ``GET /generation?id=gen-...``: one request's cost, looked up later.

Used to reconcile an attempt whose cost was only estimated (a stream cut short or abandoned:
no usage chunk came). The response is ``{"data": {total_cost, is_byok,
upstream_inference_cost, cancelled, streamed, tokens_prompt, ...}}``; ``total_cost`` is USD
(with BYOK only OpenRouter's fee, and the upstream's charge is added, as for ``usage.cost``).
A 404 right after the request is expected: the record is not written yet (OpenRouter
writes it a few seconds after the request ends).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from ..._exceptions import ProviderError
from .._http import load_json, transport_failure
from .._reading import BodyReader
from ._wire import NAME, amount, map_error

__all__ = ["fetch_generation_cost", "generation_cost"]

#: A generation record is a few hundred bytes; anything near this is not one.
GENERATION_BODY_LIMIT = 256 * 1024


def generation_cost(body: Any) -> Decimal | None:
    """The USD cost in a ``/generation`` body, or ``None`` when it holds no usable figure."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    cost, _ = amount(data.get("total_cost"), "total_cost")
    if cost is not None and data.get("is_byok") is True:
        upstream, _ = amount(data.get("upstream_inference_cost"), "upstream_inference_cost")
        return None if upstream is None else cost + upstream
    return cost


def fetch_generation_cost(
    client: httpx.Client,
    url: str,
    generation_id: str,
    *,
    headers: dict[str, str] | None,
    redact: Callable[[str], str],
    timeout: float = 10.0,
) -> Decimal | None:
    """GET ``url?id=generation_id``: the generation's cost, or ``None`` while OpenRouter does
    not have it yet (404) or sent no usable figure. Other failures raise the mapped
    :class:`~llamaroute.ProviderError`."""
    failure: ProviderError | None = None
    status, content = 0, b""
    try:
        with client.stream(
            "GET", url, params={"id": generation_id}, headers=headers, timeout=timeout
        ) as response:
            status = response.status_code
            # Read under a cap: a hostile or broken server cannot make us hold a huge body.
            reader = BodyReader(response.headers, GENERATION_BODY_LIMIT, provider=NAME,
                                model_id="generation", what="the generation body")  # fmt: skip
            content = b"".join(piece for raw in response.iter_raw() for piece in reader.feed(raw))
            headers_seen = response.headers
    except httpx.HTTPError as error:
        failure = transport_failure(error, NAME, "generation", redact, None)
    if failure is not None:
        raise failure
    if status == 404:
        return None
    if status >= 300:
        raise map_error(status, headers_seen, content,
                        model_id="generation", redact=redact, url=redact(url))  # fmt: skip
    body = load_json(content, provider=NAME, model_id="generation",
                     what="generation body", decimals=True)  # fmt: skip
    return generation_cost(body)
