"""Images through the client: fitted per route before any call, URLs passed through or fetched
under the policy, what was sent recorded on the response."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import pytest
from PIL import Image as PIL

from llamaroute import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    ImageFetchPolicy,
    InvalidImageError,
    Message,
    UnsupportedFeatureError,
    load_catalog,
)
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter

from .conftest import CANARY_KEY
from .test_fetch import Server, server  # noqa: F401 - the local image server fixture
from .test_images_support import corner_colours, marked, near, phone_photo


def sent_image(fake: FakeOpenRouter) -> str:
    parts = fake.requests[-1].json["messages"][-1]["content"]
    return str(parts[1]["image_url"]["url"])


def decode_data_url(url: str) -> PIL.Image:
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/")
    return PIL.open(io.BytesIO(base64.b64decode(payload)))


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_a_phone_photo_reaches_the_server_fitted_and_upright(
    client: Client, fake_openrouter: FakeOpenRouter, orientation: int
) -> None:
    photo = phone_photo(orientation)
    reply = client.chat("llama-3.2-90b-vision", "What is in this photo?", image=photo)
    received = decode_data_url(sent_image(fake_openrouter))
    assert received.format == "JPEG"
    assert max(received.size) <= 1120
    assert received.size == (1120, 840)  # 4000 x 3000 upright, aspect ratio kept
    upright = marked((4000, 3000)).resize(received.size)
    for got, want in zip(corner_colours(received.convert("RGB")),
                         corner_colours(upright), strict=True):  # fmt: skip
        assert near(got, want)
    prepared = reply.images[0]
    assert prepared.resized
    assert prepared.rotated is (orientation != 1)
    stored = (4000, 3000) if orientation == 1 else (3000, 4000)  # 6 and 8 store it turned
    assert (prepared.original_width, prepared.original_height) == stored


def test_an_image_url_goes_to_openrouter_as_is(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    url = "https://images.example.com/chart.png"
    reply = client.chat("llama-3.2-11b-vision", "Describe the chart", image=url)
    assert sent_image(fake_openrouter) == url
    assert reply.images[0].url == url
    assert not reply.images[0].fetched


@pytest.fixture
def no_url_routes(tmp_path: Path) -> Path:
    # A route that cannot take URLs makes the client fetch them itself, under the policy.
    path = tmp_path / "no-urls.toml"
    path.write_text(
        '[[routes]]\nprovider = "openrouter"\n'
        'model_id = "meta-llama/llama-3.2-11b-vision-instruct"\nimage_urls = false\n'
    )
    return path


def fetching_client(fake: FakeOpenRouter, catalog_file: Path, **options: object) -> Client:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
    return Client(providers=[provider], catalog=load_catalog(catalog_file), **options)  # type: ignore[arg-type]


def test_internal_urls_are_refused_before_any_request(
    fake_openrouter: FakeOpenRouter,
    no_url_routes: Path,
    server: Server,  # noqa: F811
) -> None:
    with fetching_client(fake_openrouter, no_url_routes) as client:
        redirect = f"{server.base}/redirect?to=http://127.0.0.1:{server.port}/img.png"
        for url in (f"{server.base}/img.png", "http://169.254.169.254/latest/meta-data/", redirect):
            with pytest.raises(InvalidImageError):
                client.chat("llama-3.2-11b-vision", "Describe", image=url)
    assert fake_openrouter.hits == 0
    assert server.seen == []  # not even the first hop was fetched: 127.0.0.1 is refused


def test_allowed_private_urls_are_fetched_once_and_sent_as_data(
    fake_openrouter: FakeOpenRouter,
    no_url_routes: Path,
    server: Server,  # noqa: F811
) -> None:
    policy = ImageFetchPolicy(allow_private=True)
    with fetching_client(fake_openrouter, no_url_routes, image_fetch=policy) as client:
        reply = client.chat("llama-3.2-11b-vision", "Describe", image=f"{server.base}/img.png")
    assert sent_image(fake_openrouter).startswith("data:image/png;base64,")
    assert reply.images[0].fetched
    assert server.paths() == ["/img.png"]


async def test_async_fetch_uses_the_same_policy(
    fake_openrouter: FakeOpenRouter,
    no_url_routes: Path,
    server: Server,  # noqa: F811
) -> None:
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    async with AsyncClient(providers=[provider], catalog=load_catalog(no_url_routes)) as client:
        with pytest.raises(InvalidImageError):
            await client.chat("llama-3.2-11b-vision", "Describe", image=f"{server.base}/img.png")
    assert fake_openrouter.hits == 0


def test_two_images_anywhere_are_refused_naming_where(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    photo = phone_photo(1, (64, 48))
    history = [Message.user("first", image=photo), Message.assistant("ok")]
    with pytest.raises(UnsupportedFeatureError, match=r"message 1 part 2.*message 3 part 2"):
        client.chat("llama-3.2-90b-vision", "and this one?", messages=history, image=photo)
    assert fake_openrouter.hits == 0


def test_a_text_model_names_the_vision_models(
    client: Client, fake_openrouter: FakeOpenRouter
) -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"llama-3\.2-11b-vision or llama-3\.2-90b"):
        client.chat("llama-3.2-3b", "What is this?", image=phone_photo(1, (64, 48)))
    assert fake_openrouter.hits == 0


def test_an_image_that_cannot_fit_fails_before_sending(
    fake_openrouter: FakeOpenRouter, tmp_path: Path
) -> None:
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(
        '[[routes]]\nprovider = "openrouter"\n'
        'model_id = "meta-llama/llama-3.2-90b-vision-instruct"\nmax_image_bytes = 50\n'
    )
    with fetching_client(fake_openrouter, tiny) as client, pytest.raises(InvalidImageError):
        client.chat("llama-3.2-90b-vision", "What is this?", image=phone_photo(1, (640, 480)))
    assert fake_openrouter.hits == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_calls_timeout_covers_the_image_fetch(
    fake_openrouter: FakeOpenRouter,
    no_url_routes: Path,
    server: Server,  # noqa: F811
    mode: str,
) -> None:
    # The image server sends a byte every 0.4 s, inside the fetch policy's own 10 s: only the
    # call's timeout=1 can stop it, and it does, as a deadline (nothing is sent to the model).
    policy = ImageFetchPolicy(allow_private=True)
    url = f"{server.base}/trickle?every=0.4"
    provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    options = {
        "providers": [provider],
        "catalog": load_catalog(no_url_routes),
        "image_fetch": policy,
    }

    def ask_sync() -> None:
        with Client(**options) as client:  # type: ignore[arg-type]
            client.chat("llama-3.2-11b-vision", "Describe", image=url, timeout=1)

    async def ask() -> None:
        if mode == "sync":
            await asyncio.to_thread(ask_sync)  # a sync client belongs outside the event loop
        else:
            async with AsyncClient(**options) as aclient:  # type: ignore[arg-type]
                await aclient.chat("llama-3.2-11b-vision", "Describe", image=url, timeout=1)

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        await ask()
    assert time.monotonic() - started < 1.25
    assert fake_openrouter.hits == 0
    assert [type(e).__name__ for e in caught.value.exceptions] == ["ProviderTimeoutError"]
