"""The Ollama provider: the I/O around the wire functions, over the official ``ollama`` client.

Building the call, parsing answers and stream lines, and mapping errors are the plain
functions of ``_wire.py``, shared by the sync and async methods; only the lines that do I/O
are written twice. ``GET /api/tags`` (the models pulled on the server) answers
:meth:`OllamaProvider.available`, and picks the installed name of a model that has several.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import Any, ClassVar, cast

import httpx
import ollama

from ..._exceptions import ConfigurationError
from ..._secrets import Secret
from ...catalog import Catalog, Route
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import attempt_timeout, finite_timeout, request_timeout, timeout_hooks
from ._wire import (
    DEFAULT_HOST,
    NAME,
    StreamState,
    build_request,
    client_errors,
    normalise_host,
    parse_response,
)

__all__ = ["API_KEY_ENV", "DEFAULT_TIMEOUT", "HOST_ENV", "PROBE_TIMEOUT", "PROBE_TTL",
           "OllamaProvider"]  # fmt: skip

HOST_ENV = "OLLAMA_HOST"
API_KEY_ENV = "OLLAMA_API_KEY"

#: Always finite (the ollama client's own default is no timeout at all). Connecting is short:
#: the server is local or on the LAN, and a refused port fails at once anyway. Reading is long:
#: the first token waits for the model to load, which takes minutes for the 90B model.
DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=10.0)

#: The availability probe must answer "no" fast, without waiting for a chat timeout.
PROBE_TIMEOUT = httpx.Timeout(connect=0.5, read=2.0, write=2.0, pool=0.5)
PROBE_TTL = 10.0

logger = logging.getLogger("llamaroute")


class OllamaProvider(Provider):
    """Llama 3.2 on an Ollama server, through the official ``ollama`` client.

    Args:
        host: the server (default ``$OLLAMA_HOST``, else ``http://127.0.0.1:11434``); a bare
            ``host:port`` works, as with the ``ollama`` CLI.
        timeout: an ``httpx.Timeout`` or seconds; always finite.
        headers: extra HTTP headers (for a server behind a proxy).
        api_key: sent as ``Authorization: Bearer`` (default ``$OLLAMA_API_KEY``, if set).
        keep_alive: how long the server keeps the model loaded after a call (``"10m"``,
            seconds, ``-1`` forever, ``0`` unload at once); default: the server's (5 minutes).
        num_ctx: a fixed context size for every call, instead of one sized per request (see
            :func:`estimate_num_ctx`).
        probe_ttl, probe_timeout: how long an :meth:`available` answer is reused, and the
            timeouts of its request (an injected client keeps its own).
        clock: the monotonic clock the probe cache reads (injectable for tests).
        client, async_client: injected ``ollama.Client`` / ``ollama.AsyncClient`` (for custom
            transports); used as they are, with their own timeouts, and not closed here.
    """

    name: ClassVar[str] = NAME
    local: ClassVar[bool] = True

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        keep_alive: float | str | None = None,
        num_ctx: int | None = None,
        probe_ttl: float = PROBE_TTL,
        probe_timeout: httpx.Timeout | float = PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        client: ollama.Client | None = None,
        async_client: ollama.AsyncClient | None = None,
    ) -> None:
        self.host = normalise_host(host or os.environ.get(HOST_ENV) or DEFAULT_HOST)
        self.timeout = finite_timeout(timeout, "Ollama timeout")
        self.probe_timeout = finite_timeout(probe_timeout, "Ollama probe_timeout")
        if num_ctx is not None and num_ctx < 1:
            raise ConfigurationError("num_ctx must be a positive number of tokens")
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.probe_ttl = probe_ttl
        self._clock = clock
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        self._key = Secret(key)
        self._headers = dict(headers or {})
        if key and not any(name.lower() == "authorization" for name in self._headers):
            self._headers["Authorization"] = f"Bearer {key}"
        self._clients: dict[str, Any] = {}
        self._injected: dict[str, Any] = {"sync": client, "async": async_client}
        self._lock = threading.Lock()
        self._probe: tuple[float, frozenset[str] | None] | None = None

    def __repr__(self) -> str:
        key = f", api_key={self._key.masked!r}" if self._key else ""
        return f"OllamaProvider(host={self.host!r}{key})"

    # --- clients: built once, on first use --------------------------------------------------

    def _client(self, kind: str) -> Any:
        client = self._clients.get(kind)
        if client is None:
            with self._lock:
                client = self._clients.get(kind)
                if client is None:
                    asynchronous = kind == "async"
                    cls: Any = ollama.AsyncClient if asynchronous else ollama.Client
                    client = self._clients[kind] = cls(
                        host=self.host,
                        timeout=self.timeout,
                        follow_redirects=False,
                        headers=self._headers,
                        # ollama.Client.chat takes no timeout: a call's own budget goes in here.
                        event_hooks=timeout_hooks(asynchronous=asynchronous),
                    )
        return client

    def _sync(self) -> ollama.Client:
        return cast(ollama.Client, self._injected["sync"] or self._client("sync"))

    def _async(self) -> ollama.AsyncClient:
        return cast(ollama.AsyncClient, self._injected["async"] or self._client("async"))

    # --- the shared halves of every call -----------------------------------------------------

    def _errors(self, model_id: str) -> client_errors:
        """Map whatever the ollama client raises inside the block (and nothing of ours)."""
        return client_errors(model_id, self.host, self._key.redact)

    def _request(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        return build_request(
            call, stream=stream, model=self._tag_for(call.route), keep_alive=self.keep_alive,
            num_ctx=self.num_ctx,
        )  # fmt: skip

    def _attempt_timeout(self, call: ProviderCall) -> httpx.Timeout | None:
        return None if call.timeout is None else attempt_timeout(call.timeout, self.timeout)

    def _tag_for(self, route: Route) -> str:
        # When a fresh probe saw the route's tag missing but an alternate of it installed
        # (llama3.2:latest for llama3.2:3b), send the installed name: the server knows no
        # aliases, so the route's own tag would be a 404.
        installed = self._fresh()[1]
        if installed is None or _tag(route.model_id) in installed:
            return route.model_id
        for alternate in route.alternate_ids:
            if _tag(alternate) in installed:
                return alternate
        return route.model_id

    # --- chat and stream ---------------------------------------------------------------------

    def chat(self, call: ProviderCall) -> ProviderResult:
        request = self._request(call, stream=False)
        model_id = request["model"]
        with self._errors(model_id), request_timeout(self._attempt_timeout(call)):
            response = self._sync().chat(**request)
        return parse_response(response, model_id=model_id)

    async def achat(self, call: ProviderCall) -> ProviderResult:
        request = self._request(call, stream=False)
        model_id = request["model"]
        with self._errors(model_id), request_timeout(self._attempt_timeout(call)):
            response = await self._async().chat(**request)
        return parse_response(response, model_id=model_id)

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        request = self._request(call, stream=True)
        model_id = request["model"]
        state, errors = StreamState(model_id), self._errors(model_id)
        with errors:
            lines = cast(Iterator[ollama.ChatResponse], self._sync().chat(**request))
        try:
            # Lazy client: the request itself goes out on the first next(), so only that one
            # needs the attempt's timeout (later reads keep the timeouts it was sent with).
            with errors, request_timeout(self._attempt_timeout(call)):
                chunk = next(lines, None)
            # One mapping block around the loop rather than one per chunk: feed() raises
            # nothing, and what comes in at the yield (GeneratorExit) passes through unmapped.
            with errors:
                while chunk is not None:
                    if piece := state.feed(chunk):
                        yield piece
                    if state.final is not None:
                        # Read on to the end of the response, so that the client hands the
                        # connection back to its pool: closing a response that is not read to
                        # the end drops the connection, and the next call pays a new connect.
                        # The answer is complete: what happens past it cannot fail the call.
                        with contextlib.suppress(Exception):
                            next(lines, None)
                        break
                    chunk = next(lines, None)
        finally:
            with errors:
                cast(Generator[Any, None, None], lines).close()
        yield state.result()

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        request = self._request(call, stream=True)
        model_id = request["model"]
        state, errors = StreamState(model_id), self._errors(model_id)
        with errors:
            lines = cast(AsyncIterator[ollama.ChatResponse], await self._async().chat(**request))
        try:
            with errors, request_timeout(self._attempt_timeout(call)):  # as in stream()
                chunk = await anext(lines, None)
            with errors:
                while chunk is not None:
                    if piece := state.feed(chunk):
                        yield piece
                    if state.final is not None:
                        with contextlib.suppress(Exception):  # to the end, as in stream()
                            await anext(lines, None)
                        break
                    chunk = await anext(lines, None)
        finally:
            with errors:
                await cast(AsyncGenerator[Any, None], lines).aclose()
        yield state.result()

    # --- availability ------------------------------------------------------------------------

    def _fresh(self) -> tuple[bool, frozenset[str] | None]:
        with self._lock:
            probe = self._probe
        if probe is not None and self._clock() - probe[0] < self.probe_ttl:
            return True, probe[1]
        return False, None

    def _store(self, listing: Any, error: Exception | None = None) -> frozenset[str] | None:
        # None: the server is down or answered nonsense. That is remembered for the TTL too,
        # so a router that asks per call does not pay a connect attempt each time.
        installed = None
        if error is None:
            installed = frozenset(_tag(item.model) for item in listing.models if item.model)
        else:
            logger.debug("ollama probe of %s failed: %s", self.host, type(error).__name__)
        with self._lock:
            self._probe = (self._clock(), installed)
        return installed

    def diagnose(self) -> str:
        self.available("llama3.2")  # refreshes the cached probe when it is stale
        _, installed = self._fresh()
        if installed is None:
            return f"no Ollama server answering at {self.host} (start it: ollama serve)"
        pulled = sorted(tag for tag in installed if tag.startswith("llama3.2"))
        listed = ", ".join(pulled) or "none yet (ollama pull llama3.2)"
        return f"server up at {self.host}; Llama 3.2 tags pulled: {listed}"

    def available(self, model: str | Route) -> bool:
        """Whether the server is up and has ``model`` (a tag or an Ollama route) pulled.

        One ``GET /api/tags`` with short timeouts, its answer reused for ``probe_ttl``
        seconds; a server that is down answers ``False`` at once. A route counts as present
        when its tag or one of its ``alternate_ids`` is listed. Never raises for a server
        problem.
        """
        fresh, installed = self._fresh()
        if not fresh:
            try:
                with request_timeout(self.probe_timeout):
                    installed = self._store(self._sync().list())
            except Exception as error:  # whatever went wrong, the answer is "not available"
                installed = self._store(None, error)
        return installed is not None and any(_tag(tag) in installed for tag in _wanted(model))

    async def aavailable(self, model: str | Route) -> bool:
        """Async :meth:`available` (the same cache)."""
        fresh, installed = self._fresh()
        if not fresh:
            try:
                with request_timeout(self.probe_timeout):
                    installed = self._store(await self._async().list())
            except Exception as error:
                installed = self._store(None, error)
        return installed is not None and any(_tag(tag) in installed for tag in _wanted(model))

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            client = self._clients.pop("sync", None)
        if client is not None:
            # ollama.Client.close() arrived in 0.6.2; older clients only hold the httpx client.
            (getattr(client, "close", None) or client._client.close)()

    async def aclose(self) -> None:
        self.close()
        with self._lock:
            client = self._clients.pop("async", None)
        if client is not None:
            await (getattr(client, "close", None) or client._client.aclose)()


def _tag(name: str) -> str:
    # A tag without a suffix means ":latest" (llama3.2 == llama3.2:latest).
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _wanted(model: str | Route) -> tuple[str, ...]:
    """The tags that count as ``model``: its own and the route's ``alternate_ids``."""
    if isinstance(model, Route):
        return (model.model_id, *model.alternate_ids)
    for spec in Catalog.builtin().models():
        for route in spec.routes_for(NAME, include_opt_in=True):
            if route.answers_to(model):
                return (model, route.model_id, *route.alternate_ids)
    return (model,)
