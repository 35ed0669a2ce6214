"""The OpenRouter provider: the I/O around the wire functions, over httpx.

Not the openai SDK: its own retries would stack with ours, and it costs 2x raw httpx per call.
Building the body, parsing answers and stream chunks, and mapping errors are the plain
functions of ``_wire.py``, shared by the sync and async methods; only the lines that do I/O
are written twice.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any, ClassVar

import httpx

from ..._exceptions import ConfigurationError, ProviderError
from ..._secrets import Secret
from ..._version import __version__
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import DEFAULT_TIMEOUT, attempt_timeout, check_base_url, load_json, transport_errors
from .._sse import SSEDecoder
from ._wire import NAME, StreamParser, build_payload, map_error, parse_response

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL", "OpenRouterProvider"]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
API_KEY_ENV = "OPENROUTER_API_KEY"
BASE_URL_ENV = "OPENROUTER_BASE_URL"


class OpenRouterProvider(Provider):
    """Llama 3.2 on OpenRouter.

    Args:
        api_key: the OpenRouter key (default: ``$OPENROUTER_API_KEY``).
        base_url: the API root (default ``https://openrouter.ai/api/v1``, or
            ``$OPENROUTER_BASE_URL``); any OpenAI-compatible gateway or a test server works.
        app_url, app_title: optional attribution headers (``HTTP-Referer``,
            ``X-OpenRouter-Title``); sent only when set.
        timeout: an ``httpx.Timeout`` or seconds; always finite.
        http_client, async_http_client: injected httpx clients (for tests, proxies, custom
            TLS). They are used as they are and not closed by this provider.
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
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ConfigurationError(
                f"OpenRouter needs an API key: pass api_key= or set {API_KEY_ENV}"
            )
        self._key = Secret(key)
        self.base_url = check_base_url(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
        if isinstance(timeout, int | float):
            timeout = httpx.Timeout(float(timeout))
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            raise ConfigurationError("OpenRouter timeouts must be finite (no None parts)")
        self.timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": f"llamaroute/{__version__}",
        }
        if app_url:
            self._headers["HTTP-Referer"] = app_url
        if app_title:
            self._headers["X-OpenRouter-Title"] = app_title
            self._headers["X-Title"] = app_title  # the older name, still accepted
        # Parsed once: httpx would parse a str URL again on every request (~15 us).
        self._url = httpx.URL(f"{self.base_url}/chat/completions")
        self._client = http_client
        self._async_client = async_http_client
        self._owns_client = http_client is None
        self._owns_async_client = async_http_client is None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenRouterProvider(base_url={self.base_url!r}, api_key={self._key.masked!r})"

    # Pools are built once, on first use, and reused for every call. Our own pools carry the
    # headers, so that requests need not merge them in one by one (~9 us a request); an
    # injected client gets them with each request.
    def _sync(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        timeout=self.timeout, follow_redirects=False, headers=self._headers
                    )
        return self._client

    def _async(self) -> httpx.AsyncClient:
        if self._async_client is None:
            with self._lock:
                if self._async_client is None:
                    self._async_client = httpx.AsyncClient(
                        timeout=self.timeout, follow_redirects=False, headers=self._headers
                    )
        return self._async_client

    def _error(self, response: httpx.Response, model_id: str) -> ProviderError:
        return map_error(
            response.status_code,
            response.headers,
            response.content,
            model_id=model_id,
            redact=self._key.redact,
        )

    def _result(self, response: httpx.Response, model_id: str) -> ProviderResult:
        body = load_json(response.content, provider=NAME, model_id=model_id, what="response body")
        result = parse_response(body, model_id=model_id)
        if "generation_id" not in result.details:  # (the body's id usually says it)
            generation = response.headers.get("x-generation-id")
            if generation:
                result.details["generation_id"] = generation
        return result

    def _send_options(self, call: ProviderCall, *, stream: bool, owned: bool) -> dict[str, Any]:
        """The body, headers and timeout of one request (an injected client gets the headers
        with each request; our own pools already carry them)."""
        return {
            "json": build_payload(call, stream=stream),
            "headers": None if owned else self._headers,
            "timeout": attempt_timeout(call.timeout, self.timeout),
        }

    def chat(self, call: ProviderCall) -> ProviderResult:
        model_id = call.route.model_id
        with transport_errors(NAME, model_id, self._key.redact):
            response = self._sync().post(
                self._url, **self._send_options(call, stream=False, owned=self._owns_client)
            )
        if response.status_code >= 300:
            raise self._error(response, model_id)
        return self._result(response, model_id)

    async def achat(self, call: ProviderCall) -> ProviderResult:
        model_id = call.route.model_id
        with transport_errors(NAME, model_id, self._key.redact):
            response = await self._async().post(
                self._url, **self._send_options(call, stream=False, owned=self._owns_async_client)
            )
        if response.status_code >= 300:
            raise self._error(response, model_id)
        return self._result(response, model_id)

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        model_id = call.route.model_id
        parser, decoder = StreamParser(model_id), SSEDecoder()
        with transport_errors(NAME, model_id, self._key.redact):
            options = self._send_options(call, stream=True, owned=self._owns_client)
            request = self._sync().build_request("POST", self._url, **options)
            response = self._sync().send(request, stream=True)
            try:
                if response.status_code >= 300:
                    response.read()
                    raise self._error(response, model_id)
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None and (piece := parser.feed(event.data)):
                        yield piece
                if (event := decoder.flush()) is not None and (piece := parser.feed(event.data)):
                    yield piece
            finally:
                response.close()
        yield parser.result()

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        model_id = call.route.model_id
        parser, decoder = StreamParser(model_id), SSEDecoder()
        with transport_errors(NAME, model_id, self._key.redact):
            options = self._send_options(call, stream=True, owned=self._owns_async_client)
            request = self._async().build_request("POST", self._url, **options)
            response = await self._async().send(request, stream=True)
            try:
                if response.status_code >= 300:
                    await response.aread()
                    raise self._error(response, model_id)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None and (piece := parser.feed(event.data)):
                        yield piece
                if (event := decoder.flush()) is not None and (piece := parser.feed(event.data)):
                    yield piece
            finally:
                await response.aclose()
        yield parser.result()

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
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
