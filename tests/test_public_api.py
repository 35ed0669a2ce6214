"""The public surface is deliberate: a change to it must change this test."""

from __future__ import annotations

import llamaroute

PUBLIC = [
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


def test_all_is_locked_and_sorted() -> None:
    assert llamaroute.__all__ == PUBLIC
    assert sorted(llamaroute.__all__) == llamaroute.__all__


def test_every_public_name_exists_and_is_documented() -> None:
    for name in llamaroute.__all__:
        value = getattr(llamaroute, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_public_classes_live_in_private_modules_but_present_as_public() -> None:
    for name in llamaroute.__all__:
        value = getattr(llamaroute, name)
        module = getattr(value, "__module__", "llamaroute")
        assert module.startswith("llamaroute"), name
