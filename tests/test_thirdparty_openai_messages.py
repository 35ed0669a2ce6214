"""OpenAI-style ``messages=`` lists copied from OpenAI's documentation for openai-python, run
unchanged through the client against mock servers nobody on this project wrote:

- LLMock (PyPI) for OpenRouter's wire, which is OpenAI's: its request journal
  (``GET /_llmock/requests``) shows the body as it arrived;
- aimock (npm ``@copilotkit/aimock``) for Bedrock's Converse and Ollama's ``/api/chat``: its
  fixtures answer by the last user message, and its journal shows the request translated to its
  own form.

The ``https://`` image of the documentation goes to OpenRouter as it is (OpenRouter fetches
images itself). Bedrock and Ollama need the bytes, so llamaroute fetches the URL under its
SSRF-safe policy; here the image is served on 127.0.0.1 (tests never reach the internet), with
loopback allowed by ``ImageFetchPolicy(allow_private=True)``.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image as PIL

from llamaroute import AsyncClient, Client, ImageFetchPolicy
from llamaroute.providers import OllamaProvider, OpenRouterProvider
from llamaroute.providers.bedrock import BedrockProvider

from ._thirdparty import LLMOCK, running_aimock, running_llmock
from .conftest import PNG
from .test_fetch import Server, server  # noqa: F401 - the local image server fixture
from .test_openai_messages import (
    B64_IMAGE,
    DATA_URL_MESSAGES,
    HTTPS_URL,
    README_MESSAGES,
    TOOL_MESSAGES,
    TOOLS,
    TWO_IMAGES,
    VISION,
    https_messages,
)

pytestmark = pytest.mark.timeout(180)  # the first aimock test may wait for npm

PLACEHOLDER_KEY = "placeholder-not-a-key"  # the mock servers accept any key


def noise_png(side: int = 96) -> bytes:
    """A PNG of random pixels: it does not compress, so whether it was sent shows in the size
    of the body (aimock's journal keeps the text of a message, not its images)."""
    buffer = io.BytesIO()
    PIL.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


BIG_B64 = base64.b64encode(noise_png()).decode()


# --- LLMock: OpenRouter's (OpenAI's) wire ----------------------------------------------------


@pytest.fixture(scope="module")
def llmock_url() -> Iterator[str]:
    if LLMOCK is None:
        pytest.skip("llmock is not installed (pip install -e '.[dev]')")
    with running_llmock("--response-style", "echo", "--tool-mode", "off") as url:
        yield url


@pytest.fixture
def llmock(llmock_url: str) -> Iterator[Client]:
    httpx.post(f"{llmock_url}/_llmock/reset", timeout=5).raise_for_status()
    provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=f"{llmock_url}/v1")
    with Client(providers=[provider], retries=0) as client:
        yield client


def llmock_bodies(url: str) -> list[Any]:
    records = httpx.get(f"{url}/_llmock/requests", timeout=5).json()
    records = records.get("requests", records) if isinstance(records, dict) else records
    return [record["body"] for record in records if record["path"].endswith("/chat/completions")]


def test_llmock_takes_the_readme_messages(llmock: Client, llmock_url: str) -> None:
    reply = llmock.chat("llama-3.2-3b", messages=README_MESSAGES)
    assert README_MESSAGES[1]["content"] in reply.text  # echo: llmock read the user message
    (body,) = llmock_bodies(llmock_url)
    assert body["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": README_MESSAGES[1]["content"]},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_llmock_takes_image_url_parts(llmock: Client, llmock_url: str, stream: bool) -> None:
    for messages in (DATA_URL_MESSAGES, https_messages()):
        if stream:
            with llmock.stream(VISION, messages=messages) as streamed:
                streamed.read()
        else:
            llmock.chat(VISION, messages=messages)
    data, https = (body["messages"][0]["content"] for body in llmock_bodies(llmock_url))
    assert data[0] == {"type": "text", "text": "what's in this image?"}
    assert base64.b64decode(data[1]["image_url"]["url"].partition(",")[2]) == PNG
    assert https[1] == {"type": "image_url", "image_url": {"url": HTTPS_URL, "detail": "high"}}


def test_llmock_takes_the_tool_turns(llmock: Client, llmock_url: str) -> None:
    reply = llmock.chat("llama-3.2-3b", messages=TOOL_MESSAGES, tools=TOOLS)
    assert reply.finish_reason == "stop"
    (body,) = llmock_bodies(llmock_url)
    assert body["messages"][1]["tool_calls"] == TOOL_MESSAGES[1]["tool_calls"]
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_12345xyz", "content": "14"}
    assert body["tools"][0]["function"]["name"] == "get_weather"


async def test_llmock_with_the_async_client_and_an_image_policy(llmock_url: str) -> None:
    httpx.post(f"{llmock_url}/_llmock/reset", timeout=5).raise_for_status()
    provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=f"{llmock_url}/v1")
    async with AsyncClient(providers=[provider], retries=0) as client:
        reply = await client.chat(VISION, messages=TWO_IMAGES, image_policy="placeholder")
    assert reply.details["image_policy"]["replaced"] == 1
    (body,) = llmock_bodies(llmock_url)
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "[image omitted]"}
    assert json.dumps(body).count('"type": "image_url"') == 1


