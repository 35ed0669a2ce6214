"""Estimates before the call: what a request would cost on each route that can serve it.

Sans-I/O apart from reading the request's image files: a request is reduced to its
:class:`RequestShape` (prompt tokens, image tiles, output limits), each route turns the shape
into :class:`TokenTotals` (or a reason to skip it), and the totals are priced exactly with the
route's :class:`~llamaroute.catalog.Price`. Costs are linear in tokens, so a workload sums the
totals of its lines and prices them once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .._exceptions import ConfigurationError, InvalidRequestError, UnsupportedFeatureError
from .._records import Amount
from ..catalog import Price, region_skip_reason
from ._cost import tokens_cost
from ._tokens import (
    HEURISTIC,
    CounterChoice,
    chat_template_tokens,
    image_tiles_for,
    image_token_range,
    text_counter,
)
from ._window import window_refusal

if TYPE_CHECKING:
    from .._request import ChatRequest, Message
    from ..catalog import Catalog, Route

__all__ = [
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "Estimate",
    "Estimates",
    "RequestShape",
    "SkippedRoute",
    "TokenTotals",
    "estimate",
    "estimate_shape",
    "image_token_range",
    "request_shape",
    "route_tokens",
    "select_routes",
    "split_routes",
]


# --- estimates before the call --------------------------------------------------------------

#: Output tokens the ``expected`` figure assumes when the caller gives no
#: ``expected_output_tokens`` (a typical chat answer; capped at the request's max output).
DEFAULT_EXPECTED_OUTPUT_TOKENS = 256


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What an estimate needs to know about one request: its size, not its content.

    ``input_tokens`` counts the text in Meta's chat format with each image's ``<|image|>``
    tag (what a route's template adds on top is the route's ``template_tokens``);
    ``input_tokens_low`` and ``input_tokens_high`` bracket it when the text was estimated
    rather than counted (``None``: equal to it). ``image_tiles`` has one entry (1 to 4 tiles)
    per image. ``tokenizer`` names how the text was counted.
    """

    input_tokens: int
    image_tiles: tuple[int, ...] = ()
    max_tokens: int | None = None
    expected_output_tokens: int | None = None
    input_tokens_low: int | None = None
    input_tokens_high: int | None = None
    tokenizer: str = HEURISTIC

    @property
    def input_low(self) -> int:
        """The fewest prompt tokens the text can be (never above ``input_tokens``)."""
        low = self.input_tokens_low
        return self.input_tokens if low is None else min(low, self.input_tokens)

    @property
    def input_high(self) -> int:
        """The most prompt tokens the text can be (never below ``input_tokens``)."""
        high = self.input_tokens_high
        return self.input_tokens if high is None else max(high, self.input_tokens)


@dataclass(slots=True)
class TokenTotals:
    """Token counts on one route, for one request or summed over many.

    Costs are linear in tokens, so pricing the sums gives exactly the sum of the per-request
    costs: a workload adds integers per line and multiplies by the price once.
    """

    requests: int = 0
    images: int = 0
    input_low: int = 0
    input_high: int = 0
    output_expected: int = 0
    output_high: int = 0
    input_expected: int = 0

    def add(self, other: TokenTotals, times: int = 1) -> None:
        """Add ``other``'s counts to these, ``times`` times."""
        self.requests += other.requests * times
        self.images += other.images * times
        self.input_low += other.input_low * times
        self.input_expected += other.input_expected * times
        self.input_high += other.input_high * times
        self.output_expected += other.output_expected * times
        self.output_high += other.output_high * times

    def costs(self, price: Price) -> tuple[Decimal, Decimal, Decimal]:
        """(low, expected, high) USD at ``price``: low bills the fewest input tokens and no
        output; expected the expected input and output; high the most input tokens and every
        allowed output token. Each bills the per-image price, where there is one."""
        return (
            _total(tokens_cost(price, self.input_low, 0, images=self.images)),
            _total(
                tokens_cost(price, self.input_expected, self.output_expected, images=self.images)
            ),
            _total(tokens_cost(price, self.input_high, self.output_high, images=self.images)),
        )


def _total(parts: tuple[Decimal, Decimal]) -> Decimal:
    return parts[0] + parts[1]


