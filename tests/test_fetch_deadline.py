"""An image fetch ends by its deadline however the server paces its bytes: the policy's
``timeout`` bounds the whole fetch (not each read), and a caller's time left bounds it too.

The trickling server sends one byte every 0.4 s: inside any per-read timeout, so only a
whole-fetch deadline stops it. Without one, a 0.5 s fetch would end on the second byte, after
0.8 s (checked between reads) or never (headers); with one, it ends at 0.5 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from llamaroute import ConfigurationError, ImageFetchPolicy, InvalidImageError, ProviderTimeoutError
from llamaroute.images import RequestImages, afetch_image, fetch_image

from .test_fetch import PUBLIC_IP, Handler, Server, _serve

ALLOW = ImageFetchPolicy(allow_private=True)
QUICK = dataclasses.replace(ALLOW, timeout=0.5)
SLACK = 0.15  # scheduling slack on a busy machine; the second byte would come 0.3 s later


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve(Handler)


def elapsed_since(started: float) -> float:
    return time.monotonic() - started


@pytest.mark.parametrize("part", ["body", "all"])
def test_the_policy_timeout_bounds_a_trickled_fetch(server: Server, part: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidImageError, match=r"longer than 0\.5 s"):
        fetch_image(f"{server.base}/trickle?every=0.4&part={part}", QUICK)
    assert 0.5 <= elapsed_since(started) < 0.5 + SLACK


@pytest.mark.parametrize("part", ["body", "all"])
async def test_the_policy_timeout_bounds_a_trickled_fetch_async(server: Server, part: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidImageError, match=r"longer than 0\.5 s"):
        await afetch_image(f"{server.base}/trickle?every=0.4&part={part}", QUICK)
    assert 0.5 <= elapsed_since(started) < 0.5 + SLACK


def test_the_deadline_holds_through_an_injected_httpcore_transport(server: Server) -> None:
    # The watchdog finds the socket through httpcore's trace extension, so a transport built
    # on httpcore (what tests inject to pose as the internet) is bounded like the default one.
    class ToLocal(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(host="127.0.0.1")
            return super().handle_request(request)

    transport = ToLocal()  # made before the clock starts: it loads the CA certificates
    started = time.monotonic()
    with pytest.raises(InvalidImageError, match=r"longer than 0\.5 s"):
        fetch_image(
            f"http://cdn.example.com:{server.port}/trickle?every=0.4",
            dataclasses.replace(QUICK, allow_private=False),
            resolver=lambda host, port: [PUBLIC_IP],
            transport=transport,
        )
    assert elapsed_since(started) < 0.5 + SLACK


def test_the_deadline_covers_a_hanging_dns_lookup() -> None:
    release = threading.Event()

    def resolver(host: str, port: int) -> list[str]:
        release.wait(5)
        return [PUBLIC_IP]

    started = time.monotonic()
    try:
        with pytest.raises(InvalidImageError, match=r"longer than 0\.5 s"):
            fetch_image("http://slow-dns.example/a.png", QUICK, resolver=resolver)
        assert elapsed_since(started) < 0.5 + SLACK
    finally:
        release.set()


def test_no_thread_outlives_a_fetch(server: Server) -> None:
    before = set(threading.enumerate())
    with pytest.raises(InvalidImageError):
        fetch_image(f"{server.base}/trickle?every=0.4", QUICK)
    fetch_image(f"{server.base}/img.png", ALLOW)
    ours = {thread for thread in threading.enumerate() if thread.name.startswith("llamaroute")}
    assert ours - before == set()


# --- the caller's deadline -------------------------------------------------------------------


def _fetch_with_time_left(mode: str, url: str, left: float) -> None:
    if mode == "sync":
        fetch_image(url, ALLOW, timeout=left)  # the policy allows 10 s
    else:
        asyncio.run(afetch_image(url, ALLOW, timeout=left))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_callers_time_left_bounds_the_fetch_as_a_timeout(server: Server, mode: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="the call's timeout ran out") as caught:
        _fetch_with_time_left(mode, f"{server.base}/trickle?every=0.4", 0.5)
    assert 0.5 <= elapsed_since(started) < 0.5 + SLACK
    assert caught.value.code == "deadline"
    assert not caught.value.retryable
    assert not isinstance(caught.value, InvalidImageError)  # the image is not at fault


def test_the_sooner_deadline_decides_which_error(server: Server) -> None:
    # The policy's 0.5 s comes first: the image took too long, an InvalidImageError.
    with pytest.raises(InvalidImageError, match=r"longer than 0\.5 s"):
        fetch_image(f"{server.base}/trickle?every=0.4", QUICK, timeout=5)
    # Time left that the fetch does not need changes nothing.
    assert fetch_image(f"{server.base}/img.png", QUICK, timeout=5).format == "png"


@pytest.mark.parametrize("left", [0, -1.0])
def test_no_time_left_means_no_connection(server: Server, left: float) -> None:
    with pytest.raises(ProviderTimeoutError, match="the call's timeout ran out"):
        fetch_image(f"{server.base}/img.png", ALLOW, timeout=left)
    assert server.seen == []


@pytest.mark.parametrize("bad", ["1", True, float("nan")])
def test_a_bad_time_left_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a number"):
        fetch_image("http://cdn.example.com/a.png", timeout=bad)  # type: ignore[arg-type]


def test_bad_urls_are_refused_before_the_time_is_looked_at() -> None:
    with pytest.raises(InvalidImageError, match="must be http or https"):
        fetch_image("ftp://example.com/a.png", timeout=0)


# --- a call's images share the call's time ---------------------------------------------------


def _two_late_images(server: Server) -> RequestImages:
    # Each image arrives after 0.3 s: either fits in 0.5 s, both together do not.
    return RequestImages(
        [f"{server.base}/late?wait=0.3&n=1", f"{server.base}/late?wait=0.3&n=2"], ALLOW
    )


def test_request_images_share_the_time_left(server: Server) -> None:
    images = _two_late_images(server)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="the call's timeout ran out"):
        images.fetch(timeout=0.5)
    assert elapsed_since(started) < 0.5 + SLACK
    assert len(server.seen) == 2
    images = _two_late_images(server)
    images.fetch(timeout=2.0)
    assert images.tiles() == (1, 1)  # fetched: a URL not fetched yet counts as 4 tiles


async def test_request_images_share_the_time_left_async(server: Server) -> None:
    images = _two_late_images(server)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="the call's timeout ran out"):
        await images.afetch(timeout=0.5)
    assert elapsed_since(started) < 0.5 + SLACK
    images = _two_late_images(server)
    await images.afetch()  # no time limit of the call's: the policy's only
    assert images.tiles() == (1, 1)


def test_request_images_refuse_a_bad_time_left(server: Server) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a number"):
        _two_late_images(server).fetch(timeout="soon")  # type: ignore[arg-type]
    assert server.seen == []
