"""The ``ollama`` namespace of a call's ``extra=`` options, applied to ``Client.chat``'s
keyword arguments (pure). The options were checked when the request was built
(``llamaroute._extra``): only ``options`` and ``keep_alive`` get here, and ``options`` holds
none of the values llamaroute sets from call keywords (``num_predict``, ``temperature``,
``top_p``, ``top_k``, ``seed``, ``stop``, the penalties): those are refused there, so the call's
keyword is the one way to set each and nothing needs to win.

The caller's other options (``num_ctx``, ``repeat_penalty``, ``min_p``, ``num_gpu``...) are
added. A ``num_ctx`` given here replaces the size llamaroute estimates for the request (and the
provider's configured one), capped at the route's context window; a ``keep_alive`` given here
replaces the provider's configured one for this call.
"""

from __future__ import annotations

from typing import Any

from ...catalog import Route

__all__ = ["apply_options"]


def apply_options(kwargs: dict[str, Any], options: dict[str, Any] | None, route: Route) -> None:
    """Add the call's Ollama options (``extra["ollama"]``) to ``kwargs``."""
    if not options:
        return
    settings: dict[str, Any] = options.get("options") or {}
    if settings:
        merged = {**kwargs["options"], **settings}
        if "num_ctx" in settings:
            merged["num_ctx"] = min(settings["num_ctx"], route.context_window)
        kwargs["options"] = merged
    if "keep_alive" in options:
        kwargs["keep_alive"] = options["keep_alive"]
