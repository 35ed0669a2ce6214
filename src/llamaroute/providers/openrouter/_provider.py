"""The OpenRouter provider: the I/O around the wire functions, over httpx.

Not the openai SDK: its own retries would stack with ours, and it costs 2x raw httpx per call.
Building the body, parsing answers and stream chunks, and mapping errors are the plain
functions of ``_wire.py`` and ``_errors.py``, shared by the sync and async methods; only the
lines that do I/O are written twice.

Every answer is read under the attempt's deadline and a size cap (``_reading.py``): httpx's
own timeouts are per read, and a server that trickles bytes or never ends its body would
otherwise hold the caller, and its memory, for as long as it likes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from decimal import Decimal
from typing import ClassVar

import httpx

from ..._exceptions import ConfigurationError, MalformedResponseError, ProviderError
from ..._secrets import Secret
from ..._version import __version__
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import (
    DEFAULT_TIMEOUT,
    DirectPost,
    aclose_response,
    attempt_timeout,
    close_response,
    load_json,
    transport_failure,
)
from .._pools import AsyncPools
from .._reading import (
    BodyReader,
    StreamClock,
    deadline_after,
    deadline_error,
    deadline_scope,
    deadline_var,
    enforce_deadlines,
)
from .._sse import SSEDecoder
from ._events import stream_events
from ._generation import fetch_generation_cost
from ._settings import api_root, header_safe, positive
from ._wire import NAME, StreamParser, build_payload, map_error, parse_response

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL", "OpenRouterProvider"]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
API_KEY_ENV = "OPENROUTER_API_KEY"
BASE_URL_ENV = "OPENROUTER_BASE_URL"
Result = ProviderResult
_MIB = 1024 * 1024
#: An error answer is read only this far: its first lines say what went wrong.
_ERROR_BODY_BYTES = 64 * 1024


class OpenRouterProvider(Provider):
    """Llama 3.2 on OpenRouter.

    Args:
        api_key: the OpenRouter key (default: ``$OPENROUTER_API_KEY``).
        base_url: the API root (default ``https://openrouter.ai/api/v1``, or
            ``$OPENROUTER_BASE_URL``); any OpenAI-compatible gateway or a test server works.
            Not the endpoint: a URL ending in ``/chat/completions`` is refused.
        app_url, app_title: attribution headers (``HTTP-Referer``, ``X-OpenRouter-Title``).
        timeout: an ``httpx.Timeout`` or seconds, per network operation; always finite. A
            call's ``timeout=`` bounds the whole answer on top of it (headers and body; for a
            stream, everything up to its first text).
        stream_idle_timeout: the longest a stream may go without new text, before its first
            text or after it (seconds, default 60; ``None``: no limit). Keep-alive comments,
            empty events and chunks without text do not count as new text. After the first
            text the call's ``timeout=`` no longer applies (the answer is on its way and
            cannot fall back); this bound does.
        max_response_bytes: the cap on a non-streamed answer's body (default 16 MiB).
        max_stream_bytes: the cap on everything a stream sends (default 64 MiB).
        max_event_bytes: the cap on one line or one event of a stream (default 1 MiB).
            An answer over a cap fails with a :class:`~llamaroute.MalformedResponseError`
            coded ``response_too_large``, not retried, after reading no more than the cap.
        http_client, async_http_client: injected httpx clients (for tests, proxies, custom
            TLS). They are used as they are and not closed by this provider; their reads are
            checked against the call's deadline between reads only (a single blocking read
            is bounded by their own timeouts).
        max_connections, max_keepalive_connections: this provider's own HTTP pools (one per
            event loop): calls in flight at once (more wait, within the ``pool`` timeout) and
            idle connections kept for reuse (default 100 and 20, httpx's: httpcore checks every
            idle connection per request; 100 kept made 100 concurrent calls ~7x slower).
        deployment, rpm, tpm, weight: this key's name when a client holds several OpenRouter
            keys (default ``"openrouter"``), its requests and tokens per minute (checked before
            sending; ``None``: no limit) and its share for the ``weighted`` strategy.
    """

    name: ClassVar[str] = NAME

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        app_url: str | None = None,
        app_title: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        stream_idle_timeout: float | None = 60.0,
        max_response_bytes: int = 16 * _MIB,
        max_stream_bytes: int = 64 * _MIB,
        max_event_bytes: int = _MIB,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        deployment: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        weight: float = 1.0,
    ) -> None:
        self._deploy(deployment, rpm, tpm, weight)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ConfigurationError(
                f"OpenRouter needs an API key: pass api_key= or set {API_KEY_ENV}"
            )
        if not header_safe(key):
            # httpx would fail on the first call, quoting the header (and so the key) in its
            # error: say it now, without the key.
            raise ConfigurationError(
                "the OpenRouter API key has characters an HTTP header cannot carry (spaces at"
                " its ends, control characters or non-ASCII letters): check how it was copied"
            )
        self._key = Secret(key)
        self.base_url = api_root(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
        if isinstance(timeout, int | float):
            timeout = httpx.Timeout(float(timeout))
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            raise ConfigurationError("OpenRouter timeouts must be finite (no None parts)")
        self.timeout = timeout
        if stream_idle_timeout is not None and not positive(stream_idle_timeout):
            raise ConfigurationError("stream_idle_timeout must be positive seconds, or None")
        self.stream_idle_timeout = stream_idle_timeout
        caps = (max_response_bytes, max_stream_bytes, max_event_bytes)
        pool = (max_connections, max_keepalive_connections)
        if not all(isinstance(n, int) and positive(n) for n in caps + pool):
            raise ConfigurationError("the max_*_bytes caps and pool sizes must be positive ints")
        self.max_response_bytes, self.max_stream_bytes, self.max_event_bytes = caps
        self._limits = httpx.Limits(max_connections=pool[0], max_keepalive_connections=min(pool))
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": f"llamaroute/{__version__}",
            # Uncompressed: answers are small, a size cap then counts what is really held,
            # and no compressing proxy buffers a stream.
            "Accept-Encoding": "identity",
        }
        if app_url:
            self._headers["HTTP-Referer"] = app_url
        if app_title:
            self._headers["X-OpenRouter-Title"] = app_title
            self._headers["X-Title"] = app_title  # the older name, still accepted
        # Parsed once: httpx would parse a str URL again on every request (~15 us).
        self._url = httpx.URL(f"{self.base_url}/chat/completions")
        self._client = http_client
        self._direct: DirectPost | None = None  # (our own sync client's: see _send)
        self._injected_async = async_http_client
        self._owns_client = http_client is None
        # Whether our own pools obey the deadline in every network operation (they do unless
        # httpx's internals change): then httpx's per-operation timeouts need not be cut to
        # the attempt's time, which would also cut a stream's waits after its first text.
        self._precise = True
        self._async_pools = AsyncPools(self._build_async)  # ours: one per event loop
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OpenRouterProvider(base_url={self.base_url!r}, api_key={self._key.masked!r}"
            f"{self._deployment_repr()})"
        )

    # Pools are built once, on first use, and reused for every call. Our own pools carry the
    # headers, so that requests need not merge them in one by one (~9 us a request); an
    # injected client gets them with each request.
    def _sync(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = httpx.Client(
                        timeout=self.timeout,
                        follow_redirects=False,
                        headers=self._headers,
                        limits=self._limits,
                    )
                    self._precise &= enforce_deadlines(client)
                    self._direct = DirectPost(client, self._url)
                    self._client = client
        return self._client

    async def _async(self) -> httpx.AsyncClient:
        """The injected async client, or the running event loop's own pool (see
        ``_pools.py``: one AsyncClient may serve several ``asyncio.run()`` calls)."""
        if self._injected_async is not None:
            return self._injected_async
        return await self._async_pools.get()

    def _build_async(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, headers=self._headers, limits=self._limits
        )
        self._precise &= enforce_deadlines(client)
        return client

    @property
    def _async_client(self) -> httpx.AsyncClient | None:
        """The async client of the running event loop (the injected one, if any), for
        inspection; ``None`` outside a loop or before the loop's first call."""
        return self._injected_async or self._async_pools.current()

    def _request(self, client: httpx.Client | httpx.AsyncClient, call: ProviderCall,
                 *, stream: bool, owned: bool) -> httpx.Request:  # fmt: skip
        """One request: an injected client gets the headers with it; our pools carry them."""
        return client.build_request(
            "POST",
            self._url,
            json=build_payload(call, stream=stream),
            headers=None if owned else self._headers,
            timeout=self._timeout(call.timeout, owned),
        )

    def _send(self, client: httpx.Client, call: ProviderCall, *, stream: bool) -> httpx.Response:
        """One request sent, streamed: on our own client, straight to its transport."""
        direct = self._direct
        if direct is not None and direct.client is client and direct.usable():
            payload = build_payload(call, stream=stream)
            request = direct.request(payload, self._timeout(call.timeout, True))
            return direct.send(request)
        request = self._request(client, call, stream=stream, owned=self._owns_client)
        return client.send(request, stream=True)

    def _timeout(self, seconds: float | None, owned: bool) -> httpx.Timeout:
        """httpx's per-operation timeouts for one attempt of ``seconds``. Our own pools obey
        the deadline below httpx, except in the wait for a free connection; an injected
        client gets every part capped at the attempt's time."""
        if not (owned and self._precise) or seconds is None:
            return attempt_timeout(seconds, self.timeout)
        pool = self.timeout.pool
        return httpx.Timeout(
            connect=self.timeout.connect,
            read=self.timeout.read,
            write=self.timeout.write,
            pool=seconds if pool is None else min(pool, seconds),
        )

    def _error(self, response: httpx.Response, body: list[bytes], model_id: str) -> ProviderError:
        return map_error(
            response.status_code,
            response.headers,
            b"".join(body),
            model_id=model_id,
            redact=self._key.redact,
            url=str(self._url),
        )

    def _result(self, response: httpx.Response, body: list[bytes], call: ProviderCall) -> Result:
        model_id = call.route.model_id
        if response.status_code >= 300:
            raise self._error(response, body, model_id)
        # Each copy freed before the next is made: a body near the cap is held twice at most
        # (the pieces and their join, the join and its text, the text and its parse).
        whole = b"".join(body)
        body.clear()
        try:
            text: str | None = whole.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None
        del whole
        if text is None:
            raise MalformedResponseError(
                "the response body is not UTF-8 text", provider=NAME, model_id=model_id
            )
        parsed = load_json(text, provider=NAME, model_id=model_id, what="response body",
                           decimals=True)  # fmt: skip
        del text
        result = parse_response(parsed, model_id=model_id, redact=self._key.redact,
                                tools=call.request.tools)  # fmt: skip
        if "generation_id" not in result.details:  # (the body's id usually says it)
            generation = response.headers.get("x-generation-id")
            if generation:
                result.details["generation_id"] = self._key.redact(generation)
        return result

    def _reader(self, response: httpx.Response, model_id: str, *, stream: bool) -> BodyReader:
        if response.status_code >= 300:
            limit, what = _ERROR_BODY_BYTES, "the error body"
        elif stream:
            limit, what = self.max_stream_bytes, "the stream"
        else:
            limit, what = self.max_response_bytes, "the response body"
        return BodyReader(response.headers, limit, provider=NAME, model_id=model_id, what=what)

    # --- non-streamed ---------------------------------------------------------------------

    def chat(self, call: ProviderCall) -> ProviderResult:
        model_id = call.route.model_id
        deadline = deadline_after(call.timeout)
        client = self._sync()
        failure: ProviderError | None = None
        try:
            with deadline_scope(deadline):
                response = self._send(client, call, stream=False)
            try:
                body = self._read(response, response.iter_raw(), model_id, deadline)
            finally:
                close_response(response)
        except httpx.HTTPError as error:
            failure = transport_failure(error, NAME, model_id, self._key.redact, deadline)
        if failure is not None:
            raise failure
        return self._result(response, body, call)

    async def achat(self, call: ProviderCall) -> ProviderResult:
        model_id = call.route.model_id
        deadline = deadline_after(call.timeout)
        client = await self._async()
        failure: ProviderError | None = None
        try:
            with deadline_scope(deadline):
                owned = self._injected_async is None
                request = self._request(client, call, stream=False, owned=owned)
                response = await client.send(request, stream=True)
            try:
                body = await self._aread(response, response.aiter_raw(), model_id, deadline)
            finally:
                await aclose_response(response)
        except httpx.HTTPError as error:
            failure = transport_failure(error, NAME, model_id, self._key.redact, deadline)
        if failure is not None:
            raise failure
        return self._result(response, body, call)

    def _read(self, response: httpx.Response, chunks: Iterator[bytes], model_id: str,
              deadline: float | None) -> list[bytes]:  # fmt: skip
        """The whole body, by the deadline and within its cap (an error body: its start)."""
        reader = self._reader(response, model_id, stream=False)
        body: list[bytes] = []  # pieces, not a growing buffer: no over-allocation
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    raise deadline_error(NAME, model_id)
                with deadline_scope(deadline):
                    raw = next(chunks, None)
                if raw is None:
                    return body
                for piece in reader.feed(raw):
                    body.append(piece)
        except MalformedResponseError as error:
            if error.code == "response_too_large" and response.status_code >= 300:
                return body  # enough of an error body to say what went wrong
            raise

    async def _aread(self, response: httpx.Response, chunks: AsyncIterator[bytes],
                     model_id: str, deadline: float | None) -> list[bytes]:  # fmt: skip
        reader = self._reader(response, model_id, stream=False)
        body: list[bytes] = []  # pieces, not a growing buffer: no over-allocation
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    raise deadline_error(NAME, model_id)
                try:
                    with deadline_scope(deadline):
                        raw = await anext(chunks)
                except StopAsyncIteration:
                    return body
                for piece in reader.feed(raw):
                    body.append(piece)
        except MalformedResponseError as error:
            if error.code == "response_too_large" and response.status_code >= 300:
                return body
            raise

    def generation_cost(self, generation_id: str) -> Decimal | None:
        """What OpenRouter billed for one request (``GET /generation?id=``), in USD; ``None``
        while it has no record yet. Used by ``Client.reconcile_generations()``."""
        return fetch_generation_cost(
            self._sync(), f"{self.base_url}/generation", generation_id,
            headers=None if self._owns_client else self._headers, redact=self._key.redact,
        )  # fmt: skip

    # --- streamed -------------------------------------------------------------------------

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        model_id = call.route.model_id
        clock = StreamClock(NAME, call.timeout, self.stream_idle_timeout)
        client = self._sync()
        parser = StreamParser(model_id, self._key.redact, call.request.tools)
        failure: ProviderError | None = None
        response: httpx.Response | None = None
        chunks: Iterator[bytes] | None = None
        try:
            with deadline_scope(clock.deadline):
                response = self._send(client, call, stream=True)
            chunks = response.iter_raw()
            if response.status_code >= 300:
                raise self._error(response, self._read(response, chunks, model_id,
                                                       clock.deadline), model_id)  # fmt: skip
            reader, decoder = self._reader(response, model_id, stream=True), self._decoder()
            while True:
                clock.check(model_id)
                token = deadline_var.set(clock.deadline)  # (a deadline_scope, for less)
                try:
                    raw = next(chunks, None)
                finally:
                    deadline_var.reset(token)
                for event in stream_events(decoder, reader, raw, model_id):
                    if text := parser.feed(event.data):
                        if not call.receipt and parser.generation_id:  # once, before any text
                            call.receipt["generation_id"] = parser.generation_id
                        yield text
                        clock.text_arrived()
                if raw is None:
                    break
        except httpx.HTTPError as error:
            failure = clock.failure(error, model_id, self._key.redact)
        finally:
            if parser.generation_id:  # for reconciling a stream cut short (/generation)
                call.receipt["generation_id"] = parser.generation_id
            if response is not None:
                close_response(response)
        if failure is not None:
            raise failure
        yield parser.result()

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        model_id = call.route.model_id
        clock = StreamClock(NAME, call.timeout, self.stream_idle_timeout)
        client = await self._async()
        parser = StreamParser(model_id, self._key.redact, call.request.tools)
        failure: ProviderError | None = None
        response: httpx.Response | None = None
        try:
            with deadline_scope(clock.deadline):
                owned = self._injected_async is None
                request = self._request(client, call, stream=True, owned=owned)
                response = await client.send(request, stream=True)
            chunks = response.aiter_raw()
            if response.status_code >= 300:
                body = await self._aread(response, chunks, model_id, clock.deadline)
                raise self._error(response, body, model_id)
            reader, decoder = self._reader(response, model_id, stream=True), self._decoder()
            while True:
                clock.check(model_id)
                try:
                    with deadline_scope(clock.deadline):
                        raw: bytes | None = await anext(chunks)
                except StopAsyncIteration:
                    raw = None
                for event in stream_events(decoder, reader, raw, model_id):
                    if text := parser.feed(event.data):
                        if not call.receipt and parser.generation_id:  # once, before any text
                            call.receipt["generation_id"] = parser.generation_id
                        yield text
                        clock.text_arrived()
                if raw is None:
                    break
        except httpx.HTTPError as error:
            failure = clock.failure(error, model_id, self._key.redact)
        finally:
            if parser.generation_id:  # for reconciling a stream cut short (/generation)
                call.receipt["generation_id"] = parser.generation_id
            if response is not None:
                await aclose_response(response)
        if failure is not None:
            raise failure
        yield parser.result()

    def _decoder(self) -> SSEDecoder:
        return SSEDecoder(max_line_bytes=self.max_event_bytes, max_event_bytes=self.max_event_bytes)

    def diagnose(self) -> str:
        # /models needs no key and costs nothing; the key itself is checked by the first call.
        try:
            response = self._sync().get(f"{self.base_url}/models", timeout=5.0)
        except httpx.HTTPError as error:
            return f"unreachable at {self.base_url}: {type(error).__name__}"
        if response.status_code >= 300:
            return f"{self.base_url}/models answered HTTP {response.status_code}"
        return f"reachable at {self.base_url} (the API key is checked on the first call)"

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the sync pool and the running loop's async pool (pools of other loops close
        as their loops shut down)."""
        self.close()
        if self._injected_async is None:  # (an injected one is the caller's to close)
            await self._async_pools.aclose()
