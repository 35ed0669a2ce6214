"""An HTTP status means the same on every provider: the same error class and the same
retryability, through each provider's own mapping function (504 included: a timeout)."""

from __future__ import annotations

import ollama
import pytest

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)
from llamaroute.providers.bedrock import ConverseStreamState
from llamaroute.providers.bedrock import map_error as bedrock_error
from llamaroute.providers.ollama import map_error as ollama_error
from llamaroute.providers.openrouter import map_error as openrouter_error
from llamaroute.providers.openrouter import parse_response

# Written out here rather than read from the shared table, so that a change to the table has
# to change this list too.
STATUSES = [
    (301, ProviderConnectionError, False),  # redirects are not followed
    (307, ProviderConnectionError, False),
    (400, BadRequestError, False),
    (401, AuthenticationError, False),
    (402, PaymentRequiredError, False),
    (403, AuthenticationError, False),
    (404, ModelNotAvailableError, False),
    (408, ProviderTimeoutError, True),
    (409, BadRequestError, False),
    (413, BadRequestError, False),
    (422, BadRequestError, False),
    (429, RateLimitError, True),
    (499, ServerError, True),
    (500, ServerError, True),
    (502, ServerError, True),
    (503, ServerError, True),
    (504, ProviderTimeoutError, True),
    (524, ProviderTimeoutError, True),
    (529, ServerError, True),
]


def mapped(status: int) -> dict[str, ProviderError]:
    """What each provider makes of ``status`` with nothing more specific to go on: a plain
    error body, an Ollama ``ResponseError``, an AWS error with a code AWS names nowhere."""
    return {
        "openrouter": openrouter_error(
            status, {}, b'{"error": {"code": %d, "message": "boom"}}' % status, model_id="m"
        ),
        # In Ollama's words for a missing model (the only 404 that means one: issue 16).
        "ollama": ollama_error(
            ollama.ResponseError('model "m" not found, try pulling it first', status),
            model_id="m",
        ),
        "bedrock": bedrock_error("SomethingNewException", status, "boom", model_id="m"),
    }


@pytest.mark.parametrize(("status", "expected", "retryable"), STATUSES)
def test_a_status_means_the_same_on_every_provider(
    status: int, expected: type[ProviderError], retryable: bool
) -> None:
    errors = mapped(status)
    seen = {
        name: (type(error), error.retryable, error.status_code) for name, error in errors.items()
    }
    assert seen == dict.fromkeys(errors, (expected, retryable, status))
    assert {error.provider for error in errors.values()} == set(errors)


def test_a_gateway_timeout_is_a_retryable_timeout_everywhere() -> None:
    for name, error in mapped(504).items():
        assert isinstance(error, ProviderTimeoutError), name
        assert error.retryable, name
    # Bedrock with no code at all, as a gateway in front of it would answer.
    assert type(bedrock_error("", 504, "Gateway Timeout", model_id="m")) is ProviderTimeoutError


def test_a_failure_without_a_status_is_a_retryable_server_error_everywhere() -> None:
    # An error in a 200 answer: OpenRouter's error object with no code, Ollama's error line
    # mid-stream (status -1), an exception event in a Bedrock stream that AWS names nowhere.
    with pytest.raises(ProviderError) as openrouter:
        parse_response({"error": {"message": "boom"}}, model_id="m")
    with pytest.raises(ProviderError) as bedrock:
        ConverseStreamState("m").feed({"somethingNewException": {"message": "boom"}})
    errors = [
        openrouter.value,
        ollama_error(ollama.ResponseError("boom", -1), model_id="m"),
        bedrock.value,
    ]
    assert [(type(error), error.retryable, error.status_code) for error in errors] == [
        (ServerError, True, None)
    ] * 3
