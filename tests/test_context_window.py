"""Context-window fit before sending, and fallback when a provider says the prompt is too long.

The catalog's llama-3.2-90b-vision has a 32,768-token window on OpenRouter and 131,072 on
Bedrock: a ~40K-token prompt must never reach OpenRouter, and must be answered by Bedrock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llamaroute import (
    AsyncClient,
    BadRequestError,
    Client,
    ContextWindowExceededError,
    InvalidRequestError,
)
from llamaroute.catalog import default_catalog
from llamaroute.money import RequestShape, window_fit
from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider, Provider
from llamaroute.providers.openrouter import map_error
from llamaroute.routing import Candidate, fit_windows, last_if_tight
from llamaroute.testing import FakeBedrock, FakeOpenRouter, Step

from .conftest import AWS_KEYS, CANARY_KEY, Fakes, three_providers

VISION = "llama-3.2-90b-vision"
LONG = "word " * 40_000  # 40,001 tokens exactly; more by the fast estimate
OPENROUTER_90B = "openrouter:meta-llama/llama-3.2-90b-vision-instruct"


@pytest.fixture
def pair() -> Iterator[tuple[FakeOpenRouter, FakeBedrock, list[Provider]]]:
    with FakeOpenRouter() as openrouter, FakeBedrock() as bedrock:
        providers: list[Provider] = [
            OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url),
            BedrockProvider(region="us-east-1", endpoint_url=bedrock.url, **AWS_KEYS),
        ]
        yield openrouter, bedrock, providers


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_prompt_over_a_routes_window_is_never_sent_there_and_falls_back(
    pair: tuple[FakeOpenRouter, FakeBedrock, list[Provider]],
) -> None:
    openrouter, bedrock, providers = pair
    with Client(providers=providers) as client:
        response = client.chat(VISION, LONG, max_tokens=1024)
        streamed = client.stream(VISION, LONG, max_tokens=1024)
        text = "".join(chunk.text for chunk in streamed)
    assert openrouter.hits == 0
    assert bedrock.hits == 2
    assert response.provider == "bedrock"
    assert text
    why = response.details["skipped_routes"][OPENROUTER_90B]
    assert why.startswith("needs ~")
    assert "+ 1,024 output, context window is 32,768" in why
    assert [a.provider for a in response.attempts] == ["bedrock"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_estimate_skips_the_same_route_for_the_same_reason(
    pair: tuple[FakeOpenRouter, FakeBedrock, list[Provider]],
) -> None:
    _, _, providers = pair
    with Client(providers=providers) as client:
        estimates = client.estimate(VISION, LONG, max_tokens=1024)
    assert [e.provider for e in estimates] == ["bedrock"]
    (skipped,) = estimates.skipped
    assert skipped.provider == "openrouter"
    assert "+ 1,024 output, context window is 32,768" in skipped.reason


def test_nothing_fits_is_a_typed_error_before_any_request(
    pair: tuple[FakeOpenRouter, FakeBedrock, list[Provider]],
) -> None:
    openrouter, _, providers = pair
    with Client(providers=providers[:1]) as client:
        with pytest.raises(ContextWindowExceededError) as caught:
            client.chat(VISION, LONG, max_tokens=1024)
        with pytest.raises(ContextWindowExceededError):
            list(client.stream(VISION, LONG))
    assert openrouter.hits == 0
    message = str(caught.value)
    assert OPENROUTER_90B in message
    assert "context window is 32,768" in message
    assert "shorten the prompt" in message
    # Raised before anything is sent, so it is also an InvalidRequestError.
    assert isinstance(caught.value, InvalidRequestError)


async def test_the_async_client_skips_and_refuses_the_same_way(
    pair: tuple[FakeOpenRouter, FakeBedrock, list[Provider]],
) -> None:
    openrouter, bedrock, providers = pair
    async with AsyncClient(providers=providers) as client:
        response = await client.chat(VISION, LONG, max_tokens=1024)
        assert response.provider == "bedrock"
        assert "context window is 32,768" in response.details["skipped_routes"][OPENROUTER_90B]
        with pytest.raises(ContextWindowExceededError):
            await client.chat(VISION, LONG, providers=["openrouter"])
    assert openrouter.hits == 0
    assert bedrock.hits == 1


def test_a_short_prompt_needs_no_token_estimate() -> None:
    # The byte ceiling fits every window: the heuristic count is never made.
    routes = default_catalog().resolve(VISION).routes
    candidates = [Candidate(route, None, route.pinned) for route in routes]  # type: ignore[arg-type]

    def no_shape() -> RequestShape:
        raise AssertionError("the token estimate was computed for a short prompt")

    kept, refused, tight = fit_windows(candidates, 1024, lambda: 500, no_shape)
    assert kept == candidates
    assert not refused
    assert not tight


def test_a_route_fitting_only_by_the_low_side_of_the_estimate_is_tried_last() -> None:
    routes = {route.provider: route for route in default_catalog().resolve(VISION).routes}
    small, large = routes["openrouter"], routes["bedrock"]  # 32,768 and 131,072
    shape = RequestShape(30_000, max_tokens=1000, input_tokens_low=28_000,
                         input_tokens_high=33_000)  # fmt: skip
    assert window_fit(small, shape) == "tight"
    assert window_fit(large, shape) == "fits"
    candidates = [Candidate(small, None, small.pinned), Candidate(large, None, large.pinned)]  # type: ignore[arg-type]
    kept, refused, tight = fit_windows(candidates, 1000, lambda: 10**6, lambda: shape)
    assert not refused
    assert tight == {small.pinned}
    assert [c.route for c in last_if_tight(kept, tight)] == [large, small]
    # The expected count over the window: refused, and said to be likely, not certain.
    over = RequestShape(32_000, max_tokens=1000, input_tokens_low=30_000,
                        input_tokens_high=34_000)  # fmt: skip
    reason = window_fit(small, over)
    assert "context window is 32,768" in reason
    assert "likely" in reason


def test_without_max_tokens_one_output_token_is_reserved() -> None:
    route = next(r for r in default_catalog().resolve(VISION).routes if r.provider == "openrouter")
    template = route.template_tokens[1]
    assert window_fit(route, RequestShape(32_767 - template)) == "fits"
    assert "context window" in window_fit(route, RequestShape(32_768 - template))


# --- a provider's own context-length error ---------------------------------------------------

ERRORS = {
    "openrouter": Step.error(
        400, "context_length_exceeded",
        "This endpoint's maximum context length is 131072 tokens. However, you requested about "
        "140000 tokens (139000 of text input, 1000 in the output). Please reduce the length.",
    ),
    "bedrock": Step.error(400, "ValidationException", "Input is too long for requested model."),
    "ollama": Step.error(400, message="the input length exceeds the context length"),
}  # fmt: skip


@pytest.mark.parametrize("failing", ["openrouter", "bedrock", "ollama"])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_providers_context_error_is_typed_not_retried_and_falls_back(
    three_fakes: Fakes, failing: str
) -> None:
    fakes = dict(zip(["openrouter", "bedrock", "ollama"], three_fakes, strict=True))
    fakes[failing].script(ERRORS[failing])
    other = "ollama" if failing != "ollama" else "openrouter"
    providers = three_providers(three_fakes)
    with Client(providers=[providers[failing], providers[other]], retries=3) as client:
        response = client.chat("llama-3.2-3b", "Summarise this.", max_tokens=100)
        health = client.health()
    assert response.provider == other
    first, second = response.attempts
    assert (first.provider, first.error_type) == (failing, "ContextWindowExceededError")
    assert second.provider == other
    assert second.outcome == "ok"
    assert fakes[failing].hits == 1  # not retried on the same route
    # Not the route's fault: its breaker saw no failure.
    assert all(state["consecutive_failures"] == 0 for state in health.values())


@pytest.mark.parametrize("failing", ["openrouter", "bedrock", "ollama"])
async def test_the_async_client_maps_and_falls_back_too(three_fakes: Fakes, failing: str) -> None:
    fakes = dict(zip(["openrouter", "bedrock", "ollama"], three_fakes, strict=True))
    fakes[failing].script(ERRORS[failing])
    other = "ollama" if failing != "ollama" else "openrouter"
    providers = three_providers(three_fakes)
    async with AsyncClient(providers=[providers[failing], providers[other]]) as client:
        response = await client.chat("llama-3.2-3b", "Summarise this.")
    assert response.provider == other
    assert response.attempts[0].error_type == "ContextWindowExceededError"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_after_an_overflow_smaller_windows_are_skipped(
    pair: tuple[FakeOpenRouter, FakeBedrock, list[Provider]],
) -> None:
    # Bedrock's 131,072 window said the prompt is over it: OpenRouter's 32,768 cannot take it.
    openrouter, bedrock, providers = pair
    bedrock.script(ERRORS["bedrock"])
    with (
        Client(providers=[providers[1], providers[0]]) as client,
        pytest.raises(ContextWindowExceededError) as caught,
    ):
        client.chat(VISION, "Describe the chart.", max_tokens=100)
    assert openrouter.hits == 0
    assert bedrock.hits == 1
    assert "smaller than the 131,072" in str(caught.value)
    (attempt,) = caught.value.attempts
    assert attempt.provider == "bedrock"
    assert isinstance(caught.value.__cause__, ContextWindowExceededError)


def test_the_error_maps_from_the_code_and_from_a_message_only_without_one() -> None:
    def mapped(error: dict[str, object]) -> Exception:
        return map_error(400, {}, json.dumps({"error": error}).encode(), model_id="m")

    coded = mapped({"code": 400, "message": "too long",
                    "metadata": {"error_type": "context_length_exceeded"}})  # fmt: skip
    assert isinstance(coded, ContextWindowExceededError)
    assert coded.code == "context_length_exceeded"
    assert not coded.retryable
    # No error_type: the documented message decides.
    bare = mapped({"code": 400, "message": "This endpoint's maximum context length is 131072 "
                   "tokens. However, you requested about 140000 tokens."})  # fmt: skip
    assert isinstance(bare, ContextWindowExceededError)
    # Another structured type wins over a message that merely mentions a context length.
    other = mapped({"code": 400, "message": "maximum context length is 5",
                    "metadata": {"error_type": "invalid_request"}})  # fmt: skip
    assert type(other) is BadRequestError
    assert type(mapped({"code": 400, "message": "roles must alternate"})) is BadRequestError


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_fixed_ollama_num_ctx_too_small_for_the_prompt_is_not_sent(three_fakes: Fakes) -> None:
    # Ollama would cut the prompt silently to num_ctx: refused before sending, and fallen back.
    openrouter, _, ollama = three_fakes
    small = OllamaProvider(host=ollama.url, num_ctx=2048)
    other = OpenRouterProvider(api_key=CANARY_KEY, base_url=openrouter.base_url)
    with Client(providers=[small, other]) as client:
        response = client.chat("llama-3.2-3b", "word " * 4000, max_tokens=100)
        short = client.chat("llama-3.2-3b", "Hi", providers=["ollama"])
    assert ollama.hits == 1  # only the short prompt
    assert short.provider == "ollama"
    assert response.provider == "openrouter"
    (refused, _) = response.attempts
    assert refused.error_type == "ContextWindowExceededError"
    assert "num_ctx=2048" in (refused.error or "")
