"""Fetching an image URL for a provider that cannot take URLs: a security boundary.

An app that passes user-supplied URLs to llamaroute must not become a way into its own network
(server-side request forgery). So, by default, :func:`fetch_image`:

* takes ``http`` and ``https`` URLs only, and refuses URLs with a user name or password (httpx
  would turn them into a Basic ``Authorization`` header);
* reads an IP literal host the way a browser would (``2130706433``, ``0x7f.1``, ``0177.0.0.1``
  and ``127.1`` are all 127.0.0.1), resolves a host name itself, and refuses the fetch if *any*
  address is loopback, private (RFC 1918, IPv6 ULA, site-local), shared (CGNAT 100.64/10),
  link-local, a cloud metadata address, unspecified, multicast, broadcast or otherwise not
  globally routable, looking through every IPv6 form that carries an IPv4 address (see
  ``_addresses`` for the table and what is refused outright);
* then connects to the address it checked, not to the host name: the request goes to an IP
  literal, with the ``Host`` header, TLS SNI and certificate check set to the real host name. DNS
  is asked once, so a host that answers "public" to the check and "127.0.0.1" to the connection
  (DNS rebinding) cannot slip through. (The alternative, checking the socket's peer address after
  connecting, would already have sent the request to the internal address.)
* follows redirects itself (at most ``max_redirects``), checking every hop the same way;
* uses a fresh client with no cookies kept between hops, no credentials, no proxy or
  certificate settings from the environment (``trust_env=False``) and no connection reuse;
* asks for uncompressed data and refuses compressed bodies, so a gzip bomb cannot expand past
  the cap; stops reading at ``max_bytes``; gives up when ``timeout`` seconds have passed in all,
  DNS, connecting, redirects and every read included, however slowly the server trickles bytes
  (httpx's own timeouts are per read: async fetches run under ``asyncio.timeout``, sync ones
  under a watchdog that shuts the connection down at the deadline). A caller with its own
  deadline passes the seconds it has left as ``timeout=``.

:class:`ImageFetchPolicy` ``(allow_private=True)`` allows loopback, private, shared and reserved
addresses (the IPv6 forms refused outright among them) for apps that fetch from their own
servers. Link-local and metadata addresses (169.254.169.254, fd00:ec2::254, ...), unspecified,
multicast and broadcast addresses, NAT64 local-use addresses, and any IPv6 form carrying one of
those, stay refused even then: no image lives there, and the metadata service holds cloud
credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from .._exceptions import InvalidImageError
from ._addresses import address_problem
from ._fetch_state import FetchState
from ._source import Image, ImageFetchPolicy

__all__ = [
    "ImageFetchPolicy",
    "Resolver",
    "address_problem",
    "afetch_image",
    "fetch_image",
]

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


def fetch_image(
    url: str,
    policy: ImageFetchPolicy | None = None,
    *,
    timeout: float | None = None,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Image:
    """Fetch an ``http(s)://`` image under ``policy`` (the default policy if ``None``).

    Returns an :class:`Image` with the bytes (format sniffed from them) and ``url`` set.
    Raises :class:`~llamaroute.InvalidImageError` when the URL is refused, the fetch fails,
    ``policy.timeout`` runs out, or the body is not an image.

    ``timeout`` is the seconds the caller has left (a call's deadline): the fetch then ends by
    the sooner of the two, and running out of the caller's time raises
    :class:`~llamaroute.ProviderTimeoutError` with ``code="deadline"`` instead, since that is
    the call timing out, not a bad image. ``resolver`` and ``transport`` are for tests.
    """
    state = FetchState(url, policy or ImageFetchPolicy(), timeout)
    watchdog = _Watchdog(state)
    try:
        with httpx.Client(**_CLIENT, transport=transport) as client:
            while True:
                addresses = _addresses(state, resolver)
                response: httpx.Response | None = None
                for request in state.requests(client, addresses, trace=watchdog.trace):
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
                    watchdog.release()
    except httpx.HTTPError as error:
        raise state.failure(error) from None
    finally:
        watchdog.stop()


async def afetch_image(
    url: str,
    policy: ImageFetchPolicy | None = None,
    *,
    timeout: float | None = None,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Image:
    """The async twin of :func:`fetch_image` (``httpx.AsyncClient``, non-blocking DNS, the
    whole fetch under one ``asyncio.timeout``)."""
    state = FetchState(url, policy or ImageFetchPolicy(), timeout)
    scope = asyncio.timeout(state.remaining())
    try:
        async with scope:
            return await _afetch(state, resolver, transport)
    except TimeoutError:
        if scope.expired():
            raise state.out_of_time() from None
        raise


async def _afetch(
    state: FetchState, resolver: Resolver | None, transport: httpx.AsyncBaseTransport | None
) -> Image:
    try:
        async with httpx.AsyncClient(**_CLIENT, transport=transport) as client:
            while True:
                addresses = await _aaddresses(state, resolver)
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


class _Watchdog:
    """Ends a sync fetch at its deadline, whatever the server sends.

    httpx's timeouts apply to each read, so a server sending a byte just inside each one holds
    a blocking read for ever. At the deadline a timer thread shuts the connection down, which
    wakes the blocked read with an end of stream; the fetch then sees that its time is up. The
    socket is reached through httpcore's ``trace`` extension when the TCP connection is made
    (before TLS, before the request is sent), and shut down through a duplicate descriptor
    owned here, so that the shutdown can never land on a descriptor the connection has closed
    and the process reused. (Transports that are not httpcore's, such as ``MockTransport``,
    send no trace; for them the deadline is checked between reads.)
    """

    def __init__(self, state: FetchState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        delay = max(state.deadline - time.monotonic(), 0.0)
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.name = "llamaroute-image-fetch-deadline"
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        get_extra_info = getattr(info.get("return_value"), "get_extra_info", None)
        raw = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(raw, socket.socket):
            return
        with self._lock:
            self._close()
            try:
                self._socket = raw.dup()
            except OSError:  # out of descriptors: the deadline is then checked between reads
                return
            if self._state.timed_out:  # connected just after the deadline
                self._shutdown()

    def release(self) -> None:
        """The hop's connection is done with (its socket closed, or about to be)."""
        with self._lock:
            self._close()

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join()  # so that no thread outlives the fetch
        self.release()

    def _fire(self) -> None:
        with self._lock:
            self._state.timed_out = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                self._socket.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _addresses(state: FetchState, resolver: Resolver | None) -> list[str]:
    """The current hop's addresses: the host itself if it is an IP literal, else what DNS (or
    ``resolver``) says, asked once, in a thread that the fetch waits for only while it has time
    left (a lookup that hangs is left to finish on its own)."""
    if state.literal is not None:
        return [str(state.literal)]
    host, port = state.host_port()
    lookup = resolver or _getaddrinfo
    outcome: list[list[str] | BaseException] = []

    def run() -> None:
        try:
            outcome.append(list(lookup(host, port)))
        except BaseException as error:  # handed to the fetch's own thread
            outcome.append(error)

    thread = threading.Thread(target=run, name="llamaroute-image-dns", daemon=True)
    thread.start()
    thread.join(state.remaining())
    if not outcome:
        raise state.out_of_time()
    (found,) = outcome
    if isinstance(found, OSError | UnicodeError):
        raise InvalidImageError(f"cannot resolve image host {host}: {found}") from None
    if isinstance(found, BaseException):
        raise found
    return _unique(found)


async def _aaddresses(state: FetchState, resolver: Resolver | None) -> list[str]:
    if state.literal is not None:
        return [str(state.literal)]
    host, port = state.host_port()
    try:
        if resolver is not None:
            return _unique(resolver(host, port))
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidImageError(f"cannot resolve image host {host}: {error}") from None
    return _unique(str(item[4][0]) for item in found)


def _getaddrinfo(host: str, port: int) -> list[str]:
    return [str(item[4][0]) for item in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))
