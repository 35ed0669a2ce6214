"""Hostile inputs to ChatRequest.create: a typed InvalidRequestError, never anything else.

``ChatRequest.create`` is what ``Client.chat``, ``client.estimate`` and ``llamaroute.estimate``
build their request with, so what is checked here is checked before any of them does I/O.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llamaroute
from llamaroute import ChatRequest, InvalidRequestError, Message
from llamaroute._request import MAX_MESSAGES, MAX_OUTPUT_TOKENS, MAX_STOP_LENGTH, SEED_MAX
from llamaroute.catalog import Catalog

MODEL = "llama-3.2-3b"


def _nested(depth: int, leaf: object, wrap: str = "list") -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if wrap == "list" else {"content": value}
    return value


def _cycle() -> list[object]:
    looped: list[object] = []
    looped.append(looped)
    return looped


# --- types: what each argument refuses ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"messages": 0}, "messages must be a list"),
        ({"messages": 5}, "messages must be a list"),
        ({"messages": 1.5}, "messages must be a list"),
        ({"messages": True}, "messages must be a list"),
        ({"messages": "hello"}, "messages must be a list"),
        ({"messages": b"hello"}, "messages must be a list"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages must be a list"),
        ({"messages": {("user", "hi")}}, "messages must be a list"),
        ({"messages": Message.user("hi")}, "messages must be a list"),
        ({"messages": [None]}, r"not NoneType \(messages\[0\]\)"),
        ({"messages": [Message.user("a"), 3]}, r"not int \(messages\[1\]\)"),
        ({"messages": [["user", "hi"]]}, "not list"),
        ({"messages": [{"role": "user", "content": b"hi"}]}, r"messages\[0\]: content"),
        ({"messages": [{"role": "user", "content": None}]}, r"messages\[0\]: content"),
        ({"messages": [{"role": "user", "content": 7}]}, r"messages\[0\]: content"),
        ({"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}]},
         "content must be a string or a list of parts"),
        ({"messages": [{"role": "user", "content": {"hi"}}]},
         "content must be a string or a list of parts"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": b"x"}]}]},
         "valid string"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
         "valid string"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "content"),
        ({"messages": [{"role": "user", "content": [None]}]}, "content"),
        ({"messages": [{"role": b"user", "content": "hi"}]}, "role"),
        ({"messages": [{"role": None, "content": "hi"}]}, "role"),
        ({"messages": [{1: "user", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": _nested(5000, "x")}]}, "content"),
        ({"messages": [{"role": "user", "content": _nested(5000, "x", "dict")}]}, "content"),
        ({"messages": _nested(5000, {})}, "not list"),
        ({"messages": _cycle()}, "not list"),
        ({"messages": [{"role": "user", "content": _cycle()}]}, "content"),
        ({"prompt": b"hi"}, "prompt must be a string, not bytes"),
        ({"prompt": 5}, "prompt must be a string, not int"),
        ({"prompt": ["hi"]}, "prompt must be a string, not list"),
        ({"prompt": "hi", "system": b"be brief"}, "system must be a string, not bytes"),
        ({"prompt": "hi", "system": 0}, "system must be a string, not int"),
        ({"prompt": "hi \ud800"}, "lone surrogate"),
        ({"prompt": "hi", "system": "\udfff"}, "lone surrogate"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud83d"}]}]},
         "lone surrogate"),
        ({"prompt": "hi", "stop": ["\ud800"]}, "lone surrogate"),
        ({"prompt": "hi", "image": "\ud800.png"}, "lone surrogate"),
    ],
)  # fmt: skip
def test_malformed_conversations_are_typed(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRequestError, match=expected):
        ChatRequest.create(MODEL, **kwargs)


def test_an_endless_iterator_of_messages_is_refused() -> None:
    endless = itertools.repeat({"role": "user", "content": "hi"})
    with pytest.raises(InvalidRequestError, match=f"more than {MAX_MESSAGES:,} messages"):
        ChatRequest.create(MODEL, messages=endless)


def test_messages_may_be_any_ordered_iterable() -> None:
    turns = ({"role": "user", "content": f"turn {n}"} for n in range(3))
    request = ChatRequest.create(MODEL, messages=turns)
    assert [m.text for m in request.messages] == ["turn 0", "turn 1", "turn 2"]
    assert ChatRequest.create(MODEL, messages=(Message.user("hi"),)).messages[0].text == "hi"


@pytest.mark.parametrize("name", ["temperature", "top_p", "max_tokens", "seed"])
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(name: str, value: bool) -> None:
    with pytest.raises(InvalidRequestError, match=name):
        ChatRequest.create(MODEL, "hi", **{name: value})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": 10**400}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"top_p": "1"}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"max_tokens": 1.0}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": 10**9}, "less than or equal to 131072"),
        ({"max_tokens": MAX_OUTPUT_TOKENS + 1}, "max_tokens"),
        ({"seed": 2**70}, f"less than or equal to {SEED_MAX}"),
        ({"seed": 2**31}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"seed": "42"}, "seed"),
        ({"stop": 5}, "stop"),
        ({"stop": [b"END"]}, "stop"),
        ({"stop": [None]}, "stop"),
        ({"stop": {"END": 1}}, "stop takes a string or a list"),
        ({"stop": {"END"}}, "stop takes a string or a list"),
        ({"stop": "x" * (MAX_STOP_LENGTH + 1)}, "stop"),
        ({"stop": ["ok", "y" * (MAX_STOP_LENGTH + 1)]}, "stop"),
    ],
)
def test_parameters_are_typed_strictly_and_bounded(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRequestError, match=expected):
        ChatRequest.create(MODEL, "hi", **kwargs)


@pytest.mark.parametrize("model", [5, b"llama-3.2-3b", None, ""])
def test_the_model_name_is_a_string(model: Any) -> None:
    with pytest.raises(InvalidRequestError, match="model"):
        ChatRequest.create(model, "hi")


def test_the_edges_of_each_range_are_accepted() -> None:
    request = ChatRequest.create(
        MODEL, "hi", temperature=2, top_p=1, max_tokens=MAX_OUTPUT_TOKENS, seed=SEED_MAX,
        stop=["x" * MAX_STOP_LENGTH, "a", "b", "c"],
    )  # fmt: skip
    assert (request.temperature, request.top_p) == (2.0, 1.0)
    assert isinstance(request.temperature, float)
    assert (request.max_tokens, request.seed) == (MAX_OUTPUT_TOKENS, SEED_MAX)
    assert ChatRequest.create(MODEL, "hi", seed=0, temperature=0.0).seed == 0


def test_the_output_bound_is_the_largest_context_window_in_the_catalog() -> None:
    routes = [route for spec in Catalog.builtin().models() for route in spec.routes]
    assert max(route.context_window for route in routes) == MAX_OUTPUT_TOKENS
    assert all((route.max_output_tokens or 0) <= MAX_OUTPUT_TOKENS for route in routes)


def test_the_estimate_entry_points_refuse_before_counting() -> None:
    # A lone surrogate reached the token counter as a UnicodeEncodeError before.
    with pytest.raises(InvalidRequestError, match="lone surrogate"):
        llamaroute.estimate(MODEL, "hi \ud800")
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
        llamaroute.estimate(MODEL, messages=[{"role": "user", "content": b"hi"}])
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        llamaroute.estimate(MODEL, "hi", max_tokens=True)


# --- fuzz: arbitrary JSON-like values for every argument -------------------------------------

# Text with lone surrogates and control characters as well as ordinary text.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20) | st.sampled_from(
    ["", "user", "assistant", "system", "text", "image", "hi"]
)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT | st.binary(max_size=10)
    | st.sampled_from([2**70, -(2**63), 10**9, 2**31, float("nan"), 0.5, 1, 0])
)  # fmt: skip
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=20,
)
PARTS = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image"]) | JSONISH},
    optional={"text": TEXT | JSONISH, "image": JSONISH},
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]) | JSONISH},
    optional={"content": TEXT | st.lists(PARTS, max_size=3) | JSONISH, "name": JSONISH},
)
MESSAGES = (
    st.lists(MESSAGE | st.builds(Message.user, TEXT) | JSONISH, max_size=4)
    | JSONISH
    | st.builds(lambda depth: _nested(depth, {"role": "user"}), st.integers(1, 3000))
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    messages=MESSAGES | st.none(),
    prompt=TEXT | JSONISH,
    system=st.none() | TEXT | JSONISH,
    params=st.fixed_dictionaries(
        {},
        optional={
            name: JSONISH | st.integers() | st.floats()
            for name in ("stop", "max_tokens", "temperature", "top_p", "seed")
        },
    ),
)
def test_fuzzed_arguments_give_a_request_or_an_invalid_request_error(
    messages: Any, prompt: Any, system: Any, params: dict[str, Any]
) -> None:
    try:
        request = ChatRequest.create(MODEL, prompt, messages=messages, system=system, **params)
    except InvalidRequestError as error:
        reason = str(error)
        assert reason  # a reason, not an empty message
        return
    # Accepted: everything in it is within what every provider takes.
    assert request.messages[-1].role == "user"
    for name in ("max_tokens", "seed"):
        value = getattr(request, name)
        assert value is None or (type(value) is int and value == params[name])
    assert request.max_tokens is None or 1 <= request.max_tokens <= MAX_OUTPUT_TOKENS
    assert request.seed is None or 0 <= request.seed <= SEED_MAX
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        assert value is None or (type(params[name]) in (int, float) and type(value) is float)
    assert all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in request.stop)
    # Every text can be sent as JSON (UTF-8) and counted.
    json.dumps(request.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
