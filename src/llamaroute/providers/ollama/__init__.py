"""Ollama (a local or LAN server) over the official ``ollama`` client.

``_wire.py`` holds the wire format with no I/O (call arguments, context size, answer and
stream-line parsing, error mapping); ``_provider.py`` holds :class:`OllamaProvider`, which does
the I/O around it.
"""

from ._provider import API_KEY_ENV as API_KEY_ENV
from ._provider import DEFAULT_TIMEOUT, OllamaProvider
from ._provider import HOST_ENV as HOST_ENV
from ._provider import PROBE_TIMEOUT as PROBE_TIMEOUT
from ._provider import PROBE_TTL as PROBE_TTL
from ._wire import ANSWER_ALLOWANCE as ANSWER_ALLOWANCE
from ._wire import (
    DEFAULT_HOST,
    build_request,
    estimate_num_ctx,
    map_error,
    normalise_host,
    parse_response,
)
from ._wire import MIN_NUM_CTX as MIN_NUM_CTX
from ._wire import NAME as NAME

# The public surface. The other names imported with "as" stay importable, as settings.
__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_TIMEOUT",
    "OllamaProvider",
    "build_request",
    "estimate_num_ctx",
    "map_error",
    "normalise_host",
    "parse_response",
]
