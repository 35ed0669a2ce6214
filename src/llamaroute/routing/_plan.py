"""Planning a call, in one place and with no I/O: the catalog's answer in, the routes to try
out, in order, with the reason for every route left out.

:func:`plan` is the whole of it, in the order a reader would check by hand:

1. the request against the model: images on a text-only model, or more images than Llama 3.2
   takes, fail here before anything else;
2. the model's routes against the configured providers (:func:`configured_routes`, shared with
   ``client.estimate``): a provider configured in a region the route does not serve leaves it
   out, with the reason;
3. each remaining route's lifecycle: a route past its confirmed end of life is left out, with
   the date (an unconfirmed end of life only warns, once per catalog: the route may still
   work);
4. each remaining route against the request (:func:`route_refusal`): temperature caps, the
   sampling parameters it takes (``top_k``, penalties), stop sequences, system prompts, image
   counts; and tools (:mod:`._tools_gate`: a route that takes no tools, or streams no tool
   calls, or whose provider llamaroute sends no tools to);
5. each remaining route's context window against the prompt and ``max_tokens``
   (:mod:`._window_gate`: nearly free for a prompt that fits every window by its byte count);
6. the survivors in the strategy's order (:mod:`._strategies`), routes whose window the
   prompt fits only by the low side of its estimate last.

When nothing is left it raises the error that explains it, before anything is sent. What a
call may spend (budgets, ``max_cost``) and whether a breaker is open are decided later, per
attempt, by the client: they change while the call runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .._exceptions import ConfigurationError, InvalidRequestError, UnsupportedFeatureError
from .._request import ChatRequest
from ..catalog import Catalog, Resolution, Route, check_image_count
from ..money import RequestShape, request_shape, request_token_ceiling
from ..providers import Provider
from ._candidate import Candidate, Plan
from ._strategies import LatencyStats, Strategy, StrategyName, apply_strategy
from ._tools_gate import tools_refusal, tools_unsupported, uses_tools
from ._window_gate import fit_windows, last_if_tight, window_exceeded

__all__ = ["Served", "configured_routes", "plan", "route_refusal", "served"]


class Served(NamedTuple):
    """What :func:`configured_routes` says of one resolution and deployment order, each usable
    route with its candidate built: all of it depends only on the resolution (a catalog
    refresh makes a new one) and the client's deployments, so a client keeps one per model
    and hands it to :func:`plan` rather than rebuilding it on every call."""

    resolution: Resolution
    order: tuple[str, ...] | None
    names: tuple[str, ...]
    usable: tuple[Candidate, ...]
    unserved: tuple[tuple[Route, str], ...]


def served(
    resolution: Resolution, providers: Mapping[str, Provider], order: Sequence[str] | None
) -> Served:
    """:func:`configured_routes` for ``resolution``, with each usable route's candidate."""
    names, usable, unserved = configured_routes(resolution, providers, order)
    candidates = []
    for route, provider in usable:
        pinned, deployment = route.pinned, provider.deployment
        key = pinned if deployment == route.provider else f"{pinned}@{deployment}"
        candidates.append(Candidate(route, provider, key))
    return Served(resolution, None if order is None else tuple(order), tuple(names),
                  tuple(candidates), tuple(unserved))  # fmt: skip


