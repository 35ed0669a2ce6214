"""Public types: strict with what callers send, lenient with what providers send."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from llamaroute import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Cost,
    ImagePart,
    InvalidRequestError,
    Message,
    TextPart,
    Usage,
)


def test_create_from_a_prompt() -> None:
    request = ChatRequest.create("llama-3.2-3b", "Hello", system="Be brief", max_tokens=10)
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].text == "Hello"
    assert request.max_tokens == 10


def test_image_goes_after_the_prompt_text() -> None:
    request = ChatRequest.create("llama-3.2-90b-vision", "What is this?", image=b"\x89PNG")
    parts = request.messages[-1].content
    assert isinstance(parts, tuple)
    assert isinstance(parts[0], TextPart)
    assert isinstance(parts[1], ImagePart)
    assert len(request.images) == 1


def test_image_without_prompt_joins_the_last_user_message() -> None:
    request = ChatRequest.create(
        "llama-3.2-90b-vision",
        messages=[{"role": "user", "content": "Describe it"}],
        image="chart.png",
    )
    assert request.messages[-1].text == "Describe it"
    assert request.images[0].image == "chart.png"


def test_messages_then_prompt() -> None:
    request = ChatRequest.create(
        "llama-3.2-3b",
        "and now?",
        messages=[Message.user("hi"), Message.assistant("hello")],
    )
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_out_of_range_parameters(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidRequestError, match=expected):
        ChatRequest.create("llama-3.2-3b", "hi", **kwargs)  # type: ignore[arg-type]


def test_stop_accepts_a_single_string() -> None:
    assert ChatRequest.create("llama-3.2-3b", "hi", stop="END").stop == ("END",)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "nothing to send"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": "x", "name": "b" * 65}]}, "name"),
        ({"messages": [{"role": "user", "content": []}]}, "at least one part"),
        ({"messages": ["hello"]}, "Message objects or dicts"),
        ({"messages": [Message.user("a"), Message.assistant("b")]}, "end with a user message"),
            ({"messages": [Message.user("a"), Message.tool("c9", "r")]}, "no earlier assistant"),
        ({"messages": [Message.user("a"), Message.system("b"), Message.user("c")]},
         "system message may only come first"),
        ({"prompt": "x", "system": "s", "messages": [Message.system("t")]}, "not both"),
        ({"image": b"x"}, "needs a prompt"),
        ({"messages": [{"role": "assistant", "content": [
            {"type": "image", "image": "a.png"}]}], "prompt": "x"}, "only user messages"),
    ],
)  # fmt: skip
def test_bad_conversations(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidRequestError, match=expected):
        ChatRequest.create("llama-3.2-3b", **kwargs)  # type: ignore[arg-type]


def test_requests_are_immutable() -> None:
    request = ChatRequest.create("llama-3.2-3b", "hi")
    with pytest.raises(ValidationError):
        request.max_tokens = 5  # type: ignore[misc]


def test_usage_is_lenient_with_provider_data() -> None:
    usage = Usage.model_validate({"input_tokens": None, "output_tokens": 7, "surprise": 1})
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (0, 7, 7)


def test_cost_is_decimal_and_knows_its_source() -> None:
    cost = Cost(input=Decimal("0.72"), output=Decimal("0.72"), total=Decimal("1.44"),
                source="price_table")  # fmt: skip
    assert cost.total == Decimal("1.44")
    assert isinstance(cost.total, Decimal)
    assert Cost(total=Decimal("0.0001"), source="provider").input is None
    with pytest.raises(ValidationError):
        Cost(total=Decimal(1), source="guess")  # type: ignore[arg-type]


def test_response_defaults() -> None:
    response = ChatResponse(text="hi", model="llama-3.2-3b", provider="ollama",
                            provider_model_id="llama3.2:3b")  # fmt: skip
    assert response.cost is None  # unknown, never a made-up zero
    assert response.attempts == ()
    assert response.usage.total_tokens == 0


def test_chunk_is_light() -> None:
    chunk = ChatChunk(text="Hel")
    assert chunk.text == "Hel"
    assert not hasattr(chunk, "__dict__")


@pytest.mark.parametrize("reported", [None, Decimal("0.0000173"), Decimal("0.5")])
def test_the_clients_own_records_are_those_validation_builds(reported: Decimal | None) -> None:
    # A call builds its cost, attempts and response without validating them again
    # (_records.trusted): each must be the instance the validating constructor gives for
    # the same fields, down to the set fields that exclude_unset dumps read. The cost is
    # the table's, or the provider's own (close to the table's, then far from it).
    from llamaroute import Attempt, Client
    from llamaroute.providers import Provider, ProviderCall, ProviderResult

    class Instant(Provider):
        name = "openrouter"

        def chat(self, call: ProviderCall) -> ProviderResult:
            usage = Usage(input_tokens=10, output_tokens=5)
            return ProviderResult("hi", "stop", usage, cost=reported)

        async def achat(self, call: ProviderCall) -> ProviderResult:
            return self.chat(call)

        def stream(self, call: ProviderCall) -> Any:
            raise NotImplementedError

        def astream(self, call: ProviderCall) -> Any:
            raise NotImplementedError

        def close(self) -> None:
            pass

        async def aclose(self) -> None:
            pass

    with Client([Instant()]) as client:
        response = client.chat("llama-3.2-3b", "Say hi")
    assert response.cost is not None
    assert response.cost.source == ("price_table" if reported is None else "provider")
    attempt = response.attempts[0]
    cost = response.cost
    validated: list[tuple[Any, Any]] = [
        (cost, Cost(**{k: getattr(cost, k) for k in cost.model_fields_set})),
        (attempt, Attempt(**{k: getattr(attempt, k) for k in attempt.model_fields_set})),
        (response, ChatResponse(**{k: getattr(response, k) for k in response.model_fields_set})),
    ]
    for built, checked in validated:
        assert built.model_fields_set == checked.model_fields_set
        assert repr(built) == repr(checked)
        assert built == checked
        assert built.model_dump() == checked.model_dump()
        assert built.model_dump_json() == checked.model_dump_json()
        assert built.model_dump_json(exclude_unset=True) == checked.model_dump_json(
            exclude_unset=True
        )
        assert list(built.__dict__) == list(checked.__dict__)
        with pytest.raises(ValidationError):
            built.__setattr__("model_id" if built is attempt else "source", "x")