# --- aimock: Bedrock Converse and Ollama -------------------------------------------------------

ANSWERS = {
    "How do I check if a Python object is an instance of a class?": "Use isinstance, matey.",
    "what's in this image?": "A small orange square.",
    "What's in this image?": "A boardwalk through a meadow.",
    "What's the weather like in Paris today?": "It is 14 degrees C in Paris.",
    "and this one?": "Another picture.",
}


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    fixtures = {"fixtures": [
        {"match": {"userMessage": question}, "response": {"content": answer}}
        for question, answer in ANSWERS.items()
    ]}  # fmt: skip
    with running_aimock(tmp_path_factory.mktemp("aimock") / "messages.json", fixtures) as mock:
        yield mock


@pytest.fixture(params=["bedrock", "ollama"])
def provider_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def aimock_client(aimock: Any, name: str, **options: Any) -> Client:
    aimock.reset_journal()
    if name == "bedrock":
        provider: Any = BedrockProvider(
            region="us-east-1", endpoint_url=aimock.url,
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        )  # fmt: skip
    else:
        provider = OllamaProvider(host=aimock.url)
    return Client(providers=[provider], retries=0, **options)


def sent(aimock: Any) -> tuple[list[Any], int]:
    """The last request's messages in aimock's own form (it keeps the text, not the images)
    and the size of the body as it arrived (which the images are part of)."""
    entry = aimock.get_journal()[-1]
    return entry["body"]["messages"], int(entry["headers"]["content-length"])


def test_aimock_takes_the_readme_messages(aimock: Any, provider_name: str) -> None:
    with aimock_client(aimock, provider_name) as client:
        reply = client.chat("llama-3.2-3b", messages=README_MESSAGES)
    assert reply.text == "Use isinstance, matey."
    messages, _ = sent(aimock)
    assert messages == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": README_MESSAGES[1]["content"]},
    ]


def test_aimock_takes_a_data_url_image_part(aimock: Any, provider_name: str) -> None:
    # The documentation's message, with a bigger image than DATA_URL_MESSAGES' (see noise_png).
    text = DATA_URL_MESSAGES[0]["content"][0]
    messages = [
        {
            "role": "user",
            "content": [
                text,
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{BIG_B64}"}},
            ],
        }
    ]
    with aimock_client(aimock, provider_name) as client:
        reply = client.chat(VISION, messages=messages)
        with client.stream(VISION, messages=messages) as stream:
            streamed = "".join(chunk.text for chunk in stream)
    assert reply.text == streamed == "A small orange square."
    assert reply.images[0].format == "png"
    received, size = sent(aimock)
    assert received == [{"role": "user", "content": "what's in this image?"}]
    assert size > len(BIG_B64)  # the image went along (base64 in JSON on both wires)


def test_aimock_takes_an_https_image_url_fetched_under_the_policy(
    aimock: Any,
    provider_name: str,
    server: Server,  # noqa: F811
) -> None:
    allowed = ImageFetchPolicy(allow_private=True)
    with aimock_client(aimock, provider_name, image_fetch=allowed) as client:
        reply = client.chat(VISION, messages=https_messages(f"{server.base}/img.png"))
    assert reply.text == "A boardwalk through a meadow."
    assert server.paths() == ["/img.png"]
    assert reply.images[0].fetched


def test_aimock_takes_the_tool_turns(aimock: Any, provider_name: str) -> None:
    # Bedrock's Llama 3.2 takes tools on the vision models only (see the catalog).
    model = VISION if provider_name == "bedrock" else "llama-3.2-3b"
    with aimock_client(aimock, provider_name) as client:
        reply = client.chat(model, messages=TOOL_MESSAGES, tools=TOOLS)
    assert reply.text == "It is 14 degrees C in Paris."
    messages, _ = sent(aimock)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    (call,) = messages[1]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"latitude": 48.8566, "longitude": 2.3522}
    assert messages[2]["content"] == "14"
    if provider_name == "bedrock":  # Ollama's wire has no call ids (aimock makes its own)
        assert call["id"] == messages[2]["tool_call_id"] == "call_12345xyz"


def test_aimock_with_keep_newest(aimock: Any, provider_name: str) -> None:
    # The older image is the big one: sent, it would show in the size of the body.
    big = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{BIG_B64}"}}
    newest = [
        {**TWO_IMAGES[0], "content": [TWO_IMAGES[0]["content"][0], big]},
        TWO_IMAGES[1],
        {**TWO_IMAGES[2],
         "content": [TWO_IMAGES[2]["content"][0], DATA_URL_MESSAGES[0]["content"][1]]},
    ]  # fmt: skip
    with aimock_client(aimock, provider_name) as client:
        reply = client.chat(VISION, messages=newest, image_policy="keep_newest")
    assert reply.text == "Another picture."
    assert reply.details["image_policy"] == {
        "policy": "keep_newest", "images": 2, "kept": 1, "dropped": 1
    }  # fmt: skip
    messages, size = sent(aimock)
    assert [m["content"] for m in messages] == [
        "first picture", "A small orange square.", "and this one?"
    ]  # fmt: skip
    assert len(B64_IMAGE) < size < len(BIG_B64)  # the newest image went, not the older one
