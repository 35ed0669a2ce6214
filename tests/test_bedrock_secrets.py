"""No AWS secret in anything a Bedrock call gives back, whichever way the credentials came
(``Client()`` discovering them in the environment, or passed explicitly) and whatever an
upstream echoes (the session token header, the signature, the secret key) in error bodies,
mid-stream exception events or response headers: not in ``str``/``repr`` of errors, not in the
standard traceback of what the caller catches (``__cause__`` chain included), not in
``Attempt.error``, events, responses or llamaroute's logs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from llamaroute import ChatRequest, Client, LlamarouteError, ProviderError
from llamaroute.providers import BedrockProvider, ProviderCall
from llamaroute.testing import Exchange, FakeBedrock, Step

from .conftest import CANARY_AWS_KEY_ID, CANARY_AWS_SECRET, CANARY_AWS_TOKEN

CANARIES = {"secret key": CANARY_AWS_SECRET, "session token": CANARY_AWS_TOKEN,
            "key ID": CANARY_AWS_KEY_ID}  # fmt: skip
ECHO = "ECHO"


class EchoingBedrock(FakeBedrock):
    """A fake Bedrock whose error messages (``message="ECHO"``) repeat what it was sent: every
    request header, the token and the signature among them, and the secret key as a server
    that knew it would."""

    def __init__(self, *steps: Step) -> None:
        super().__init__(*steps)
        self._local = threading.local()

    def handle(self, exchange: Exchange) -> None:
        headers = dict(exchange.request.headers)
        self._local.echo = (
            f"denied; you sent {json.dumps(headers)}; X-Amz-Security-Token: "
            f"{headers.get('x-amz-security-token')}; secret {CANARY_AWS_SECRET}"
        )
        super().handle(exchange)

    def next_step(self) -> Step:
        step = super().next_step()
        return replace(step, message=self._local.echo) if step.message == ECHO else step


@pytest.fixture
def echoing() -> Iterator[EchoingBedrock]:
    with EchoingBedrock() as fake:
        yield fake


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, echoing: EchoingBedrock) -> None:
    """The canary credentials in the environment, as a deployment would have them, and
    nothing else of AWS's or the other providers'."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "OPENROUTER_", "OLLAMA_")):
            monkeypatch.delenv(name)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY_AWS_TOKEN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", echoing.url)  # boto3 reads it


def make_client(how: str, fake: FakeBedrock, events: list[Any]) -> Client:
    if how == "environment":
        client = Client(on_event=events.append, retries=1)  # discovery, as a user would
        assert [type(p) for p in client.providers.values()] == [BedrockProvider]
        return client
    provider = BedrockProvider(
        region="us-east-1", endpoint_url=fake.url, aws_access_key_id=CANARY_AWS_KEY_ID,
        aws_secret_access_key=CANARY_AWS_SECRET, aws_session_token=CANARY_AWS_TOKEN,
    )  # fmt: skip
    return Client(providers=[provider], on_event=events.append, retries=1)


def shown(error: BaseException) -> list[str]:
    """Everything an error shows: str, repr, the standard traceback (causes, contexts and group
    members included), each attempt, and the botocore response of any cause."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [repr(attempt) for attempt in getattr(error, "attempts", ())]
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        texts += [repr(current), repr(getattr(current, "response", None))]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += list(getattr(current, "exceptions", ()))
    return texts


def leaks(texts: list[str], extra: dict[str, str]) -> dict[str, int]:
    found = {name: sum(value in text for text in texts) for name, value in
             {**CANARIES, **extra}.items()}  # fmt: skip
    return {name: count for name, count in found.items() if count}


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize("how", ["environment", "explicit"])
def test_echoed_secrets_never_reach_errors_tracebacks_attempts_events_or_logs(
    echoing: EchoingBedrock, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    echoing.script(
        Step.error(403, "AccessDeniedException", ECHO),
        Step.error(429, "ThrottlingException", ECHO), Step.error(500, message=ECHO),
        Step.reply("one two three", error_after=0, error_type="ValidationException",
                   message=ECHO),
        Step.reply("one two three", error_after=1, message=ECHO),
        Step.reply("fine", headers={"x-amzn-RequestId": CANARY_AWS_TOKEN}),
    )  # fmt: skip
    events: list[Any] = []
    errors: list[BaseException] = []
    # Every logger at DEBUG, as an application that logs everything would: botocore's own
    # records carry each signed request's headers and each response body.
    with caplog.at_level(logging.DEBUG), make_client(how, echoing, events) as client:
        for run in (
            lambda: client.chat("llama-3.2-3b", "Hello"),  # 403: not retried
            lambda: client.chat("llama-3.2-3b", "Hello"),  # 429 then 500
            lambda: list(client.stream("llama-3.2-3b", "Hello")),  # an exception event
            lambda: list(client.stream("llama-3.2-3b", "Hello")),  # cut after a chunk
        ):
            with pytest.raises(LlamarouteError) as caught:
                run()
            errors.append(caught.value)
        response = client.chat("llama-3.2-3b", "Hello")
    assert echoing.hits == 6
    sent = echoing.requests[0].headers
    assert sent["x-amz-security-token"] == CANARY_AWS_TOKEN  # the canaries were really used
    assert f"Credential={CANARY_AWS_KEY_ID}/" in sent["authorization"]
    found = [re.search(r"Signature=([0-9a-f]{64})", r.headers["authorization"])
             for r in echoing.requests]  # fmt: skip
    signatures = {f"signature {n}": m.group(1) for n, m in enumerate(found) if m}
    assert len(signatures) == 6
    texts = [caplog.text, repr(response), json.dumps(response.details), repr(response.attempts)]
    for error in errors:
        texts += shown(error)
    for event in events:
        texts.append(repr(event))
        if isinstance(getattr(event, "error", None), BaseException):
            texts += shown(event.error)
    assert len(events) > 10
    assert "x-amz-security-token" in caplog.text  # botocore's records were captured
    assert leaks(texts, signatures) == {}
    assert "denied" in str(errors[0])  # the message itself is kept, redacted


@pytest.mark.parametrize("how", ["environment", "explicit"])
@pytest.mark.usefixtures("environment")
def test_the_botocore_cause_is_kept_scrubbed(echoing: EchoingBedrock, how: str) -> None:
    echoing.script(Step.error(403, "AccessDeniedException", ECHO))
    with make_client(how, echoing, []) as client, pytest.raises(LlamarouteError) as caught:
        client.chat("llama-3.2-3b", "Hello")
    error = caught.value.exceptions[0] if hasattr(caught.value, "exceptions") else caught.value
    assert isinstance(error, ProviderError)
    assert error.code == "AccessDeniedException"
    cause = error.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)  # the diagnostic stays
    assert "AccessDeniedException" in str(cause)
    assert "X-Amz-Security-Token: " in str(cause)  # the label stays, the value goes
    assert leaks([str(cause), repr(cause.response)], {}) == {}


def test_a_provider_made_from_the_environment_redacts_like_an_explicit_one(
    echoing: EchoingBedrock, environment: None
) -> None:
    provider = BedrockProvider(region="us-east-1")
    echoing.script(Step.error(400, "ValidationException", ECHO))
    call = ProviderCall(
        ChatRequest.create("llama-3.2-3b", "Hello"), provider.route_for("llama-3.2-3b")
    )
    with pytest.raises(ProviderError) as caught:
        provider.chat(call)
    provider.close()
    assert leaks(shown(caught.value), {}) == {}
    assert "…" in str(caught.value)  # masked, as Secret shows a value: the last 4 characters
