"""Fetching an image URL for a provider that cannot take URLs: a security boundary.

An app that passes user-supplied URLs to llamaroute must not become a way into its own network
(server-side request forgery). So, by default, :func:`fetch_image`:

* takes ``http`` and ``https`` URLs only, and refuses URLs with a user name or password (httpx
  would turn them into a Basic ``Authorization`` header);
* resolves the host itself and refuses the fetch if *any* address is loopback, private (RFC 1918,
  IPv6 ULA), shared (CGNAT 100.64/10), link-local, a cloud metadata address, unspecified,
  multicast or reserved, looking through IPv4-mapped, 6to4 and NAT64 IPv6 forms;
* then connects to the address it checked, not to the host name: the request goes to an IP
  literal, with the ``Host`` header, TLS SNI and certificate check set to the real host name. DNS
  is asked once, so a host that answers "public" to the check and "127.0.0.1" to the connection
  (DNS rebinding) cannot slip through. (The alternative, checking the socket's peer address after
  connecting, would already have sent the request to the internal address.)
* follows redirects itself (at most ``max_redirects``), checking every hop the same way;
* uses a fresh client with no cookies kept between hops, no credentials, no proxy or
  certificate settings from the environment (``trust_env=False``) and no connection reuse;
* asks for uncompressed data and refuses compressed bodies, so a gzip bomb cannot expand past
  the cap; stops reading at ``max_bytes``; gives up when ``timeout`` seconds have passed in all.

:class:`ImageFetchPolicy` ``(allow_private=True)`` allows loopback, private, shared and reserved
addresses for apps that fetch from their own servers. Link-local and metadata addresses
(169.254.169.254, fd00:ec2::254, ...), unspecified and multicast addresses stay refused even
then: no image lives there, and the metadata service holds cloud credentials.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from .._exceptions import InvalidImageError
from .._version import __version__
from ._source import Image, ImageFetchPolicy, redact_url

__all__ = [
    "ImageFetchPolicy",
    "Resolver",
    "address_problem",
    "afetch_image",
    "fetch_image",
]

logger = logging.getLogger("llamaroute")

Resolver = Callable[[str, int], Iterable[str]]
"""A DNS lookup: ``(host, port) -> IP addresses``. Injectable so that tests can make a
public-looking host resolve to 127.0.0.1."""

# No environment proxies or certificates, no automatic redirects, and no kept-alive connections:
# connections are pooled by IP here, and a redirect to another host name at the same IP must
# open (and verify the certificate of) its own connection.
_CLIENT: dict[str, Any] = {
    "trust_env": False,
    "follow_redirects": False,
    "limits": httpx.Limits(max_keepalive_connections=0),
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_IDENTITY = frozenset({"", "identity"})

# Cloud instance-metadata endpoints hold credentials; refused even with allow_private=True.
_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, OpenStack IMDS
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "100.100.100.200",  # Alibaba Cloud metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


def address_problem(address: str, *, allow_private: bool = False) -> str | None:
    """Why llamaroute will not fetch from ``address`` (``"a loopback address"``, ...), or
    ``None`` if it may. IPv4 addresses inside IPv6 ones (mapped, 6to4, NAT64) are judged as
    the IPv4 address they carry."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
    except ValueError:
        return "not an IP address"
    ip = _embedded_ipv4(ip) or ip
    if ip in _METADATA:
        return "a cloud metadata service address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:  # ipaddress calls some multicast ranges "global"
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_loopback:
        kind = "a loopback address"
    elif ip.is_private:
        kind = "a private address"
    elif ip.version == 4 and ip in _SHARED:
        kind = "a shared (carrier-grade NAT) address"
    elif not ip.is_global:
        kind = "a reserved, non-public address"
    else:
        return None
    return None if allow_private else kind


