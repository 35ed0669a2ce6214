"""Ollama (a local or LAN server) over the official ``ollama`` client.

``_wire.py`` holds the wire format with no I/O (call arguments, context size, answer and
stream-line parsing) and ``_mapping.py`` the one mapping from what the client raises to
llamaroute's errors; ``_provider.py`` holds :class:`OllamaProvider`, which does the I/O around
them, on clients built by ``_clients.py`` over the deadline- and size-checking transport of
``_guard.py``; ``_body.py`` writes a plain call's JSON body as the client would.
"""

from ._body import wire_body as wire_body
from ._mapping import map_error
from ._provider import API_KEY_ENV as API_KEY_ENV
from ._provider import DEFAULT_TIMEOUT, OllamaProvider
from ._provider import HOST_ENV as HOST_ENV
from ._provider import MAX_LINE_BYTES as MAX_LINE_BYTES
from ._provider import MAX_RESPONSE_BYTES as MAX_RESPONSE_BYTES
from ._provider import MAX_STREAM_BYTES as MAX_STREAM_BYTES
from ._provider import PROBE_TIMEOUT as PROBE_TIMEOUT
from ._provider import PROBE_TTL as PROBE_TTL
from ._provider import STREAM_IDLE_TIMEOUT as STREAM_IDLE_TIMEOUT
from ._stream import StreamState
from ._wire import ANSWER_ALLOWANCE as ANSWER_ALLOWANCE
from ._wire import (
    DEFAULT_HOST,
    build_request,
    estimate_num_ctx,
    normalise_host,
    parse_response,
)
from ._wire import MAX_COUNT as MAX_COUNT
from ._wire import MIN_NUM_CTX as MIN_NUM_CTX
from ._wire import NAME as NAME

# The public surface. The other names imported with "as" stay importable, as settings.
__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_TIMEOUT",
    "OllamaProvider",
    "StreamState",
    "build_request",
    "estimate_num_ctx",
    "map_error",
    "normalise_host",
    "parse_response",
]
