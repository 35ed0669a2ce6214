"""llamaroute.estimate(): per-route ranges before the call, exact money, typed errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import llamaroute
from llamaroute import (
    ConfigurationError,
    Estimate,
    InvalidImageError,
    InvalidRequestError,
    UnknownModelError,
    UnsupportedFeatureError,
)
from llamaroute.money import (
    RequestShape,
    chat_template_tokens,
    estimate_shape,
    estimate_text_tokens,
    text_token_band,
)

PROMPT = "What does this chart show?"


def _by_provider(estimates: list[Estimate]) -> dict[str, Estimate]:
    return {item.provider: item for item in estimates}


def test_one_estimate_per_route_cheapest_first_unknown_last(tmp_path: Path) -> None:
    estimates = llamaroute.estimate("llama-3.2-1b", "Hello there, how are you today?")
    # OpenRouter's 1B output ($0.201/M since 2026-10-19) now costs more than Bedrock's.
    assert [e.pinned for e in estimates] == [
        "ollama:llama3.2:1b",
        "bedrock:us.meta.llama3-2-1b-instruct-v1:0",
        "bedrock:eu.meta.llama3-2-1b-instruct-v1:0",
        "openrouter:meta-llama/llama-3.2-1b-instruct",
    ]
    eu = estimates[2]
    # No region given: the highest of the eu. profile's regional prices.
    assert eu.price is not None
    assert eu.price.input_per_mtok == Decimal("0.13")
    assert isinstance(estimates, list)
    assert estimates.skipped == ()  # type: ignore[attr-defined]
    # A route with no price at all is listed last, with None amounts, never 0.
    mine = tmp_path / "unpriced.toml"
    mine.write_text(
        '[[routes]]\nprovider = "openrouter"\nmodel = "llama-3.2-1b"\n'
        'model_id = "meta-llama/llama-3.2-1b-instruct:nitro"\n'
    )
    with_unpriced = llamaroute.estimate("llama-3.2-1b", "Hi", catalog=llamaroute.load_catalog(mine))
    last = with_unpriced[-1]
    assert last.model_id.endswith(":nitro")
    assert (last.low, last.expected, last.high, last.price) == (None, None, None, None)


def test_figures_match_hand_arithmetic(chart: Path) -> None:
    estimates = _by_provider(
        llamaroute.estimate(
            "llama-3.2-90b-vision",
            PROMPT,
            image=chart,
            max_tokens=500,
            expected_output_tokens=100,
            counter="heuristic",
        )
    )
    low, expected, high = text_token_band(PROMPT)
    template = chat_template_tokens(1, images=1)
    bedrock = estimates["bedrock"]
    assert bedrock.tokenizer == "heuristic"
    # Bedrock: Meta's format or the HF date header (+25); the image as the ~0 tokens Bedrock
    # reports (boto3#4509), up to the padded 4 tiles.
    assert bedrock.input_tokens == expected + template
    assert (bedrock.input_tokens_low, bedrock.input_tokens_high) == (
        low + template, high + template + 25,
    )  # fmt: skip
    image = (bedrock.image_tokens_low, bedrock.image_tokens_expected, bedrock.image_tokens_high)
    assert image == (0, 0, 4 * 1601)
    assert (bedrock.expected_output_tokens, bedrock.max_output_tokens) == (100, 500)
    rate = Decimal("0.72") / 1_000_000
    assert bedrock.low == (low + template) * rate
    assert bedrock.expected == (expected + template + 100) * rate
    assert bedrock.high == (high + template + 25 + 6404 + 500) * rate
    # OpenRouter: the HF template expected; no image tokens expected (it bills per image).
    openrouter = estimates["openrouter"]
    assert openrouter.input_tokens == expected + template + 25
    assert (openrouter.image_tokens_expected, openrouter.image_tokens_high) == (0, 6404)
    # 0.9 / 0.9 per million tokens, plus OpenRouter's per-image price.
    assert openrouter.expected == (
        (expected + template + 25) * Decimal("0.9") / 10**6
        + Decimal("0.005146")
        + 100 * Decimal("0.9") / 10**6
    )
    assert openrouter.high == (
        (high + template + 25 + 6404) * Decimal("0.9") / 10**6
        + Decimal("0.005146")
        + 500 * Decimal("0.9") / 10**6
    )
    assert estimates["ollama"].high == 0


def test_exact_counts_leave_only_the_template_band(chart: Path) -> None:
    pytest.importorskip("quicktok")
    estimates = _by_provider(llamaroute.estimate("llama-3.2-90b-vision", PROMPT, image=chart))
    bedrock = estimates["bedrock"]
    assert bedrock.tokenizer == "llama3-exact (quicktok-v1)"
    exact = 6 + chat_template_tokens(1, images=1)  # "What does this chart show?" is 6 tokens
    assert (bedrock.input_tokens_low, bedrock.input_tokens, bedrock.input_tokens_high) == (
        exact, exact, exact + 25,
    )  # fmt: skip
    ollama = estimates["ollama"]  # the stock template's system block: 10 to 15 tokens
    assert (ollama.input_tokens_low, ollama.input_tokens, ollama.input_tokens_high) == (
        exact + 10, exact + 15, exact + 15,
    )  # fmt: skip
    assert ollama.template_tokens == 15


def test_high_defaults_to_the_routes_max_output() -> None:
    estimates = _by_provider(llamaroute.estimate("llama-3.2-3b", "Hi", region="us-east-1"))
    assert estimates["bedrock"].max_output_tokens == 2048
    # No documented cap on OpenRouter: what the context window leaves.
    assert (
        estimates["openrouter"].max_output_tokens == 131_072 - estimates["openrouter"].input_tokens
    )
    assert estimates["bedrock"].expected_output_tokens == 256


def test_max_tokens_above_a_routes_cap_is_clamped() -> None:
    bedrock = _by_provider(llamaroute.estimate("llama-3.2-3b", "Hi", max_tokens=5000))["bedrock"]
    assert bedrock.max_output_tokens == 2048


def test_a_route_with_a_small_context_window_is_skipped_with_the_reason() -> None:
    long = "word " * 3_500  # about 3,200 tokens: with 1,000 output, over the :free 4,096
    estimates = llamaroute.estimate(
        "llama-3.2-90b-vision", long, max_tokens=1000, include_opt_in=True
    )
    pinned = {e.pinned for e in estimates}
    assert "openrouter:meta-llama/llama-3.2-90b-vision-instruct:free" not in pinned
    assert "openrouter:meta-llama/llama-3.2-90b-vision-instruct" in pinned
    (skipped,) = estimates.skipped  # type: ignore[attr-defined]
    assert skipped.model_id == "meta-llama/llama-3.2-90b-vision-instruct:free"
    assert "context window is 4,096" in skipped.reason
    assert "+ 1,000 output" in skipped.reason


def test_opt_in_routes_only_when_asked() -> None:
    plain = llamaroute.estimate("llama-3.2-3b", "Hi")
    free = llamaroute.estimate("llama-3.2-3b", "Hi", include_opt_in=True)
    assert len(free) == len(plain) + 1
    assert free[0].expected == 0


def test_filters_by_provider_and_region() -> None:
    only = llamaroute.estimate("llama-3.2-1b", "Hi", providers=["bedrock"], region="eu-west-1")
    assert [e.model_id for e in only] == ["eu.meta.llama3-2-1b-instruct-v1:0"]
    with pytest.raises(ConfigurationError, match="unknown provider"):
        llamaroute.estimate("llama-3.2-1b", "Hi", providers=["azure"])


def test_an_unfetched_image_url_is_bounded_by_four_tiles() -> None:
    (first, *_) = llamaroute.estimate(
        "llama-3.2-11b-vision", PROMPT, image="https://example.com/c.png", providers="bedrock"
    )
    assert first.image_tokens_high == 4 * 1601


def test_a_text_model_refuses_an_image(chart: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match="text only"):
        llamaroute.estimate("llama-3.2-3b", PROMPT, image=chart)


def test_no_route_left_is_an_error_with_the_reasons() -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"no route .* context window"):
        llamaroute.estimate("llama-3.2-3b", "word " * 800_000)


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_bad_max_tokens_is_an_invalid_request(max_tokens: int) -> None:
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        llamaroute.estimate("llama-3.2-1b", "Hi", max_tokens=max_tokens)


def test_bad_input_is_typed_and_comes_first(tmp_path: Path, not_an_image: Path) -> None:
    # The image is checked before the model name: bad input fails first, whatever else is wrong.
    with pytest.raises(InvalidImageError, match="not found"):
        llamaroute.estimate("no-such-model", PROMPT, image=tmp_path / "absent.png")
    with pytest.raises(InvalidImageError, match="not a PNG"):
        llamaroute.estimate("llama-3.2-90b-vision", PROMPT, image=not_an_image)
    with pytest.raises(UnknownModelError, match="Did you mean"):
        llamaroute.estimate("llama-3.2-9b", PROMPT)
    with pytest.raises(InvalidRequestError, match="nothing to send"):
        llamaroute.estimate("llama-3.2-1b")
    with pytest.raises(InvalidRequestError, match="role"):
        llamaroute.estimate("llama-3.2-1b", messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequestError, match="expected_output_tokens"):
        llamaroute.estimate("llama-3.2-1b", "Hi", expected_output_tokens=-1)


def test_messages_and_system_are_counted() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me a joke."}]  # fmt: skip
    (first, *_) = llamaroute.estimate(
        "llama-3.2-1b", messages=messages, system="Be funny.", counter="heuristic"
    )
    texts = ["Be funny.", "Hi", "Hello!", "Tell me a joke."]
    prompt = first.input_tokens - first.template_tokens
    assert prompt == sum(map(estimate_text_tokens, texts)) + chat_template_tokens(4)


def test_estimates_are_frozen_models_with_decimal_money() -> None:
    (first, *_) = llamaroute.estimate("llama-3.2-1b", "Hi", providers=["bedrock"])
    assert isinstance(first.high, Decimal)
    with pytest.raises(ValueError, match="frozen"):
        first.low = Decimal(0)  # type: ignore[misc]
    assert first.model_dump(mode="json")["high"] == str(first.high)


def test_estimate_shape_takes_the_clients_own_routes() -> None:
    spec = llamaroute.get_model("llama-3.2-90b-vision")
    routes = [spec.route("bedrock", region="us-west-2"), spec.route("ollama")]
    shape = RequestShape(input_tokens=1_000_000, max_tokens=None, expected_output_tokens=0)
    result = estimate_shape(shape, routes)
    assert [e.provider for e in result] == []  # a million tokens fit no 128K window
    assert len(result.skipped) == 2
    result = estimate_shape(RequestShape(input_tokens=100_000, max_tokens=2048,
                                         expected_output_tokens=2048), routes)  # fmt: skip
    bedrock = _by_provider(result)["bedrock"]
    assert bedrock.expected == (100_000 + 2048) * Decimal("0.72") / 10**6


def test_per_route_image_token_overrides_from_the_price_data(tmp_path: Path, chart: Path) -> None:
    mine = tmp_path / "images.toml"
    mine.write_text(
        '[[prices]]\nprovider = "bedrock"\nmodel_id = "us.meta.llama3-2-90b-instruct-v1:0"\n'
        'input_per_mtok = "1"\noutput_per_mtok = "1"\nimage_tokens_low = 10\n'
        'image_tokens_high = 20\nimage = "0.5"\n'
    )
    catalog = llamaroute.load_catalog(mine)
    (bedrock,) = llamaroute.estimate(
        "llama-3.2-90b-vision", PROMPT, image=chart, catalog=catalog, providers=["bedrock"],
        max_tokens=10, expected_output_tokens=10,
    )  # fmt: skip
    # The price entry's ends override the route's (0, 0, 6404); expected stays inside them.
    image = (bedrock.image_tokens_low, bedrock.image_tokens_expected, bedrock.image_tokens_high)
    assert image == (10, 10, 20)
    assert bedrock.low == Decimal(bedrock.input_tokens_low + 10) / 10**6 + Decimal("0.5")
    assert bedrock.high == Decimal(bedrock.input_tokens_high + 20 + 10) / 10**6 + Decimal("0.5")


def test_estimate_does_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("estimate() tried to open a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert llamaroute.estimate("llama-3.2-11b-vision", PROMPT, image="https://example.com/a.png")


def test_routes_record_their_template_and_image_billing() -> None:
    spec = llamaroute.get_model("llama-3.2-90b-vision")
    routes = {route.provider: route for route in spec.routes if not route.opt_in}
    # (low, expected, high) extra template tokens over Meta's format, per request.
    assert routes["openrouter"].template_tokens == (0, 25, 25)
    assert routes["bedrock"].template_tokens == (0, 0, 25)
    assert routes["ollama"].template_tokens == (10, 15, 15)
    # (low, expected, high) input tokens billed per image.
    assert routes["bedrock"].image_tokens == (0, 0, 6404)
    assert routes["openrouter"].image_tokens == (0, 0, 6404)
    assert routes["ollama"].image_tokens == (0, 0, 0)


def test_template_and_image_ranges_must_be_ordered(tmp_path: Path) -> None:
    mine = tmp_path / "bad.toml"
    mine.write_text(
        'provider = "ollama"\n[[routes]]\nmodel = "llama-3.2-1b"\nmodel_id = "mine:1b"\n'
        "template_tokens = [5, 2, 9]\n"
        'source = "mine"\nchecked = 2026-12-07\n'
    )
    with pytest.raises(ConfigurationError, match="low <= expected <= high"):
        llamaroute.load_catalog(mine)


def test_an_image_without_route_data_bills_by_its_tiles() -> None:
    spec = llamaroute.get_model("llama-3.2-11b-vision")
    route = next(r for r in spec.routes if r.provider == "ollama").model_copy(
        update={"image_tokens": None, "template_tokens": (0, 0, 0)}
    )
    (ollama,) = estimate_shape(RequestShape(input_tokens=20, image_tiles=(2,)), [route])
    tiles = (ollama.image_tokens_low, ollama.image_tokens_expected, ollama.image_tokens_high)
    assert tiles == (0, 2 * 1601, 4 * 1601)
