"""Fetching image URLs is a security boundary: http(s) only, capped, timed, no credentials, and
nothing inside the caller's own network unless allowed.

A real HTTP server runs on 127.0.0.1 (the only host pytest-socket allows). Because loopback is
refused by default, tests that must reach it either allow private addresses, or pose as the
public internet: a resolver says a host name is 93.184.216.34, and a transport delivers
connections for that address to the local server. Everything else (the address checks, the
redirect handling, the Host header) runs as in production.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from llamaroute import ChatRequest, ConfigurationError, ImageFetchPolicy, InvalidImageError
from llamaroute.catalog import acheck_request_images, check_request_images, prepare_image
from llamaroute.images import address_problem, afetch_image, fetch_image

from .test_images_support import encode, route, solid

PUBLIC_IP = "93.184.216.34"
PNG = encode(solid((64, 48)), "PNG")
WIDE_PNG = encode(solid((2240, 560)), "PNG")
ALLOW = ImageFetchPolicy(allow_private=True)


# --- the local server -----------------------------------------------------------------------


class Server:
    """What the test server saw and how to reach it."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.clients: list[int] = []  # the client port of each request's connection
        self.release = threading.Event()  # ends the /slow handler at teardown

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


class Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        state: Server = self.server.state
        state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        state.clients.append(self.client_address[1])
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        route = getattr(
            self, "route_" + url.path.strip("/").replace("-", "_").replace(".", "_"), None
        )
        if route is None:
            self.reply(404, b"not found", "text/plain")
        else:
            route(query, state)

    def reply(self, status: int, body: bytes, kind: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_img_png(self, query: dict[str, str], state: Server) -> None:
        self.reply(200, PNG, "image/png", Set_Cookie="session=CANARY-COOKIE; Path=/")

    def route_wide_png(self, query: dict[str, str], state: Server) -> None:
        self.reply(200, WIDE_PNG, "application/octet-stream")  # the type is not trusted anyway

    def route_page(self, query: dict[str, str], state: Server) -> None:
        self.reply(200, b"<!doctype html><p>not an image</p>", "image/png")  # lies

    def route_redirect(self, query: dict[str, str], state: Server) -> None:
        self.reply(int(query.get("status", "302")), b"", "text/plain", Location=query["to"],
                   Set_Cookie="session=CANARY-COOKIE; Path=/")  # fmt: skip

    def route_chain(self, query: dict[str, str], state: Server) -> None:
        left = int(query["n"])
        target = "/img.png" if left <= 1 else f"/chain?n={left - 1}"
        self.reply(302, b"", "text/plain", Location=target)

    def route_big(self, query: dict[str, str], state: Server) -> None:
        self.reply(200, b"\0" * 1000, "image/png", Content_Length="50000000")

    def route_stream(self, query: dict[str, str], state: Server) -> None:
        # No Content-Length: the size shows only while reading (HTTP/1.0: body until close).
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        for _ in range(20):
            self.wfile.write(PNG[:8] + b"\0" * 8192)

    def route_gzip(self, query: dict[str, str], state: Server) -> None:
        self.reply(200, b"\x1f\x8b" + b"\0" * 20, "image/png", Content_Encoding="gzip")

    def route_slow(self, query: dict[str, str], state: Server) -> None:
        state.release.wait(5)  # the client gives up long before; teardown releases it
        self.reply(200, PNG, "image/png")

    def route_late(self, query: dict[str, str], state: Server) -> None:
        # The whole image, after a pause.
        state.release.wait(float(query["wait"]))
        self.reply(200, PNG, "image/png")

    def route_trickle(self, query: dict[str, str], state: Server) -> None:
        # One byte every `every` seconds: each read returns well inside any per-read timeout.
        head = (
            f"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(PNG)}\r\n\r\n"
        ).encode()
        data = PNG if query.get("part") == "body" else head + PNG
        if query.get("part") == "body":
            self.wfile.write(head)
        try:
            for index in range(len(data)):
                if state.release.wait(float(query["every"])):
                    return
                self.wfile.write(data[index : index + 1])
        except OSError:  # the client hung up: what it should do
            return


class KeepAliveHandler(Handler):
    """HTTP/1.1: the server would keep the connection open for another request."""

    protocol_version = "HTTP/1.1"


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve(Handler)


@pytest.fixture
def keepalive_server() -> Iterator[Server]:
    yield from _serve(KeepAliveHandler)


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state = Server(httpd)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def as_public(server: Server) -> dict[str, Any]:
    """fetch_image arguments that make cdn.example.com a public host served by `server`."""

    class ToLocal(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            assert request.url.host == PUBLIC_IP  # the checked address, never a host name
            request.url = request.url.copy_with(host="127.0.0.1")
            return super().handle_request(request)

    return {"resolver": lambda host, port: [PUBLIC_IP], "transport": ToLocal()}


def public_url(server: Server, path: str) -> str:
    return f"http://cdn.example.com:{server.port}{path}"


# --- the policy ------------------------------------------------------------------------------


def test_policy_defaults_and_validation() -> None:
    policy = ImageFetchPolicy()
    assert (policy.allow_private, policy.timeout, policy.max_redirects) == (False, 10.0, 3)
    assert policy.max_bytes == 20_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.allow_private = True  # type: ignore[misc]
    for bad in ({"timeout": 0}, {"max_bytes": 0}, {"max_redirects": -1}):
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            ImageFetchPolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "default", "allowed"),
    [
        ("93.184.216.34", None, None),
        ("2606:4700::1111", None, None),
        ("127.0.0.1", "loopback", None),
        ("127.8.9.10", "loopback", None),
        ("::1", "loopback", None),
        ("10.1.2.3", "private", None),
        ("172.16.0.1", "private", None),
        ("192.168.1.1", "private", None),
        ("fd12:3456::1", "private", None),
        ("100.64.0.1", "shared", None),
        ("192.0.2.1", "documentation", None),
        ("240.0.0.1", "reserved", None),
        ("198.18.0.1", "benchmarking", None),
        ("255.255.255.255", "broadcast", "broadcast"),
        ("0.1.2.3", "unspecified", "unspecified"),  # 0/8, "this network"
        ("169.254.170.23", "metadata", "metadata"),
        ("fd00:ec2::23", "metadata", "metadata"),
        ("fd20:ce::254", "metadata", "metadata"),
        ("fec0::1", "site-local", None),
        ("2001:db8::1", "documentation", None),
        ("100::1", "discard", None),
        ("4000::1", "outside global unicast", None),
        # IPv6 forms carrying IPv4: judged by what they carry (mapped, NAT64), or refused
        # outright unless allowed (compatible, translated, 6to4, Teredo), and always refused
        # when what they carry is (metadata, link-local, ...).
        ("::ffff:93.184.216.34", None, None),
        ("64:ff9b::5db8:d822", None, None),  # NAT64 around 93.184.216.34
        ("::127.0.0.1", "loopback", None),
        ("::a9fe:a9fe", "metadata", "metadata"),
        ("::5db8:d822", "IPv4-compatible", None),
        ("::ffff:0:7f00:1", "loopback", None),
        ("::ffff:0:5db8:d822", "IPv4-translated", None),
        ("64:ff9b:1::7f00:1", "NAT64 local-use", "NAT64 local-use"),
        ("64:ff9b:1::5db8:d822", "NAT64 local-use", "NAT64 local-use"),
        ("2002:a9fe:a9fe::1", "metadata", "metadata"),
        ("2002:5db8:d822::1", "6to4", None),
        ("2001:0:a9fe:a9fe::1", "metadata", "metadata"),  # Teredo server 169.254.169.254
        ("2001:0:5db8:d822:0:0:80ff:fffe", "loopback", None),  # Teredo client 127.0.0.1
        ("2001:0:5db8:d822:0:0:a2b7:f7cb", "Teredo", None),  # both ends public
        # Resolvers answer in canonical forms; any other IPv4 spelling is read as inet_aton does.
        ("2130706433", "loopback", None),
        ("0x7f.1", "loopback", None),
        ("169.254.169.254", "metadata", "metadata"),
        ("169.254.170.2", "metadata", "metadata"),
        ("fd00:ec2::254", "metadata", "metadata"),
        ("100.100.100.200", "metadata", "metadata"),
        ("169.254.1.1", "link-local", "link-local"),
        ("fe80::1%eth0", "link-local", "link-local"),
        ("0.0.0.0", "unspecified", "unspecified"),
        ("::", "unspecified", "unspecified"),
        ("224.0.0.1", "multicast", "multicast"),
        ("ff02::1", "multicast", "multicast"),
        ("::ffff:127.0.0.1", "loopback", None),
        ("::ffff:169.254.169.254", "metadata", "metadata"),
        ("2002:7f00:1::1", "loopback", None),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata", "metadata"),  # NAT64 around 169.254.169.254
        ("not-an-ip", "not an IP", "not an IP"),
    ],
)
def test_address_problem(address: str, default: str | None, allowed: str | None) -> None:
    for allow_private, expected in ((False, default), (True, allowed)):
        problem = address_problem(address, allow_private=allow_private)
        if expected is None:
            assert problem is None, (address, allow_private)
        else:
            assert problem is not None
            assert expected in problem, (address, allow_private)


