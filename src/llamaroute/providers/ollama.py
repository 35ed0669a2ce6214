"""Ollama (a local or LAN server) over the official ``ollama`` client.

Pure functions (request kwargs, response and stream parsing, context size, error mapping) are
shared by the sync and async shells; only the lines that do I/O are written twice.

Facts relied on (PROVIDERS.md section 3): ``POST /api/chat`` takes images as base64 without a
``data:`` prefix, ``options.num_predict`` (output cap) and ``options.num_ctx`` (context size;
the server default changed from 2048 to 4096 to memory-based); streams are NDJSON ending with a
``done: true`` line carrying ``done_reason``, ``prompt_eval_count`` / ``eval_count`` (absent
when 0) and durations in ns; errors are ``{"error": "..."}`` with the status, or a last
``{"error": ...}`` line under HTTP 200 mid-stream; ``GET /api/tags`` lists pulled models.

What the ``ollama`` client (0.6.x, read from its source) wraps: HTTP errors become
``ResponseError`` (``status_code`` -1 mid-stream); a failed connect on a non-streaming call
becomes the built-in ``ConnectionError`` (the httpx error kept as ``__context__``). Everything
else escapes raw: httpx timeouts and transport errors, ``json.JSONDecodeError``, pydantic
``ValidationError``. Streaming calls are lazy (the request goes out on the first iteration),
so all of it can surface there too. It is all mapped here, once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, Protocol, cast

import httpx
import ollama

from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidImageError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    UnsupportedFeatureError,
)
from .._records import FinishReason, Usage
from .._secrets import Secret
from ..catalog._catalog import Catalog, Route
from ..images._fit import PreparedImage
from ..images._source import MAX_TILES, POSITIONS_PER_TILE
from ._base import Provider, ProviderCall, ProviderResult, StreamItem
from ._http import (
    _refused,
    attempt_timeout,
    check_base_url,
    finite_timeout,
    map_transport_error,
    request_timeout,
    timeout_hooks,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_TIMEOUT",
    "OllamaProvider",
    "build_request",
    "estimate_num_ctx",
    "map_error",
    "normalise_host",
    "parse_response",
]

NAME = "ollama"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
HOST_ENV = "OLLAMA_HOST"
API_KEY_ENV = "OLLAMA_API_KEY"

#: Always finite (the ollama client's own default is no timeout at all). Connecting is short:
#: the server is local or on the LAN, and a refused port fails at once anyway. Reading is long:
#: the first token waits for the model to load, which takes minutes for the 90B model.
DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=10.0)

#: The availability probe must answer "no" fast, without waiting for a chat timeout.
PROBE_TIMEOUT = httpx.Timeout(connect=0.5, read=2.0, write=2.0, pool=0.5)
PROBE_TTL = 10.0

#: ``num_ctx`` bounds. Too small a context silently drops the oldest messages (Ollama trims to
#: fit); too large only costs memory. Sizes are powers of two because the server reloads the
#: model whenever ``num_ctx`` changes, so few distinct sizes mean few reloads.
MIN_NUM_CTX = 2048
#: Tokens kept free for the answer when the request sets no ``max_tokens``.
ANSWER_ALLOWANCE = 2048
#: Chat template tokens per message (header ids, role, end of turn) plus a safety margin.
_PER_MESSAGE = 8
_MARGIN = 256

logger = logging.getLogger("llamaroute")

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
#: The ollama client's response models, read through their field dict (see _fields).
_MODELS = (ollama.ChatResponse, ollama.Message)

# Ollama reports these two failures only as an HTTP 500 (or a mid-stream line) with text: it
# has no structured error code for them. They are the one place where message text decides.
_INCOMPATIBLE = "no longer compatible"
_ONE_IMAGE = "only supports one image"

# Statuses with one meaning (the rest: 404 below, other 5xx ServerError, other 4xx BadRequest).
_STATUS_ERRORS: dict[int, tuple[type[ProviderError], str | None]] = {
    400: (BadRequestError, None), 401: (AuthenticationError, None),
    403: (AuthenticationError, None), 408: (ProviderTimeoutError, None),
    429: (RateLimitError, None), 499: (ServerError, "request_canceled"),
    503: (ServerError, "server_busy"), 504: (ProviderTimeoutError, None),
}  # fmt: skip


class _Readable(Protocol):
    # Both plain dicts and the ollama client's response models (SubscriptableBaseModel).
    def get(self, key: str, default: Any = None) -> Any: ...


# --- pure functions -------------------------------------------------------------------------


def normalise_host(host: str) -> str:
    """``host`` as a full URL: a bare ``host[:port]`` (the usual ``OLLAMA_HOST`` form) gets
    ``http://`` and port 11434, as the ollama client and server read it."""
    host = host.strip()
    if "://" not in host:
        bare = host.rstrip("/")
        if not bare or bare.startswith(":"):
            bare = "127.0.0.1" + bare
        if bare.rsplit("]", 1)[-1].count(":") == 0:
            bare = f"{bare}:{DEFAULT_PORT}"
        host = f"http://{bare}"
    return check_base_url(host, what="Ollama host")


