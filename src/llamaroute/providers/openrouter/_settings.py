"""Checks of the settings an :class:`~._provider.OpenRouterProvider` is built with (no I/O)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..._exceptions import ConfigurationError
from .._http import check_base_url

__all__ = ["api_root", "header_safe", "positive"]


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and value == value.strip()


def api_root(url: str) -> str:
    """``url`` checked as an API root: a plain http(s) URL that is not the endpoint itself."""
    url = check_base_url(url)
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/chat/completions"):
        root = url[: url.rindex("/chat/completions")]
        raise ConfigurationError(
            f"base_url must be the API root, not the chat endpoint: pass {root!r}"
            " (llamaroute adds /chat/completions itself)"
        )
    return url
