"""Which routes can carry a request that uses tools, decided from the catalog's data before any
I/O (no provider names here).

A request uses tools when it offers ``tools=`` or its conversation holds tool calls or tool
results. A route serves it when the catalog says the route takes tools (``tools``), and, for a
stream, streams tool calls (``tools_streaming``), each with its source (``tools_source``); and
when llamaroute sends tools to that provider at all (:attr:`Provider.tools_wired
<llamaroute.providers.Provider.tools_wired>`, False for a provider whose tool wire is not
written yet: its routes are skipped with that provider's own reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._exceptions import UnsupportedFeatureError
from .._request import ChatRequest
from ..catalog import Catalog, Route
from ..providers import Provider

__all__ = ["tools_refusal", "tools_unsupported", "uses_tools"]


def uses_tools(request: ChatRequest) -> bool:
    """Whether the request offers tools or carries tool calls or tool results."""
    if request.tools:
        return True
    # A loop, not any(): no generator for the usual single message.
    for message in request.messages:  # noqa: SIM110
        if message.tool_calls or message.role == "tool":
            return True
    return False


def tools_refusal(
    request: ChatRequest, route: Route, provider: Provider | None, *, streaming: bool
) -> str | None:
    """Why ``route`` cannot carry this tools request, or ``None`` (also for no tools)."""
    if not uses_tools(request):
        return None
    if not route.tools:
        return f"takes no tools (catalog: {route.tools_source or route.source})"
    if streaming and not route.tools_streaming:
        return f"streams no tool calls (catalog: {route.tools_source or route.source})"
    if provider is not None and not provider.tools_wired:
        return provider.tools_missing or f"llamaroute does not send tools to {route.provider}"
    return None


def tools_unsupported(
    request: ChatRequest,
    target: str,
    reasons: Sequence[str],
    catalog: Catalog,
    providers: Mapping[str, Provider],
    *,
    streaming: bool,
) -> UnsupportedFeatureError:
    """The error for a tools request no route can carry: each route's reason, and the routes
    (of any model) that would take it."""
    working = []
    for spec in catalog.models():
        for route in spec.routes:
            provider = providers.get(route.provider)
            if route.opt_in or (provider is not None and not provider.tools_wired):
                continue
            if route.tools and (route.tools_streaming or not streaming):
                working.append(f"{spec.key} on {route.provider}")
    hint = ", ".join(dict.fromkeys(working)) or "none in the catalog"
    mode = "tools in a stream" if streaming else "tools"
    also = "; or call chat() instead of stream()" if streaming else ""
    return UnsupportedFeatureError(
        f"no route for {target} can take {mode}: {'; '.join(reasons)}. "
        f"Routes that take {mode}: {hint}{also}"
    )