def plan(
    request: ChatRequest,
    resolution: Resolution,
    providers: Mapping[str, Provider],
    *,
    catalog: Catalog,
    order: Sequence[str] | None = None,
    strategy: StrategyName | Strategy = "ordered",
    stats: LatencyStats | None = None,
    shape: Callable[[], RequestShape] | None = None,
    ceiling: Callable[[], int] | None = None,
    streaming: bool = False,
    rng: random.Random | None = None,
    routes: Served | None = None,
    plain: bool = False,
) -> Plan:
    """The routes to try for ``request``, best first.

    ``providers`` are the configured deployments (provider instances) by deployment name, in
    the client's order; ``order`` (a call's ``providers=``: deployment or provider names)
    restricts and reorders them. ``strategy`` orders what
    is left, with ``stats`` (latencies, for ``fastest``) and ``shape`` (the request's token
    shape, built only if ``cheapest`` or a context window needs it; the heuristic count);
    ``ceiling`` the prompt's UTF-8 token ceiling (computed here if not given). Raises
    :class:`ConfigurationError` when no configured provider serves the model at all,
    :class:`ContextWindowExceededError` when the prompt fits no route's window, and
    :class:`UnsupportedFeatureError` / :class:`InvalidRequestError` when every route that
    could serve it refuses this request for other reasons (the message lists each reason).
    ``routes``: what :func:`served` said of this resolution and ``order`` (kept by the
    client), used when it is for them. ``plain``: the caller knows the request is one user
    message and no parameters (nothing a route can refuse), so no route is asked.
    """
    if not plain and request.images:
        # Text-only model, or more images than Llama 3.2 takes: say so before anything else.
        check_image_count(request, resolution.routes[0], catalog)
    if (
        routes is None
        or routes.resolution is not resolution
        or (routes.order != (None if order is None else tuple(order)))
    ):
        routes = served(resolution, providers, order)
    names, unserved = routes.names, list(routes.unserved)
    candidates: list[Candidate] = []
    refused: list[tuple[Route, str]] = []  # the route cannot take this request
    tool_refused: list[str] = []  # ... because of its tools
    tooled = not plain and uses_tools(request)  # (asked once, not per route)
    for found in routes.usable:
        route = found.route
        ended = catalog.lifecycle_refusal(route)
        if ended is not None:
            # Like a provider configured elsewhere: no request could be served there.
            unserved.append((route, f"{route.pinned} {ended}"))
            continue
        catalog.warn_lifecycle(route)
        reason = None if plain else route_refusal(request, route)
        if tooled:
            tools = tools_refusal(request, route, found.provider, streaming=streaming)
            if reason is None and tools is not None:
                reason = tools
                tool_refused.append(f"{route.pinned} {tools}")
        if reason is None:
            candidates.append(found)
        else:
            refused.append((route, reason))
    if not candidates and tool_refused and len(tool_refused) == len(refused):
        target = resolution.pinned.pinned if resolution.pinned else resolution.model.key
        by_provider = {provider.name: provider for provider in providers.values()}
        raise tools_unsupported(request, target, list(dict.fromkeys(tool_refused)), catalog,
                                by_provider, streaming=streaming)  # fmt: skip
    tight: frozenset[str] = frozenset()
    too_long: list[tuple[Route, str]] = []
    if candidates:
        candidates, too_long, tight = fit_windows(
            candidates, request.max_tokens,
            ceiling or (lambda: request_token_ceiling(request)),
            shape or (lambda: request_shape(request, counter="heuristic")),
        )  # fmt: skip
        if not candidates and not refused:  # no other reason than the windows
            target = resolution.pinned.pinned if resolution.pinned else resolution.model.key
            raise window_exceeded(target, [f"{route.pinned} {why}" for route, why in too_long]
                                  + [why for _, why in unserved])  # fmt: skip
        refused.extend(too_long)
    if not candidates:
        raise _nothing_left(resolution, names, unserved, refused)
    ordered = apply_strategy(
        strategy, request, candidates, stats or LatencyStats(), shape=shape or _no_shape,
        catalog=catalog, streaming=streaming, rng=rng,
    )  # fmt: skip
    return Plan(resolution, tuple(last_if_tight(ordered, tight)), (*unserved, *refused),
                too_long=len(too_long))  # fmt: skip


