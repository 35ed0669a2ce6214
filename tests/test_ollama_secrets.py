"""No secret of a remote Ollama's configuration shows anywhere (issue 15 item 4, the Ollama
half): an API key, an ``Authorization`` header, credentials in the host URL or
``$OLLAMA_API_KEY``, echoed back by the server in every place it can put them.

Checked: ``str``/``repr`` of errors and answers, the standard traceback of what the caller
catches (``__cause__``/``__context__`` chains included), ``Attempt.error``, event payloads and
every log record at DEBUG.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from llamaroute import Client, LlamarouteError
from llamaroute.providers import OllamaProvider
from llamaroute.testing import Exchange, FakeOllama, FakeServer

from .test_ollama import call

KEY = "ollama-CANARY-key-0123456789abcdef"
HEADER_KEY = "hdr-CANARY-0123456789abcdef"
ENV_KEY = "env-CANARY-0123456789abcdef"
PASSWORD = "pw-CANARY-0123456789"


class Echo(FakeServer):
    """Answers ``/api/chat`` by echoing the request's ``Authorization`` header (raw, and the
    Basic credentials decoded) in the place :attr:`mode` says."""

    mode = "401"

    def handle(self, exchange: Exchange) -> None:
        auth = exchange.request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme == "Basic":
            auth += " " + base64.b64decode(token).decode()  # user:password, decoded
        echo = json.dumps(auth)[1:-1]  # safe inside a JSON string
        chunk = '{"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": false}\n'
        bodies: dict[str, tuple[int, str]] = {
            "401": (401, f'{{"error": "invalid key: {echo}"}}'),
            "500": (500, f"upstream said: {auth}"),
            "404": (404, f'{{"error": "no route for {echo}"}}'),
            "200-echo": (
                200,
                json.dumps(
                    {
                        "model": auth,
                        "message": {"role": "assistant", "content": "Hi"},
                        "done": True,
                        "done_reason": auth,
                    }
                ),
            ),
            "200-invalid": (
                200,
                json.dumps({"model": auth, "message": {"role": auth, "content": 5}, "done": True}),
            ),
            "200-keys": (200, json.dumps({auth: 1})),
            "200-truncated": (200, f'{{"model": "{echo}", "message": {{"content": "tr'),
            "stream-error": (200, chunk + json.dumps({"error": auth}) + "\n"),
            "stream-invalid": (200, chunk + f'{{"model": "{echo}", "done": 7}}\n'),
        }
        status, body = bodies[self.mode]
        exchange.send(status, body.encode(), {"Content-Type": "application/x-ndjson"})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as server:
        yield server


CONFIGS = ["api_key", "header", "url", "environment"]


def configured(
    how: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[OllamaProvider, list[str]]:
    """A provider set up with a secret in the way ``how`` says, and every form of it."""
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    if how == "api_key":
        return OllamaProvider(host=url, api_key=KEY), [KEY]
    if how == "header":
        return OllamaProvider(host=url, headers={"Authorization": f"Bearer {HEADER_KEY}"}), [
            HEADER_KEY
        ]
    if how == "url":
        token = base64.b64encode(f"llama:{PASSWORD}".encode()).decode()
        host = url.replace("http://", f"http://llama:{PASSWORD}@")
        return OllamaProvider(host=host), [PASSWORD, token]
    monkeypatch.setenv("OLLAMA_API_KEY", ENV_KEY)
    return OllamaProvider(host=url), [ENV_KEY]


def texts_of(error: BaseException) -> list[str]:
    """Everything a caller could print of an error."""
    seen = [str(error), repr(error), "".join(traceback.format_exception(error))]
    seen.append(repr(pickle.loads(pickle.dumps(error))))
    chained: BaseException | None = error
    while chained is not None:  # the chain, walked by hand too: not only what prints
        seen += [str(chained), repr(chained), repr(vars(chained))]
        chained = chained.__cause__ or chained.__context__
    for attempt in getattr(error, "attempts", ()):
        seen += [repr(attempt), str(attempt.error)]
    return seen


MODES = ["401", "500", "404", "200-echo", "200-invalid", "200-keys", "200-truncated",
         "stream-error", "stream-invalid"]  # fmt: skip


@pytest.mark.parametrize("how", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_an_echoed_secret_never_shows(
    echo: Echo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str,
    mode: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)  # every logger: httpx and httpcore included
    provider, secrets = configured(how, echo.url, monkeypatch)
    echo.mode = mode
    events: list[Any] = []
    seen = [repr(provider), provider.host]
    with Client(providers=[provider], on_event=events.append) as client:
        for run in (
            lambda: client.chat("llama-3.2-3b", "hi", retries=1),
            lambda: client.stream("llama-3.2-3b", "hi", retries=1).read(),
        ):
            try:
                reply = run()
            except LlamarouteError as error:
                seen += texts_of(error)
            else:
                seen += [repr(reply), reply.model_dump_json(), repr(reply.attempts)]
        # The provider's own errors, as a direct caller of the provider sees them.
        for direct in (lambda: provider.chat(call()), lambda: list(provider.stream(call()))):
            try:
                direct()
            except LlamarouteError as error:
                seen += texts_of(error)
    assert echo.requests, "the server was reached"
    assert any(request.headers.get("authorization") for request in echo.requests)
    seen += [repr(event) for event in events]
    seen += [record.getMessage() for record in caplog.records]
    for text in seen:
        for secret in secrets:
            assert secret not in text


def test_credentials_in_the_host_url_travel_as_basic_auth(echo: Echo) -> None:
    host = echo.url.replace("http://", f"http://llama:{PASSWORD}@")
    provider = OllamaProvider(host=host)
    echo.mode = "200-echo"
    reply = provider.chat(call())
    provider.close()
    sent = echo.requests[-1].headers["authorization"]
    assert sent == "Basic " + base64.b64encode(f"llama:{PASSWORD}".encode()).decode()
    assert provider.host == echo.url
    assert PASSWORD not in repr(provider)
    assert reply.served_model is not None
    assert PASSWORD not in reply.served_model


def test_the_chained_cause_keeps_its_type_and_a_scrubbed_message(
    echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ollama

    provider, _ = configured("api_key", echo.url, monkeypatch)
    echo.mode = "401"
    with pytest.raises(LlamarouteError) as caught:
        provider.chat(call())
    provider.close()
    cause = caught.value.__cause__
    assert isinstance(cause, ollama.ResponseError)
    assert cause.status_code == 401
    assert "invalid key" in str(cause)
    assert KEY not in str(cause)
    assert caught.value.__context__ is None
    assert cause.__cause__ is None
    assert cause.__context__ is None


def test_a_user_name_alone_is_not_scrubbed(fake_ollama: FakeOllama) -> None:
    # Only the password is secret: a user name such as "llama" must not mangle the server's
    # words that name a llama3.2 model.
    fake_ollama.models = []
    provider = OllamaProvider(host=fake_ollama.url.replace("http://", "http://llama@"))
    with pytest.raises(LlamarouteError) as caught:
        provider.chat(call())
    provider.close()
    assert 'model "llama3.2:3b" not found' in str(caught.value)
