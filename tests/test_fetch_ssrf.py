"""Every way of writing an internal address in an image URL is refused before any connection.

A spy on ``socket.socket.connect`` (which the sync and the async transports both end in) and on
``socket.getaddrinfo`` records what the fetch tried. The spy is shown to see real connections
by a control test, so "it recorded nothing" means something.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llamaroute import ImageFetchPolicy, InvalidImageError
from llamaroute.images import address_problem, afetch_image, fetch_image

from .test_fetch import PNG, Server, _serve

ALLOW = ImageFetchPolicy(allow_private=True)


class Spy:
    def __init__(self) -> None:
        self.connects: list[Any] = []
        self.lookups: list[Any] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    seen = Spy()
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo,
    )  # fmt: skip

    def spy_connect(self: socket.socket, address: Any) -> None:
        seen.connects.append(address)
        connect(self, address)

    def spy_connect_ex(self: socket.socket, address: Any) -> int:
        seen.connects.append(address)
        return connect_ex(self, address)

    def spy_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.lookups.append(host)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", spy_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", spy_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", spy_getaddrinfo)
    return seen


@pytest.fixture
def server() -> Iterator[Server]:
    from .test_fetch import Handler

    yield from _serve(Handler)


# (URL, what the message says). Ports are left at the default: nothing may be tried anyway.
FORMS = [
    # IPv4, the classic ones
    ("http://127.0.0.1/a.png", "loopback"),
    ("http://127.8.9.10/a.png", "loopback"),
    ("http://localhost/a.png", "loopback"),  # a name: looked up, never connected to
    ("http://10.0.0.1/a.png", "private"),
    ("http://172.16.0.1/a.png", "private"),
    ("http://172.31.255.254/a.png", "private"),
    ("http://192.168.1.1/a.png", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.170.2/v2/credentials", "metadata"),
    ("http://100.100.100.200/latest/meta-data/", "metadata"),
    ("http://169.254.1.1/a.png", "link-local"),
    ("http://0.0.0.0/a.png", "unspecified"),
    ("http://100.64.0.1/a.png", "carrier-grade NAT"),
    ("http://198.18.0.1/a.png", "benchmarking"),
    ("http://192.0.2.1/a.png", "documentation"),
    ("http://192.0.0.8/a.png", "IETF protocol"),
    ("http://224.0.0.1/a.png", "multicast"),
    ("http://255.255.255.255/a.png", "broadcast"),
    ("http://240.0.0.1/a.png", "reserved"),
    # IPv4 in the integer, octal, hex and short forms inet_aton and browsers accept
    ("http://2130706433/a.png", "loopback"),
    ("http://0x7f.1/a.png", "loopback"),
    ("http://0x7f000001/a.png", "loopback"),
    ("http://017700000001/a.png", "loopback"),
    ("http://0177.0.0.1/a.png", "0177.0.0.1"),  # httpx refuses it as a URL
    ("http://127.1/a.png", "loopback"),
    ("http://127.0.1/a.png", "loopback"),
    ("http://127.0.0.1./a.png", "loopback"),
    ("http://0/a.png", "unspecified"),  # Linux connects 0.0.0.0 to the local host
    ("http://2852039166/latest/meta-data/", "metadata"),  # 169.254.169.254
    ("http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/", "metadata"),
    ("http://0251.254.169.254/latest/meta-data/", "0251.254.169.254"),  # httpx refuses it
    ("http://1.2.3.4.5/a.png", "not an IPv4 address"),  # ends in a number: not a name either
    # IPv6
    ("http://[::1]/a.png", "loopback"),
    ("http://[::]/a.png", "unspecified"),
    ("http://[fd00::1]/a.png", "private"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://[fe80::1]/a.png", "link-local"),
    ("http://[fe80::1%25eth0]/a.png", "link-local"),
    ("http://[fec0::1]/a.png", "site-local"),
    ("http://[ff02::1]/a.png", "multicast"),
    ("http://[2001:db8::1]/a.png", "documentation"),
    ("http://[100::1]/a.png", "discard"),
    # IPv6 carrying IPv4: compatible, mapped, translated, NAT64, local-use NAT64, 6to4, Teredo
    ("http://[::127.0.0.1]/a.png", "loopback"),
    ("http://[::a9fe:a9fe]/latest/meta-data/", "metadata"),
    ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
    ("http://[::ffff:7f00:1]/a.png", "loopback"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/a.png", "loopback"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data/", "metadata"),
    ("http://[::ffff:10.0.0.1]/a.png", "private"),
    ("http://[::ffff:0:7f00:1]/a.png", "loopback"),
    ("http://[::ffff:0:a9fe:a9fe]/latest/meta-data/", "metadata"),
    ("http://[64:ff9b::7f00:1]/a.png", "loopback"),
    ("http://[64:ff9b::10.0.0.1]/a.png", "private"),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "metadata"),
    ("http://[64:ff9b:1::7f00:1]/a.png", "NAT64 local-use"),
    ("http://[64:ff9b:1:a9fe:a9:fe00::]/latest/meta-data/", "NAT64 local-use"),  # /48 layout
    ("http://[2002:7f00:1::1]/a.png", "loopback"),
    ("http://[2002:a9fe:a9fe::1]/latest/meta-data/", "metadata"),
    ("http://[2002:5db8:d822::1]/a.png", "6to4"),  # public inside, but 6to4 is refused
    ("http://[2001:0:a9fe:a9fe::1]/a.png", "metadata"),  # Teredo server
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.png", "loopback"),  # Teredo client
]


def _fetch(mode: str, url: str, policy: ImageFetchPolicy | None = None) -> None:
    import asyncio

    if mode == "sync":
        fetch_image(url, policy)
    else:
        asyncio.run(afetch_image(url, policy))


def test_there_are_enough_forms() -> None:
    assert len(FORMS) >= 36
    assert len({url for url, _ in FORMS}) == len(FORMS)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("url", "reason"), FORMS)
def test_every_internal_form_is_refused_before_connecting(
    spy: Spy, mode: str, url: str, reason: str
) -> None:
    with pytest.raises(InvalidImageError, match=reason) as caught:
        _fetch(mode, url)
    assert spy.connects == []
    if "localhost" not in url:
        # An address, however it is written, is read here: never handed to DNS to interpret.
        assert spy.lookups == []
    assert "refused to fetch" in str(caught.value) or "invalid image URL" in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "url",
    [url for url, reason in FORMS if reason in ("metadata", "link-local", "unspecified",
                                                "multicast", "broadcast", "NAT64 local-use")],
)  # fmt: skip
def test_what_is_always_refused_stays_refused_with_private_addresses_allowed(
    spy: Spy, mode: str, url: str
) -> None:
    with pytest.raises(InvalidImageError, match="even with allow_private=True"):
        _fetch(mode, url, ALLOW)
    assert spy.connects == []


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2a00:1450:4001:82a::200e",
     "::ffff:93.184.216.34", "::ffff:5db8:d822", "64:ff9b::93.184.216.34", "1.1.1.1"],
)  # fmt: skip
def test_public_addresses_pass_the_check(address: str) -> None:
    assert address_problem(address) is None


def test_a_public_address_inside_nat64_is_fetched_at_that_address() -> None:
    # No socket at all: the transport answers. What matters is where the request was aimed.
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, content=PNG)

    image = fetch_image(
        "http://[64:ff9b::93.184.216.34]/a.png", transport=httpx.MockTransport(handler)
    )
    assert image.format == "png"
    assert seen == ["64:ff9b::5db8:d822"]


@pytest.mark.parametrize(
    ("url", "connected"),
    [
        ("http://2130706433:{port}/img.png", "127.0.0.1"),
        ("http://0x7f.1:{port}/img.png", "127.0.0.1"),
        ("http://127.1:{port}/img.png", "127.0.0.1"),
        ("http://017700000001:{port}/img.png", "127.0.0.1"),
    ],
)
def test_an_allowed_odd_spelling_connects_to_the_address_that_was_checked(
    server: Server, spy: Spy, url: str, connected: str
) -> None:
    # The control for the spy: it does see real connections, and they go to the canonical
    # address the check judged, with no DNS lookup of the odd spelling.
    image = fetch_image(url.format(port=server.port), ALLOW)
    assert image.format == "png"
    assert spy.connects == [(connected, server.port)]
    assert spy.lookups in ([], [connected])  # create_connection's own numeric lookup
    assert len(server.seen) == 1


async def test_the_async_spy_sees_connections_too(server: Server, spy: Spy) -> None:
    image = await afetch_image(f"http://2130706433:{server.port}/img.png", ALLOW)
    assert image.format == "png"
    assert [address[:2] for address in spy.connects] == [("127.0.0.1", server.port)]


def test_a_resolver_answer_in_an_odd_spelling_is_connected_to_as_checked() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, content=PNG)

    for answer in ("0x7f.1", "::ffff:7f00:1", "64:ff9b::a9fe:a9fe"):
        with pytest.raises(InvalidImageError, match="resolves to"):
            fetch_image(
                "http://cdn.example.com/a.png",
                resolver=lambda host, port, found=answer: [found],
                transport=httpx.MockTransport(handler),
            )
    image = fetch_image(
        "http://cdn.example.com/a.png",
        resolver=lambda host, port: ["1558767650"],  # 92.232.232.34, public
        transport=httpx.MockTransport(handler),
    )
    assert image.format == "png"
    assert seen == ["92.232.232.34"]
