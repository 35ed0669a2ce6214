"""The chat body the Ollama provider writes itself (``_body.py``) is byte for byte the one the
ollama client's ``chat`` sends for the same arguments; a call that needs the client's own
conversions gets no body of its own."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest
from pydantic import BaseModel

from llamaroute import ChatRequest, Message, get_model
from llamaroute.providers import ProviderCall
from llamaroute.providers.ollama import build_request, wire_body

ROUTE = get_model("llama-3.2-3b").route("ollama")
ANSWER = {"model": "m", "created_at": "2025-01-01T00:00:00Z", "done": True,
          "message": {"role": "assistant", "content": "hi"}}  # fmt: skip


TURNS = [Message.system("Be brief"), Message.user("Hi ünïcode ✓"), Message.assistant(""),
         Message.user("Again")]  # fmt: skip


class Answer(BaseModel):
    city: str


def sent(send: Any) -> bytes:
    """The body ``send(client)`` puts on the wire."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json=ANSWER)

    client = ollama.Client(host="http://ollama.test", transport=httpx.MockTransport(handler))
    send(client)
    return bodies[0]


def kwargs_for(keep_alive: Any = None, **create: Any) -> dict[str, Any]:
    prompt = None if "messages" in create else "Hello"
    request = ChatRequest.create("llama-3.2-3b", prompt, **create)
    the_call = ProviderCall(request, ROUTE, max_tokens=request.max_tokens)
    return build_request(the_call, stream=False, keep_alive=keep_alive)


@pytest.mark.parametrize(
    "kwargs",
    [
        kwargs_for(),
        kwargs_for(max_tokens=50, temperature=0.2, top_p=0.9, stop=["END"], seed=7, top_k=4),
        kwargs_for(keep_alive="10m"),
        kwargs_for(keep_alive=300),
        kwargs_for(keep_alive=-1),
        kwargs_for(keep_alive=0),
        kwargs_for(keep_alive=1.5),
        kwargs_for(keep_alive=True),
        kwargs_for(response_format=Answer),
        kwargs_for(messages=TURNS),
    ],
)
def test_the_body_is_the_clients_own(kwargs: dict[str, Any]) -> None:
    body = wire_body(kwargs)
    assert body is not None
    ours = sent(lambda client: client._request(ollama.ChatResponse, "POST", "/api/chat",
                                               json=body))  # fmt: skip
    assert ours == sent(lambda client: client.chat(**kwargs))
    assert json.loads(ours)["model"] == "llama3.2:3b"


def test_calls_that_need_the_clients_conversions_get_no_body() -> None:
    plain = kwargs_for()
    assert wire_body({**plain, "tools": [{"type": "function"}]}) is None
    image = {"role": "user", "content": "What is this?", "images": [b"png"]}
    assert wire_body({**plain, "messages": [image]}) is None
    call = {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}
    assert wire_body({**plain, "messages": [call]}) is None
    assert wire_body({**plain, "keep_alive": [1]}) is None
    assert wire_body({**plain, "format": "json"}) is None
    assert wire_body({**plain, "model": ""}) is None