# --- refused by default, before any connection ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/",
        "http://127.0.0.1:{port}/img.png",
        "http://localhost:{port}/img.png",
        "http://2130706433:{port}/img.png",  # 127.0.0.1 written as one number
        "http://127.1:{port}/img.png",
        "http://[::ffff:127.0.0.1]:{port}/img.png",
        "http://10.0.0.1/img.png",
        "http://192.168.0.10/img.png",
    ],
)
def test_internal_addresses_are_refused_by_default(server: Server, url: str) -> None:
    with pytest.raises(InvalidImageError, match="refused to fetch") as caught:
        fetch_image(url.format(port=server.port))
    assert "inside your own network" in str(caught.value)
    assert server.seen == []


def test_metadata_stays_refused_even_with_private_addresses_allowed() -> None:
    with pytest.raises(InvalidImageError, match=r"cloud metadata.*even with allow_private"):
        fetch_image("http://169.254.169.254/latest/meta-data/", ALLOW)


def test_a_public_looking_host_that_resolves_inside_is_refused(server: Server) -> None:
    for addresses in (["127.0.0.1"], [PUBLIC_IP, "10.0.0.7"]):
        with pytest.raises(InvalidImageError, match=r"images\.example\.com resolves to"):
            fetch_image(
                f"http://images.example.com:{server.port}/img.png",
                resolver=lambda host, port, found=addresses: found,
            )
    assert server.seen == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.png", "must be http or https"),
        ("file:///etc/passwd", "must be http or https"),
        ("http:///a.png", "no host"),
        ("http://user:secret@example.com/a.png", "user name or password"),
        ("http://example.com:99999/", "bad port 99999"),
    ],
)
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidImageError, match=reason) as caught:
        fetch_image(url, resolver=lambda host, port: [PUBLIC_IP])
    assert "secret" not in str(caught.value)


