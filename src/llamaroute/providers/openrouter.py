"""OpenRouter (OpenAI-compatible HTTP API) over httpx.

Not the openai SDK: its own retries would stack with ours, and it costs 2x raw httpx per call.
The pure parts (payload, response and chunk parsing, error mapping) are plain functions shared
by the sync and async shells; only the lines that do I/O are written twice.

Facts relied on (PROVIDERS.md section 1): ``POST {base}/chat/completions`` with a Bearer key;
text before the image; usage asked for both ways (``usage.include`` and
``stream_options.include_usage``); streamed usage comes once, in a last chunk with empty
``choices``; ``: ...`` lines are keep-alives; an error after the first token arrives as a
``data:`` event with a top-level ``error`` and ``finish_reason: "error"`` under HTTP 200;
``usage.cost`` is in USD; ``error.metadata.error_type`` is the stable field to branch on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MalformedResponseError,
    ModelNotAvailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)
from .._records import FinishReason, Usage
from .._request import ImagePart
from .._secrets import Secret
from .._version import __version__
from ._base import Provider, ProviderCall, ProviderResult, StreamItem
from ._http import (
    DEFAULT_TIMEOUT,
    SSEDecoder,
    attempt_timeout,
    check_base_url,
    load_json,
    parse_retry_after,
    transport_errors,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenRouterProvider",
    "build_payload",
    "map_error",
    "parse_response",
]

NAME = "openrouter"
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
API_KEY_ENV = "OPENROUTER_API_KEY"
BASE_URL_ENV = "OPENROUTER_BASE_URL"

logger = logging.getLogger("llamaroute")

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


# --- pure functions -------------------------------------------------------------------------


def build_payload(call: ProviderCall, *, stream: bool) -> dict[str, Any]:
    """The ``/chat/completions`` JSON body for one call."""
    images = iter(call.images)
    messages: list[dict[str, Any]] = []
    for message in call.request.messages:
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
            continue
        # Text first, then the image: OpenRouter's recommendation for vision prompts.
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": part.text}
            for part in message.content
            if not isinstance(part, ImagePart)
        ]
        for part in message.content:
            if isinstance(part, ImagePart):
                image = next(images)
                url = image.data_url() if image.is_fetched else image.url
                parts.append({"type": "image_url", "image_url": {"url": url}})
        messages.append({"role": message.role, "content": parts})
    request = call.request
    payload: dict[str, Any] = {
        "model": call.route.model_id,
        "messages": messages,
        # Current docs say usage (with cost) is always returned and these flags are no-ops;
        # older behaviour and some third parties need them. Sending both does no harm.
        "usage": {"include": True},
    }
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    if call.max_tokens is not None:
        payload["max_tokens"] = call.max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.seed is not None:
        payload["seed"] = request.seed
    return payload


def _finish_reason(value: object) -> FinishReason | None:
    if value is None:
        return None
    return _FINISH_REASONS.get(str(value), "other")


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _table(value: object) -> dict[str, Any]:
    # Lenient with what providers send: a missing or mistyped object reads as empty.
    return value if isinstance(value, dict) else {}


def _usage(data: Mapping[str, Any]) -> tuple[Usage, Decimal | None]:
    return (
        Usage(
            input_tokens=data.get("prompt_tokens") or 0,
            output_tokens=data.get("completion_tokens") or 0,
        ),
        _decimal(data.get("cost")),
    )


def parse_response(body: Any, *, model_id: str) -> ProviderResult:
    """A non-streaming ``chat.completion`` body as a :class:`ProviderResult`.

    Raises the mapped error for an ``error`` object or ``finish_reason: "error"`` in a 200
    body, and :class:`MalformedResponseError` when there is no answer in it.
    """
    if not isinstance(body, dict):
        raise MalformedResponseError(
            "response body is not a JSON object", provider=NAME, model_id=model_id
        )
    if isinstance(body.get("error"), dict):
        raise _error_from_object(body["error"], model_id=model_id, status=None, headers={})
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponseError("response has no choices", provider=NAME, model_id=model_id)
    choice = choices[0]
    if choice.get("finish_reason") == "error":
        raise ServerError(
            "the upstream provider failed (finish_reason: error)",
            provider=NAME,
            model_id=model_id,
            code="finish_reason_error",
        )
    message = _table(choice.get("message"))
    usage, cost = _usage(body.get("usage") or {})
    return ProviderResult(
        text=message.get("content") or "",
        finish_reason=_finish_reason(choice.get("finish_reason")),
        usage=usage,
        cost=cost,
        served_model=body.get("model"),
        details=_details(body),
    )


def _details(body: Mapping[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if body.get("id"):
        details["generation_id"] = body["id"]
    if body.get("provider"):
        details["upstream_provider"] = body["provider"]
    return details


def map_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model_id: str,
    redact: Callable[[str], str] = str,
) -> ProviderError:
    """The llamaroute error for an OpenRouter HTTP error response.

    Branches on the HTTP status and ``error.metadata.error_type`` (never on message text).
    """
    error: dict[str, Any] = {}
    try:
        parsed = load_json(body, provider=NAME, model_id=model_id, what="error body")
    except MalformedResponseError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
    if not error.get("message"):
        text = body[:200].decode("utf-8", "replace").strip()
        error = {**error, "message": text or f"HTTP {status}"}
    return _error_from_object(
        error, model_id=model_id, status=status, headers=headers, redact=redact
    )


def _error_from_object(
    error: Mapping[str, Any],
    *,
    model_id: str,
    status: int | None,
    headers: Mapping[str, str],
    redact: Callable[[str], str] = str,
) -> ProviderError:
    metadata, availability = _table(error.get("metadata")), _table(error.get("availability"))
    error_type = metadata.get("error_type") or availability.get("code")
    code = error.get("code")
    if status is None:
        # Mid-stream and in-body errors carry their HTTP-like status in error.code.
        status = code if isinstance(code, int) and not isinstance(code, bool) else None
    message = redact(str(error.get("message") or "request failed"))
    kwargs: dict[str, Any] = {
        "provider": NAME,
        "model_id": model_id,
        "status_code": status,
        "code": str(error_type) if error_type else None,
        # OpenRouter may send Retry-After on 503 as well as 429: keep it whatever the status.
        "retry_after": parse_retry_after(headers),
    }
    if headers.get("x-should-retry", "").lower() == "false":
        kwargs["retryable"] = False
    return _classify(status, str(error_type or ""), metadata, message, kwargs)


def _classify(
    status: int | None,
    error_type: str,
    metadata: Mapping[str, Any],
    message: str,
    kwargs: dict[str, Any],
) -> ProviderError:
    if status is not None and 300 <= status < 400:
        # Never followed: the Authorization header must not travel to another host.
        return ProviderConnectionError(
            f"the API answered with a redirect (HTTP {status}), which llamaroute does not follow"
            " so that the key stays with OpenRouter: check base_url",
            **{**kwargs, "code": "redirect", "retryable": False},
        )
    if status == 401 or error_type == "authentication":
        return AuthenticationError(f"OpenRouter rejected the API key: {message}", **kwargs)
    if status == 402 or error_type == "payment_required":
        return PaymentRequiredError(
            "the OpenRouter account or key is out of credits (a billing problem, not an outage;"
            f" add credits at https://openrouter.ai/settings/credits): {message}",
            **kwargs,
        )
    if status == 403:
        if metadata.get("reasons") or metadata.get("flagged_input"):
            # Moderation flagged the input: the request itself is the problem.
            return BadRequestError(f"flagged by moderation: {message}", **kwargs)
        return AuthenticationError(f"not permitted: {message}", **kwargs)
    if status == 404 or error_type in ("not_found", "no_endpoints", "model_not_found"):
        return ModelNotAvailableError(
            f"OpenRouter has no available endpoint for this model: {message}", **kwargs
        )
    if status == 429 or error_type == "rate_limit_exceeded":
        return RateLimitError(message, **kwargs)
    if status in (408, 504, 524) or error_type == "timeout":
        return ProviderTimeoutError(message, **kwargs)
    if status is not None and status >= 500:
        return ServerError(message, **kwargs)
    if status is None and error_type in ("provider_overloaded", "provider_unavailable", "server"):
        return ServerError(message, **kwargs)
    if status is None and not error_type:
        # An error object with no status at all: unknown, so worth another try.
        return ServerError(message, **kwargs)
    return BadRequestError(message, **kwargs)


class _StreamParser:
    """The state of one OpenRouter stream, fed one SSE event at a time (no I/O)."""

    __slots__ = (
        "cost",
        "done",
        "finish_reason",
        "generation_id",
        "model_id",
        "served_model",
        "text",
        "usage",
    )  # fmt: skip

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.text: list[str] = []
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.cost: Decimal | None = None
        self.served_model: str | None = None
        self.generation_id: str | None = None
        self.done = False

    def feed(self, data: str) -> str:
        """Take one event's data; return its new text ("" if none). Raises on error events."""
        if self.done:
            return ""
        if data == "[DONE]":
            self.done = True
            return ""
        chunk = load_json(data, provider=NAME, model_id=self.model_id, what="stream chunk")
        if not isinstance(chunk, dict):
            raise MalformedResponseError(
                "stream chunk is not a JSON object", provider=NAME, model_id=self.model_id
            )
        if isinstance(chunk.get("error"), dict):
            raise _error_from_object(
                chunk["error"], model_id=self.model_id, status=None, headers={}
            )
        if self.generation_id is None:
            self.generation_id = chunk.get("id")
            self.served_model = chunk.get("model")
        if isinstance(chunk.get("usage"), dict):
            self.usage, self.cost = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if not choices:
            return ""
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason == "error":
            raise ServerError(
                "the upstream provider failed mid-stream (finish_reason: error)",
                provider=NAME,
                model_id=self.model_id,
                code="finish_reason_error",
            )
        if reason is not None:
            self.finish_reason = _finish_reason(reason)
        delta = choice.get("delta") or {}
        piece = delta.get("content") or ""
        if piece:
            self.text.append(piece)
        return str(piece)

    def result(self) -> ProviderResult:
        """The final result, or :class:`MalformedResponseError` if the stream was cut short.

        ``data: [DONE]`` is the end marker: without it the stream is not known to be whole
        (the usage chunk comes just before it), even when a finish reason has arrived.
        """
        if self.finish_reason is None or not self.done:
            markers = (("a finish reason", self.finish_reason is not None), ("[DONE]", self.done))
            missing = [name for name, seen in markers if not seen]
            raise MalformedResponseError(
                f"the stream ended without {' or '.join(missing)}: the answer may be incomplete",
                provider=NAME,
                model_id=self.model_id,
                code="incomplete_stream",
            )
        details: dict[str, Any] = {}
        if self.generation_id:
            details["generation_id"] = self.generation_id
        if self.usage is None:
            details["usage_missing"] = True
        return ProviderResult(
            text="".join(self.text),
            finish_reason=self.finish_reason,
            usage=self.usage or Usage(),
            cost=self.cost,
            served_model=self.served_model,
            details=details,
        )


# --- the provider ---------------------------------------------------------------------------


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
        parser, decoder = _StreamParser(model_id), SSEDecoder()
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
        parser, decoder = _StreamParser(model_id), SSEDecoder()
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