def configured_routes(
    resolution: Resolution, providers: Mapping[str, Provider], order: Sequence[str] | None
) -> tuple[list[str], list[tuple[Route, Provider]], list[tuple[Route, str]]]:
    """The deployment names to use (``order``, or every configured one), the model's routes
    that those deployments serve, each with its deployment, in that order, and the routes a
    deployment's configuration rules out (a region it does not serve), each with the reason.

    ``providers`` are the configured deployments by name. A name in ``order`` is a
    deployment's, or a provider's (meaning each of its deployments, in configured order).
    Raises :class:`ConfigurationError` for a name that is neither.
    """
    names = list(providers) if order is None else _deployments(providers, order)
    usable: list[tuple[Route, Provider]] = []
    unserved: list[tuple[Route, str]] = []
    for name in names:
        provider = providers[name]
        offered = [route for route in resolution.routes if route.provider == provider.name]
        served = [route for route in offered if provider.serves(route)]
        if offered and not served:
            unserved.append((offered[0], _why_not_served(resolution, provider)))
        usable.extend((route, provider) for route in served)
    return names, usable, unserved


def _deployments(providers: Mapping[str, Provider], order: Sequence[str]) -> list[str]:
    """The deployments ``order`` names (a provider's name stands for all of its own)."""
    chosen: list[str] = []
    unknown: list[str] = []
    for name in order:
        if name in providers:
            chosen.append(name)
            continue
        same = [key for key, provider in providers.items() if provider.name == name]
        if not same:
            unknown.append(name)
        chosen.extend(same)
    if unknown:
        raise ConfigurationError(
            f"provider {', '.join(map(repr, unknown))} is not configured on this client "
            f"(configured: {', '.join(providers) or 'none'})"
        )
    return list(dict.fromkeys(chosen))


def route_refusal(request: ChatRequest, route: Route) -> str | None:
    """Why ``route`` cannot take ``request`` as it is, or ``None`` if it can."""
    images = len(request.images)
    if images and images > route.max_images:
        if route.max_images == 0:
            return "takes no images"
        return f"takes at most {route.max_images} image(s) per request, this request has {images}"
    if request.temperature is not None and request.temperature > route.max_temperature:
        return f"temperature must be at most {route.max_temperature:g}"
    if (
        request.top_k is not None
        or request.frequency_penalty is not None
        or request.presence_penalty is not None
    ):
        for name in ("top_k", "frequency_penalty", "presence_penalty"):
            if getattr(request, name) is not None and name not in route.sampling:
                return f"takes no {name}"
    if route.max_stop_sequences is not None and len(request.stop) > route.max_stop_sequences:
        return f"takes at most {route.max_stop_sequences} stop sequences"
    if len(request.messages) and request.messages[0].role == "system" and not route.system_prompt:
        return "takes no system prompt"
    if request.response_format is not None:
        how = route.structured_output_mechanism
        # Tool use (Bedrock) also sends an instruction to call the tool, and falls back to
        # the schema as an instruction in a stream.
        if how == "none" or (how in ("instructions", "tool") and not route.system_prompt):
            return "has no way to ask for structured output (response_format)"
    return None


def _no_shape() -> RequestShape:
    raise ConfigurationError("the cheapest strategy needs the request's token shape")


def _why_not_served(resolution: Resolution, provider: Provider) -> str:
    try:
        resolution.model.route(provider.name, region=provider.region)
    except UnsupportedFeatureError as error:
        return str(error)
    return f"not served by this {provider.name} configuration"


def _nothing_left(
    resolution: Resolution,
    names: Sequence[str],
    unserved: Sequence[tuple[Route, str]],
    refused: Sequence[tuple[Route, str]],
) -> Exception:
    target = resolution.pinned.pinned if resolution.pinned else resolution.model.key
    if refused:
        reasons = "; ".join(
            [*(f"{route.pinned} {reason}" for route, reason in refused),
             *(reason for _, reason in unserved)]
        )  # fmt: skip
        return InvalidRequestError(f"no route for {target} accepts this request: {reasons}")
    if unserved:
        # E.g. a vision model asked of a provider configured in a region with no route for it.
        return UnsupportedFeatureError("; ".join(reason for _, reason in unserved))
    serving = sorted({route.provider for route in resolution.routes})
    return ConfigurationError(
        f"no configured provider serves {target}: it is served by {', '.join(serving)}; "
        f"this client has {', '.join(names) or 'no providers'} "
        "(set the provider's credentials, or pass providers=[...] to Client)"
    )
