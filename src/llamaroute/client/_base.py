"""The configuration half of ``Client`` and ``AsyncClient``, shared and free of I/O: the
providers, catalog, policies and state a client holds, and turning a call's arguments into a
planned :class:`~._call.Call` before anything is sent.

The routing loop is :class:`~._driver.Driver`; ``_sync.py`` and ``_async.py`` are the two thin
shells that run it and do the I/O.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from decimal import Decimal
from os import PathLike
from typing import Any

from .._exceptions import BudgetExceededError, ConfigurationError
from .._request import ChatRequest, Message
from ..catalog import (
    Catalog,
    ImagePolicy,
    Resolution,
    Route,
    apply_image_policy,
    check_image_policy,
    default_catalog,
)
from ..fleet import FleetState, open_state
from ..images import ImageFetchPolicy
from ..money import (
    Accounting,
    Corrections,
    Estimates,
    Ledger,
    SkippedRoute,
    estimate_shape,
    open_ledger,
    request_shape,
)
from ..providers import Provider, discover
from ..routing import (
    BreakerPolicy,
    Candidate,
    Health,
    RateLimits,
    RetryPolicy,
    Served,
    Strategy,
    StrategyName,
    configured_routes,
    plan,
    served,
    tools_refusal,
)
from ._attempts import FallbackRule, default_fallback
from ._call import Call, check_timeout
from ._driver import Driver
from ._events import BudgetRefused, EventHandler, emit
from ._telemetry import chain, tracing_handler

__all__ = ["BaseClient", "FallbackRule", "default_fallback"]

#: The most models a client keeps planned routes for (more are planned on each call).
_ROUTES_KEPT = 256


class BaseClient:
    """The shared, I/O-free half of both clients."""

    def __init__(
        self,
        providers: Sequence[Provider] | None = None,
        *,
        catalog: Catalog | None = None,
        retries: RetryPolicy | int | None = None,
        breaker: BreakerPolicy | None = None,
        fallback: bool | FallbackRule = True,
        timeout: float | None = None,
        image_fetch: ImageFetchPolicy | None = None,
        strategy: StrategyName | Strategy = "ordered",
        ledger: Ledger | str | PathLike[str] | None = None,
        budget: Decimal | None = None,
        on_event: EventHandler | None = None,
        rate_limits: RateLimits | None = None,
        rng: random.Random | None = None,
        state: FleetState | str | None = None,
    ) -> None:
        found = list(providers) if providers is not None else discover()
        self._providers = _deployments(found)
        self.catalog = catalog or default_catalog()
        self._retry = RetryPolicy.coerce(retries, RetryPolicy())
        # Fleet state (issue 21): breakers, budget and rate limits in memory, or on Redis.
        self._state = open_state(state)
        self._health: Health = self._state.health(breaker or BreakerPolicy(), self._retry.clock)
        if fallback is True:
            self._fallback: FallbackRule = default_fallback
        elif fallback is False:
            self._fallback = lambda error: False
        else:
            self._fallback = fallback
        self._timeout = check_timeout(timeout)
        self._image_fetch = image_fetch
        self._strategy = strategy
        # Prices by provider (its first deployment's region, for estimate()) and by deployment
        # (each attempt is priced for the region of the deployment that made it).
        regions = {p.name: p.region for p in reversed(self._providers.values())}
        regions.update({name: p.region for name, p in self._providers.items()})
        opened = open_ledger(ledger, budget)
        # A server ledger the client opened from its URL is the client's to close (a SQLite
        # file stays readable after the client closes, as before).
        served = isinstance(ledger, str) and ledger.startswith(("postgresql:", "postgres:"))
        self._owned: list[Ledger | FleetState] = [opened, self._state] if served else [self._state]
        self._accounting = Accounting(self.catalog, self._state.budget(opened), regions)
        self._stats = self._state.latency_stats()
        # Spans come from the same events, when OpenTelemetry is installed.
        self._on_event = chain(on_event, tracing_handler())
        self._ids = itertools.count(1)
        # Requests and tokens per minute of the deployments (only those with rpm= or tpm= are
        # counted): this client's own, or the fleet's with state=; and the weighted strategy's
        # random source.
        self._limits = rate_limits or self._state.rate_limits(self._retry.clock)
        self._rng = rng or random.Random()
        self._driver = Driver(self._health, self._accounting, self._stats, self._on_event,
                              self._fallback, self._limits)  # fmt: skip
        self._driver.count_busy = len(self._providers) > 1 or strategy == "least_busy"
        # Each model's configured routes and candidates (see _served).
        self._routes: dict[str, Served] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} providers={list(self._providers)}>"

    def _close_state(self) -> None:
        """Close the ledger and fleet state this client opened itself (from a URL or path);
        what the caller passed in as an object stays the caller's."""
        owned, self._owned = self._owned, []
        for item in owned:
            item.close()

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured providers by deployment name (the provider's name unless given
        ``deployment=``), in the order they are tried."""
        return dict(self._providers)

    @property
    def spend(self) -> Ledger:
        """What this client has spent: ``client.spend.total`` (Decimal USD),
        ``client.spend.summary()`` by provider, model and day, ``remaining()`` of the budget."""
        return self._accounting.ledger

    def latency(self) -> dict[str, dict[str, float]]:
        """The latency estimates the ``fastest`` strategy uses, by route, in seconds."""
        return self._stats.snapshot()

    def health(self) -> dict[str, dict[str, object]]:
        """The circuit breakers that have seen traffic, by route (``provider:model_id``) and
        provider (``provider:*``), ``@deployment`` added for a deployment named otherwise than
        its provider: ``state`` (closed, open, half_open), consecutive failures, times opened,
        and seconds until an open breaker lets a probe through."""
        return self._health.snapshot()

    # --- before any I/O ----------------------------------------------------------------------

    def _prepare(
        self,
        model: str,
        prompt: str | None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None,
        image: Any,
        system: str | None,
        providers: Sequence[str] | None,
        timeout: float | None,
        retries: RetryPolicy | int | None,
        params: dict[str, Any],
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
        streaming: bool = False,
        image_policy: ImagePolicy = "refuse",
    ) -> Call:
        """Validate, resolve and plan a call; every bad input raises here, before any I/O."""
        timeout = check_timeout(timeout) if timeout is not None else self._timeout
        retry = self._retry if retries is None else RetryPolicy.coerce(retries, self._retry)
        if image_policy != "refuse":
            check_image_policy(image_policy)
        given = {key: value for key, value in params.items() if value is not None}
        # One user message and no parameters: nothing in it for a route to refuse, no images.
        plain = not given and messages is None and image is None and system is None
        request = ChatRequest.create(model, prompt, messages=messages, image=image,
                                     system=system, **given)  # fmt: skip
        resolution = self.catalog.resolve(request.model)
        images_left_out = None
        images = () if plain else request.images
        if images:
            request, images_left_out = _apply_image_policy(request, resolution, image_policy)
        deadline = retry.clock() + timeout if timeout is not None else None
        call = Call(request, resolution, retry, timeout, deadline, self._image_fetch,
                    streaming=streaming, id=next(self._ids))  # fmt: skip
        routing = plan(
            request, resolution, self._providers, catalog=self.catalog, order=providers,
            strategy=self._strategy if strategy is None else strategy, stats=self._stats,
            shape=call.shape, ceiling=call.ceiling, streaming=streaming, rng=self._rng,
            routes=self._served(request.model, resolution, providers), plain=plain,
        )  # fmt: skip
        if images:
            # Read, check and fit every image now, so that a bad or oversized image fails
            # before any request is sent. Only URLs that some route must download wait for
            # the attempt.
            for candidate in routing.candidates:
                if not call.images.needs_fetch(candidate.route):
                    call.images.for_route(candidate.route)
        if max_cost is not None:
            if not isinstance(max_cost, Decimal) or max_cost < 0:
                raise ConfigurationError(
                    "max_cost must be a Decimal >= 0 (USD), e.g. Decimal('0.01')"
                )
            call.max_cost = max_cost
        call.image_policy = images_left_out
        if routing.skipped:
            call.skipped = tuple((route.pinned, why) for route, why in routing.skipped)
        call.too_long = routing.too_long
        candidates = routing.candidates
        if self._accounting.limited(max_cost):
            candidates = self._within_limits(call, candidates)
        call.candidates = candidates
        return call

    def _served(
        self, model: str, resolution: Resolution, order: Sequence[str] | None
    ) -> Served | None:
        """The model's configured routes and their candidates, for the client's whole
        deployment list (``order`` None): kept per model name, and rebuilt when the catalog
        resolves the name to a new resolution (a refresh, another catalog). A call's own
        ``providers=`` is planned afresh."""
        if order is not None:
            return None
        known = self._routes.get(model)
        if known is None or known.resolution is not resolution:
            known = served(resolution, self._providers, None)
            if len(self._routes) < _ROUTES_KEPT or model in self._routes:
                self._routes[model] = known
        return known

    def _within_limits(self, call: Call, ordered: Sequence[Candidate]) -> tuple[Candidate, ...]:
        """The candidates whose worst case fits the budget and ``max_cost``; if none does,
        :class:`BudgetExceededError` with each route's figure, before anything is sent."""
        if not self._accounting.limited(call.max_cost):
            return tuple(ordered)
        fitting, reasons = [], []
        for candidate in ordered:
            worst = self._accounting.worst_case(call.shape(), candidate.route, call.ceiling(),
                                                deployment=candidate.deployment)  # fmt: skip
            reason = self._accounting.budget_refusal(
                candidate.route, worst, call.max_cost, Decimal(0)
            )
            if reason is None:
                fitting.append(candidate)
                continue
            reasons.append(reason)
            emit(self._on_event, BudgetRefused(call.id, candidate.route.pinned, worst,
                                               self.spend.remaining()))  # fmt: skip
        if not fitting:
            raise BudgetExceededError(
                "no route fits this call's limits: "
                + "; ".join(reasons)
                + " (lower max_tokens, raise max_cost or the budget, or pick a cheaper model)"
            )
        return tuple(fitting)

    def _corrections(self) -> Corrections:
        """``reconcile_generations()``, shared by both clients (blocking I/O)."""
        corrected, pending, change = 0, 0, Decimal(0)
        for provider in self._providers.values():
            lookup = getattr(provider, "generation_cost", None)
            if lookup is None:
                continue
            for ref in self.spend.estimated(provider.name):
                cost = lookup(ref)
                delta = None if cost is None else self.spend.correct(ref, cost)
                if delta is None:
                    pending += 1
                else:
                    corrected, change = corrected + 1, change + delta
        return Corrections(corrected, pending, change)

    def _estimates(
        self,
        request: ChatRequest,
        providers: Sequence[str] | None,
        expected_output_tokens: int | None,
    ) -> Estimates:
        resolution = self.catalog.resolve(request.model)
        _, pairs, _ = configured_routes(resolution, self._providers, providers)
        shape = request_shape(request, expected_output_tokens=expected_output_tokens)
        # A route that cannot carry the request's tools is not estimated, as it is not called.
        # A route several deployments serve is estimated once, priced for the region of the
        # first of them that the call would use.
        routes: dict[Route, Provider] = {}
        regions: dict[str, str | None] = {}
        for route, provider in pairs:
            routes.setdefault(route, provider)
            regions.setdefault(route.provider, provider.region)
        refusals = [(r, tools_refusal(request, r, p, streaming=False)) for r, p in routes.items()]
        kept = [route for route, why in refusals if why is None]
        result = estimate_shape(shape, kept, catalog=self.catalog, regions=regions)
        tool_skips = [SkippedRoute(r.provider, r.model_id, why) for r, why in refusals if why]
        result.skipped = (*result.skipped, *tool_skips)
        return result

    def estimate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Any = None,
        system: str | None = None,
        max_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        providers: Sequence[str] | None = None,
        response_format: Any = None,
        tools: Sequence[Any] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
        image_policy: ImagePolicy = "refuse",
    ) -> Estimates:
        """What a call would cost on each route this client can use, cheapest first (no I/O).

        Like :func:`llamaroute.estimate`, but over the client's own providers (and their
        regions) and catalog (``tools``' schemas count as input); the list's ``skipped``
        attribute says which routes cannot serve the request and why. ``extra`` (provider
        options, as in ``chat``) is checked, and changes no price. ``image_policy`` as in
        ``chat``: the images it leaves out are not counted.
        """
        if image_policy != "refuse":
            check_image_policy(image_policy)
        params = {"max_tokens": max_tokens, "response_format": response_format, "tools": tools,
                  "extra": extra}  # fmt: skip
        request = _request(model, prompt, messages, image, system, params)
        if request.images:
            resolution = self.catalog.resolve(request.model)
            request, _ = _apply_image_policy(request, resolution, image_policy)
        return self._estimates(request, providers, expected_output_tokens)


