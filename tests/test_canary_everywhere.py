"""No canary key in any exception (str, repr, the standard traceback with its chained causes),
attempt, event, response or log record of ANY logger at DEBUG (issue 15 item 4), for each
provider, sync, async and streamed, against a raw server that echoes the provider's secrets
back in a 200's fields and in 401 and 500 error bodies.

Bedrock's credentials come from the environment (the ``Client()`` discovery path), with a
session token, since that path once redacted less than explicit keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from llamaroute import AsyncClient, Client, LlamarouteError
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.providers.bedrock import BedrockProvider

from .conftest import CANARY_AWS_KEY_ID, CANARY_AWS_SECRET, CANARY_AWS_TOKEN, CANARY_KEY

OLLAMA_CANARY = "CANARYollama" + "0123456789abcdef" * 2
SECRETS = {"openrouter": [CANARY_KEY], "ollama": [OLLAMA_CANARY],
           "bedrock": [CANARY_AWS_KEY_ID, CANARY_AWS_SECRET, CANARY_AWS_TOKEN]}  # fmt: skip
ECHO = "ECHO"

#: Per provider, a good non-streamed answer with ECHO in free-text fields, and error bodies.
ANSWERS = {
    "openrouter": {"id": ECHO, "model": ECHO, "choices": [{"index": 0, "finish_reason": "stop",
                   "message": {"role": "assistant", "content": "hi"}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
    "ollama": {"model": ECHO, "created_at": "2024-01-01T00:00:00Z", "done": True,
               "done_reason": ECHO, "message": {"role": "assistant", "content": "hi"},
               "prompt_eval_count": 3, "eval_count": 1},
    "bedrock": {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
                "stopReason": ECHO, "usage": {"inputTokens": 3, "outputTokens": 1,
                                              "totalTokens": 4}},
}  # fmt: skip
ERRORS = {
    "openrouter": {"error": {"code": 0, "message": f"Bearer {ECHO}", "metadata": {"raw": ECHO}}},
    "ollama": {"error": ECHO},
    "bedrock": {"message": f"X-Amz-Security-Token: {ECHO}"},
}


@contextlib.contextmanager
def echoing(kind: str, status: int) -> Iterator[str]:
    """A server answering every request with ``status`` and the provider's secrets echoed."""
    secrets = " ".join(SECRETS[kind])
    template = ANSWERS[kind] if status == 200 else ERRORS[kind]
    body = json.dumps(template).replace(ECHO, secrets).encode()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (status, len(body), body)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def provider(kind: str, url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    if kind == "openrouter":
        return OpenRouterProvider(api_key=CANARY_KEY, base_url=f"{url}/api/v1")
    if kind == "ollama":
        return OllamaProvider(host=url, api_key=OLLAMA_CANARY)
    for name, value in (("AWS_ACCESS_KEY_ID", CANARY_AWS_KEY_ID),
                        ("AWS_SECRET_ACCESS_KEY", CANARY_AWS_SECRET),
                        ("AWS_SESSION_TOKEN", CANARY_AWS_TOKEN)):  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return BedrockProvider(region="us-east-1", endpoint_url=url)


def everything(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [repr(attempt) for attempt in getattr(error, "attempts", ())]
    return texts


@pytest.mark.parametrize("mode", ["chat", "stream", "async"])
@pytest.mark.parametrize("status", [200, 401, 500])
@pytest.mark.parametrize("kind", list(SECRETS))
def test_no_echoed_secret_shows_anywhere(
    kind: str, status: int, mode: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    events: list[Any] = []
    texts: list[str] = []
    with echoing(kind, status) as url, caplog.at_level(logging.DEBUG):
        chosen = provider(kind, url, monkeypatch)
        try:
            if mode == "async":

                async def ask() -> Any:
                    async with AsyncClient([chosen], retries=0, on_event=events.append) as client:
                        return await client.chat("llama-3.2-3b", "Hello", timeout=10)

                response = asyncio.run(ask())
            else:
                with Client([chosen], retries=0, on_event=events.append) as client:
                    response = (
                        client.stream("llama-3.2-3b", "Hello", timeout=10).read()
                        if mode == "stream"
                        else client.chat("llama-3.2-3b", "Hello", timeout=10)
                    )
            texts += [repr(response), response.model_dump_json(), repr(response.attempts)]
        except LlamarouteError as error:
            texts += everything(error)
    for event in events:
        texts.append(repr(event))
        if isinstance(getattr(event, "error", None), BaseException):
            texts += everything(event.error)
    texts.append(caplog.text)
    assert events
    assert caplog.records  # the libraries' DEBUG records were captured
    for secret in SECRETS[kind]:
        assert not [text for text in texts if secret in text], kind