def route_tokens(route: Route, price: Price | None, shape: RequestShape) -> TokenTotals | str:
    """The token counts of one request on ``route``, or why the route cannot serve it.

    The output is capped by the route's max output and by what the context window leaves; a
    ``max_tokens`` above the route's max output is clamped (as the client clamps it), one that
    does not fit the context window beside the prompt is a reason to skip the route
    (:func:`~._window.window_refusal`, the rule a call's plan applies). The
    route's chat template adds ``template_tokens`` and its images :func:`image_token_range`.
    """
    images = len(shape.image_tiles)
    if images > route.max_images:
        return (
            "takes no images"
            if not route.max_images
            else f"takes at most {route.max_images} image(s) per request, not {images}"
        )
    refusal = window_refusal(route, shape)  # the rule every call's plan applies too
    if refusal is not None:
        return refusal
    template_low, template_expected, template_high = route.template_tokens
    room = route.context_window - (shape.input_tokens + template_expected)
    cap = min(route.max_output_tokens or room, room)
    max_out = cap if shape.max_tokens is None else min(shape.max_tokens, cap)
    expected_out = shape.expected_output_tokens
    if expected_out is None:
        expected_out = DEFAULT_EXPECTED_OUTPUT_TOKENS
    image_low, image_expected, image_high = image_token_range(route, price, shape.image_tiles)
    return TokenTotals(
        requests=1,
        images=images,
        input_low=shape.input_low + template_low + image_low,
        input_expected=shape.input_tokens + template_expected + image_expected,
        input_high=shape.input_high + template_high + image_high,
        output_expected=min(expected_out, max_out),
        output_high=max_out,
    )