def test_an_unresolvable_host_is_an_invalid_image() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(InvalidImageError, match=r"cannot resolve image host nowhere\.example"):
        fetch_image("https://nowhere.example/a.png", resolver=resolver)


# --- fetching ---------------------------------------------------------------------------------


def test_a_private_address_is_fetched_when_allowed(server: Server) -> None:
    image = fetch_image(f"{server.base}/img.png", ALLOW)
    assert (image.format, image.width, image.height) == ("png", 64, 48)
    assert image.url == f"{server.base}/img.png"
    assert image.is_fetched
    assert "URL http://127.0.0.1" in image.origin


def test_a_public_host_is_fetched_at_the_address_that_was_checked(server: Server) -> None:
    calls: list[str] = []
    public = as_public(server)

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)  # a rebinding DNS server gets one question, not two
        return [PUBLIC_IP] if len(calls) == 1 else ["127.0.0.1"]

    image = fetch_image(
        public_url(server, "/img.png"), resolver=resolver, transport=public["transport"]
    )
    assert image.format == "png"
    assert calls == ["cdn.example.com"]
    ((_, headers),) = server.seen
    assert headers["host"] == f"cdn.example.com:{server.port}"
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"].startswith("llamaroute/")
    assert "authorization" not in headers
    assert "cookie" not in headers


def test_https_keeps_the_host_name_for_sni_and_the_certificate() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG)

    fetch_image(
        "https://images.example.com/a.png",
        resolver=lambda host, port: [PUBLIC_IP],
        transport=httpx.MockTransport(handler),
    )
    (request,) = seen
    assert request.url.host == PUBLIC_IP
    assert request.url.scheme == "https"
    assert request.extensions["sni_hostname"] == "images.example.com"
    assert request.headers["host"] == "images.example.com"


