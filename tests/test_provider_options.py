"""``extra=``: per-call provider options, namespaced by provider; and the sampling keywords
``top_k``, ``frequency_penalty`` and ``presence_penalty``, gated per route by the catalog."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    ChatRequest,
    Client,
    InvalidRequestError,
    UnsupportedFeatureError,
    estimate,
    get_model,
)
from llamaroute.catalog import Price
from llamaroute.providers import ProviderCall
from llamaroute.providers.bedrock import build_converse_request
from llamaroute.providers.ollama import build_request
from llamaroute.providers.openrouter import build_payload
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import Fakes, three_providers

VISION = "llama-3.2-11b-vision"
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fake accepts any key
GUARDRAIL = {"guardrailIdentifier": "gr1234abcd", "guardrailVersion": "1", "trace": "enabled"}
EXTRA: dict[str, dict[str, Any]] = {
    "openrouter": {"provider": {"order": ["lambda"], "data_collection": "deny"},
                   "transforms": ["middle-out"]},
    "ollama": {"options": {"num_ctx": 8192, "repeat_penalty": 1.05}, "keep_alive": "10m"},
    "bedrock": {"guardrailConfig": GUARDRAIL,
                "additionalModelRequestFields": {"custom_field": 1},
                "requestMetadata": {"team": "search #2"}},
}  # fmt: skip


def bodies(fake: FakeOpenRouter | FakeBedrock | FakeOllama) -> list[dict[str, Any]]:
    ends = ("/chat/completions", "/converse", "/converse-stream", "/api/chat")
    return [request.json for request in fake.requests if request.path.endswith(ends)]


@pytest.fixture
def three(three_fakes: Fakes) -> Iterator[tuple[Fakes, Client]]:
    providers = three_providers(three_fakes)
    with Client(providers=list(providers.values()), retries=0) as client:
        yield three_fakes, client


# --- each provider sees only its own options ---------------------------------------------------


def test_a_fallback_to_bedrock_sends_each_fake_only_its_own_options(
    three: tuple[Fakes, Client],
) -> None:
    (openrouter, bedrock, ollama), client = three
    openrouter.script(Step.error(503))
    reply = client.chat(VISION, "hi", extra=EXTRA, providers=["openrouter", "bedrock"])
    assert reply.provider == "bedrock"
    [sent_or] = bodies(openrouter)
    assert sent_or["provider"] == {"order": ["lambda"], "data_collection": "deny"}
    assert sent_or["transforms"] == ["middle-out"]
    assert "guardrailConfig" not in sent_or
    assert "keep_alive" not in sent_or
    [sent_br] = bodies(bedrock)
    # Through the real boto3 client, which validates the Converse shape before sending.
    assert sent_br["guardrailConfig"] == GUARDRAIL
    assert sent_br["additionalModelRequestFields"] == {"custom_field": 1}
    assert sent_br["requestMetadata"] == {"team": "search #2"}
    assert not {"provider", "transforms", "options", "keep_alive"} & set(sent_br)
    assert bodies(ollama) == []


def test_a_fallback_to_ollama_sends_each_fake_only_its_own_options(
    three: tuple[Fakes, Client],
) -> None:
    (openrouter, bedrock, ollama), client = three
    openrouter.script(Step.error(503))
    bedrock.script(Step.error(503))
    reply = client.chat(VISION, "hi", extra=EXTRA, max_tokens=50, temperature=0.5)
    assert reply.provider == "ollama"
    assert [a.provider for a in reply.attempts] == ["openrouter", "bedrock", "ollama"]
    [sent_ol] = bodies(ollama)
    options = sent_ol["options"]
    # The caller's num_ctx replaces llamaroute's estimate; the call keywords are still sent.
    assert options["num_ctx"] == 8192
    assert options["repeat_penalty"] == 1.05
    assert (options["num_predict"], options["temperature"]) == (50, 0.5)
    assert sent_ol["keep_alive"] == "10m"
    assert not {"provider", "transforms", "guardrailConfig"} & set(sent_ol)
    assert "keep_alive" not in bodies(openrouter)[0]
    assert "options" not in bodies(bedrock)[0]
    assert "provider" not in bodies(bedrock)[0]


def test_stream_and_async_calls_carry_the_options(three_fakes: Fakes) -> None:
    openrouter, bedrock, _ = three_fakes
    providers = three_providers(three_fakes)
    stream_extra = {"bedrock": {"guardrailConfig": {**GUARDRAIL, "streamProcessingMode": "async"}}}
    with Client(providers=[providers["bedrock"]], retries=0) as client:
        with client.stream(VISION, "hi", extra=stream_extra) as stream:
            assert stream.read()
        client.chat(VISION, "hi", extra=stream_extra)
    streamed, plain = bodies(bedrock)
    assert streamed["guardrailConfig"]["streamProcessingMode"] == "async"
    # Converse (not streaming) has no streamProcessingMode: boto3 would refuse it.
    assert plain["guardrailConfig"] == GUARDRAIL

    async def ask() -> None:
        async with AsyncClient(providers=[providers["openrouter"]]) as client:
            await client.chat(VISION, "hi", extra={"openrouter": {"user": "u-1"}})

    import asyncio

    asyncio.run(ask())
    assert bodies(openrouter)[-1]["user"] == "u-1"


# --- checked before anything is sent -------------------------------------------------------------


REFUSED = [
    ({"openai": {}}, "unknown provider 'openai'"),
    ({"openrouter": ["provider"]}, "must be a dict"),
    ("openrouter", "takes a dict keyed by provider name"),
    ({"openrouter": {"stream": True}}, "llamaroute decides streaming"),
    ({"openrouter": {"usage": {"include": False}}}, "needs usage to price"),
    ({"openrouter": {"usage": False}}, "needs usage to price"),
    ({"openrouter": {"models": ["a", "b"]}}, "OpenRouter's own fallback list"),
    ({"openrouter": {"model": "x"}}, "route's model ID"),
    ({"openrouter": {"messages": []}}, "builds the messages"),
    ({"openrouter": {"temperature": 1.0}}, "temperature= keyword"),
    ({"openrouter": {"max_tokens": 9}}, "budgets and max_cost reserve"),
    ({"openrouter": {"provider": {"max_price": {"prompt": "-1"}}}}, "finite amount >= 0"),
    ({"openrouter": {"provider": {"max_price": {"tokens": 1}}}}, "takes prompt, completion"),
    ({"openrouter": {"provider": "fast"}}, "must be a dict of provider preferences"),
    ({"bedrock": {"modelId": "x"}}, "inference profile"),
    ({"bedrock": {"messages": []}}, "builds the messages"),
    ({"bedrock": {"inferenceConfig": {"maxTokens": 9}}}, "range-checked per route"),
    ({"bedrock": {"serviceTier": {"type": "flex"}}}, "priced differently"),
    ({"bedrock": {"guardrail": {}}}, "Converse has no 'guardrail'"),
    ({"bedrock": {"guardrailConfig": {"guardrailIdentifier": "g"}}}, "needs guardrailVersion"),
    ({"bedrock": {"guardrailConfig": {**GUARDRAIL, "trace": "on"}}}, "one of enabled"),
    ({"bedrock": {"additionalModelRequestFields": {"max_gen_len": 9}}}, "max_tokens="),
    ({"bedrock": {"requestMetadata": {"a": 1}}}, "string values"),
    ({"bedrock": {"requestMetadata": {"team": "a;b"}}}, "string values"),
    ({"bedrock": {"guardrailConfig": {**GUARDRAIL, "guardrailIdentifier": "gr-1"}}}, "ID or ARN"),
    ({"bedrock": {"guardrailConfig": {**GUARDRAIL, "guardrailVersion": "v1"}}}, "or DRAFT"),
    ({"ollama": {"model": "llama3.2"}}, "route's tag"),
    ({"ollama": {"stream": False}}, "llamaroute decides streaming"),
    ({"ollama": {"format": "json"}}, "response_format="),
    ({"ollama": {"think": True}}, "ollama's chat has no 'think'"),
    ({"ollama": {"options": {"num_predict": 9}}}, "max_tokens="),
    ({"ollama": {"options": {"seed": 1}}}, "seed= keyword"),
    ({"ollama": {"options": {"top_k": 1}}}, "top_k= keyword"),
    ({"ollama": {"options": {"num_ctx": 0}}}, "positive integer"),
    ({"ollama": {"keep_alive": True}}, "must be a duration"),
    ({"ollama": {"options": {"x": object()}}}, "must be JSON data"),
    ({"ollama": {"options": {"x": float("nan")}}}, "must be JSON data"),
]


@pytest.mark.parametrize(("extra", "why"), REFUSED)
def test_bad_options_are_refused_before_any_request(
    three: tuple[Fakes, Client], extra: Any, why: str
) -> None:
    fakes, client = three
    with pytest.raises(InvalidRequestError, match="extra") as caught:
        client.chat(VISION, "hi", extra=extra)
    assert why in str(caught.value)
    with pytest.raises(InvalidRequestError, match="extra"):
        client.stream(VISION, "hi", extra=extra)
    assert sum(fake.hits for fake in fakes) == 0


def test_estimate_checks_extra_and_ignores_it() -> None:
    plain = estimate(VISION, "hi", providers="openrouter")
    assert estimate(VISION, "hi", providers="openrouter", extra=EXTRA) == plain
    with pytest.raises(InvalidRequestError, match="unknown provider"):
        estimate(VISION, "hi", extra={"vertex": {}})


def test_the_request_keeps_its_own_copy() -> None:
    options: dict[str, Any] = {"provider": {"order": ["a"]}, "price": Decimal("0.10")}
    request = ChatRequest.create(VISION, "hi", extra={"openrouter": options})
    options["provider"]["order"].append("b")
    assert request.extra == {"openrouter": {"provider": {"order": ["a"]}, "price": "0.10"}}


# --- merging with what llamaroute sets --------------------------------------------------------


OR_ROUTE = get_model(VISION).route("openrouter")
PRICE = Price(provider="openrouter", input_per_mtok=Decimal("0.05"),
              output_per_mtok=Decimal("0.05"), image=Decimal("0.0001"), source="test",
              checked=date(2026, 12, 7))  # fmt: skip


def or_payload(extra: dict[str, Any], **params: Any) -> dict[str, Any]:
    request = ChatRequest.create(VISION, "hi", extra={"openrouter": extra}, **params)
    return build_payload(ProviderCall(request, OR_ROUTE, max_price=PRICE), stream=False)


def test_max_price_keeps_the_stricter_ceiling_field_by_field() -> None:
    payload = or_payload({"provider": {"order": ["lambda"],
                                       "max_price": {"prompt": 0.01, "completion": "1",
                                                     "request": Decimal("0.5")}}})  # fmt: skip
    assert payload["provider"] == {
        "order": ["lambda"],
        # prompt: the caller's is lower; completion: the budget's; image: only the budget's.
        "max_price": {"prompt": "0.01", "completion": "0.05", "image": "0.0001",
                      "request": "0.5"},
    }  # fmt: skip


def test_require_parameters_for_tools_is_never_turned_off() -> None:
    def weather(city: str) -> str:
        """The weather in a city."""
        return city

    payload = or_payload({"provider": {"require_parameters": False}}, tools=[weather])
    assert payload["provider"]["require_parameters"] is True
    assert "max_price" in payload["provider"]
    # Without tools, the caller's own choice stands.
    plain = or_payload({"provider": {"require_parameters": True, "sort": "price"}})
    assert plain["provider"]["require_parameters"] is True
    assert plain["provider"]["sort"] == "price"


def test_a_budgeted_call_merges_max_price_on_the_wire(fake_openrouter: FakeOpenRouter) -> None:
    from llamaroute.providers import OpenRouterProvider

    from .conftest import CANARY_KEY

    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    with Client(providers=[provider], budget=Decimal(5)) as client:
        client.chat(VISION, "hi", extra={"openrouter": {"provider": {
            "order": ["lambda"], "max_price": {"prompt": "0"}}}})  # fmt: skip
    sent = bodies(fake_openrouter)[0]["provider"]
    assert sent["order"] == ["lambda"]
    assert sent["max_price"]["prompt"] == "0"
    assert Decimal(sent["max_price"]["completion"]) > 0  # the reservation's, kept


def test_ollama_num_ctx_is_capped_and_keep_alive_replaces_the_providers() -> None:
    route = get_model("llama-3.2-3b").route("ollama")
    extra = {"ollama": {"options": {"num_ctx": 10**7, "min_p": 0.05}, "keep_alive": 0}}
    request = ChatRequest.create("llama-3.2-3b", "hi", extra=extra, seed=3)
    kwargs = build_request(ProviderCall(request, route), stream=False, keep_alive="5m")
    assert kwargs["options"]["num_ctx"] == route.context_window
    assert (kwargs["options"]["min_p"], kwargs["options"]["seed"]) == (0.05, 3)
    assert kwargs["keep_alive"] == 0
    plain = build_request(ProviderCall(request.model_copy(update={"extra": {}}), route),
                          stream=False, keep_alive="5m")  # fmt: skip
    assert plain["keep_alive"] == "5m"
    assert plain["options"]["num_ctx"] < 10**7


# --- top_k, frequency_penalty, presence_penalty -----------------------------------------------

SAMPLING = {"top_k": 40, "frequency_penalty": 0.5, "presence_penalty": -0.25}


def test_sampling_keywords_go_on_the_openrouter_wire(three: tuple[Fakes, Client]) -> None:
    (openrouter, _, _), client = three
    client.chat(VISION, "hi", providers=["openrouter"], **SAMPLING)
    with client.stream(VISION, "hi", providers=["openrouter"], **SAMPLING) as stream:
        stream.read()
    for body in bodies(openrouter):
        assert {key: body[key] for key in SAMPLING} == SAMPLING


def test_sampling_keywords_go_in_ollamas_options(three: tuple[Fakes, Client]) -> None:
    (_, _, ollama), client = three
    client.chat(VISION, "hi", providers=["ollama"], **SAMPLING)
    options = bodies(ollama)[0]["options"]
    assert {key: options[key] for key in SAMPLING} == SAMPLING


@pytest.mark.parametrize("name", list(SAMPLING))
def test_bedrock_routes_are_skipped_for_sampling_they_cannot_take(
    three: tuple[Fakes, Client], name: str
) -> None:
    (openrouter, bedrock, _), client = three
    with pytest.raises(InvalidRequestError, match=f"bedrock:.* takes no {name}"):
        client.chat(VISION, "hi", providers=["bedrock"], **{name: SAMPLING[name]})
    # With OpenRouter down, the call does not fall back to Bedrock: it cannot take the value.
    openrouter.script(Step.error(503))
    with pytest.raises(AllProvidersFailedError):
        client.chat(VISION, "hi", providers=["openrouter", "bedrock"],
                    **{name: SAMPLING[name]})  # fmt: skip
    assert bedrock.hits == 0
    # A direct provider call is refused too, before any request.
    route = get_model(VISION).route("bedrock", region="us-east-1")
    request = ChatRequest.create(VISION, "hi", **{name: SAMPLING[name]})
    with pytest.raises(UnsupportedFeatureError, match=name):
        build_converse_request(ProviderCall(request, route))


def test_every_route_says_which_sampling_keywords_it_takes() -> None:
    for model in ("llama-3.2-1b", "llama-3.2-3b", VISION, "llama-3.2-90b-vision"):
        for route in get_model(model).routes:
            expected = () if route.provider == "bedrock" else tuple(SAMPLING)
            assert route.sampling == expected, route.pinned
            assert route.sampling_source, route.pinned


@pytest.mark.parametrize(
    "params",
    [{"top_k": 0}, {"top_k": 128_257}, {"top_k": True}, {"top_k": 4.0},
     {"frequency_penalty": 2.01}, {"frequency_penalty": -2.5}, {"presence_penalty": "1"},
     {"presence_penalty": float("nan")}],
)  # fmt: skip
def test_sampling_keywords_are_range_checked(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=next(iter(params))):
        ChatRequest.create(VISION, "hi", **params)


def test_sampling_keywords_accept_their_whole_range() -> None:
    for value in (-2.0, 0, 2.0):
        request = ChatRequest.create(VISION, "hi", frequency_penalty=value, presence_penalty=value)
        assert request.frequency_penalty == value
    assert ChatRequest.create(VISION, "hi", top_k=128_256).top_k == 128_256


def test_the_readme_block_runs_verbatim_and_sends_only_openrouters_options(
    fake_openrouter: FakeOpenRouter, tmp_path: Path
) -> None:
    from .test_readme import _blocks, _offline_env, _section

    [block] = _blocks(_section("### Provider options"), "python")
    env = {**_offline_env(), "OPENROUTER_API_KEY": PLACEHOLDER_KEY,
           "OPENROUTER_BASE_URL": fake_openrouter.base_url}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [sent] = bodies(fake_openrouter)
    assert sent["provider"] == {"order": ["lambda"], "data_collection": "deny"}
    assert (sent["top_k"], sent["presence_penalty"]) == (40, 0.5)
    assert not {"options", "keep_alive", "guardrailConfig"} & set(sent)


def test_every_round_of_run_carries_the_options(three: tuple[Fakes, Client]) -> None:
    (openrouter, _, ollama), client = three

    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    openrouter.script(Step.tool_call("weather", {"city": "Oslo"}, id="c1"), Step.reply("Sunny."))
    result = client.run(VISION, "weather in Oslo?", tools=[weather], providers=["openrouter"],
                        extra=EXTRA, top_k=7)  # fmt: skip
    assert result.text == "Sunny."
    sent = bodies(openrouter)
    assert len(sent) == 2
    for body in sent:
        assert body["provider"]["order"] == ["lambda"]
        assert body["provider"]["require_parameters"] is True  # tools: llamaroute's, kept
        assert body["top_k"] == 7
    assert bodies(ollama) == []
    with pytest.raises(InvalidRequestError, match="unknown provider"):
        client.run(VISION, "hi", tools=[weather], extra={"vertex": {}})
    assert openrouter.hits == 2