class Estimate(BaseModel):
    """What one request would cost on one route, before it is sent.

    ``input_tokens`` is the expected prompt: text, the route's chat template, one
    ``<|image|>`` tag per image. ``input_tokens_low`` and ``input_tokens_high`` bracket it:
    the text's estimate band (none when ``tokenizer`` is an exact count) and the templates the
    route's upstream may use (``template_tokens`` is the expected extra over Meta's format).
    Images add ``image_tokens_low`` to ``image_tokens_high`` input tokens,
    ``image_tokens_expected`` expected, by the route's billing (and its per-image price, in
    ``price.image``, on top). ``low`` bills the fewest input tokens and no output;
    ``expected`` the expected input and ``expected_output_tokens``; ``high`` the most input
    tokens and all ``max_output_tokens``. Amounts are exact USD decimals, ``None`` when the
    route's price is unknown. ``price`` is the dated price used (for a route priced per
    region, the price of the caller's region, or the highest one if the region is not known);
    ``price_checked`` is the date its source was read, ``price_age_days`` the days since, and
    ``price_stale`` whether that is more than its provider's ``stale_after_days``.
    ``tokenizer`` says how the text was counted: ``"llama3-exact (quicktok-v1)"`` or
    ``"heuristic"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    provider: str
    model_id: str
    input_tokens: int
    input_tokens_low: int = 0
    input_tokens_high: int = 0
    template_tokens: int = 0
    image_tokens_low: int = 0
    image_tokens_expected: int = 0
    image_tokens_high: int = 0
    expected_output_tokens: int
    max_output_tokens: int
    low: Amount | None
    expected: Amount | None
    high: Amount | None
    price: Price | None
    price_checked: date | None = None
    price_age_days: int | None = None
    price_stale: bool = False
    tokenizer: str = HEURISTIC

    @property
    def pinned(self) -> str:
        """The ``provider:model_id`` form that selects this route."""
        return f"{self.provider}:{self.model_id}"


@dataclass(frozen=True, slots=True)
class SkippedRoute:
    """A route an estimate left out, and why."""

    provider: str
    model_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_id}: {self.reason}"


class Estimates(list[Estimate]):
    """A list of :class:`Estimate`, cheapest first (unknown prices last), whose ``skipped``
    attribute lists the routes that cannot serve the request and why."""

    def __init__(self, estimates: Iterable[Estimate] = (), skipped: Iterable[SkippedRoute] = ()):
        super().__init__(estimates)
        self.skipped: tuple[SkippedRoute, ...] = tuple(skipped)


def _order(item: Estimate) -> tuple[bool, Decimal, Decimal, str, str]:
    unknown = item.expected is None
    return (unknown, item.expected or Decimal(0), item.high or Decimal(0), item.provider,
            item.model_id)  # fmt: skip


def estimate_shape(
    shape: RequestShape,
    routes: Iterable[Route],
    *,
    catalog: Catalog | None = None,
    region: str | None = None,
    regions: Mapping[str, str | None] | None = None,
) -> Estimates:
    """Estimates for a request of this shape on each of ``routes`` (no I/O).

    This is what a client calls with its own configured routes; :func:`estimate` builds the
    shape from a prompt and resolves the routes from a model name first. Prices are those of
    the caller's region: ``regions`` by provider name (a client's configured providers), else
    ``region`` (see :meth:`~llamaroute.Catalog.price`). A route past its confirmed end of life
    is skipped, with the date.
    """
    if catalog is None:
        from ..catalog import default_catalog  # deferred: loaded on first use

        catalog = default_catalog()
    found, skipped = [], []
    today = catalog.today()
    for route in routes:
        ended = catalog.lifecycle_refusal(route)
        if ended is not None:
            skipped.append(SkippedRoute(route.provider, route.model_id, ended))
            continue
        price = catalog.price(route, regions.get(route.provider, region) if regions else region)
        tokens = route_tokens(route, price, shape)
        if isinstance(tokens, str):
            skipped.append(SkippedRoute(route.provider, route.model_id, tokens))
            continue
        low = expected = high = None
        if price is not None:
            low, expected, high = tokens.costs(price)
        images = image_token_range(route, price, shape.image_tiles)
        found.append(
            Estimate(
                model=route.model,
                provider=route.provider,
                model_id=route.model_id,
                input_tokens=tokens.input_expected - images[1],
                input_tokens_low=tokens.input_low - images[0],
                input_tokens_high=tokens.input_high - images[2],
                template_tokens=route.template_tokens[1],
                image_tokens_low=images[0],
                image_tokens_expected=images[1],
                image_tokens_high=images[2],
                expected_output_tokens=tokens.output_expected,
                max_output_tokens=tokens.output_high,
                low=low,
                expected=expected,
                high=high,
                price=price,
                price_checked=None if price is None else price.checked,
                price_age_days=None if price is None else price.age_days(today),
                price_stale=price is not None and price.is_stale(today),
                tokenizer=shape.tokenizer,
            )
        )
    return Estimates(sorted(found, key=_order), skipped)


def request_shape(
    request: ChatRequest,
    *,
    expected_output_tokens: int | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    tiles: Sequence[int] | None = None,
    counter: CounterChoice = "auto",
) -> RequestShape:
    """The shape of a validated request: its prompt tokens in Meta's chat format, counted as
    :func:`~llamaroute.money.text_counter` chooses (exact with the ``tokens`` extra, else
    estimated with a band), and its images' tiles. Reads each image
    (:class:`~llamaroute.InvalidImageError` if one is missing or not an image) unless the
    caller, who has already loaded them, passes their ``tiles``."""
    if tiles is None:
        tiles = tuple(image_tiles_for(part.image) for part in request.images)
    tiles = tuple(tiles)
    count = text_counter(tokenizer, counter)
    low = expected = high = 0
    texts = [message.text for message in request.messages]
    texts.append(request.tool_text)  # the tools' schemas are prompt too
    if request.response_format is not None:  # the schema, as instructions or as the upstream's
        texts.append(request.response_format.instruction())
    for text in texts:
        band = count.band(text)
        low, expected, high = low + band[0], expected + band[1], high + band[2]
    template = chat_template_tokens(len(request.messages), len(tiles))
    return RequestShape(
        input_tokens=expected + template,
        image_tiles=tiles,
        max_tokens=request.max_tokens,
        expected_output_tokens=expected_output_tokens,
        input_tokens_low=low + template,
        input_tokens_high=high + template,
        tokenizer=count.name,
    )


def estimate(
    model: str,
    prompt: str | None = None,
    *,
    messages: Sequence[Message | Mapping[str, Any]] | None = None,
    image: bytes | str | os.PathLike[str] | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    expected_output_tokens: int | None = None,
    tools: Sequence[Any] | None = None,
    providers: str | Sequence[str] | None = None,
    region: str | None = None,
    include_opt_in: bool = False,
    catalog: Catalog | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    counter: CounterChoice = "auto",
    response_format: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Estimate]:
    """What a request would cost on each route that can serve it, cheapest first. No network.

    ``model``, ``prompt``, ``messages``, ``image``, ``system``, ``max_tokens`` and ``tools``
    (input tokens too) are what ``Client.chat`` takes. ``expected_output_tokens`` is your guess
    of the answer's length (default 256, capped at the max output) and sets ``expected``;
    ``high`` assumes all of ``max_tokens`` is generated (default: the route's max output).
    ``providers`` keeps only those providers' routes, ``region`` only the routes usable from
    that region, ``include_opt_in`` adds opt-in routes such as OpenRouter's ``:free`` variants.
    The text is counted exactly when the ``tokens`` extra is installed (``pip install
    'llamaroute[tokens]'``), else estimated with a band (each estimate's ``tokenizer`` says
    which); ``counter="heuristic"`` forces the estimate, ``counter="exact"`` requires the
    tokenizer. ``tokenizer`` (or ``$LLAMAROUTE_TOKENIZER``) is a Llama 3 ``tokenizer.json``
    to count with the ``tokenizers`` package instead. ``response_format`` (as in ``chat``)
    counts its schema instructions as input tokens. ``extra`` (provider options, as in
    ``chat``) is checked and otherwise ignored: no option changes a price.

    A route whose price is unknown is listed last with ``None`` amounts. Routes that cannot
    serve the request (a text-only route for an image, a context window too small) are left
    out; the returned list's ``skipped`` attribute says which and why.

    Raises, before anything else: :class:`~llamaroute.InvalidRequestError` for bad arguments
    (``max_tokens`` below 1, malformed messages), :class:`~llamaroute.InvalidImageError` for an
    image that is missing or not an image, :class:`~llamaroute.UnknownModelError` for an unknown
    model, and :class:`~llamaroute.UnsupportedFeatureError` when no route can serve the request.
    """
    if catalog is None:
        from ..catalog import default_catalog  # deferred: loaded on first use

        catalog = default_catalog()
    if region is not None:
        catalog.check_region(region)
    # Deferred: the request models are not needed by a workload estimate (`llamaroute estimate`).
    from .._request import ChatRequest

    request = ChatRequest.create(
        model,
        prompt,
        # create() turns dicts into Message objects (and rejects anything else).
        messages=messages,
        image=Path(image) if isinstance(image, os.PathLike) else image,
        system=system,
        max_tokens=max_tokens,
        response_format=response_format,
        extra=extra,
        **({} if tools is None else {"tools": tools}),
    )
    if expected_output_tokens is not None and (
        isinstance(expected_output_tokens, bool)
        or not isinstance(expected_output_tokens, int)
        or expected_output_tokens < 0
    ):
        raise InvalidRequestError(
            f"expected_output_tokens must be a whole number >= 0, not {expected_output_tokens!r}"
        )
    shape = request_shape(
        request, expected_output_tokens=expected_output_tokens, tokenizer=tokenizer,
        counter=counter,
    )  # fmt: skip
    resolution = catalog.resolve(model, include_opt_in=include_opt_in)
    if shape.image_tiles and not resolution.model.vision:
        vision = [spec.key for spec in catalog.models() if spec.vision]
        raise UnsupportedFeatureError(
            f"{resolution.model.key} takes text only, not images; "
            f"the vision models are {', '.join(vision)}"
        )
    routes, elsewhere = split_routes(resolution.routes, catalog, providers=providers, region=region)
    result = estimate_shape(shape, routes, catalog=catalog, region=region)
    result.skipped = (*elsewhere, *result.skipped)
    if not result:
        reasons = "; ".join(map(str, result.skipped)) or "no route matches the filters"
        raise UnsupportedFeatureError(
            f"no route of {resolution.model.key} can serve this request: {reasons}"
        )
    return result


def select_routes(
    routes: Iterable[Route],
    catalog: Catalog,
    *,
    providers: str | Sequence[str] | None = None,
    region: str | None = None,
) -> list[Route]:
    """The routes of ``providers`` (all if ``None``) usable from ``region`` (any if ``None``).

    Raises :class:`~llamaroute.ConfigurationError` for a provider the catalog does not know,
    and for a region that is not a region name (see :meth:`~llamaroute.Catalog.check_region`).
    """
    return split_routes(routes, catalog, providers=providers, region=region)[0]


def split_routes(
    routes: Iterable[Route],
    catalog: Catalog,
    *,
    providers: str | Sequence[str] | None = None,
    region: str | None = None,
) -> tuple[list[Route], list[SkippedRoute]]:
    """:func:`select_routes`, and the routes of ``providers`` that ``region`` leaves out, each
    with the reason (the regions it is offered in)."""
    if region is not None:
        catalog.check_region(region)
    wanted = None
    if providers is not None:
        wanted = frozenset([providers] if isinstance(providers, str) else providers)
        unknown = sorted(wanted - set(catalog.providers))
        if unknown:
            raise ConfigurationError(
                f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(catalog.providers)}"
            )
    mine = [route for route in routes if wanted is None or route.provider in wanted]
    if region is None:
        return mine, []
    kept = [route for route in mine if route.serves_region(region)]
    skipped = [
        SkippedRoute(route.provider, route.model_id, region_skip_reason(route, region, [
            other for other in mine if other.provider == route.provider and other is not route
        ]))
        for route in mine
        if not route.serves_region(region)
    ]  # fmt: skip
    return kept, skipped
