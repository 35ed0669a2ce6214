"""Model tags as an Ollama server lists them (no I/O): a tag's full form, and the tags that
count as a model or route when the server's listing is checked for it."""

from __future__ import annotations

from ...catalog import Catalog, Route
from ._wire import NAME

__all__ = ["tag", "wanted"]


def tag(name: str) -> str:
    # A tag without a suffix means ":latest" (llama3.2 == llama3.2:latest).
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def wanted(model: str | Route) -> tuple[str, ...]:
    """The tags that count as ``model``: its own and the route's ``alternate_ids``."""
    if isinstance(model, Route):
        return (model.model_id, *model.alternate_ids)
    for spec in Catalog.builtin().models():
        for route in spec.routes_for(NAME, include_opt_in=True):
            if route.answers_to(model):
                return (model, route.model_id, *route.alternate_ids)
    return (model,)
