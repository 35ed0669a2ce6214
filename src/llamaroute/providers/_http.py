"""HTTP helpers shared by the providers that speak HTTP through httpx.

* :func:`map_transport_error` maps every httpx transport failure to our error tree in one
  place; :func:`transport_failure` does so for any httpx error, with no chain (httpx's text may
  quote URLs and headers), and :func:`transport_errors` as a context manager.
* :func:`load_json` parses a body, or raises :class:`~llamaroute.MalformedResponseError`.
* :func:`check_base_url` refuses base URLs that carry credentials.
* :func:`finite_timeout` checks a configured timeout; :func:`request_timeout` with
  :func:`timeout_hooks` gives one call its own timeout through an SDK that takes none.

Deadlines below httpx's per-operation timeouts and size caps while reading are in
``_reading.py``; one async pool per event loop is in ``_pools.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._exceptions import (
    ConfigurationError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from ._errors import connection_refused

__all__ = [
    "DEFAULT_TIMEOUT",
    "DirectPost",
    "aclose_response",
    "attempt_timeout",
    "check_base_url",
    "close_response",
    "finite_timeout",
    "load_json",
    "map_transport_error",
    "request_timeout",
    "timeout_hooks",
    "transport_errors",
    "transport_failure",
]

#: Finite by default: a hung provider must never hang the caller (the ollama client's own
#: default is no timeout at all). Reads allow long generations.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)


# httpx ties a sent response and its stream to each other (``Response.stream`` becomes a
# stream that holds the response): a reference cycle, so each call's ~45 objects (the
# request, the pool's streams, a Condition and its lock) wait for the garbage collector, and
# every call takes fresh memory instead of reusing what the last one freed. A closed response
# reads nothing more: its stream is swapped for an empty one, and all of it is freed at once.
_DETACHED = httpx.ByteStream(b"")


def close_response(response: httpx.Response) -> None:
    """``response.close()``, and the response no longer tied to its stream (see above)."""
    try:
        response.close()
    finally:
        response.stream = _DETACHED


async def aclose_response(response: httpx.Response) -> None:
    """``await response.aclose()``, and the response no longer tied to its stream."""
    try:
        await response.aclose()
    finally:
        response.stream = _DETACHED


class DirectPost:
    """JSON POSTs to one URL on a sync httpx client llamaroute built itself, built and sent
    straight to the client's transport while nothing the client adds is in play.

    ``Client.build_request`` merges the client's URL, headers, cookies and params anew for
    every request, and ``Client.send`` runs auth and redirect generators, a timer, a bound
    stream and cookie extraction (which builds a urllib request even when no cookie came):
    ~435,000 instructions, a fifth of an OpenRouter call on the bench's mock, for nothing on
    a client with no auth, no base URL, no params, no hooks and no redirects. The request is
    the same, byte for byte: its headers are those ``build_request`` gave, once. Once a
    response sets a cookie (it is kept, as ``Client.send`` keeps it), or when httpx's INFO
    log is on (``Client.send`` logs each request), :meth:`usable` says no and the caller goes
    through the client.
    """

    __slots__ = ("_headers", "_log", "client", "transport", "url")

    def __init__(self, client: httpx.Client, url: httpx.URL) -> None:
        self.client, self.url = client, url
        self._log = logging.getLogger("httpx")
        # The transport the client would pick for ``url`` (its proxy mount, if any); only
        # httpx's own, with nothing in the client around it. (httpx has no public way to ask:
        # without this method, every request goes through the client as before.)
        pick = getattr(client, "_transport_for_url", None)
        transport = pick(url) if callable(pick) else None
        plain = not (client.auth or client.params or str(client.base_url)
                     or client.follow_redirects or any(client.event_hooks.values()))  # fmt: skip
        self.transport = transport if plain and type(transport) is httpx.HTTPTransport else None
        self._headers = client.build_request("POST", url, json={}).headers

    def usable(self) -> bool:
        """Whether a request can go straight to the transport now."""
        client = self.client
        return (
            self.transport is not None
            and not client.is_closed
            and not client.cookies
            and not self._log.isEnabledFor(logging.INFO)
        )

    def request(self, payload: Any, timeout: httpx.Timeout) -> httpx.Request:
        """``client.build_request("POST", url, json=payload, timeout=timeout)``, as httpx
        encodes it (a value JSON cannot carry raises the same ``ValueError``)."""
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        request = httpx.Request(
            "POST",
            self.url,
            headers=self._headers,
            stream=httpx.ByteStream(body),
            extensions={"timeout": timeout.as_dict()},
        )
        request.headers["Content-Length"] = str(len(body))
        request.read()  # (sets request.content, as build_request does: no copy)
        return request

    def send(self, request: httpx.Request) -> httpx.Response:
        """``client.send(request, stream=True)``, for a request from :meth:`request` (the
        transport maps httpcore's errors to httpx's, as it does under the client)."""
        assert self.transport is not None
        try:
            response = self.transport.handle_request(request)
        except httpx.RequestError as error:
            error.request = request  # as the client does
            raise
        response.request = request
        if "set-cookie" in response.headers:  # kept, as the client keeps it (rare)
            self.client.cookies.extract_cookies(response)
        return response


def attempt_timeout(seconds: float | None, default: httpx.Timeout) -> httpx.Timeout:
    """The timeouts for one attempt: ``default``, each part capped at ``seconds`` if given."""
    if seconds is None:
        return default

    def cap(value: float | None) -> float:
        return seconds if value is None else min(value, seconds)

    return httpx.Timeout(
        connect=cap(default.connect),
        read=cap(default.read),
        write=cap(default.write),
        pool=cap(default.pool),
    )


def finite_timeout(timeout: httpx.Timeout | float, what: str) -> httpx.Timeout:
    """``timeout`` as an ``httpx.Timeout``; :class:`ConfigurationError` if any part is ``None``."""
    if isinstance(timeout, int | float):
        timeout = httpx.Timeout(float(timeout))
    if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
        raise ConfigurationError(f"{what} must be finite (no None parts)")
    return timeout


# Read by the request hook of clients built with timeout_hooks(): a context variable is safe to
# set from many threads and tasks at once, unlike the shared client's own timeout.
_REQUEST_TIMEOUT: ContextVar[httpx.Timeout | None] = ContextVar(
    "llamaroute_request_timeout", default=None
)


def _apply_request_timeout(request: httpx.Request) -> None:
    timeout = _REQUEST_TIMEOUT.get()
    if timeout is not None:
        request.extensions["timeout"] = timeout.as_dict()


async def _aapply_request_timeout(request: httpx.Request) -> None:
    _apply_request_timeout(request)


def timeout_hooks(*, asynchronous: bool) -> dict[str, list[Callable[[httpx.Request], Any]]]:
    """``event_hooks=`` for an httpx client whose requests obey :func:`request_timeout`.

    For SDKs that build the request themselves and take no per-call timeout (the ollama
    client); the hook runs just before each request is sent and sets its timeouts.
    """
    hook = _aapply_request_timeout if asynchronous else _apply_request_timeout
    return {"request": [hook]}


class request_timeout:
    """Requests sent inside the block (by clients with :func:`timeout_hooks`) use ``timeout``.

    ``None`` leaves the client's own timeouts. Keep the block around one SDK call: a sync
    generator shares its consumer's context, so a value left set across a ``yield`` would
    apply to the consumer's own requests. (A class rather than a generator-based context
    manager, which costs more: it is entered on every call.)
    """

    __slots__ = ("_timeout", "_token")

    def __init__(self, timeout: httpx.Timeout | None) -> None:
        self._timeout = timeout

    def __enter__(self) -> None:
        self._token: Token[httpx.Timeout | None] = _REQUEST_TIMEOUT.set(self._timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _REQUEST_TIMEOUT.reset(self._token)


def map_transport_error(
    error: BaseException, provider: str, model_id: str, redact: Callable[[str], str] = str
) -> ProviderTimeoutError | ProviderConnectionError | None:
    """The llamaroute error for an httpx transport failure (``None`` for anything else).

    Timeouts become :class:`ProviderTimeoutError` with the httpx class name as ``code``
    (``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``: the client bills a
    timed-out attempt unless the request was never sent); a refused connection becomes a
    :class:`ProviderConnectionError` with code ``connection_refused`` that is not retryable
    (nothing is listening: trying again at once cannot help, another provider can); other
    connection failures (reset, closed mid-body, DNS, TLS) are retryable connection errors.
    """
    if isinstance(error, httpx.TimeoutException):
        name = type(error).__name__
        return ProviderTimeoutError(
            f"timed out ({name})", provider=provider, model_id=model_id, code=name
        )
    if isinstance(error, httpx.TransportError):
        refused = connection_refused(error)
        return ProviderConnectionError(
            redact(f"connection failed: {error or type(error).__name__}"),
            provider=provider,
            model_id=model_id,
            code="connection_refused" if refused else type(error).__name__,
            retryable=not refused,
        )
    return None


#: Timeouts that happen before the request is sent: the call's deadline does not rename them.
_BEFORE_SENDING = ("ConnectTimeout", "PoolTimeout")


def transport_failure(
    error: httpx.HTTPError,
    provider: str,
    model_id: str,
    redact: Callable[[str], str] = str,
    deadline: float | None = None,
) -> ProviderError:
    """The llamaroute error for any httpx failure, to be raised with no chain.

    As :func:`map_transport_error`, and: a read or write timeout at or after ``deadline``
    (a ``time.monotonic()`` value) is the call's deadline, code ``deadline``; an httpx error
    that is not a transport failure is a :class:`MalformedResponseError`. httpx's messages can
    quote URLs and headers, so the original is not chained: the message keeps its class name
    and its text, redacted with ``redact``.
    """
    mapped: ProviderError | None = map_transport_error(error, provider, model_id, redact)
    if isinstance(mapped, ProviderTimeoutError):
        summary = "timed out"
        late = deadline is not None and time.monotonic() >= deadline - 0.001
        if late and mapped.code not in _BEFORE_SENDING:
            mapped.code, summary = (
                "deadline",
                "the call's timeout ran out before the answer arrived",
            )
    elif isinstance(mapped, ProviderConnectionError):
        summary = "connection failed"
    else:
        summary = "the response could not be read"
        mapped = MalformedResponseError(
            summary, provider=provider, model_id=model_id, code=type(error).__name__
        )
    text = str(error)
    mapped.message = redact(f"{summary} (httpx.{type(error).__name__}{': ' if text else ''}{text})")
    mapped.args = (mapped.message,)
    return mapped


class transport_errors:
    """Map httpx transport failures raised inside the block to llamaroute errors, as
    :func:`map_transport_error` says (with the httpx error's chain suppressed: prefer
    :func:`transport_failure`, raised outside the ``except`` block, which leaves none). A class
    rather than a generator-based context manager: it is entered on every call."""

    __slots__ = ("_model_id", "_provider", "_redact")

    def __init__(self, provider: str, model_id: str, redact: Callable[[str], str] = str) -> None:
        self._provider, self._model_id, self._redact = provider, model_id, redact

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, httpx.TransportError):
            mapped = map_transport_error(exc, self._provider, self._model_id, self._redact)
            assert mapped is not None
            # Not chained: httpx's messages can quote URLs and headers (see transport_failure).
            raise mapped from None


#: Reads every JSON number with a fraction or exponent (and NaN, Infinity) as an exact
#: Decimal: a cost such as 0.000000123456789012345 keeps every digit. Immutable once built.
_DECIMAL_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


def load_json(
    raw: bytes | bytearray | str,
    *,
    provider: str,
    model_id: str,
    what: str,
    decimals: bool = False,
) -> Any:
    """``json.loads`` that raises :class:`MalformedResponseError` (the parser's error chained:
    its message quotes a position, never the text) for invalid JSON, invalid UTF-8, numbers
    too long to convert and nesting too deep to parse. With ``decimals``, numbers that are
    not integers come back as exact :class:`~decimal.Decimal` (money), never floats."""
    try:
        if decimals:
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
            return _DECIMAL_JSON.decode(text)
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError: ValueError
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise MalformedResponseError(
            f"{what} is not valid JSON: {reason}", provider=provider, model_id=model_id
        ) from error


def check_base_url(url: str, *, what: str = "base_url") -> str:
    """``url`` without a trailing slash, if it is a plain http(s) URL with no credentials.

    Keys belong in configuration, never in URLs (where they end up in logs): a URL with a
    user:password part or a query string is refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an http:// or https:// URL, got {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError(
            f"{what} must not contain credentials (user:password@); pass the key as api_key="
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"{what} must not have a query string or fragment; pass keys as api_key="
        )
    return url.rstrip("/")