def _embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    if ip.version == 4:
        return None
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def fetch_image(
    url: str,
    policy: ImageFetchPolicy | None = None,
    *,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Image:
    """Fetch an ``http(s)://`` image under ``policy`` (the default policy if ``None``).

    Returns an :class:`Image` with the bytes (format sniffed from them) and ``url`` set.
    Raises :class:`~llamaroute.InvalidImageError` when the URL is refused, the fetch fails, or
    the body is not an image. ``resolver`` and ``transport`` are for tests.
    """
    state = _Fetch(url, policy or ImageFetchPolicy())
    try:
        with httpx.Client(**_CLIENT, transport=transport) as client:
            while True:
                host, port = state.host_port()
                addresses = _resolve(resolver, host, port) if resolver else _lookup(host, port)
                response: httpx.Response | None = None
                for request in state.requests(client, addresses):
                    try:
                        response = client.send(request, stream=True)
                        break
                    except httpx.ConnectError as error:
                        state.unreachable(request, error)
                assert response is not None  # requests() raises once every address failed
                try:
                    if state.redirected(response):
                        continue
                    body = state.body(response)
                    for chunk in response.iter_bytes():
                        body.add(chunk)
                    return state.image(body)
                finally:
                    response.close()
    except httpx.HTTPError as error:
        raise state.failure(error) from None


async def afetch_image(
    url: str,
    policy: ImageFetchPolicy | None = None,
    *,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Image:
    """The async twin of :func:`fetch_image` (``httpx.AsyncClient``, non-blocking DNS)."""
    state = _Fetch(url, policy or ImageFetchPolicy())
    try:
        async with httpx.AsyncClient(**_CLIENT, transport=transport) as client:
            while True:
                host, port = state.host_port()
                addresses = (
                    _resolve(resolver, host, port) if resolver else await _alookup(host, port)
                )
                response: httpx.Response | None = None
                for request in state.requests(client, addresses):
                    try:
                        response = await client.send(request, stream=True)
                        break
                    except httpx.ConnectError as error:
                        state.unreachable(request, error)
                assert response is not None
                try:
                    if state.redirected(response):
                        continue
                    body = state.body(response)
                    async for chunk in response.aiter_bytes():
                        body.add(chunk)
                    return state.image(body)
                finally:
                    await response.aclose()
    except httpx.HTTPError as error:
        raise state.failure(error) from None


# --- the I/O-free part both twins share ------------------------------------------------------


class _Fetch:
    """One fetch's state: the URL of the current hop, the hops taken, the deadline."""

    def __init__(self, url: str, policy: ImageFetchPolicy) -> None:
        self.policy = policy
        self.first = redact_url(url)
        self.deadline = time.monotonic() + policy.timeout
        self.hops = 0
        self.url = self._checked_url(url)
        self.failed_connects: list[str] = []

    @property
    def shown(self) -> str:
        # What error messages say: the URL without credentials or query string.
        here = redact_url(str(self.url))
        return here if here == self.first else f"{here} (redirected from {self.first})"

    def _checked_url(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            raise InvalidImageError(f"invalid image URL {redact_url(url)}: {error}") from None
        if parsed.scheme not in ("http", "https"):
            raise InvalidImageError(
                f"refused to fetch {redact_url(url)}: image URLs must be http or https"
            )
        if not parsed.host:
            raise InvalidImageError(f"invalid image URL {redact_url(url)}: it has no host")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise InvalidImageError(f"invalid image URL {redact_url(url)}: bad port {parsed.port}")
        if parsed.userinfo:
            raise InvalidImageError(
                f"refused to fetch {redact_url(url)}: the URL carries a user name or password, "
                "and llamaroute sends no credentials when it fetches images. Fetch the image "
                "yourself and pass the bytes."
            )
        return parsed

    def host_port(self) -> tuple[str, int]:
        """The host to resolve (ASCII, IDNA-encoded) and the port of the current hop."""
        port = self.url.port or (443 if self.url.scheme == "https" else 80)
        return self.url.raw_host.decode("ascii"), port

    def requests(
        self, client: httpx.Client | httpx.AsyncClient, addresses: list[str]
    ) -> Iterable[httpx.Request]:
        """One request per resolved address, in order, each to the IP literal itself; raises
        before yielding anything if any address is refused."""
        host = self.url.host
        if not addresses:
            raise InvalidImageError(f"cannot fetch {self.shown}: {host} has no addresses")
        for address in addresses:
            problem = address_problem(address, allow_private=self.policy.allow_private)
            if problem is not None:
                shown = host if host == address else f"{host} resolves to {address},"
                raise InvalidImageError(
                    f"refused to fetch {self.shown}: {shown} is {problem}. llamaroute does not "
                    "fetch image URLs inside your own network"
                    + (
                        "; pass ImageFetchPolicy(allow_private=True) if you need private "
                        "addresses, or fetch the image yourself and pass the bytes"
                        if problem in _ALLOWABLE
                        else ", even with allow_private=True"
                    )
                )
        headers = {
            "Host": self.url.netloc.decode("ascii"),
            "User-Agent": f"llamaroute/{__version__} (image fetch)",
            "Accept": "image/png, image/jpeg, image/webp, image/gif",
            "Accept-Encoding": "identity",
        }
        # Nothing carries over between hops: no cookie a first host set reaches a second one.
        client.cookies.clear()
        for address in addresses:
            yield client.build_request(
                "GET",
                self.url.copy_with(host=address.split("%", 1)[0]),
                headers=headers,
                # TLS: SNI and the certificate check use the real host name, not the IP.
                extensions={"sni_hostname": host},
                timeout=self.timeout(),
            )
        raise InvalidImageError(
            f"cannot fetch {self.shown}: could not connect to {host} "
            f"({'; '.join(self.failed_connects)})"
        )

    def unreachable(self, request: httpx.Request, error: httpx.ConnectError) -> None:
        self.failed_connects.append(f"{request.url.host}: {error or type(error).__name__}")

    def timeout(self) -> httpx.Timeout:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise InvalidImageError(
                f"fetching {self.shown} took longer than {self.policy.timeout:g} s; gave up"
            )
        return httpx.Timeout(remaining)

    def redirected(self, response: httpx.Response) -> bool:
        """Follow a redirect (checking the new URL) and say so, or accept a 200, or raise."""
        if response.status_code in _REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise InvalidImageError(
                    f"fetching {self.shown} failed: HTTP {response.status_code} without a Location"
                )
            if self.hops >= self.policy.max_redirects:
                raise InvalidImageError(
                    f"fetching {self.shown} failed: more than {self.policy.max_redirects} redirects"
                )
            self.hops += 1
            self.failed_connects.clear()
            try:
                target = str(self.url.join(location))
            except (httpx.InvalidURL, ValueError) as error:
                raise InvalidImageError(
                    f"fetching {self.shown} failed: bad redirect Location: {error}"
                ) from None
            self.url = self._checked_url(target)
            return True
        if response.status_code != 200:
            raise InvalidImageError(
                f"fetching {self.shown} failed: HTTP {response.status_code} "
                f"{response.reason_phrase}".rstrip()
            )
        return False

    def body(self, response: httpx.Response) -> _Body:
        """A size-capped collector for the response body, after checking its headers."""
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in _IDENTITY:
            raise InvalidImageError(
                f"fetching {self.shown} failed: the server sent compressed data "
                f"(Content-Encoding: {encoding}) though uncompressed data was asked for"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise InvalidImageError(self._too_large(f"{int(declared):,} bytes"))
        return _Body(self)

    def _too_large(self, size: str) -> str:
        return (
            f"the image at {self.shown} is too large ({size}; the fetch limit is "
            f"{self.policy.max_bytes:,} bytes: ImageFetchPolicy(max_bytes=...))"
        )

    def image(self, body: _Body) -> Image:
        data = b"".join(body.chunks)
        logger.debug("fetched an image from %s (%d bytes)", self.url.host, len(data))
        image = Image.from_bytes(data, origin=f"URL {self.shown}")
        return dataclasses.replace(image, url=str(self.url))

    def failure(self, error: httpx.HTTPError) -> InvalidImageError:
        if isinstance(error, httpx.TimeoutException):
            return InvalidImageError(
                f"fetching {self.shown} took longer than {self.policy.timeout:g} s; gave up"
            )
        return InvalidImageError(f"fetching {self.shown} failed: {type(error).__name__}: {error}")


_ALLOWABLE = frozenset(
    {"a loopback address", "a private address", "a shared (carrier-grade NAT) address",
     "a reserved, non-public address"}
)  # fmt: skip


class _Body:
    """The body read so far; refuses to grow past the cap or the deadline."""

    def __init__(self, fetch: _Fetch) -> None:
        self.fetch = fetch
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.fetch.policy.max_bytes:
            raise InvalidImageError(self.fetch._too_large(f"more than {self.size:,} bytes"))
        self.fetch.timeout()  # raises once the deadline has passed
        self.chunks.append(chunk)


def _lookup(host: str, port: int) -> list[str]:
    if _is_ip(host):
        return [host]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidImageError(f"cannot resolve image host {host}: {error}") from None
    return _unique(str(item[4][0]) for item in found)


async def _alookup(host: str, port: int) -> list[str]:
    if _is_ip(host):
        return [host]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidImageError(f"cannot resolve image host {host}: {error}") from None
    return _unique(str(item[4][0]) for item in found)


def _resolve(resolver: Resolver, host: str, port: int) -> list[str]:
    if _is_ip(host):
        return [host]
    try:
        return _unique(resolver(host, port))
    except OSError as error:
        raise InvalidImageError(f"cannot resolve image host {host}: {error}") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))
