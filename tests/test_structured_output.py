"""Structured output (``response_format=``): one pydantic schema on OpenRouter, Ollama and
Bedrock 90B through the real client libraries (httpx, ollama, boto3) against the fakes, plain
and streamed; the repair attempt in ``attempts``, ``cost`` and the ledger; typed failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from llamaroute import (
    AsyncClient,
    Client,
    InvalidRequestError,
    StructuredOutputError,
    estimate,
    get_model,
)
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import Fakes, three_providers

MODEL = "llama-3.2-90b-vision"


class Invoice(BaseModel):
    vendor: str
    total: float
    items: list[str]


GOOD = {"vendor": "ACME", "total": 12.5, "items": ["bolts", "nuts"]}
BAD = {"vendor": "ACME", "total": "twelve"}  # a wrong type and a missing field
DICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Invoice",
    "properties": {
        "vendor": {"type": "string"},
        "total": {"type": "number"},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["vendor", "total", "items"],
    "additionalProperties": False,
}
PROVIDERS = ["openrouter", "ollama", "bedrock"]


@pytest.fixture
def fakes(three_fakes: Fakes) -> Fakes:
    return three_fakes


@pytest.fixture
def client(fakes: Fakes) -> Iterator[Client]:
    with Client(providers=list(three_providers(fakes).values())) as client:
        yield client


def fake_for(fakes: Fakes, name: str) -> FakeOpenRouter | FakeBedrock | FakeOllama:
    openrouter, bedrock, ollama = fakes
    return {"openrouter": openrouter, "bedrock": bedrock, "ollama": ollama}[name]


def chat_bodies(fake: FakeOpenRouter | FakeBedrock | FakeOllama) -> list[dict[str, Any]]:
    """The JSON bodies of the chat requests the fake received (not model listings)."""
    found = []
    for request in fake.requests:
        if request.method == "POST":
            body = request.json
            assert isinstance(body, dict)
            found.append(body)
    return found


def assert_native_mechanism(
    name: str, body: dict[str, Any], schema: dict[str, Any], *, stream: bool = False
) -> None:
    """The wire carries the route's mechanism: OpenRouter json_schema with require_parameters,
    Ollama's format, Bedrock 90B's tool use (one tool whose input schema is the schema, with
    toolChoice auto, the only one Llama takes, and an instruction to call it) in a call, and
    the schema as a system instruction in a stream (no tool use while streaming)."""
    if name == "openrouter":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "Invoice", "strict": True, "schema": schema},
        }
        assert body["provider"]["require_parameters"] is True
    elif name == "ollama":
        assert body["format"] == schema
    else:
        system = " ".join(block["text"] for block in body["system"])
        assert "JSON Schema" in system
        assert json.dumps(schema, separators=(",", ":"), sort_keys=True) in system
        if stream:
            assert "toolConfig" not in body
        else:
            (tool,) = body["toolConfig"]["tools"]
            assert tool["toolSpec"]["name"] == "Invoice"
            assert tool["toolSpec"]["inputSchema"] == {"json": schema}
            assert body["toolConfig"]["toolChoice"] == {"auto": {}}
            assert "calling the tool Invoice" in system


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("schema", [Invoice, DICT_SCHEMA], ids=["model", "dict"])
def test_same_schema_works_on_every_provider_plain(
    client: Client, fakes: Fakes, name: str, schema: Any
) -> None:
    fake = fake_for(fakes, name)
    fake.script(Step.structured(GOOD))
    reply = client.chat(MODEL, "Read the invoice.", providers=[name], response_format=schema)
    assert reply.provider == name
    if schema is Invoice:
        assert reply.parsed == Invoice(**GOOD)
    else:
        assert reply.parsed == GOOD
    wire_schema = Invoice.model_json_schema() if schema is Invoice else DICT_SCHEMA
    (body,) = chat_bodies(fake)
    assert_native_mechanism(name, body, wire_schema)


@pytest.mark.parametrize("name", PROVIDERS)
def test_same_schema_works_on_every_provider_streamed(
    client: Client, fakes: Fakes, name: str
) -> None:
    fake = fake_for(fakes, name)
    fake.script(Step.structured(GOOD))
    with client.stream(MODEL, "Read it.", providers=[name], response_format=Invoice) as stream:
        chunks = [chunk.text for chunk in stream]
    assert len(chunks) > 1  # really streamed
    assert json.loads("".join(chunks)) == GOOD
    assert stream.response.parsed == Invoice(**GOOD)
    (body,) = chat_bodies(fake)
    assert body.get("stream", True) is True or name == "bedrock"
    assert_native_mechanism(name, body, Invoice.model_json_schema(), stream=True)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_async_chat_and_stream(fakes: Fakes, name: str) -> None:
    fake = fake_for(fakes, name)
    fake.script(Step.structured(GOOD), Step.structured(GOOD))
    async with AsyncClient(providers=list(three_providers(fakes).values())) as client:
        reply = await client.chat(MODEL, "Read it.", providers=[name], response_format=Invoice)
        assert reply.parsed == Invoice(**GOOD)
        stream = client.stream(MODEL, "Read it.", providers=[name], response_format=DICT_SCHEMA)
        async with stream:
            async for _ in stream:
                pass
        assert stream.response.parsed == GOOD


def test_fenced_json_and_prose_are_accepted(client: Client, fakes: Fakes) -> None:
    fake_for(fakes, "ollama").script(
        Step.structured(GOOD, fenced=True),
        Step.reply("Sure! Here it is: " + json.dumps(GOOD) + " Hope that helps."),
    )
    for _ in range(2):
        reply = client.chat(MODEL, "x", providers=["ollama"], response_format=Invoice)
        assert reply.parsed == Invoice(**GOOD)
        assert len(reply.attempts) == 1


@pytest.mark.parametrize("name", ["openrouter", "bedrock"])
def test_invalid_then_valid_repairs_with_a_billed_attempt(
    client: Client, fakes: Fakes, name: str
) -> None:
    fake = fake_for(fakes, name)
    fake.script(Step.structured(BAD, usage=(100, 10)), Step.structured(GOOD, usage=(150, 20)))
    reply = client.chat(MODEL, "Read it.", providers=[name], response_format=Invoice)
    assert reply.parsed == Invoice(**GOOD)
    assert [attempt.outcome for attempt in reply.attempts] == ["ok", "ok"]
    first, second = reply.attempts
    assert first.cost is not None
    assert second.cost is not None
    assert first.cost.total > 0
    assert second.cost.total > 0
    assert reply.cost is not None
    assert reply.cost.total == first.cost.total + second.cost.total
    assert reply.total_cost == reply.cost.total
    assert reply.usage.input_tokens == 250
    assert reply.usage.output_tokens == 30
    assert client.spend.total == reply.cost.total
    # The repair attempt quotes the bad answer and names what was wrong.
    repair = chat_bodies(fake)[1]
    sent = json.dumps(repair)
    assert "twelve" in sent
    assert "items" in sent
    assert "not valid JSON for the required schema" in sent


def test_invalid_twice_raises_typed_with_raw_text_and_both_costs(
    client: Client, fakes: Fakes
) -> None:
    fake = fake_for(fakes, "openrouter")
    fake.script(Step.structured(BAD, cost="0.001"), Step.structured(BAD, cost="0.002"))
    with pytest.raises(StructuredOutputError) as caught:
        client.chat(MODEL, "Read it.", providers=["openrouter"], response_format=Invoice)
    error = caught.value
    assert json.loads(error.raw_text) == BAD
    assert any("total" in line for line in error.validation_errors)
    assert any("items" in line for line in error.validation_errors)
    assert len(error.attempts) == 2
    assert fake.hits == 2
    assert [a.cost.total for a in error.attempts if a.cost] == [Decimal("0.001"), Decimal("0.002")]
    assert client.spend.total == Decimal("0.003")


def test_repair_disabled_fails_after_one_attempt(client: Client, fakes: Fakes) -> None:
    fake = fake_for(fakes, "bedrock")
    fake.script(Step.structured(BAD), Step.structured(GOOD))
    with pytest.raises(StructuredOutputError) as caught:
        client.chat(MODEL, "x", providers=["bedrock"], response_format=Invoice, repair_attempts=0)
    assert len(caught.value.attempts) == 1
    assert fake.hits == 1


@pytest.mark.parametrize(
    "answer", ["x" * 1_200_000, "<html>not json</html>", "{" * 5000, ""], ids=lambda a: a[:8]
)
def test_huge_or_garbage_answers_end_typed(client: Client, fakes: Fakes, answer: str) -> None:
    fake_for(fakes, "ollama").script(Step.reply(answer), Step.reply(answer))
    with pytest.raises(StructuredOutputError) as caught:
        client.chat(MODEL, "x", providers=["ollama"], response_format=DICT_SCHEMA)
    assert caught.value.validation_errors
    assert caught.value.raw_text == answer


def test_a_bad_stream_answer_is_typed_after_the_text(client: Client, fakes: Fakes) -> None:
    fake_for(fakes, "openrouter").script(Step.structured(BAD))
    stream = client.stream(MODEL, "x", providers=["openrouter"], response_format=Invoice)
    with pytest.raises(StructuredOutputError) as caught:
        stream.read()
    assert json.loads(caught.value.raw_text) == BAD
    assert len(caught.value.attempts) == 1


@pytest.mark.parametrize(
    "bad",
    [3, "json", str, {"type": "array", "items": {}}, {"properties": {}},
     {"type": "object", "x": {1}}],
    ids=["int", "str", "class", "array", "untyped", "not-json"],
)  # fmt: skip
def test_bad_response_format_fails_before_any_request(
    client: Client, fakes: Fakes, bad: Any
) -> None:
    with pytest.raises(InvalidRequestError, match="response_format"):
        client.chat(MODEL, "x", response_format=bad)
    with pytest.raises(InvalidRequestError, match="response_format"):
        client.stream(MODEL, "x", response_format=bad)
    with pytest.raises(InvalidRequestError):
        client.chat(MODEL, "x", response_format=Invoice, repair_attempts=-1)
    assert sum(fake.hits for fake in fakes) == 0


def test_estimate_counts_the_schema_as_input() -> None:
    plain = {e.pinned: e for e in estimate(MODEL, "Read the invoice.")}
    shaped = {e.pinned: e for e in estimate(MODEL, "Read the invoice.", response_format=Invoice)}
    assert plain.keys() == shaped.keys()
    for route, entry in shaped.items():
        assert entry.input_tokens > plain[route].input_tokens + 20, route


def test_client_estimate_and_reservation_count_the_schema(client: Client) -> None:
    plain = client.estimate(MODEL, "Read it.")
    shaped = client.estimate(MODEL, "Read it.", response_format=DICT_SCHEMA)
    assert [e.input_tokens for e in shaped] > [e.input_tokens for e in plain]
    assert all(s.input_tokens > p.input_tokens for s, p in zip(shaped, plain, strict=True))


def test_catalog_records_each_routes_mechanism_with_a_source() -> None:
    routes = {route.provider: route for route in get_model(MODEL).routes}
    assert routes["openrouter"].structured_output_mechanism == "json_schema"
    assert routes["ollama"].structured_output_mechanism == "format"
    assert routes["bedrock"].structured_output_mechanism == "tool"  # 90B: tool use
    assert routes["bedrock"].structured_output_native == "tool"
    small = next(r for r in get_model("llama-3.2-3b").routes if r.provider == "bedrock")
    assert small.structured_output_mechanism == "instructions"  # 3B takes no tools
    assert all(route.structured_output_source for route in routes.values())


def test_a_route_that_cannot_be_asked_is_skipped_with_the_reason() -> None:
    from llamaroute import ChatRequest
    from llamaroute.routing import route_refusal

    bedrock = next(r for r in get_model(MODEL).routes if r.provider == "bedrock")
    plain = ChatRequest.create(MODEL, "x")
    shaped = ChatRequest.create(MODEL, "x", response_format=Invoice)
    assert route_refusal(shaped, bedrock) is None
    unable = bedrock.model_copy(update={"structured_output_mechanism": "none"})
    assert route_refusal(plain, unable) is None
    assert "structured output" in (route_refusal(shaped, unable) or "")
    no_system = bedrock.model_copy(update={"system_prompt": False})
    assert "structured output" in (route_refusal(shaped, no_system) or "")


def test_budget_reservations_count_the_schema() -> None:
    from llamaroute import ChatRequest
    from llamaroute.money import request_shape, request_token_ceiling

    plain = ChatRequest.create(MODEL, "Read it.")
    shaped = ChatRequest.create(MODEL, "Read it.", response_format=Invoice)
    schema_text = shaped.response_format.instruction()  # type: ignore[union-attr]
    # The reservation's ceiling grows by at least one token per 4 bytes of the instruction.
    assert request_token_ceiling(shaped) >= request_token_ceiling(plain) + len(schema_text) // 4
    assert request_shape(shaped).input_tokens > request_shape(plain).input_tokens + 20
