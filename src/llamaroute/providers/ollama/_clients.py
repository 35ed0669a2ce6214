"""The ollama clients an :class:`~llamaroute.providers.OllamaProvider` builds, and the secrets
it must never show.

* :class:`Clients` builds one ``ollama.Client``, and one ``ollama.AsyncClient`` per event
  loop, on first use, each over the guarded transport of ``_guard.py``. An async client's
  connections belong to the loop they were opened on: an ``AsyncClient`` reused across two
  ``asyncio.run()`` calls would otherwise find its pool full of connections of a closed loop
  (``RuntimeError: Event loop is closed``). A client built for a loop is closed when that loop
  finalises its async generators (``asyncio.run`` does, on its way out), so nothing is left
  open, and a new loop gets a new client without touching the old one.
* :class:`Redactor` scrubs every credential the provider sends (the API key, any
  ``Authorization``-like header, credentials from the host URL, ``$OLLAMA_API_KEY``, which the
  ollama client reads on its own) from text built out of what a server sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import threading
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from typing import Any

import httpx
import ollama

from ..._secrets import Secret
from ._guard import guarded_transport

__all__ = ["Clients", "Redactor", "header_secrets", "send_chat"]

#: The chat endpoint, for the requests whose JSON body is written here.
CHAT = "/api/chat"

#: Headers whose values are credentials.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}
)


def header_secrets(headers: Mapping[str, str]) -> Iterator[str]:
    """Every form of the credentials in ``headers``: each value, its part after the scheme
    (``Bearer <key>``), and for Basic auth the decoded ``user:password`` and password."""
    for name, value in headers.items():
        if name.lower() not in SECRET_HEADERS:
            continue
        yield value
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            continue
        yield credential
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(credential, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            yield pair
            yield pair.partition(":")[2]


class Redactor:
    """Replaces each secret (4 characters or more) in a text with its masked form."""

    __slots__ = ("_secrets",)

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first: "Bearer <key>" is masked whole before "<key>" alone is looked for.
        unique = sorted({value for value in values if len(value) >= 4}, key=len, reverse=True)
        self._secrets = tuple(Secret(value) for value in unique)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = secret.redact(text)
        return text


async def _close_at_loop_end(held: list[Any]) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` while the loop runs; the loop's async-generator finaliser
    (``asyncio.run`` calls it on its way out) resumes it, and it closes the client."""
    try:
        yield
    finally:
        if held:
            await held.pop().close()


def _park(generator: AsyncGenerator[None, None]) -> None:
    # Run it to its first yield without awaiting anything: this registers it with the running
    # loop (the first-iteration hook), which is what makes the loop finalise it.
    with contextlib.suppress(StopIteration):
        generator.__anext__().send(None)


def _retire(generator: AsyncGenerator[None, None], held: list[Any]) -> None:
    """Finish a parked closer of a loop that ended without finalising it: its client is left
    to the collector (that loop cannot close it), and no finaliser may run on a dead loop."""
    held.clear()  # so that it finishes without awaiting anything
    if getattr(generator, "ag_frame", None) is None:  # already finished
        return
    with contextlib.suppress(StopIteration, RuntimeError):
        generator.aclose().send(None)


_Entry = tuple[Any, AsyncGenerator[None, None], list[Any]]


class Clients:
    """The provider's ollama clients: built on first use, closed by :meth:`close` and
    :meth:`aclose`; an injected client is used as it is and never closed here."""

    def __init__(
        self,
        *,
        host: str,
        timeout: httpx.Timeout,
        headers: Mapping[str, str],
        client: ollama.Client | None = None,
        async_client: ollama.AsyncClient | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "host": host, "timeout": timeout, "follow_redirects": False, "headers": dict(headers),
        }  # fmt: skip
        self._https = host.startswith("https:")
        self._injected, self._injected_async = client, async_client
        #: Whether the sync (async) client is built here, not injected, and has the request
        #: method (private: a future ollama without it is sent through ``chat`` as before)
        #: that a body written already goes through.
        direct = callable(getattr(ollama.Client, "_request", None))
        self.own_sync = client is None and direct
        self.own_async = async_client is None and callable(
            getattr(ollama.AsyncClient, "_request", None)
        )
        self._sync: ollama.Client | None = None
        # Per loop: the client, the parked generator that closes it when the loop ends, and
        # the list through which that generator holds it.
        self._async: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._lock = threading.Lock()

    def _build(self, *, asynchronous: bool) -> Any:
        cls: Any = ollama.AsyncClient if asynchronous else ollama.Client
        return cls(
            **self._settings,
            # ollama.Client.chat takes no timeout: a call's own timeouts travel in its guard,
            # which the transport applies to the request.
            transport=guarded_transport(asynchronous=asynchronous, https=self._https),
        )

    def values(self) -> list[Any]:
        """The clients built so far and not closed: the sync one first, then one per loop."""
        with self._lock:
            built = [self._sync] if self._sync is not None else []
            return built + [entry[0] for entry in self._async.values()]

    def sync(self) -> ollama.Client:
        if self._injected is not None:
            return self._injected
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    client = self._sync = self._build(asynchronous=False)
        return client

    def async_(self) -> ollama.AsyncClient:
        """The async client of the running loop."""
        if self._injected_async is not None:
            return self._injected_async
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            with self._lock:
                entry = self._async.get(loop)
                if entry is None:
                    for old in [old for old in self._async if old.is_closed()]:
                        _, closer, held = self._async.pop(old)
                        _retire(closer, held)
                    client = self._build(asynchronous=True)
                    held = [client]
                    closer = _close_at_loop_end(held)
                    _park(closer)
                    entry = self._async[loop] = (client, closer, held)
        return entry[0]  # type: ignore[no-any-return]

    def __del__(self) -> None:
        # Parked closers of loops that ended without finalising them (a loop closed without
        # shutdown_asyncgens()) are finished here, before the collector would hand them to
        # their dead loop's finaliser, which would fail noisily. Those of loops still running
        # are left to their loop, which closes their clients.
        for loop, (_, closer, held) in list(self._async.items()):
            if loop.is_closed():
                _retire(closer, held)

    def close(self) -> None:
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Close the sync client and the running loop's async client (others belong to loops
        of their own, which close them when they end)."""
        self.close()
        with self._lock:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # closes the client, and retires the closer with it


def send_chat(client: Any, request: dict[str, Any], body: Any, *, stream: bool) -> Any:
    """``client.chat(**request)``, or the same request with its JSON body written already
    (``body``, from ``_body.py``) through the client's own request method (what ``chat``
    itself calls). The answer is read as ``chat`` reads it. A stream's lines come as the
    plain dicts the client decoded (the class it is given is called on each: dict copies
    it), for ``StreamState`` to take a plain text delta as it is and to build any other line
    into the client's ``ChatResponse``, as ``chat`` would have (see ``_stream.py``). The
    async client's methods return the awaitable to await."""
    if body is None:
        return client.chat(**request)
    if stream:
        return client._request(dict, "POST", CHAT, json=body, stream=True)
    return client._request(ollama.ChatResponse, "POST", CHAT, json=body, stream=False)
