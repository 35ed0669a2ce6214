"""``response_format=`` with one pydantic model, unchanged, against aimock (npm
``@copilotkit/aimock``; a mock nobody on this project wrote) speaking OpenRouter's (OpenAI's)
chat wire, Ollama's ``/api/chat`` and Bedrock's Converse / ConverseStream, plain and
streamed. aimock answers from a fixture; its journal shows what OpenRouter's and Bedrock's wires
carried (``response_format``; on Bedrock 90B the schema's tool). It drops Ollama's ``format``:
tests/test_structured_output.py asserts that against llamaroute's own fake.

Skipped with the reason when Node.js/npm or aimock is missing (see ``_thirdparty.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from llamaroute import Client

from ._thirdparty import running_aimock
from .test_thirdparty_tool_loop import CASES, aimock_provider

pytestmark = pytest.mark.timeout(180)  # the first aimock test may wait for npm


class Receipt(BaseModel):
    shop: str
    total: float


FIXTURES = {
    "fixtures": [
        {"match": {"userMessage": "Read this receipt"},
         "response": {"content": '{"shop": "Llama Cafe", "total": 7.5}'}, "chunkSize": 5},
        # Named once so that aimock lists the model in Ollama's /api/tags.
        {"match": {"userMessage": "never sent", "model": "llama3.2:3b"},
         "response": {"content": "unused"}},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_aimock(tmp_path_factory.mktemp("aimock") / "receipt.json", FIXTURES) as server:
        yield server


def _bodies(server: Any) -> list[dict[str, Any]]:
    return [e["body"] for e in server.get_journal() if isinstance(e.get("body"), dict)]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("name", "model"), CASES, ids=[name for name, _ in CASES])
def test_the_same_pydantic_schema_on_every_wire(
    aimock: Any, name: str, model: str, stream: bool
) -> None:
    aimock.reset_journal()
    with Client(providers=[aimock_provider(name, aimock)], retries=0) as client:
        if stream:
            with client.stream(model, "Read this receipt.", response_format=Receipt) as answer:
                text = "".join(chunk.text for chunk in answer)
            reply = answer.response
            assert text == '{"shop": "Llama Cafe", "total": 7.5}'
        else:
            reply = client.chat(model, "Read this receipt.", response_format=Receipt)
    assert reply.parsed == Receipt(shop="Llama Cafe", total=7.5)
    assert len(reply.attempts) == 1  # no repair was needed
    [body] = _bodies(aimock)
    if name != "ollama":  # aimock's journal keeps Ollama's messages but drops its `format`
        assert "shop" in str(body)  # the schema travelled with the request, as the wire carries it
