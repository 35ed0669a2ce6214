"""Planning a call, with no I/O: which routes can serve a request, on which configured
providers, in which order.

``plan()`` turns a resolved model name into an ordered list of :class:`Candidate` (a route and
the provider instance that calls it), dropping routes that cannot take this request and saying
why. When nothing is left it raises the error that explains it, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._exceptions import ConfigurationError, InvalidRequestError, UnsupportedFeatureError
from .._request import ChatRequest
from ..catalog._catalog import Resolution, Route
from ..providers._base import Provider

__all__ = ["Candidate", "Plan", "plan"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One route the call may take, and the configured provider instance that takes it."""

    route: Route
    provider: Provider


@dataclass(frozen=True, slots=True)
class Plan:
    """The candidates in the order to try them, and the routes left out with the reason."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[Route, str], ...] = ()


def plan(
    request: ChatRequest,
    resolution: Resolution,
    providers: Mapping[str, Provider],
    order: Sequence[str] | None = None,
) -> Plan:
    """The routes to try for ``request``, best first.

    ``providers`` are the configured provider instances by name, in the client's order;
    ``order`` (a call's ``providers=``) restricts and reorders them. Raises
    :class:`ConfigurationError` when no configured provider serves the model at all, and
    :class:`UnsupportedFeatureError` / :class:`InvalidRequestError` when every route that
    could serve it refuses this request (the message lists each reason).
    """
    names = list(providers) if order is None else list(dict.fromkeys(order))
    unknown = [name for name in names if name not in providers]
    if unknown:
        raise ConfigurationError(
            f"provider {', '.join(map(repr, unknown))} is not configured on this client "
            f"(configured: {', '.join(providers) or 'none'})"
        )
    candidates: list[Candidate] = []
    unserved: list[tuple[Route, str]] = []  # the provider's configuration (region) rules it out
    refused: list[tuple[Route, str]] = []  # the route cannot take this request
    for name in names:
        provider = providers[name]
        offered = [route for route in resolution.routes if route.provider == name]
        usable = [route for route in offered if provider.serves(route)]
        if offered and not usable:
            unserved.append((offered[0], _why_not_served(resolution, provider)))
        for route in usable:
            reason = refusal(request, route)
            if reason is None:
                candidates.append(Candidate(route, provider))
            else:
                refused.append((route, reason))
    if not candidates:
        raise _nothing_left(resolution, names, unserved, refused)
    return Plan(tuple(candidates), (*unserved, *refused))


def refusal(request: ChatRequest, route: Route) -> str | None:
    """Why ``route`` cannot take ``request`` as it is, or ``None`` if it can."""
    images = len(request.images)
    if images > route.max_images:
        if route.max_images == 0:
            return "takes no images"
        return f"takes at most {route.max_images} image(s) per request, this request has {images}"
    if request.temperature is not None and request.temperature > route.max_temperature:
        return f"temperature must be at most {route.max_temperature:g}"
    if route.max_stop_sequences is not None and len(request.stop) > route.max_stop_sequences:
        return f"takes at most {route.max_stop_sequences} stop sequences"
    if len(request.messages) and request.messages[0].role == "system" and not route.system_prompt:
        return "takes no system prompt"
    return None


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
        reasons = "; ".join(f"{route.pinned} {reason}" for route, reason in refused)
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