def test_the_next_address_is_tried_when_one_does_not_answer(server: Server) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "93.184.216.35":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, content=PNG)

    image = fetch_image(
        "http://images.example.com/a.png",
        resolver=lambda host, port: ["93.184.216.35", PUBLIC_IP],
        transport=httpx.MockTransport(handler),
    )
    assert image.format == "png"
    assert tried == ["93.184.216.35", PUBLIC_IP]
    with pytest.raises(InvalidImageError, match=r"could not connect to 127\.0\.0\.1"):
        fetch_image(f"http://127.0.0.1:{dead_port}/a.png", ALLOW)


def test_redirects_are_followed_and_each_hop_checked(server: Server) -> None:
    assert fetch_image(f"{server.base}/chain?n=3", ALLOW).format == "png"
    assert server.paths() == ["/chain?n=3", "/chain?n=2", "/chain?n=1", "/img.png"]  # 3 hops
    with pytest.raises(InvalidImageError, match="more than 3 redirects"):
        fetch_image(f"{server.base}/chain?n=4", ALLOW)
    no_redirects = dataclasses.replace(ALLOW, max_redirects=0)
    with pytest.raises(InvalidImageError, match="more than 0 redirects"):
        fetch_image(f"{server.base}/chain?n=1", no_redirects)


def test_a_redirect_to_loopback_is_refused_by_default(server: Server) -> None:
    # The first hop is a public host; its redirect points at 127.0.0.1, which the default
    # policy refuses before connecting: the server sees the redirect and nothing after it.
    target = f"http://127.0.0.1:{server.port}/img.png"
    url = public_url(server, f"/redirect?to={target}")
    with pytest.raises(InvalidImageError, match=r"127\.0\.0\.1 is a loopback address") as caught:
        fetch_image(url, **as_public(server))
    assert "redirected from http://cdn.example.com" in str(caught.value)
    assert server.paths() == [f"/redirect?to={target}"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://metadata.internal/computeMetadata/v1/", "cloud metadata"),  # resolves there
        ("file:///etc/passwd", "must be http or https"),
        ("http://user:pw@{public}/img.png", "user name or password"),
    ],
)
def test_redirects_to_refused_places_are_refused(
    server: Server, location: str, reason: str
) -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "metadata.internal" else [PUBLIC_IP]

    target = location.format(public=f"cdn.example.com:{server.port}")
    with pytest.raises(InvalidImageError, match=reason):
        fetch_image(
            f"{server.base}/redirect?status=307&to={target}",
            ALLOW,
            resolver=resolver,
        )
    assert len(server.seen) == 1


def test_every_hop_opens_its_own_connection(keepalive_server: Server) -> None:
    # Connections are pooled by IP; a reused one would skip the next host's TLS check. (Closing
    # an unread redirect drops its connection anyway; with keep-alive allowed and the redirect
    # body read, this test fails: checked by hand.)
    fetch_image(f"{keepalive_server.base}/chain?n=2", ALLOW)
    assert len(keepalive_server.seen) == 3
    assert len(set(keepalive_server.clients)) == 3


def test_cookies_set_by_one_hop_are_not_sent_to_the_next(server: Server) -> None:
    fetch_image(f"{server.base}/redirect?to=/img.png", ALLOW)
    assert [headers.get("cookie") for _, headers in server.seen] == [None, None]


def test_the_body_is_capped(server: Server) -> None:
    small = dataclasses.replace(ALLOW, max_bytes=50_000)
    with pytest.raises(InvalidImageError, match="50,000,000 bytes; the fetch limit is 50,000"):
        fetch_image(f"{server.base}/big", small)  # refused from Content-Length
    with pytest.raises(
        InvalidImageError, match=r"more than [0-9,]+ bytes; the fetch limit is 50,000"
    ):
        fetch_image(f"{server.base}/stream", small)  # refused while reading


def test_compressed_bodies_are_refused(server: Server) -> None:
    with pytest.raises(InvalidImageError, match="Content-Encoding: gzip"):
        fetch_image(f"{server.base}/gzip", ALLOW)


