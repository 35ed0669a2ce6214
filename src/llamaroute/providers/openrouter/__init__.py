"""OpenRouter (OpenAI-compatible HTTP API) over httpx.

``_wire.py`` holds the wire format with no I/O (the request body, answer and stream-chunk
parsing, error mapping); ``_provider.py`` holds :class:`OpenRouterProvider`, which does the
I/O around it; ``_probe.py`` is what ``llamaroute doctor`` asks the server.
"""

from .._errors import parse_retry_after as parse_retry_after
from .._sse import SSEDecoder as SSEDecoder
from .._sse import SSEEvent as SSEEvent
from .._sse import SSEOverflow as SSEOverflow
from ._catalog_sources import MAX_CATALOG_BYTES, OpenRouterListing, fetch_openrouter_listing
from ._price_reading import openrouter_prices, read_openrouter_prices
from ._probe import OpenRouterProbe as OpenRouterProbe  # for llamaroute doctor
from ._probe import probe_openrouter as probe_openrouter
from ._provider import API_KEY_ENV as API_KEY_ENV
from ._provider import BASE_URL_ENV as BASE_URL_ENV
from ._provider import DEFAULT_BASE_URL, OpenRouterProvider
from ._wire import NAME as NAME
from ._wire import StreamParser as StreamParser
from ._wire import build_payload, map_error, parse_response

# The public surface. The other names imported with "as" stay importable for the tests that
# exercise the wire helpers directly (Retry-After parsing, the SSE decoder, the stream parser)
# and for settings.
__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_CATALOG_BYTES",
    "OpenRouterListing",
    "OpenRouterProvider",
    "build_payload",
    "fetch_openrouter_listing",
    "map_error",
    "openrouter_prices",
    "parse_response",
    "read_openrouter_prices",
]