def estimate_num_ctx(call: ProviderCall) -> int:
    """A context size that holds the request and its answer (a power of two, at least 2048,
    at most the route's context window).

    A cheap over-estimate, not a tokenizer: three characters a token (English runs near four),
    a few template tokens per message, 1601 positions per 560 px image tile (four tiles while
    the size is unknown), ``max_tokens`` (or :data:`ANSWER_ALLOWANCE`) for the answer.
    """
    messages = call.request.messages
    characters = sum(len(message.text) for message in messages)
    images = sum((image.tiles or MAX_TILES) * POSITIONS_PER_TILE for image in call.images)
    answer = call.max_tokens if call.max_tokens is not None else ANSWER_ALLOWANCE
    needed = math.ceil(characters / 3) + _PER_MESSAGE * len(messages) + images + answer + _MARGIN
    size = MIN_NUM_CTX
    while size < needed:
        size *= 2
    return max(MIN_NUM_CTX, min(size, call.route.context_window))


def _image_bytes(image: PreparedImage) -> bytes:
    if image.data is None:
        raise InvalidImageError(
            f"Ollama needs the image bytes, not a URL ({image.url}): its API does not fetch "
            "images; fetch it first, or pass the file or the bytes"
        )
    return image.data


def build_request(
    call: ProviderCall,
    *,
    stream: bool,
    model: str | None = None,
    keep_alive: float | str | None = None,
    num_ctx: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``ollama.Client.chat`` for one call.

    ``model`` is the tag to send (default: the route's ID); ``num_ctx`` a fixed context size
    (default: :func:`estimate_num_ctx`). Images travel as raw bytes, which the ollama client
    encodes to base64 without a ``data:`` prefix; a base64 *string* would first be probed as a
    file path by the client, and re-decoded to check it.
    """
    if len(call.images) > 1:
        raise UnsupportedFeatureError(
            "Ollama's Llama 3.2 Vision takes one image per request; this request has "
            f"{len(call.images)}"
        )
    images = iter(call.images)  # in order of appearance, as the client loaded them
    messages: list[dict[str, Any]] = []
    for message in call.request.messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text}
        if attached := [_image_bytes(next(images)) for _ in message.images]:
            entry["images"] = attached
        messages.append(entry)
    request = call.request
    options = {"num_ctx": num_ctx or estimate_num_ctx(call), "num_predict": call.max_tokens,
               "temperature": request.temperature, "top_p": request.top_p,
               "stop": list(request.stop) or None, "seed": request.seed}  # fmt: skip
    kwargs: dict[str, Any] = {
        "model": model or call.route.model_id,
        "messages": messages,
        "stream": stream,
        "options": {name: value for name, value in options.items() if value is not None},
    }
    if keep_alive is not None:
        kwargs["keep_alive"] = keep_alive
    return kwargs


def _count(value: object) -> int:
    # The counts are omitempty on the server: absent (or null) means 0.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _fields(value: _Readable) -> _Readable:
    """The ollama client's own models as their field dict; anything else as it is.

    Their ``.get()`` tests for and reads each attribute by name (a dozen per answer); their
    ``__dict__`` holds the same values for every declared field, which are all that is read
    here, behind a plain dict's ``.get()``.
    """
    return vars(value) if type(value) in _MODELS else value


def _result(final: _Readable, text: str) -> ProviderResult:
    final = _fields(final)
    details: dict[str, Any] = {}
    for name in _DURATIONS:
        value = final.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            details[f"{name}_s"] = value / 1e9  # nanoseconds on the wire
    if final.get("done_reason"):
        details["done_reason"] = final.get("done_reason")
    model = final.get("model")
    return ProviderResult(
        text=text,
        # Servers before done_reason existed ended every answer the same way: "stop".
        finish_reason=_FINISH_REASONS.get(str(final.get("done_reason") or "stop"), "other"),
        usage=Usage(
            input_tokens=_count(final.get("prompt_eval_count")),
            output_tokens=_count(final.get("eval_count")),
        ),
        # Local inference has no bill; the price table (or the user's own local cost) says 0.
        cost=None,
        served_model=model if isinstance(model, str) and model else None,
        details=details,
    )


def _content(chunk: _Readable) -> str:
    message = chunk.get("message")
    content = _fields(message).get("content") if message is not None else None
    return content if isinstance(content, str) else ""


def parse_response(body: _Readable, *, model_id: str) -> ProviderResult:
    """A non-streaming ``/api/chat`` answer (a dict or the client's ``ChatResponse``)."""
    body = _fields(body)
    if body.get("message") is None:
        raise MalformedResponseError("response has no message", provider=NAME, model_id=model_id)
    if body.get("done") is False:
        raise MalformedResponseError(
            "the response says it is not done: the answer is incomplete",
            provider=NAME,
            model_id=model_id,
            code="incomplete_stream",
        )
    return _result(body, _content(body))


class _StreamState:
    """The state of one Ollama stream, fed one parsed NDJSON line at a time (no I/O)."""

    __slots__ = ("final", "model_id", "parts")

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.parts: list[str] = []
        self.final: _Readable | None = None

    def feed(self, chunk: _Readable) -> str:
        """Take one line; return its new text ("" if none). The ``done: true`` line ends it."""
        if type(chunk) is ollama.ChatResponse:
            # The client's own model (every line of a stream): its fields read directly, not
            # through its .get(), which tests and reads each one by name (~1 us a chunk).
            message, done = chunk.message, chunk.done
            content = message.content if message is not None else None
            piece = content if isinstance(content, str) else ""
        else:
            piece, done = _content(chunk), chunk.get("done")
        if piece:
            self.parts.append(piece)
        if done:
            self.final = chunk
        return piece

    def result(self) -> ProviderResult:
        """The final result, or :class:`MalformedResponseError` if ``done: true`` never came."""
        if self.final is None:
            raise MalformedResponseError(
                "the stream ended without a done: true line: the answer is incomplete",
                provider=NAME,
                model_id=self.model_id,
                code="incomplete_stream",
            )
        return _result(self.final, "".join(self.parts))


def _error_text(error: object, redact: Callable[[str], str]) -> str:
    # Ollama sends {"error": "text"}; OpenAI-style servers that speak its API send an object.
    if isinstance(error, Mapping):
        error = error.get("message") or error
    text = " ".join(str(error).split()) or "request failed"
    return redact(text[:300] + ("…" if len(text) > 300 else ""))


def map_error(
    error: BaseException,
    *,
    model_id: str,
    host: str = DEFAULT_HOST,
    redact: Callable[[str], str] = str,
) -> ProviderError:
    """The llamaroute error for what the ollama client raised.

    Handles ``ollama.ResponseError`` (by status; -1 is a mid-stream error line), a failed
    connect (the built-in ``ConnectionError`` or ``httpx.ConnectError``; refused is not
    retryable), and the decoding errors the client lets escape (invalid JSON, a line of the
    wrong shape). Other httpx transport errors and timeouts are mapped by
    :func:`~llamaroute.providers._http.transport_errors`; anything else becomes a retryable
    :class:`ServerError`.
    """
    where: dict[str, Any] = {"provider": NAME, "model_id": model_id}
    if isinstance(error, ollama.ResponseError):
        return _from_response_error(error, model_id=model_id, host=host, redact=redact)
    if isinstance(error, ConnectionError | httpx.ConnectError):
        if _refused(error):
            # Nothing listens there: trying again at once cannot help; another provider can.
            return ProviderConnectionError(
                f"nothing is listening at {host}: is Ollama running? (start it with `ollama "
                "serve`, or set OLLAMA_HOST)",
                code="connection_refused", retryable=False, **where,
            )  # fmt: skip
        return ProviderConnectionError(
            f"cannot connect to Ollama at {host}: {error}", code="connect_error", **where
        )
    if isinstance(error, httpx.DecodingError | ValueError | TypeError | AttributeError):
        # json.JSONDecodeError and pydantic's ValidationError are ValueErrors.
        return MalformedResponseError(
            f"the Ollama server sent a response that cannot be read "
            f"({type(error).__name__}: {_error_text(error, redact)})",
            **where,
        )
    return ServerError(f"Ollama call failed: {type(error).__name__}: {_error_text(error, redact)}",
                       **where)  # fmt: skip


def _from_response_error(
    error: ollama.ResponseError, *, model_id: str, host: str, redact: Callable[[str], str]
) -> ProviderError:
    status = error.status_code
    message = _error_text(error.error, redact)
    lowered = message.lower()
    kwargs: dict[str, Any] = {
        "provider": NAME,
        "model_id": model_id,
        "status_code": status if status > 0 else None,
    }
    old = _INCOMPATIBLE in lowered
    if old or status == 404:
        # Not transient, and the fix is one command: name it.
        why = ("is an old download this Ollama version cannot run; re-pull it" if old
               else f"is not pulled on the Ollama server at {host}; run")  # fmt: skip
        hint = f"{model_id} {why}: `ollama pull {model_id}` ({message})"
        kwargs["code"] = "model_incompatible" if old else "model_not_found"
        return ModelNotAvailableError(hint, **kwargs)
    if _ONE_IMAGE in lowered:
        hint = f"{model_id} takes one image per request ({message})"
        return BadRequestError(hint, code="too_many_images", **kwargs)
    if status < 0:
        return ServerError(f"failed mid-stream: {message}", code="stream_error", **kwargs)
    if status in _STATUS_ERRORS:
        cls, code = _STATUS_ERRORS[status]
        return cls(message, code=code, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if 300 <= status < 400:
        # Redirects are not followed (credentials must not travel to another host); the host
        # setting is wrong, which another provider can route around.
        return ProviderConnectionError(
            f"{host} answered with a redirect (HTTP {status}); point host= at the Ollama "
            "server itself",
            code="redirect", retryable=False, **kwargs,
        )  # fmt: skip
    return BadRequestError(message, **kwargs)


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


class _Errors:
    """What the ollama client raises, as llamaroute errors (see :func:`map_error`); ours pass
    through. A class rather than a generator-based context manager: streams enter it once per
    chunk."""

    __slots__ = ("_host", "_model_id", "_redact")

    def __init__(self, model_id: str, host: str, redact: Callable[[str], str]) -> None:
        self._model_id, self._host, self._redact = model_id, host, redact

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(error, Exception) or isinstance(error, LlamarouteError):
            return
        mapped: ProviderError | None = None
        if not isinstance(error, httpx.ConnectError | ConnectionError):
            # Timeouts, resets, protocol errors. A failed connect is httpx's ConnectError on
            # streaming calls and the built-in ConnectionError on the others: map_error gives
            # both one message.
            mapped = map_transport_error(error, NAME, self._model_id, self._redact)
        if mapped is None:
            mapped = map_error(error, model_id=self._model_id, host=self._host, redact=self._redact)
        raise mapped from error


# --- the provider ---------------------------------------------------------------------------


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

    def _errors(self, model_id: str) -> _Errors:
        """Map whatever the ollama client raises inside the block (and nothing of ours)."""
        return _Errors(model_id, self.host, self._key.redact)

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
        state, errors = _StreamState(model_id), self._errors(model_id)
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
        state, errors = _StreamState(model_id), self._errors(model_id)
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
