"""OpenAI-style ``messages=``, as openai-python users write them, through the client on all three
providers (llamaroute's own fakes, for exact wire assertions), and the ``image_policy=`` for
conversations with more images than Llama 3.2 Vision takes.

The message lists are copied from OpenAI's documentation for openai-python (the README, the
vision guide and the function-calling guide); only the model name changes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from llamaroute import (
    AsyncClient,
    Client,
    ImageFetchPolicy,
    ImagePart,
    InvalidImageError,
    InvalidRequestError,
    Message,
    MessageToolCall,
    TextPart,
    UnsupportedFeatureError,
)
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import PNG, Fakes, three_providers
from .test_fetch import Server, server  # noqa: F401 - the local image server fixture

VISION = "llama-3.2-11b-vision"
B64_IMAGE = base64.b64encode(PNG).decode()

# openai-python README ("Usage"): a developer message (OpenAI's newer name for system) and a user
# message.
README_MESSAGES: list[dict[str, Any]] = [
    {"role": "developer", "content": "Talk like a pirate."},
    {"role": "user", "content": "How do I check if a Python object is an instance of a class?"},
]

# OpenAI's vision guide, chat completions: a base64 image as a data: URL.
DATA_URL_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": [
        {"type": "text", "text": "what's in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_IMAGE}"}},
    ]},
]  # fmt: skip

# The same guide: an https image URL, with detail.
HTTPS_URL = "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"


def https_messages(url: str = HTTPS_URL) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
        ]},
    ]  # fmt: skip


# OpenAI's function-calling guide, chat completions: the tool, the assistant's tool call (as
# `completion.choices[0].message.model_dump()` gives it) and the tool's result.
TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current temperature for provided coordinates in celsius.",
        "parameters": {
            "type": "object",
            "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
            "required": ["latitude", "longitude"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}]  # fmt: skip
TOOL_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "What's the weather like in Paris today?"},
    {"role": "assistant", "content": None, "refusal": None, "annotations": [], "audio": None,
     "function_call": None,
     "tool_calls": [{"id": "call_12345xyz", "type": "function", "function": {
         "name": "get_weather", "arguments": "{\"latitude\":48.8566,\"longitude\":2.3522}"}}]},
    {"role": "tool", "tool_call_id": "call_12345xyz", "content": "14"},
]  # fmt: skip


@pytest.fixture
def clients(three_fakes: Fakes) -> Iterator[dict[str, Client]]:
    providers = three_providers(three_fakes)
    made = {name: Client(providers=[provider], retries=0) for name, provider in providers.items()}
    yield made
    for client in made.values():
        client.close()


def last_body(fakes: Fakes, name: str) -> Any:
    openrouter, bedrock, ollama = fakes
    fake = {"openrouter": openrouter, "bedrock": bedrock, "ollama": ollama}[name]
    return fake.requests[-1].json


# --- building messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Message(role="bogus", content=1),  # type: ignore[arg-type]
        lambda: Message(role="user", content="hi", extra=1),  # type: ignore[call-arg]
        lambda: TextPart(text=b"bytes"),  # type: ignore[arg-type]
        lambda: ImagePart(image=3.5),
        lambda: ImagePart(image="data:image/png;base64,AAAA", detail="medium"),  # type: ignore[arg-type]
        lambda: MessageToolCall(id="", name="f"),
        lambda: Message.tool("", 1),
        lambda: Message.model_validate({"role": "user", "content": [{"type": "video"}]}),
    ],
)
def test_building_a_message_with_bad_fields_raises_the_typed_error(build: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build()
    assert type(caught.value).__module__.startswith("llamaroute")
    assert caught.value.__cause__ is None  # pydantic's error is not chained onto it


def test_an_image_url_part_becomes_an_image_part() -> None:
    message = Message.model_validate(DATA_URL_MESSAGES[0])
    text, image = message.content
    assert text == TextPart(text="what's in this image?")
    assert image == ImagePart(image=f"data:image/png;base64,{B64_IMAGE}")
    # The shorthand some SDKs send: the URL as a string.
    short = ImagePart.model_validate({"type": "image_url", "image_url": HTTPS_URL})
    assert (short.image, short.detail) == (HTTPS_URL, None)
    low = ImagePart.model_validate(https_messages()[0]["content"][1])
    assert (low.image, low.detail) == (HTTPS_URL, "high")


@pytest.mark.parametrize(
    ("image_url", "expected"),
    [
        ({"url": "/etc/passwd"}, "data: or http"),  # never a local file
        ({"url": "file:///etc/passwd"}, "data: or http"),
        ({"url": 7}, "data: or http"),
        ({"url": HTTPS_URL, "detail": "ultra"}, "detail"),
        ({"url": HTTPS_URL, "size": 3}, "image_url must be"),
        ({"href": HTTPS_URL}, "image_url must be"),
        (None, "image_url must be"),
    ],
)
def test_bad_image_url_parts_are_typed_errors(image_url: object, expected: str) -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": image_url}]}]
    with pytest.raises(InvalidRequestError, match=expected):
        Client(providers=[]).estimate(VISION, messages=messages)


def test_name_is_allowed_on_every_role() -> None:
    for role in ("system", "user", "assistant"):
        assert Message.model_validate({"role": role, "content": "x", "name": "ann"}).name == "ann"


def test_an_openai_python_message_object_is_read_as_its_dict() -> None:
    class ChatCompletionMessage:  # what `completion.choices[0].message` offers
        def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
            dumped = dict(TOOL_MESSAGES[1])
            return {k: v for k, v in dumped.items() if v is not None or not exclude_none}

    conversation = [TOOL_MESSAGES[0], ChatCompletionMessage(), TOOL_MESSAGES[2]]
    estimates = Client(providers=[]).estimate("llama-3.2-3b", messages=conversation, tools=TOOLS)
    assert estimates == []  # no providers: nothing to estimate, but the conversation is valid


# --- the documentation's message lists, unchanged, on all three providers ------------------


@pytest.mark.parametrize("name", ["openrouter", "bedrock", "ollama"])
def test_the_readme_messages_on_each_provider(
    clients: dict[str, Client], three_fakes: Fakes, name: str
) -> None:
    reply = clients[name].chat("llama-3.2-3b", messages=README_MESSAGES)
    assert reply.provider == name
    body = last_body(three_fakes, name)
    if name == "openrouter":
        assert body["messages"] == [
            {"role": "system", "content": "Talk like a pirate."},
            {"role": "user", "content": README_MESSAGES[1]["content"]},
        ]
    elif name == "bedrock":
        assert body["system"] == [{"text": "Talk like a pirate."}]
        assert body["messages"] == [
            {"role": "user", "content": [{"text": README_MESSAGES[1]["content"]}]}
        ]
    else:
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == "Talk like a pirate."


@pytest.mark.parametrize("name", ["openrouter", "bedrock", "ollama"])
def test_a_data_url_image_part_on_each_provider(
    clients: dict[str, Client], three_fakes: Fakes, name: str
) -> None:
    reply = clients[name].chat(VISION, messages=DATA_URL_MESSAGES)
    assert reply.images[0].format == "png"
    body = last_body(three_fakes, name)
    (message,) = body["messages"]
    if name == "openrouter":
        text, image = message["content"]
        assert text == {"type": "text", "text": "what's in this image?"}
        assert image["image_url"]["url"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["image_url"]["url"].partition(",")[2]) == PNG
    elif name == "bedrock":
        blocks = message["content"]
        assert {"text": "what's in this image?"} in blocks
        [image] = [block["image"] for block in blocks if "image" in block]
        assert image["format"] == "png"
        assert base64.b64decode(image["source"]["bytes"]) == PNG
    else:
        assert message["content"] == "what's in this image?"
        assert [base64.b64decode(data) for data in message["images"]] == [PNG]


def test_an_https_image_url_goes_to_openrouter_as_is_with_its_detail(
    clients: dict[str, Client], three_fakes: Fakes
) -> None:
    reply = clients["openrouter"].chat(VISION, messages=https_messages())
    (message,) = last_body(three_fakes, "openrouter")["messages"]
    assert message["content"][1] == {
        "type": "image_url", "image_url": {"url": HTTPS_URL, "detail": "high"}
    }  # fmt: skip
    assert not reply.images[0].fetched


@pytest.mark.parametrize("name", ["bedrock", "ollama"])
def test_an_https_image_url_is_fetched_under_the_policy_for_bedrock_and_ollama(
    three_fakes: Fakes,
    server: Server,  # noqa: F811
    name: str,
) -> None:
    url = f"{server.base}/img.png"
    provider = three_providers(three_fakes)[name]
    # Refused by default: the URL is on the caller's own machine (SSRF guard).
    with Client(providers=[provider], retries=0) as client, pytest.raises(InvalidImageError):
        client.chat(VISION, messages=https_messages(url))
    assert not server.seen
    allowed = ImageFetchPolicy(allow_private=True)
    with Client(providers=[provider], retries=0, image_fetch=allowed) as client:
        reply = client.chat(VISION, messages=https_messages(url))
    assert server.paths() == ["/img.png"]
    assert reply.images[0].fetched
    (message,) = last_body(three_fakes, name)["messages"]
    assert "detail" not in json.dumps(message)  # no such field on these wires


@pytest.mark.parametrize("name", ["openrouter", "bedrock", "ollama"])
def test_the_tool_turns_on_each_provider(
    clients: dict[str, Client], three_fakes: Fakes, name: str
) -> None:
    # Bedrock's Llama 3.2 takes tools on the vision models only (see the catalog).
    model = VISION if name == "bedrock" else "llama-3.2-3b"
    reply = clients[name].chat(model, messages=TOOL_MESSAGES, tools=TOOLS)
    assert reply.provider == name
    body = last_body(three_fakes, name)
    if name == "openrouter":
        assert body["messages"][1:] == [
            {"role": "assistant", "content": None, "tool_calls": TOOL_MESSAGES[1]["tool_calls"]},
            {"role": "tool", "tool_call_id": "call_12345xyz", "content": "14"},
        ]
    elif name == "bedrock":
        use = body["messages"][1]["content"][0]["toolUse"]
        assert (use["toolUseId"], use["name"]) == ("call_12345xyz", "get_weather")
        assert use["input"] == {"latitude": 48.8566, "longitude": 2.3522}
        result = body["messages"][2]["content"][0]["toolResult"]
        assert result["toolUseId"] == "call_12345xyz"
    else:
        call = body["messages"][1]["tool_calls"][0]["function"]
        assert call == {"name": "get_weather",
                        "arguments": {"latitude": 48.8566, "longitude": 2.3522}}  # fmt: skip
        assert body["messages"][2] == {"role": "tool", "content": "14", "tool_name": "get_weather"}


@pytest.mark.parametrize("name", ["openrouter", "bedrock", "ollama"])
def test_name_is_sent_on_openrouter_and_dropped_elsewhere(
    clients: dict[str, Client], three_fakes: Fakes, name: str
) -> None:
    messages = [
        {"role": "system", "content": "Be brief.", "name": "house_rules"},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    clients[name].chat("llama-3.2-3b", messages=messages)
    body = last_body(three_fakes, name)
    if name == "openrouter":
        assert [m.get("name") for m in body["messages"]] == ["house_rules", "ann"]
    else:
        assert "house_rules" not in json.dumps(body)
        assert '"ann"' not in json.dumps(body)


# --- image_policy ------------------------------------------------------------------------------

TWO_IMAGES: list[dict[str, Any]] = [
    {"role": "user", "content": [
        {"type": "text", "text": "first picture"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_IMAGE}"}},
    ]},
    {"role": "assistant", "content": "A small orange square."},
    {"role": "user", "content": [
        {"type": "text", "text": "and this one?"},
        {"type": "image_url", "image_url": {"url": HTTPS_URL}},
    ]},
]  # fmt: skip


def test_refuse_is_the_default_and_sends_nothing(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    for policy in ({}, {"image_policy": "refuse"}):
        with pytest.raises(UnsupportedFeatureError, match="at most 1 image"):
            client.chat(VISION, messages=TWO_IMAGES, **policy)  # type: ignore[arg-type]
    assert fake_openrouter.requests == []


def test_keep_newest_drops_the_older_image_and_keeps_its_text(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = client.chat(VISION, messages=TWO_IMAGES, image_policy="keep_newest")
    sent = fake_openrouter.requests[-1].json["messages"]
    assert sent[0] == {"role": "user", "content": [{"type": "text", "text": "first picture"}]}
    assert sent[2]["content"][1] == {"type": "image_url", "image_url": {"url": HTTPS_URL}}
    assert reply.details["image_policy"] == {
        "policy": "keep_newest", "images": 2, "kept": 1, "dropped": 1
    }  # fmt: skip
    assert [image.url for image in reply.images] == [HTTPS_URL]


def test_placeholder_replaces_the_older_image_with_text(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    with client.stream(VISION, messages=TWO_IMAGES, image_policy="placeholder") as stream:
        stream.read()
    sent = fake_openrouter.requests[-1].json["messages"]
    assert sent[0]["content"] == [
        {"type": "text", "text": "first picture"},
        {"type": "text", "text": "[image omitted]"},
    ]
    assert sent[2]["content"][1]["image_url"]["url"] == HTTPS_URL
    assert stream.response.details["image_policy"] == {
        "policy": "placeholder", "images": 2, "kept": 1, "replaced": 1
    }  # fmt: skip


def test_a_message_left_with_no_part_keeps_a_placeholder(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    only_image = [
        {"role": "user", "content": [{"type": "image_url", "image_url": HTTPS_URL}]},
        {"role": "assistant", "content": "A boardwalk."},
        {"role": "user", "content": "And this?"},
    ]
    client.chat(VISION, messages=only_image, image=PNG, image_policy="keep_newest")
    sent = fake_openrouter.requests[-1].json["messages"]
    assert sent[0]["content"] == [{"type": "text", "text": "[image omitted]"}]
    assert sent[2]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_within_the_limit_the_policy_changes_nothing_and_reports_nothing(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    reply = client.chat(VISION, messages=DATA_URL_MESSAGES, image_policy="placeholder")
    assert "image_policy" not in reply.details
    assert len(fake_openrouter.requests[-1].json["messages"][0]["content"]) == 2


@pytest.mark.parametrize("policy", ["drop", "", None, 1, "KEEP_NEWEST"])
def test_an_unknown_policy_is_a_typed_error_before_sending(
    client: Client, fake_openrouter: FakeOpenRouter, policy: object
) -> None:
    with pytest.raises(InvalidRequestError, match="image_policy must be one of"):
        client.chat(VISION, messages=TWO_IMAGES, image_policy=policy)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="image_policy must be one of"):
        client.estimate(VISION, messages=TWO_IMAGES, image_policy=policy)  # type: ignore[arg-type]
    assert fake_openrouter.requests == []


def test_a_text_only_model_is_still_refused_whatever_the_policy(client: Client) -> None:
    with pytest.raises(UnsupportedFeatureError, match="text-only"):
        client.chat("llama-3.2-3b", messages=TWO_IMAGES, image_policy="keep_newest")


def test_estimate_counts_only_the_images_the_policy_keeps(client: Client) -> None:
    refused = client.estimate(VISION, messages=TWO_IMAGES)
    assert list(refused) == []
    assert "at most 1 image" in refused.skipped[0].reason
    by_hand = [{"role": "user", "content": "first picture"}, *TWO_IMAGES[1:]]
    kept = client.estimate(VISION, messages=TWO_IMAGES, image_policy="keep_newest")
    assert kept[0].input_tokens == client.estimate(VISION, messages=by_hand)[0].input_tokens


@pytest.mark.parametrize("name", ["bedrock", "ollama"])
def test_keep_newest_on_bedrock_and_ollama(
    clients: dict[str, Client], three_fakes: Fakes, name: str
) -> None:
    newest = [*TWO_IMAGES[:2], DATA_URL_MESSAGES[0]]
    reply = clients[name].chat(VISION, messages=newest, image_policy="keep_newest")
    assert reply.details["image_policy"]["dropped"] == 1
    body = json.dumps(last_body(three_fakes, name))
    assert body.count(B64_IMAGE) == 1
    assert "first picture" in body


async def test_the_async_client_applies_the_policy(fake_openrouter: FakeOpenRouter) -> None:
    from llamaroute.providers import OpenRouterProvider

    from .conftest import CANARY_KEY

    fake_openrouter.script(Step.reply("two pictures"), Step.reply("streamed"))
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    async with AsyncClient(providers=[provider]) as client:
        reply = await client.chat(VISION, messages=TWO_IMAGES, image_policy="placeholder")
        async with client.stream(VISION, messages=TWO_IMAGES, image_policy="keep_newest") as s:
            text = "".join([chunk.text async for chunk in s])
    assert (reply.text, text) == ("two pictures", "streamed")
    assert reply.details["image_policy"]["replaced"] == 1
    assert s.response.details["image_policy"]["dropped"] == 1
    first, second = (request.json["messages"][0]["content"] for request in fake_openrouter.requests)
    assert first[1] == {"type": "text", "text": "[image omitted]"}
    assert second == [{"type": "text", "text": "first picture"}]


def test_run_applies_the_policy_on_every_round(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    def get_weather(latitude: float, longitude: float) -> str:
        """Get current temperature for provided coordinates in celsius."""
        return "14"

    fake_openrouter.script(
        Step.tool_call("get_weather", {"latitude": 48.8566, "longitude": 2.3522}),
        Step.reply("It is 14 degrees C there."),
    )
    result = client.run(VISION, messages=TWO_IMAGES, tools=[get_weather],
                        image_policy="placeholder")  # fmt: skip
    assert result.text == "It is 14 degrees C there."
    assert len(fake_openrouter.requests) == 2
    for request in fake_openrouter.requests:
        first = request.json["messages"][0]["content"]
        assert first[1] == {"type": "text", "text": "[image omitted]"}
