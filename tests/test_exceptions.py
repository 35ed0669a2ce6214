"""The error tree: shape, attributes, ExceptionGroup behaviour, pickling."""

from __future__ import annotations

import pickle

import pytest

import llamaroute
from llamaroute import (
    AllProvidersFailedError,
    Attempt,
    AuthenticationError,
    InvalidImageError,
    InvalidRequestError,
    LlamarouteError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnknownModelError,
    UnsupportedFeatureError,
)


def test_every_public_error_is_a_llamaroute_error() -> None:
    errors = [getattr(llamaroute, name) for name in llamaroute.__all__ if name.endswith("Error")]
    assert len(errors) == 28
    for error in errors:
        assert issubclass(error, LlamarouteError), error


def test_input_errors_share_a_base() -> None:
    for error in (UnknownModelError, UnsupportedFeatureError, InvalidImageError):
        assert issubclass(error, InvalidRequestError)
        assert issubclass(error, ValueError)
        assert not issubclass(error, ProviderError)


def test_retryable_defaults() -> None:
    assert RateLimitError("slow down").retryable
    assert ServerError("boom").retryable
    assert ProviderConnectionError("refused").retryable
    assert not AuthenticationError("bad key").retryable
    assert not StreamInterruptedError("cut").retryable
    assert not ServerError("no", retryable=False).retryable


def test_provider_error_attributes_and_message() -> None:
    error = RateLimitError("rate limited", provider="openrouter",
                           model_id="meta-llama/llama-3.2-3b-instruct", status_code=429,
                           code="rate_limit_exceeded", retry_after=2.5)  # fmt: skip
    assert error.retry_after == 2.5
    assert error.code == "rate_limit_exceeded"
    assert str(error) == "[openrouter meta-llama/llama-3.2-3b-instruct] (HTTP 429) rate limited"


def test_errors_pickle_with_their_attributes() -> None:
    error = RateLimitError("slow", provider="bedrock", status_code=429, retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError
    assert (copy.provider, copy.status_code, copy.retry_after, str(copy)) == (
        "bedrock", 429, 3.0, str(error),
    )  # fmt: skip
    unknown = pickle.loads(pickle.dumps(UnknownModelError("no", name="x", suggestions=["a"])))
    assert (unknown.name, unknown.suggestions) == ("x", ("a",))


def _attempt(provider: str, error: str) -> Attempt:
    return Attempt(provider=provider, model_id="m", outcome="error", error_type=error)


def test_all_providers_failed_is_an_exception_group() -> None:
    errors = [ServerError("a", provider="openrouter"), AuthenticationError("b", provider="bedrock")]
    attempts = [_attempt("openrouter", "ServerError"), _attempt("bedrock", "AuthenticationError")]
    group = AllProvidersFailedError("all 2 attempts failed", errors, attempts)
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group, LlamarouteError)
    assert list(group.exceptions) == errors
    assert group.attempts == tuple(attempts)
    matched, rest = group.split(ServerError)
    assert isinstance(matched, AllProvidersFailedError)
    assert matched.attempts == tuple(attempts)
    assert rest is not None
    assert list(rest.exceptions) == [errors[1]]
    copy = pickle.loads(pickle.dumps(group))
    assert copy.attempts == group.attempts
    assert [str(e) for e in copy.exceptions] == [str(e) for e in errors]


def test_all_providers_failed_can_be_caught_with_except_star() -> None:
    caught: list[BaseException] = []
    try:
        raise AllProvidersFailedError("x", [ServerError("a"), AuthenticationError("b")])
    except* AuthenticationError as group:
        caught.extend(group.exceptions)
    except* ServerError:
        pass
    assert [type(e) for e in caught] == [AuthenticationError]


def test_all_providers_failed_needs_at_least_one_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        AllProvidersFailedError("x", [])
