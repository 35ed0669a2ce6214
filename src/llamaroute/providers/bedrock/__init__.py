"""AWS Bedrock over boto3's Converse and ConverseStream APIs (boto3 is the ``bedrock`` extra,
imported on first use).

``_wire.py`` holds the Converse wire format with no I/O (request building and checks, answer
and stream-event parsing), ``_tools.py`` its tool part (``toolConfig``, ``toolUse`` and
``toolResult`` blocks, structured output by tool use) and ``_mapping.py`` the error mapping;
``_setup.py`` imports boto3
and finds the region without touching AWS; ``_redact.py`` keeps AWS secrets out of errors;
``_io.py`` keeps deadlines and size caps around botocore's reads; ``_provider.py`` holds
:class:`BedrockProvider`, which does the I/O; ``_probe.py`` is what ``llamaroute doctor`` asks
AWS.
"""

from ._catalog_sources import (
    LIFECYCLE_SOURCE,
    PRICE_LIST_SOURCE,
    PRICING_REGION,
    fetch_bedrock_lifecycle,
    fetch_bedrock_price_rows,
)
from ._mapping import map_error, map_exception
from ._price_reading import (
    bedrock_lifecycle,
    bedrock_prices,
    classify_aws_row,
    read_bedrock_prices,
)
from ._probe import CREDENTIALS_REJECTED as CREDENTIALS_REJECTED  # for llamaroute doctor
from ._probe import BedrockProbe as BedrockProbe
from ._probe import probe_bedrock as probe_bedrock
from ._provider import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, BedrockProvider
from ._provider import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._provider import DEFAULT_MAX_EVENT_BYTES as DEFAULT_MAX_EVENT_BYTES
from ._provider import DEFAULT_MAX_RESPONSE_BYTES as DEFAULT_MAX_RESPONSE_BYTES
from ._provider import DEFAULT_MAX_STREAM_BYTES as DEFAULT_MAX_STREAM_BYTES
from ._provider import DEFAULT_STREAM_IDLE_TIMEOUT as DEFAULT_STREAM_IDLE_TIMEOUT
from ._setup import INSTALL_HINT as INSTALL_HINT
from ._setup import REGION_ENV as REGION_ENV
from ._setup import configured_region, import_boto3, resolve_region
from ._wire import MAX_TOKEN_COUNT as MAX_TOKEN_COUNT
from ._wire import NAME as NAME
from ._wire import ConverseStreamState, build_converse_request, parse_converse
from ._wire import close_stream as close_stream
from ._wire import iter_events as iter_events

# The public surface. The other names imported with "as" stay importable: settings, and the
# event-stream helpers that tests exercise directly.
__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "LIFECYCLE_SOURCE",
    "PRICE_LIST_SOURCE",
    "PRICING_REGION",
    "BedrockProvider",
    "ConverseStreamState",
    "bedrock_lifecycle",
    "bedrock_prices",
    "build_converse_request",
    "classify_aws_row",
    "configured_region",
    "fetch_bedrock_lifecycle",
    "fetch_bedrock_price_rows",
    "import_boto3",
    "map_error",
    "map_exception",
    "parse_converse",
    "read_bedrock_prices",
    "resolve_region",
]