def _request(
    model: str,
    prompt: str | None,
    messages: Sequence[Message | dict[str, Any]] | None,
    image: Any,
    system: str | None,
    params: dict[str, Any],
) -> ChatRequest:
    """The validated request (``None`` parameters left out: the provider's default)."""
    given = {key: value for key, value in params.items() if value is not None}
    return ChatRequest.create(model, prompt, messages=messages, image=image, system=system, **given)


def _apply_image_policy(
    request: ChatRequest, resolution: Resolution, policy: ImagePolicy
) -> tuple[ChatRequest, dict[str, Any] | None]:
    """The request with the model's image limit applied by ``policy`` (see
    :func:`~llamaroute.catalog.apply_image_policy`), and the report for the response."""
    if policy == "refuse" or not request.images or not resolution.routes:
        return request, None
    return apply_image_policy(request, resolution.routes[0].max_images, policy)


def _deployments(found: Sequence[Provider]) -> dict[str, Provider]:
    """The providers by deployment name, checked: each a provider object, each name once, and
    no deployment named like another provider (a call's ``providers=["ollama"]`` must mean
    one thing)."""
    deployments: dict[str, Provider] = {}
    for provider in found:
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                f"providers= takes provider objects (such as OpenRouterProvider(...)), "
                f"not {type(provider).__name__}"
            )
    names = {provider.name for provider in found}
    for provider in found:
        name = provider.deployment
        if name != provider.name and name in names:
            raise ConfigurationError(
                f"deployment {name!r} of {provider.name} has another provider's name: "
                "choose a name no provider has"
            )
        if name in deployments:
            raise ConfigurationError(
                f"deployment {name!r} is configured twice: give each {provider.name} "
                f'deployment its own name, e.g. {type(provider).__name__}(..., deployment="'
                f'{provider.name}-2")'
            )
        deployments[name] = provider
    return deployments
