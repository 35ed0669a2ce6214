"""The Ollama wire format, with no I/O: the ``ollama`` client's call arguments, its answers
and stream lines, the context size to ask for, and the one mapping from what the client raises
to llamaroute's errors.

Facts relied on (Ollama's API reference: https://docs.ollama.com/api/chat, ``.../streaming``,
``.../usage`` and ``.../errors``): ``POST /api/chat`` takes images as base64 without a
``data:`` prefix, ``options.num_predict`` (output cap) and ``options.num_ctx`` (context size;
the server default changed from 2048 to 4096 to memory-based); streams are NDJSON ending with a
``done: true`` line carrying ``done_reason``, ``prompt_eval_count`` / ``eval_count`` (absent
when 0) and durations in ns; errors are ``{"error": "..."}`` with the status, or a last
``{"error": ...}`` line under HTTP 200 mid-stream.

What the ``ollama`` client (0.6.x, read from its source) wraps: HTTP errors become
``ResponseError`` (``status_code`` -1 mid-stream); a failed connect on a non-streaming call
becomes the built-in ``ConnectionError`` (the httpx error kept as ``__context__``). Everything
else escapes raw: httpx timeouts and transport errors, ``json.JSONDecodeError``, pydantic
``ValidationError``. Streaming calls are lazy (the request goes out on the first iteration),
so all of it can surface there too. :class:`client_errors` maps all of it, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import httpx
import ollama

from ..._exceptions import (
    InvalidImageError,
    LlamarouteError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ServerError,
    UnsupportedFeatureError,
)
from ..._records import FinishReason, Usage
from ...images import MAX_TILES, POSITIONS_PER_TILE, PreparedImage
from .._base import ProviderCall, ProviderResult
from .._errors import connection_refused, status_rule
from .._http import check_base_url, map_transport_error

__all__ = [
    "DEFAULT_HOST",
    "NAME",
    "StreamState",
    "build_request",
    "client_errors",
    "estimate_num_ctx",
    "map_error",
    "normalise_host",
    "parse_response",
]

NAME = "ollama"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434

#: ``num_ctx`` bounds. Too small a context silently drops the oldest messages (Ollama trims to
#: fit); too large only costs memory. Sizes are powers of two because the server reloads the
#: model whenever ``num_ctx`` changes, so few distinct sizes mean few reloads.
MIN_NUM_CTX = 2048
#: Tokens kept free for the answer when the request sets no ``max_tokens``.
ANSWER_ALLOWANCE = 2048
#: Chat template tokens per message (header ids, role, end of turn) plus a safety margin.
_PER_MESSAGE = 8
_MARGIN = 256

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
#: The ollama client's response models, read through their field dict (see _fields).
_MODELS = (ollama.ChatResponse, ollama.Message)

# Ollama reports these two failures only as an HTTP 500 (or a mid-stream line) with text: it
# has no structured error code for them. They are the one place where message text decides.
_INCOMPATIBLE = "no longer compatible"
_ONE_IMAGE = "only supports one image"


class _Readable(Protocol):
    # Both plain dicts and the ollama client's response models (SubscriptableBaseModel).
    def get(self, key: str, default: Any = None) -> Any: ...


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


class StreamState:
    """The state of one Ollama stream, fed one parsed NDJSON line at a time (no I/O)."""

    __slots__ = ("final", "model_id", "parts")

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.parts: list[str] = []
        self.final: _Readable | None = None

    def feed(self, chunk: _Readable) -> str:
        """Take one line; return its new text ("" if none). The ``done: true`` line completes
        the answer (:attr:`final`); the caller still reads the response to its end."""
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
    wrong shape). Other httpx transport errors and timeouts are for
    :func:`~llamaroute.providers._http.map_transport_error`, which :class:`client_errors` tries
    first; anything else becomes a retryable :class:`ServerError`.
    """
    where: dict[str, Any] = {"provider": NAME, "model_id": model_id}
    if isinstance(error, ollama.ResponseError):
        return _from_response_error(error, model_id=model_id, host=host, redact=redact)
    if isinstance(error, ConnectionError | httpx.ConnectError):
        if connection_refused(error):
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
    where: dict[str, Any] = {
        "provider": NAME,
        "model_id": model_id,
        "status_code": status if status > 0 else None,
    }
    old = _INCOMPATIBLE in lowered
    if old or status == 404:
        # Not transient, and the fix is one command: name it. (A model too old for the server
        # comes as a 500, but it is as missing as one never pulled.)
        why = ("is an old download this Ollama version cannot run; re-pull it" if old
               else f"is not pulled on the Ollama server at {host}; run")  # fmt: skip
        hint = f"{model_id} {why}: `ollama pull {model_id}` ({message})"
        code = "model_incompatible" if old else "model_not_found"
        return status_rule(404).build(hint, code=code, **where)
    if _ONE_IMAGE in lowered:
        hint = f"{model_id} takes one image per request ({message})"
        return status_rule(400).build(hint, code="too_many_images", **where)
    if status < 0:
        # An error line mid-stream, under the 200 the stream began with: no status of its own.
        message = f"failed mid-stream: {message}"
        return status_rule(None).build(message, code="stream_error", **where)
    if 300 <= status < 400:
        # Not followed (credentials must not travel to another host): the host setting is wrong.
        message = (
            f"{host} answered with a redirect (HTTP {status}); point host= at the Ollama server"
            " itself"
        )
    # Ollama's 503 is its request queue being full (OLLAMA_MAX_QUEUE): worth saying.
    return status_rule(status).build(
        message, code="server_busy" if status == 503 else None, **where
    )


class client_errors:
    """Map what the ollama client raises inside the block to llamaroute errors (transport
    failures as :func:`~llamaroute.providers._http.map_transport_error` says, the rest as
    :func:`map_error` says, the original chained); llamaroute's own errors pass through. A
    class rather than a generator-based context manager, which costs more: every call enters
    it (a stream four times: the call, its first read, its chunk loop and its close)."""

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
