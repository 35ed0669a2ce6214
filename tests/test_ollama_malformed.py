"""Every malformed Ollama answer is a typed llamaroute error (issue 15 item 3), and a host that
is not Ollama says so once, plainly (issue 16 item 4, the Ollama half).

Through the real provider (sync and async, chat and stream) against a server that sends the
given bytes, and a hypothesis fuzz of answers through the wire functions and the provider.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamaroute import (
    AllProvidersFailedError,
    Client,
    ConfigurationError,
    EndpointConfigurationError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ServerError,
)
from llamaroute.providers import OllamaProvider, OpenRouterProvider, ProviderResult
from llamaroute.providers.ollama import StreamState, parse_response
from llamaroute.testing import Exchange, FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY
from .test_ollama import RawServer, call, chat, mode, stream

__all__ = ["mode"]  # the fixture, shared with test_ollama.py

ANSWER = {"model": "llama3.2:3b", "message": {"role": "assistant", "content": "Hi"},
          "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 1}  # fmt: skip


def answer(**changes: Any) -> bytes:
    return json.dumps({**ANSWER, **changes}).encode()


def line(**changes: Any) -> bytes:
    return answer(**changes) + b"\n"


MALFORMED = "malformed"
NOT_OLLAMA = "not_ollama"

BODIES = [
    pytest.param(answer(message={"role": "assistant", "content": 5}), MALFORMED, id="content-5"),
    pytest.param(answer(prompt_eval_count=-5), MALFORMED, id="negative-count"),
    pytest.param(answer(eval_count=10**30), MALFORMED, id="huge-count"),
    pytest.param(answer(eval_count=1e300), MALFORMED, id="huge-float-count"),
    pytest.param(answer(eval_count=float("nan")), MALFORMED, id="nan-count"),  # JSON NaN
    pytest.param(answer(eval_count="12"), None, id="numeric-string-count"),  # lenient, as pydantic
    pytest.param(answer(done=5), MALFORMED, id="done-5"),
    pytest.param(answer(done=False), MALFORMED, id="not-done"),
    pytest.param(answer(done_reason=["stop"]), MALFORMED, id="done-reason-list"),
    pytest.param(answer(model=5), MALFORMED, id="model-5"),
    pytest.param(answer(message="Hi"), MALFORMED, id="message-string"),
    pytest.param(answer(message={"content": "Hi"}), MALFORMED, id="message-without-role"),
    pytest.param(answer(total_duration=-1), None, id="negative-duration-left-out"),
    pytest.param(b'{"done": true}', MALFORMED, id="no-message"),
    pytest.param(b"[1, 2]", MALFORMED, id="array"),
    pytest.param(b'"Hi"', MALFORMED, id="string"),
    pytest.param(b"null", MALFORMED, id="null"),
    pytest.param(b"", MALFORMED, id="empty"),
    pytest.param(
        b'{"message": {"role": "assistant", "content": "\xab\xff"}}', MALFORMED, id="not-utf8"
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, MALFORMED, id="deep-array"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, MALFORMED, id="deep-object"),
    pytest.param(b"<html><body>Welcome to nginx!</body></html>", NOT_OLLAMA, id="html"),
    pytest.param(
        b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}',
        NOT_OLLAMA,
        id="openai-answer",
    ),
    pytest.param(b'{"error": "model runner crashed"}', "error_body", id="error-under-200"),
]


def expect(error: BaseException | None, expected: str | None) -> None:
    if expected is None:
        assert error is None
        return
    assert isinstance(error, LlamarouteError), repr(error)
    if expected == MALFORMED:
        assert type(error) is MalformedResponseError, repr(error)
    elif expected == NOT_OLLAMA:
        assert type(error) is EndpointConfigurationError
        assert (error.code, error.retryable) == ("not_ollama", False)
        assert "answered POST /api/chat with" in str(error)
    else:
        assert type(error) is ServerError
        assert error.code == expected
    # A readable message: no pydantic dump, no Python repr of the body.
    assert "validation error" not in str(error).lower()
    assert "For further information visit" not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize(("body", "expected"), BODIES)
async def test_a_malformed_answer_is_typed(mode: str, body: bytes, expected: str | None) -> None:
    with RawServer(200, body) as server:
        provider = OllamaProvider(host=server.url)
        try:
            await chat(provider, mode, call())
            error = None
        except Exception as caught:
            error = caught
        await provider.aclose()
    expect(error, expected)


LINES = [
    pytest.param(
        [line(message={"role": "assistant", "content": 5}, done=False)], MALFORMED, id="content-5"
    ),
    pytest.param([b"[1]\n"], MALFORMED, id="array"),
    pytest.param([b'"x"\n'], MALFORMED, id="string"),
    pytest.param([b"5\n"], MALFORMED, id="number"),
    pytest.param([line(eval_count=-1)], MALFORMED, id="negative-count"),
    pytest.param([line(prompt_eval_count=10**12)], MALFORMED, id="huge-count"),
    pytest.param([line(eval_count=float("nan"))], MALFORMED, id="nan-count"),
    pytest.param([b"\xff\xfe\n"], MALFORMED, id="not-utf8"),
    pytest.param([b"[" * 100_000 + b"\n"], MALFORMED, id="deep"),
    pytest.param(
        [line(done=False), b'{"error": {"message": "x"}}\n'], MALFORMED, id="error-object"
    ),
    pytest.param([line(done=False)], MALFORMED, id="no-done-line"),
    pytest.param([b'data: {"choices": []}\n', b"\n"], NOT_OLLAMA, id="server-sent-events"),
    pytest.param([b"<!doctype html>\n"], NOT_OLLAMA, id="html"),
]


@pytest.mark.parametrize(("lines", "expected"), LINES)
async def test_a_malformed_stream_line_is_typed(
    mode: str, lines: list[bytes], expected: str | None
) -> None:
    with RawServer(200, lines) as server:
        provider = OllamaProvider(host=server.url)
        try:
            await stream(provider, mode, call())
            error = None
        except Exception as caught:
            error = caught
        await provider.aclose()
    expect(error, expected)


def test_a_malformed_answer_keeps_the_calls_attempts() -> None:
    # Retried as a server fault (a malformed body may be a glitch): every attempt is kept.
    with RawServer(200, answer(eval_count=-1)) as server:
        client = Client(providers=[OllamaProvider(host=server.url)])
        with pytest.raises(AllProvidersFailedError) as caught:
            client.chat("llama-3.2-3b", "hi", retries=2)
        client.close()
        assert len(caught.value.attempts) == server.hits == 3
    assert {attempt.error_type for attempt in caught.value.attempts} == {"MalformedResponseError"}


# --- issue 16 item 4: a host that is not Ollama ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"<html><body><h1>404 Not Found</h1></body></html>", b"404 page not found",
     b'{"detail": "Not Found"}', b'{"error": "route not found"}',
     b'{"error": {"message": "No fixture matched", "type": "invalid_request_error"}}'],
)  # fmt: skip
async def test_a_404_that_is_not_ollamas_names_the_url_not_ollama_pull(
    mode: str, body: bytes
) -> None:
    with RawServer(404, body) as server:
        provider = OllamaProvider(host=server.url)
        with pytest.raises(ProviderConnectionError) as caught:
            await (stream if mode == "async" else chat)(provider, mode, call())
        await provider.aclose()
        url = server.url
    error = caught.value
    assert isinstance(error, ConfigurationError)  # a setting to fix
    assert isinstance(error, EndpointConfigurationError)
    assert (error.code, error.status_code, error.retryable) == ("not_ollama", 404, False)
    assert url in str(error)
    assert "ollama pull" not in str(error)
    assert "<h1>" not in str(error)


def test_a_model_not_pulled_is_still_named(fake_ollama: FakeOllama) -> None:
    fake_ollama.models = []
    provider = OllamaProvider(host=fake_ollama.url)
    with pytest.raises(ModelNotAvailableError, match=r"ollama pull llama3\.2:3b"):
        provider.chat(call())
    provider.close()


def test_an_openai_server_given_as_the_ollama_host_is_one_readable_error() -> None:
    # The fake OpenRouter answers /api/chat (not its path) with a 404 in OpenAI's shape, and
    # an OpenAI-style server that answers every path would send a chat completion: either
    # way one attempt, not retried, one plain message, and the next route serves the call.
    openai_answer = b'{"id": "x", "object": "chat.completion", "choices": [], "usage": {}}'
    with FakeOpenRouter() as openai_server, ListsModels(200, openai_answer) as catch_all:
        for server in (openai_server, catch_all):
            with (
                Client(providers=[OllamaProvider(host=server.url)]) as client,
                pytest.raises(AllProvidersFailedError) as caught,
            ):
                client.chat("llama-3.2-3b", "hi", retries=3, providers=["ollama"])
            chats = [request for request in server.requests if request.path == "/api/chat"]
            assert len(chats) == len(caught.value.attempts) == 1
            assert caught.value.attempts[0].code == "not_ollama"
            message = str(caught.value)
            assert server.url in message
            assert "validation error" not in message.lower()
            assert "ollama pull" not in message
            assert isinstance(caught.value.exceptions[0], ConfigurationError)
    # And with a fallback: the call is served by the next route.
    with (
        ListsModels(200, openai_answer) as impostor,
        FakeOpenRouter(Step.reply("from openrouter")) as fallback,
    ):
        openrouter = OpenRouterProvider(api_key=CANARY_KEY, base_url=fallback.base_url)
        providers = [OllamaProvider(host=impostor.url), openrouter]
        with Client(providers=providers) as client:
            reply = client.chat("llama-3.2-3b", "hi", strategy="local_first")
        assert (reply.text, reply.provider) == ("from openrouter", "openrouter")
        assert reply.attempts[0].code == "not_ollama"


class ListsModels(RawServer):
    """Lists llama3.2:3b on ``GET /api/tags`` like Ollama (so that the availability probe does
    not skip the route before it is tried); answers anything else as given."""

    def handle(self, exchange: Exchange) -> None:
        if exchange.path == "/api/tags":
            exchange.send(200, b'{"models": [{"name": "llama3.2:3b", "model": "llama3.2:3b"}]}')
        else:
            super().handle(exchange)


# --- the fuzz ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = ("model", "created_at", "done", "done_reason", "total_duration", "prompt_eval_count",
          "eval_count", "eval_duration", "message")  # fmt: skip
messages = st.fixed_dictionaries(
    {}, optional={"role": json_values, "content": json_values | st.text(), "images": json_values}
)
answers = (
    st.dictionaries(
        st.sampled_from(FIELDS),
        json_values | messages | st.integers(min_value=-(2**70), max_value=2**70),
        max_size=len(FIELDS),
    )
    | json_values
)


def outcome(run: Any) -> None:
    try:
        result = run()
    except MalformedResponseError:
        return
    assert isinstance(result, ProviderResult)
    assert 0 <= result.usage.input_tokens <= 10**9
    assert all(
        math.isfinite(value) for value in result.details.values() if isinstance(value, float)
    )


@settings(max_examples=200, deadline=None)
@given(answers)
def test_fuzz_parse_response(body: Any) -> None:
    outcome(lambda: parse_response(body, model_id="m"))


@settings(max_examples=200, deadline=None)
@given(st.lists(answers, max_size=5))
def test_fuzz_stream_lines(lines: list[Any]) -> None:
    def run() -> ProviderResult:
        state = StreamState("m")
        for chunk in lines:
            state.feed(chunk)
            if state.final is not None:
                break
        return state.result()

    outcome(run)


wire_bodies = st.one_of(
    answers.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.lists(answers.map(lambda value: json.dumps(value)), max_size=4).map(
        lambda items: "\n".join(items).encode()
    ),
)


@pytest.fixture(scope="module")
def echo() -> Iterator[RawServer]:
    with RawServer(200, b"") as server:
        yield server


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=wire_bodies, streaming=st.booleans())
def test_fuzz_bodies_through_the_provider(echo: RawServer, body: bytes, streaming: bool) -> None:
    # Bytes as the server sends them, through the real ollama client and httpx: a result or
    # a llamaroute error, nothing else.
    echo.body = body.split(b"\n") if streaming else body
    if streaming:
        echo.body = [part + b"\n" for part in echo.body]  # type: ignore[union-attr]
    provider = OllamaProvider(host=echo.url)
    try:
        if streaming:
            list(provider.stream(call(timeout=5)))
        else:
            provider.chat(call(timeout=5))
    except ProviderError:
        pass
    finally:
        provider.close()


_ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.text(max_size=3))
_PLAIN_DELTA = {"model": "llama3.2:3b", "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "Hi"}, "done": False}  # fmt: skip


@st.composite
def _lines(draw: st.DrawFn) -> dict[str, Any]:
    """A plain text delta with a few of its fields, or of its message's, dropped, changed to
    any scalar or added: mostly lines one step from the fast path, on either side of it."""
    line = {**_PLAIN_DELTA, "message": dict(_PLAIN_DELTA["message"])}  # type: ignore[call-overload]
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["line", "message"]))
        target = line if where == "line" else line.get("message")
        if not isinstance(target, dict):
            continue
        keys = ["model", "created_at", "message", "done", "eval_count", "done_reason"]
        if where == "message":
            keys = ["role", "content", "thinking", "images"]
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(_ANY_SCALAR)
    return line


def _fed(line: object, build: Any = None) -> tuple[str, bool] | str:
    """A fresh stream's answer to one line: its text and whether it ended, or the error."""
    import ollama

    state = StreamState("m", build=build)
    try:
        line = line if build is not None else ollama.ChatResponse(**line)  # type: ignore[arg-type]
        return state.feed(line), state.final is not None
    except Exception as error:
        return type(error).__name__


@settings(max_examples=300, deadline=None)
@given(_lines())
def test_a_stream_line_read_as_a_dict_gives_what_the_clients_model_gives(
    line: dict[str, Any],
) -> None:
    # The provider's own request has the client decode each line into a dict: a plain text
    # delta is taken as it is, any other line is built into the client's model. Every line
    # must come out as it does from the model the client builds (the same text, the same
    # end, the same refusal).
    import ollama

    assert _fed(dict(line), build=ollama.ChatResponse) == _fed(dict(line))
