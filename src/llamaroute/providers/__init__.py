"""The provider modules, one per provider, and the interface they share.

``OpenRouterProvider`` and ``OllamaProvider`` are imported on first use; providers whose SDK is
heavy (boto3) are too, so that ``import llamaroute`` stays cheap (it never imports ``ollama``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import Provider, ProviderCall, ProviderResult, StreamItem

if TYPE_CHECKING:
    from .ollama import OllamaProvider
    from .openrouter import OpenRouterProvider

__all__ = [
    "OllamaProvider",
    "OpenRouterProvider",
    "Provider",
    "ProviderCall",
    "ProviderResult",
    "StreamItem",
    "discover",
]


def discover(environ: Mapping[str, str] | None = None) -> list[Provider]:
    """The providers the environment configures, in the default order.

    Ollama first when ``OLLAMA_HOST`` is set (local and free, so tried first), then OpenRouter
    when ``OPENROUTER_API_KEY`` is set. Nothing here touches the network: whether an Ollama
    server is really there is :meth:`OllamaProvider.available`'s question. Without
    ``OLLAMA_HOST``, add Ollama explicitly: ``Client(providers=[OllamaProvider(), ...])``.
    """
    env = os.environ if environ is None else environ
    found: list[Provider] = []
    if env.get("OLLAMA_HOST"):
        from .ollama import OllamaProvider

        found.append(OllamaProvider(env["OLLAMA_HOST"], api_key=env.get("OLLAMA_API_KEY")))
    if env.get("OPENROUTER_API_KEY"):
        from .openrouter import OpenRouterProvider

        found.append(
            OpenRouterProvider(env["OPENROUTER_API_KEY"], base_url=env.get("OPENROUTER_BASE_URL"))
        )
    return found


_LAZY = {"OllamaProvider": ".ollama", "OpenRouterProvider": ".openrouter"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
