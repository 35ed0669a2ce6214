"""The I/O-free part of an image fetch that the sync and async drivers in ``_fetch`` share: the
URL checks, the address checks, the requests to send, redirects, the body cap and the deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from .._exceptions import (
    ConfigurationError,
    InvalidImageError,
    LlamarouteError,
    ProviderTimeoutError,
)
from .._version import __version__
from ._addresses import IPAddress, host_address, judge, parse_address
from ._source import Image, ImageFetchPolicy, redact_url

__all__ = ["Body", "FetchState"]

logger = logging.getLogger("llamaroute")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_IDENTITY = frozenset({"", "identity"})

Trace = Callable[[str, dict[str, Any]], None]


class FetchState:
    """One fetch's state: the URL of the current hop, the hops taken, the deadline.

    The deadline is the sooner of ``policy.timeout`` and ``time_left`` (the seconds the
    caller's own call has left) from now. Running out of the policy's time is an
    :class:`~llamaroute.InvalidImageError` (the image could not be had in the time the app
    allows for images); running out of the caller's time is a
    :class:`~llamaroute.ProviderTimeoutError` with ``code="deadline"``: the call timed out,
    which says nothing about the image.
    """

    def __init__(self, url: str, policy: ImageFetchPolicy, time_left: float | None) -> None:
        if time_left is not None and (
            isinstance(time_left, bool)
            or not isinstance(time_left, int | float)
            or math.isnan(time_left)
        ):
            raise ConfigurationError(f"timeout must be a number of seconds, not {time_left!r}")
        self.policy = policy
        self.first = redact_url(url)
        self.hops = 0
        self.url, self.literal = self._checked_url(url)
        self.failed_connects: list[str] = []
        if self.literal is not None:  # refused before anything is set up, let alone connected
            self._checked_address(str(self.literal))
        #: Whether the caller's time, not the policy's, bounds this fetch.
        self.by_call = time_left is not None and time_left < policy.timeout
        self.limit = max(time_left, 0.0) if self.by_call and time_left is not None else None
        self.deadline = time.monotonic() + (
            self.limit if self.limit is not None else policy.timeout
        )
        #: Set (from another thread, by the sync driver's watchdog) once the deadline passed.
        self.timed_out = False

    @property
    def shown(self) -> str:
        # What error messages say: the URL without credentials or query string.
        here = redact_url(str(self.url))
        return here if here == self.first else f"{here} (redirected from {self.first})"

    def _checked_url(self, url: str) -> tuple[httpx.URL, IPAddress | None]:
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
        try:
            # 2130706433, 0x7f.1, [::127.0.0.1], ...: an address however it is written, never
            # a name for DNS to interpret.
            literal = host_address(parsed.raw_host.decode("ascii"))
        except ValueError as error:
            raise InvalidImageError(f"invalid image URL {redact_url(url)}: {error}") from None
        return parsed, literal

    def host_port(self) -> tuple[str, int]:
        """The host to resolve (ASCII, IDNA-encoded) and the port of the current hop."""
        port = self.url.port or (443 if self.url.scheme == "https" else 80)
        return self.url.raw_host.decode("ascii"), port

    def requests(
        self,
        client: httpx.Client | httpx.AsyncClient,
        addresses: list[str],
        trace: Trace | None = None,
    ) -> Iterable[httpx.Request]:
        """One request per address (the host's own if it is an IP literal, else the resolved
        ones), in order, each to the canonical form of the address that was checked; raises
        before yielding anything if any address is refused."""
        host = self.url.host
        checked = [self._checked_address(address) for address in addresses]
        if not checked:
            raise InvalidImageError(f"cannot fetch {self.shown}: {host} has no addresses")
        headers = {
            "Host": self.url.netloc.decode("ascii"),
            "User-Agent": f"llamaroute/{__version__} (image fetch)",
            "Accept": "image/png, image/jpeg, image/webp, image/gif",
            "Accept-Encoding": "identity",
        }
        # TLS: SNI and the certificate check use the real host name, not the IP.
        extensions: dict[str, Any] = {"sni_hostname": host}
        if trace is not None:
            extensions["trace"] = trace
        # Nothing carries over between hops: no cookie a first host set reaches a second one.
        client.cookies.clear()
        for ip in checked:
            yield client.build_request(
                "GET",
                self.url.copy_with(host=str(ip)),
                headers=headers,
                extensions=extensions,
                timeout=httpx.Timeout(self.remaining()),
            )
        raise InvalidImageError(
            f"cannot fetch {self.shown}: could not connect to {host} "
            f"({'; '.join(self.failed_connects)})"
        )

    def _checked_address(self, address: str) -> IPAddress:
        host = self.url.host
        ip = parse_address(address)
        verdict = judge(ip) if ip is not None else None
        if ip is not None and (
            verdict is None or (self.policy.allow_private and not verdict.always)
        ):
            return ip
        if self.literal is not None:
            shown = host if host == str(ip) else f"{host} (that is {ip})"
        else:
            shown = f"{host} resolves to {address},"
        problem = verdict.text if verdict is not None else "not an IP address"
        raise InvalidImageError(
            f"refused to fetch {self.shown}: {shown} is {problem}. llamaroute does not fetch "
            "image URLs inside your own network"
            + (
                ", even with allow_private=True"
                if verdict is None or verdict.always
                else "; pass ImageFetchPolicy(allow_private=True) if you need private "
                "addresses, or fetch the image yourself and pass the bytes"
            )
        )

    def unreachable(self, request: httpx.Request, error: httpx.ConnectError) -> None:
        self.failed_connects.append(f"{request.url.host}: {error or type(error).__name__}")

    # --- time ---------------------------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left; raises :meth:`out_of_time` once there are none."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.timed_out:
            raise self.out_of_time()
        return left

    def expired(self) -> bool:
        return self.timed_out or time.monotonic() >= self.deadline

    def out_of_time(self) -> LlamarouteError:
        if self.limit is not None:
            return ProviderTimeoutError(
                f"the call's timeout ran out while fetching the image at {self.shown} "
                f"({self.limit:.3g} s were left for the fetch)",
                code="deadline",
                retryable=False,
            )
        return InvalidImageError(
            f"fetching {self.shown} took longer than {self.policy.timeout:g} s; gave up "
            "(ImageFetchPolicy(timeout=...) bounds the whole fetch)"
        )

    # --- the answer ---------------------------------------------------------------------------

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
            self.url, self.literal = self._checked_url(target)
            return True
        if response.status_code != 200:
            raise InvalidImageError(
                f"fetching {self.shown} failed: HTTP {response.status_code} "
                f"{response.reason_phrase}".rstrip()
            )
        return False

    def body(self, response: httpx.Response) -> Body:
        """A size-capped collector for the response body, after checking its headers."""
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in _IDENTITY:
            raise InvalidImageError(
                f"fetching {self.shown} failed: the server sent compressed data "
                f"(Content-Encoding: {encoding}) though uncompressed data was asked for"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise InvalidImageError(self.too_large(f"{int(declared):,} bytes"))
        return Body(self)

    def too_large(self, size: str) -> str:
        return (
            f"the image at {self.shown} is too large ({size}; the fetch limit is "
            f"{self.policy.max_bytes:,} bytes: ImageFetchPolicy(max_bytes=...))"
        )

    def image(self, body: Body) -> Image:
        # A body cut short by the deadline (the sync watchdog ends it as an early EOF) is not
        # an image: the time ran out.
        if self.expired():
            raise self.out_of_time()
        data = b"".join(body.chunks)
        logger.debug("fetched an image from %s (%d bytes)", self.url.host, len(data))
        image = Image.from_bytes(data, origin=f"URL {self.shown}")
        return dataclasses.replace(image, url=str(self.url))

    def failure(self, error: httpx.HTTPError) -> LlamarouteError:
        # Each read's own timeout is at most the time left, so an httpx timeout means the
        # deadline passed; and any error once it has passed is the watchdog's doing.
        if isinstance(error, httpx.TimeoutException) or self.expired():
            return self.out_of_time()
        return InvalidImageError(f"fetching {self.shown} failed: {type(error).__name__}: {error}")


class Body:
    """The body read so far; refuses to grow past the cap or the deadline."""

    def __init__(self, fetch: FetchState) -> None:
        self.fetch = fetch
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.fetch.policy.max_bytes:
            raise InvalidImageError(self.fetch.too_large(f"more than {self.size:,} bytes"))
        self.fetch.remaining()  # raises once the deadline has passed
        self.chunks.append(chunk)
