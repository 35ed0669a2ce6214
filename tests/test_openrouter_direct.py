"""The OpenRouter provider's own sync client sends its requests straight to httpx's transport
(``DirectPost``): the same request as ``Client.build_request`` makes, byte for byte, and the
client's own path whenever something it adds is in play (cookies, its INFO log)."""

from __future__ import annotations

import logging
import math
from typing import Any

import httpx
import pytest

from llamaroute import ChatRequest, get_model
from llamaroute.providers import OpenRouterProvider, ProviderCall
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY

ROUTE = get_model("llama-3.2-3b").route("openrouter")


def a_call(prompt: str = "Hello") -> ProviderCall:
    return ProviderCall(request=ChatRequest.create("llama-3.2-3b", prompt), route=ROUTE)


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "llamas \u00e9\u4e2d \U0001f999"}],
            "stream": True,
            "temperature": 0.5,
            "stop": ["\n"],
        },
        {},
    ],
)
@pytest.mark.parametrize("timeout", [httpx.Timeout(5.0), httpx.Timeout(1.0, pool=0.25)])
def test_the_request_is_the_one_build_request_makes(payload: Any, timeout: httpx.Timeout) -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url="http://127.0.0.1:9/api/v1",
                                  app_url="https://example.com", app_title="t")  # fmt: skip
    try:
        client = provider._sync()
        direct = provider._direct
        assert direct is not None
        assert direct.client is client
        assert direct.usable()
        ours = direct.request(payload, timeout)
        theirs = client.build_request("POST", provider._url, json=payload, timeout=timeout)
        assert (ours.method, ours.url, ours.headers.raw, ours.content, ours.extensions) == (
            theirs.method, theirs.url, theirs.headers.raw, theirs.content, theirs.extensions
        )  # fmt: skip
    finally:
        provider.close()


def test_a_value_json_cannot_carry_fails_as_it_did() -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url="http://127.0.0.1:9/api/v1")
    try:
        client = provider._sync()
        assert provider._direct is not None
        with pytest.raises(ValueError):
            client.build_request("POST", provider._url, json={"temperature": math.nan})
        with pytest.raises(ValueError):
            provider._direct.request({"temperature": math.nan}, httpx.Timeout(1.0))
    finally:
        provider.close()


def test_a_cookie_the_server_sets_is_kept_and_sent_back(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(
        Step.reply("one", headers={"Set-Cookie": "llama=humming; Path=/"}), Step.reply("two")
    )
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    try:
        assert provider.chat(a_call()).text == "one"
        assert provider._direct is not None
        assert not provider._direct.usable()
        assert provider.chat(a_call()).text == "two"
    finally:
        provider.close()
    first, second = fake_openrouter.requests[-2:]
    assert "cookie" not in first.headers
    assert second.headers.get("cookie") == "llama=humming"


def test_httpx_info_log_still_shows_each_request(
    fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openrouter.script(Step.reply("logged"), Step.reply("streamed"))
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    try:
        with caplog.at_level(logging.INFO, logger="httpx"):
            assert provider.chat(a_call()).text == "logged"
            assert list(provider.stream(a_call()))[-1].text == "streamed"  # type: ignore[union-attr]
    finally:
        provider.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 2
    assert all("POST" in line and "/chat/completions" in line for line in lines)


def test_a_closed_client_is_not_used(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.script(Step.reply("again"))
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    client = provider._sync()
    direct = provider._direct
    provider.close()
    assert direct is not None
    assert not direct.usable()
    assert client.is_closed
    try:
        assert provider.chat(a_call()).text == "again"  # a new client, with its own DirectPost
        assert provider._direct is not direct
        assert provider._direct is not None
    finally:
        provider.close()
