"""llamaroute: call Meta's Llama 3.2 models on OpenRouter, AWS Bedrock and Ollama through one
client, with exact costs and fallback.

Importing the package is cheap: it touches no network and no file, and loads neither boto3 nor
Pillow. The catalog is read on first use.
"""

from ._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    ContextWindowExceededError,
    DeadlineExceededError,
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
from ._records import Attempt, Cost, Usage
from ._refresh import RefreshResult, refresh_prices
from ._request import ChatRequest, ImagePart, Message, MessageToolCall, TextPart
from ._response import ChatChunk, ChatResponse
from ._tools import Tool, ToolCall
from ._version import __version__
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
