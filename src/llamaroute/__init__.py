"""llamaroute: call Meta's Llama 3.2 models on OpenRouter, AWS Bedrock and Ollama through one
client, with exact costs and fallback.

Importing the package is cheap: it touches no network and no file, and loads neither boto3 nor
Pillow. The catalog is read on first use, and so is each part of the package: ``import
llamaroute`` loads only the error classes; ``llamaroute.Client`` (or any other name below)
imports its module the first time it is asked for, so a command that only estimates costs
never loads the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    ContextWindowExceededError,
    DeadlineExceededError,
    EndpointConfigurationError,
    InvalidImageError,
    InvalidRequestError,
    InvalidToolError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnsupportedFeatureError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StructuredOutputError,
    ToolCallError,
    ToolExecutionError,
    ToolLoopError,
    UnknownModelError,
    UnsupportedFeatureError,
)
from ._lazy import lazy_getattr
from ._version import __version__

if TYPE_CHECKING:
    from ._records import Attempt, Cost, Usage
    from ._refresh import RefreshResult, refresh_prices
    from ._request import ChatRequest, ImagePart, Message, MessageToolCall, TextPart
    from ._response import ChatChunk, ChatResponse
    from ._tools import Tool, ToolCall
    from .catalog import Catalog, ModelSpec, Resolution, Route, get_model, load_catalog, models
    from .catalog._prices import Price
    from .client import AsyncClient, Client, default_fallback
    from .client._streaming import AsyncStream, Stream
    from .client._tool_loop import RunResult
    from .images._fit import PreparedImage
    from .images._source import Image, ImageFetchPolicy
    from .money import SpendSummary
    from .money._estimate import Estimate, estimate
    from .routing._breakers import BreakerPolicy
    from .routing._retry import RetryPolicy
    from .routing._strategies import HedgePolicy

# Where each public name lives, imported on first use (PEP 562).
_LAZY = {
    "AsyncClient": ".client",
    "AsyncStream": ".client._streaming",
    "Attempt": "._records",
    "BreakerPolicy": ".routing._breakers",
    "Catalog": ".catalog",
    "ChatChunk": "._response",
    "ChatRequest": "._request",
    "ChatResponse": "._response",
    "Client": ".client",
    "Cost": "._records",
    "Estimate": ".money._estimate",
    "HedgePolicy": ".routing._strategies",
    "Image": ".images._source",
    "ImageFetchPolicy": ".images._source",
    "ImagePart": "._request",
    "Message": "._request",
    "MessageToolCall": "._request",
    "ModelSpec": ".catalog",
    "PreparedImage": ".images._fit",
    "Price": ".catalog._prices",
    "RefreshResult": "._refresh",
    "Resolution": ".catalog",
    "RetryPolicy": ".routing._retry",
    "Route": ".catalog",
    "RunResult": ".client._tool_loop",
    "SpendSummary": ".money",
    "Stream": ".client._streaming",
    "TextPart": "._request",
    "Tool": "._tools",
    "ToolCall": "._tools",
    "Usage": "._records",
    "default_fallback": ".client",
    "estimate": ".money._estimate",
    "get_model": ".catalog",
    "load_catalog": ".catalog",
    "models": ".catalog",
    "refresh_prices": "._refresh",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AllProvidersFailedError",
    "AsyncClient",
    "AsyncStream",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BreakerPolicy",
    "BudgetExceededError",
    "Catalog",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Client",
    "ConfigurationError",
    "ContextWindowExceededError",
    "Cost",
    "DeadlineExceededError",
    "EndpointConfigurationError",
    "Estimate",
    "HedgePolicy",
    "Image",
    "ImageFetchPolicy",
    "ImagePart",
    "InvalidImageError",
    "InvalidRequestError",
    "InvalidToolError",
    "LlamarouteError",
    "MalformedResponseError",
    "Message",
    "MessageToolCall",
    "ModelNotAvailableError",
    "ModelSpec",
    "PaymentRequiredError",
    "PreparedImage",
    "Price",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnsupportedFeatureError",
    "RateLimitError",
    "RefreshResult",
    "Resolution",
    "RetryPolicy",
    "Route",
    "RunResult",
    "ServerError",
    "SpendSummary",
    "Stream",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolExecutionError",
    "ToolLoopError",
    "UnknownModelError",
    "UnsupportedFeatureError",
    "Usage",
    "__version__",
    "default_fallback",
    "estimate",
    "get_model",
    "load_catalog",
    "models",
    "refresh_prices",
]
