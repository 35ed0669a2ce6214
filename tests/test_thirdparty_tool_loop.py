"""``client.run`` with one Python-function tool, unchanged, against mock servers nobody on this
project wrote, each speaking a provider's own wire, plain and streamed:

- LLMock (PyPI, Python) in ``--tool-mode auto``: OpenRouter's (OpenAI's) chat wire. It calls an
  offered tool with arguments it makes up from the tool's JSON schema, and answers in text once
  the conversation carries the tool's result: so a loop that ends in two rounds shows that the
  result went back in the form OpenAI's wire expects.
- aimock (npm ``@copilotkit/aimock``, Node.js): OpenRouter's (OpenAI's) chat wire, Ollama's
  ``/api/chat`` (JSON and NDJSON) and Bedrock's Converse / ConverseStream (AWS event stream),
  from fixtures: a tool call while the turn has no tool result, a text answer once it has one.
  Its journal shows the tool result as it arrived (translated to aimock's own form).

Each module-scoped server is skipped with the reason when its tool is missing (llmock not
installed; no node/npm, or aimock not installable offline). Bedrock is skipped while the
Bedrock provider takes no tools (the route is skipped for tools, with the reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llamaroute import AsyncClient, Client, UnsupportedFeatureError
from llamaroute.providers import OllamaProvider, OpenRouterProvider, Provider
from llamaroute.providers.bedrock import BedrockProvider

from ._thirdparty import LLMOCK, running_aimock, running_llmock

pytestmark = pytest.mark.timeout(180)  # the first aimock test may wait for npm

CALLS: list[str] = []
PROMPT = "What is the weather in Oslo?"
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the mock servers accept any key
ANSWER = "It is 21 degrees C and sunny in Oslo."


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
    """
    CALLS.append(city)
    return f"21 degrees C and sunny in {city}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


# --- LLMock: OpenRouter's wire ------------------------------------------------------------


@pytest.fixture(scope="module")
def llmock_url() -> Iterator[str]:
    if LLMOCK is None:
        pytest.skip("llmock is not installed (pip install -e '.[dev]')")
    with running_llmock("--response-style", "static", "--tool-mode", "auto") as url:
        yield url


def llmock_provider(url: str) -> OpenRouterProvider:
    httpx.post(f"{url}/_llmock/reset", timeout=5).raise_for_status()
    return OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=f"{url}/v1")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_llmock_openai_wire(llmock_url: str, stream: bool) -> None:
    with Client(providers=[llmock_provider(llmock_url)], retries=0) as client:
        result = client.run("llama-3.2-3b", PROMPT, tools=[get_weather], stream=stream)
    assert len(result.rounds) == 2
    [call] = result.rounds[0].tool_calls
    assert call.ok
    assert call.name == "get_weather"
    assert [call.arguments["city"]] == CALLS  # the function ran with llmock's arguments
    assert result.rounds[0].finish_reason == "tool_calls"
    assert not result.response.tool_calls
    assert result.text
    assert result.messages[2].tool_call_id == call.id  # llmock's own id, sent back


async def test_llmock_openai_wire_async(llmock_url: str) -> None:
    async with AsyncClient(providers=[llmock_provider(llmock_url)], retries=0) as client:
        result = await client.run("llama-3.2-3b", PROMPT, tools=[get_weather], stream=True)
    assert len(result.rounds) == 2
    assert len(CALLS) == 1


# --- aimock: OpenRouter's, Ollama's and Bedrock's wires -----------------------------------


FIXTURES = {
    "fixtures": [
        {"match": {"userMessage": "weather in Oslo", "hasToolResult": False},
         "response": {"toolCalls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]},
         "chunkSize": 4},
        {"match": {"userMessage": "weather in Oslo", "hasToolResult": True},
         "response": {"content": ANSWER}, "chunkSize": 4},
        # Named once so that aimock lists the model in Ollama's /api/tags.
        {"match": {"userMessage": "never sent", "model": "llama3.2:3b"},
         "response": {"content": "unused"}},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_aimock(tmp_path_factory.mktemp("aimock") / "tools.json", FIXTURES) as server:
        yield server


def aimock_provider(name: str, server: Any) -> Provider:
    if name == "openrouter":
        return OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=f"{server.url}/v1")
    if name == "ollama":
        return OllamaProvider(host=server.url)
    return BedrockProvider(
        region="us-east-1", endpoint_url=server.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip


CASES = [("openrouter", "llama-3.2-3b"), ("ollama", "llama-3.2-3b"),
         ("bedrock", "llama-3.2-90b-vision")]  # fmt: skip


def tool_results(server: Any) -> list[Any]:
    """The tool messages of the requests aimock received (in its own, translated form)."""
    bodies = [
        entry["body"] for entry in server.get_journal() if isinstance(entry.get("body"), dict)
    ]
    messages = [message for body in bodies for message in body.get("messages") or ()]
    return [message for message in messages if message.get("role") == "tool"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("name", "model"), CASES, ids=[name for name, _ in CASES])
def test_aimock_wires(aimock: Any, name: str, model: str, stream: bool) -> None:
    aimock.reset_journal()
    provider = aimock_provider(name, aimock)
    with Client(providers=[provider], retries=0) as client:
        try:
            result = client.run(model, PROMPT, tools=[get_weather], stream=stream)
        except UnsupportedFeatureError as error:
            pytest.skip(f"{name} takes no tools in this build: {error}")
    assert result.text == ANSWER
    assert len(result.rounds) == 2
    assert CALLS == ["Oslo"]
    [call] = result.rounds[0].tool_calls
    assert call.arguments == {"city": "Oslo"}
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    [sent] = tool_results(aimock)
    assert "21 degrees C and sunny in Oslo" in str(sent.get("content"))


async def test_aimock_ollama_async(aimock: Any) -> None:
    aimock.reset_journal()
    async with AsyncClient(providers=[aimock_provider("ollama", aimock)], retries=0) as client:
        result = await client.run("llama-3.2-3b", PROMPT, tools=[get_weather], stream=True)
    assert result.text == ANSWER
    assert CALLS == ["Oslo"]
