"""llamaroute: call Meta's Llama 3.2 models on OpenRouter, AWS Bedrock and Ollama through one
client, with exact costs and fallback.

Importing the package is cheap: it touches no network and no file, and loads neither boto3 nor
Pillow. The catalog is read on first use.
"""

from ._base_client import default_fallback
from ._catalog import Catalog, ModelSpec, Resolution, Route, get_model, load_catalog, models
from ._client import AsyncClient, Client
from ._estimate import Estimate, estimate
from ._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidImageError,
    InvalidRequestError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnknownModelError,
    UnsupportedFeatureError,
)
from ._health import BreakerPolicy
from ._image_fit import PreparedImage
from ._images import Image, ImageFetchPolicy
from ._ledger import SpendSummary
from ._pricing import Price
from ._retry import RetryPolicy
from ._strategies import HedgePolicy
from ._streaming import AsyncStream, Stream
from ._types import (
    Attempt,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Cost,
    ImagePart,
    Message,
    TextPart,
    Usage,
)
from ._version import __version__

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
    "Cost",
    "DeadlineExceededError",
    "Estimate",
    "HedgePolicy",
    "Image",
    "ImageFetchPolicy",
    "ImagePart",
    "InvalidImageError",
    "InvalidRequestError",
    "LlamarouteError",
    "MalformedResponseError",
    "Message",
    "ModelNotAvailableError",
    "ModelSpec",
    "PaymentRequiredError",
    "PreparedImage",
    "Price",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "Resolution",
    "RetryPolicy",
    "Route",
    "ServerError",
    "SpendSummary",
    "Stream",
    "StreamInterruptedError",
    "TextPart",
    "UnknownModelError",
    "UnsupportedFeatureError",
    "Usage",
    "__version__",
    "default_fallback",
    "estimate",
    "get_model",
    "load_catalog",
    "models",
]