def test_a_slow_server_times_out(server: Server) -> None:
    quick = dataclasses.replace(ALLOW, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(InvalidImageError, match=r"longer than 0\.3 s"):
        fetch_image(f"{server.base}/slow", quick)
    assert time.monotonic() - started < 2.0


def test_errors_and_non_images_are_invalid_images(server: Server) -> None:
    with pytest.raises(InvalidImageError, match="HTTP 404"):
        fetch_image(f"{server.base}/missing.png", ALLOW)
    with pytest.raises(InvalidImageError, match="not a PNG, JPEG, GIF or WebP"):
        fetch_image(f"{server.base}/page", ALLOW)


def test_secrets_in_urls_stay_out_of_logs_and_messages(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fetch_image(f"{server.base}/img.png?token=CANARY-TOKEN", ALLOW)
    with pytest.raises(InvalidImageError) as caught:
        fetch_image(f"{server.base}/missing.png?token=CANARY-TOKEN", ALLOW)
    assert "CANARY" not in str(caught.value)
    llamaroute_logs = [r.getMessage() for r in caplog.records if r.name == "llamaroute"]
    assert llamaroute_logs  # the fetch is logged at DEBUG, with the host only
    assert all("CANARY" not in line for line in llamaroute_logs)
    assert all(r.levelno <= logging.DEBUG for r in caplog.records if r.name == "llamaroute")


# --- async twin -------------------------------------------------------------------------------


async def test_async_fetch(server: Server) -> None:
    image = await afetch_image(f"{server.base}/chain?n=1", ALLOW)
    assert (image.format, image.width) == ("png", 64)
    with pytest.raises(InvalidImageError, match="cloud metadata"):
        await afetch_image("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(InvalidImageError, match="loopback"):
        await afetch_image(f"{server.base}/img.png")


async def test_async_redirect_to_loopback_is_refused_by_default(server: Server) -> None:
    class ToLocal(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(host="127.0.0.1")
            return await super().handle_async_request(request)

    target = f"http://127.0.0.1:{server.port}/img.png"
    with pytest.raises(InvalidImageError, match="loopback"):
        await afetch_image(
            public_url(server, f"/redirect?to={target}"),
            resolver=lambda host, port: [PUBLIC_IP],
            transport=ToLocal(),
        )
    assert len(server.seen) == 1


# --- wherever the SDK would fetch: through the request checks --------------------------------

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@pytest.mark.parametrize("provider", ["bedrock", "ollama"])
def test_image_urls_to_internal_addresses_are_refused_for_fetching_routes(provider: str) -> None:
    for url in (METADATA_URL, "http://127.0.0.1:1/img.png"):
        request = ChatRequest.create("llama-3.2-90b-vision", "what is this?", image=url)
        with pytest.raises(InvalidImageError, match="refused to fetch"):
            check_request_images(request, route(provider))


def test_a_route_that_fetches_urls_itself_gets_the_url_unfetched() -> None:
    request = ChatRequest.create("llama-3.2-90b-vision", "what is this?", image=METADATA_URL)
    (prepared,) = check_request_images(request, route("openrouter"))
    assert (prepared.url, prepared.data) == (METADATA_URL, None)


def test_a_fetched_url_is_fitted_to_the_route(server: Server) -> None:
    prepared = prepare_image(f"{server.base}/wide.png", route("bedrock"), fetch=ALLOW)
    assert (prepared.fetched, prepared.format, prepared.width, prepared.height) == (
        True, "png", 1120, 280,
    )  # fmt: skip
    assert prepared.origin.startswith("URL http://127.0.0.1")


async def test_async_request_checks_fetch_with_the_policy(server: Server) -> None:
    request = ChatRequest.create("llama-3.2-90b-vision", "hi", image=f"{server.base}/wide.png")
    (prepared,) = await acheck_request_images(request, route("ollama"), fetch=ALLOW)
    assert (prepared.fetched, prepared.width) == (True, 2240)
    with pytest.raises(InvalidImageError, match="loopback"):
        await acheck_request_images(request, route("bedrock"))
    (passed,) = await acheck_request_images(request, route("openrouter"))
    assert passed.url == f"{server.base}/wide.png"
    assert server.paths() == ["/wide.png"]
