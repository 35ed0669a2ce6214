"""What the ``ollama`` client raises, as llamaroute errors (no I/O): :func:`map_error` decides,
:class:`client_errors` applies it around each call into the client, and :func:`clean_cause`
makes the original safe to chain.

What the ``ollama`` client (0.6.x, read from its source) wraps: HTTP errors become
``ResponseError`` (``status_code`` -1 mid-stream); a failed connect on a non-streaming call
becomes the built-in ``ConnectionError`` (the httpx error kept as ``__context__``). Everything
else escapes raw: httpx timeouts and transport errors, ``json.JSONDecodeError``, pydantic
``ValidationError``, and ``TypeError`` / ``AttributeError`` for JSON that is not an object.
Streaming calls are lazy (the request goes out on the first iteration), so all of it can
surface there too.

Secrets: a remote Ollama may sit behind a key (``OLLAMA_API_KEY``, an ``Authorization`` header,
credentials in the host URL), and a server may echo it back. Every message built here goes
through the provider's ``redact``; the original exception is chained only as a copy with the
same type and a scrubbed message (:func:`clean_cause`), never as it was raised: its text, its
``request`` (headers included) and its own chain could all hold the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
import ollama
import pydantic

from ..._exceptions import (
    EndpointConfigurationError,
    LlamarouteError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnsupportedFeatureError,
    ServerError,
)
from .._errors import CONTEXT_RULE, connection_refused, context_overflow, status_rule
from .._http import map_transport_error
from ._wire import DEFAULT_HOST, NAME

__all__ = ["UpstreamError", "clean_cause", "client_errors", "map_error"]

# Ollama reports these two failures only as an HTTP 500 (or a mid-stream line) with text: it
# has no structured error code for them. They are the one place where message text decides.
_INCOMPATIBLE = "no longer compatible"
_ONE_IMAGE = "only supports one image"
# A model without tool support in its template: 400 "registry.ollama.ai/library/llama3.2-vision
# does not support tools" (ollama/ollama server/routes.go).
_NO_TOOLS = "does not support tools"

#: What a decoder raises on a body it cannot read (JSON that is invalid, nested too deep, not
#: an object, or of the wrong shape; bytes that are not UTF-8).
_UNREADABLE = (httpx.DecodingError, ValueError, TypeError, AttributeError, RecursionError)

#: Keys of every Ollama chat answer: JSON with none of them is some other API's answer.
_OLLAMA_KEYS = frozenset({"message", "done", "model", "created_at"})

#: The question every "this is not an Ollama server" error ends with.
_CHECK_HOST = "is host= (or OLLAMA_HOST) the Ollama server itself, with no path?"


def _error_text(error: object, redact: Callable[[str], str]) -> str:
    # Ollama sends {"error": "text"}; OpenAI-style servers that speak its API send an object.
    if isinstance(error, Mapping):
        error = error.get("message") or error
    text = " ".join(str(error).split()) or "request failed"
    return redact(text[:300] + ("…" if len(text) > 300 else ""))


def _transport_cause(error: BaseException) -> BaseException:
    """The httpx error under the ollama client's own ``ConnectionError``, whose text ("Failed
    to connect to Ollama. Please check that Ollama is downloaded...") hides the reason, such as
    "Name or service not known" for a mistyped host; ``error`` itself when there is none."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, httpx.TransportError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def map_error(
    error: BaseException,
    *,
    model_id: str,
    host: str = DEFAULT_HOST,
    redact: Callable[[str], str] = str,
) -> ProviderError:
    """The llamaroute error for what the ollama client raised.

    * ``ollama.ResponseError`` by status (-1 is a mid-stream error line). A 404 means "model
      not pulled" only in Ollama's own words, naming the model; any other 404 (an HTML page,
      another API's error) means ``host`` is not an Ollama server: a
      :class:`ProviderConnectionError` with code ``not_ollama``, not retried (the next route
      may still serve the call).
    * httpx timeouts: :class:`ProviderTimeoutError` whose ``code`` is httpx's class name
      (``ConnectTimeout`` and ``PoolTimeout`` mean the request was never sent).
    * A failed connect (the built-in ``ConnectionError`` or ``httpx.ConnectError``; refused is
      not retryable), and other httpx transport errors.
    * What the decoders let escape: :class:`MalformedResponseError`, except an answer in
      another API's shape (Server-Sent Events, an HTML page, JSON without any of Ollama's
      keys), which is ``not_ollama`` as above.
    * Anything else: a retryable :class:`ServerError`.
    """
    where: dict[str, Any] = {"provider": NAME, "model_id": model_id}
    if isinstance(error, ollama.ResponseError):
        return _from_response_error(error, model_id=model_id, host=host, redact=redact)
    if isinstance(error, httpx.TimeoutException):
        name, text = type(error).__name__, _error_text(error, redact)
        detail = name if text in ("request failed", "timed out") else f"{name}: {text}"
        return ProviderTimeoutError(f"timed out ({detail})", code=name, **where)
    if isinstance(error, ConnectionError | httpx.ConnectError):
        if connection_refused(error):
            # Nothing listens there: trying again at once cannot help; another provider can.
            return ProviderConnectionError(
                f"nothing is listening at {host}: is Ollama running? (start it with `ollama "
                "serve`, or set OLLAMA_HOST)",
                code="connection_refused", retryable=False, **where,
            )  # fmt: skip
        return ProviderConnectionError(
            f"cannot connect to Ollama at {host}: {_error_text(_transport_cause(error), redact)}",
            code="connect_error",
            **where,
        )
    if isinstance(error, httpx.TransportError):
        mapped = map_transport_error(error, NAME, model_id, redact)
        assert mapped is not None  # every TransportError maps
        return mapped
    if isinstance(error, _UNREADABLE):
        return _unreadable(error, model_id=model_id, host=host, redact=redact)
    return ServerError(f"Ollama call failed: {type(error).__name__}: {_error_text(error, redact)}",
                       **where)  # fmt: skip


def _not_ollama(host: str, what: str, model_id: str, status: int | None = None) -> ProviderError:
    """The server at ``host`` does not answer as Ollama does: the setting is wrong, which
    sending again cannot fix (not retried) but another route can route around."""
    return EndpointConfigurationError(
        f"{host} answered POST /api/chat {what}: {_CHECK_HOST}",
        provider=NAME,
        model_id=model_id,
        status_code=status,
        code="not_ollama",
        retryable=False,
    )


def _unreadable(
    error: BaseException, *, model_id: str, host: str, redact: Callable[[str], str]
) -> ProviderError:
    if isinstance(error, json.JSONDecodeError):
        start = error.doc.lstrip()[:16].lower() if isinstance(error.doc, str) else ""
        if start.startswith(("data:", "event:", ":")):
            what = "with Server-Sent Events (an OpenAI-style API?), not an Ollama answer"
            return _not_ollama(host, what, model_id)
        if start.startswith("<"):
            return _not_ollama(host, "with an HTML page, not an Ollama answer", model_id)
    if isinstance(error, pydantic.ValidationError):
        body = next((item.get("input") for item in error.errors() if not item["loc"]), None)
        body = body if body is not None else _top_input(error)
        if isinstance(body, Mapping) and "error" in body and "message" not in body:
            # Ollama's error shape under a 200: the server failed, though it did not say so.
            text = f"the server answered with an error: {_error_text(body['error'], redact)}"
            return status_rule(None).build(text, code="error_body", provider=NAME,
                                           model_id=model_id)  # fmt: skip
        if isinstance(body, Mapping) and not _OLLAMA_KEYS.intersection(body):
            keys = ", ".join(redact(str(key))[:40] for key in list(body)[:6]) or "none"
            what = f"with JSON that is not an Ollama chat answer (its keys: {keys})"
            return _not_ollama(host, what, model_id)
        detail = _validation_summary(error, redact)
    elif isinstance(error, RecursionError):
        detail = "JSON nested too deep to read"
    else:
        detail = f"{type(error).__name__}: {_error_text(error, redact)}"
    return MalformedResponseError(
        f"the Ollama server sent a response that cannot be read ({detail})",
        provider=NAME,
        model_id=model_id,
    )


def _top_input(error: pydantic.ValidationError) -> Any:
    # A missing top-level field reports the whole object as its input.
    for item in error.errors():
        if len(item["loc"]) == 1 and item["type"] == "missing":
            return item.get("input")
    return None


def _validation_summary(error: pydantic.ValidationError, redact: Callable[[str], str]) -> str:
    """Which fields were wrong and why, without the values (which may echo anything)."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'the answer'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)[:3]
    ]
    more = error.error_count() - len(problems)
    return redact("; ".join(problems) + (f"; and {more} more" if more > 0 else ""))


def _names_the_model(text: object, model_id: str) -> bool:
    """Whether ``text`` is Ollama's 404 for a model: 'model "llama3.2:3b" not found, try
    pulling it first' (older versions quote with '), naming the tag as it was sent."""
    if not isinstance(text, str) or text.lstrip().startswith("<"):
        return False
    return any(f"{quote}{model_id}{quote}" in text for quote in "\"'")


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
    if status == 404 and not _names_the_model(error.error, model_id):
        body = "an HTML page" if str(error.error).lstrip().startswith("<") else message
        what = f"with HTTP 404 ({body}), not Ollama's answer for a model that is not pulled"
        return _not_ollama(host, what, model_id, 404)
    old = _INCOMPATIBLE in lowered
    if old or status == 404:
        # Not transient, and the fix is one command: name it. (A model too old for the server
        # comes as a 500, but it is as missing as one never pulled.)
        why = ("is an old download this Ollama version cannot run; re-pull it" if old
               else f"is not pulled on the Ollama server at {host}; run")  # fmt: skip
        hint = f"{model_id} {why}: `ollama pull {model_id}` ({message})"
        code = "model_incompatible" if old else "model_not_found"
        return status_rule(404).build(hint, code=code, **where)
    if _NO_TOOLS in lowered and 400 <= status < 500:
        # The route cannot take tools: not worth a retry, but another route may serve the call.
        return ProviderUnsupportedFeatureError(
            f"{model_id} does not take tools on Ollama ({message})", code="tools_unsupported",
            **where,
        )  # fmt: skip
    if 400 <= status < 600 and context_overflow(message):
        # Ollama truncates an overlong prompt silently by default; it says so only when asked
        # not to ("truncate": false) or when an input cannot be shortened. Another route may
        # have the room.
        return CONTEXT_RULE.build(f"the prompt is over {model_id}'s context on Ollama "
                                  f"({message})", **where)  # fmt: skip
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


# --- the chained original ----------------------------------------------------------------------


class UpstreamError(Exception):
    """Stands in, as ``__cause__``, for an exception that cannot be copied safely (pydantic's
    ``ValidationError`` holds the values it refused). Its message is the original's type name
    and a scrubbed summary; :attr:`type_name` is that type's qualified name."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def clean_cause(error: BaseException, redact: Callable[[str], str] = str) -> BaseException:
    """A copy of ``error`` safe to chain: same type where it can be rebuilt, scrubbed message,
    no chain of its own and none of the request, body or values it held; otherwise an
    :class:`UpstreamError` naming its type."""
    text = _error_text(error, redact)
    kind = type(error)
    copy: BaseException
    try:
        if isinstance(error, ollama.ResponseError):
            copy = ollama.ResponseError(_error_text(error.error, redact), error.status_code)
        elif isinstance(error, json.JSONDecodeError):
            # The message is "<what>: line L column C (char P)"; the document itself stays out.
            copy = json.JSONDecodeError(error.msg, "", 0)
            copy.args = (redact(str(error)),)
            copy.lineno, copy.colno, copy.pos = error.lineno, error.colno, error.pos
        elif isinstance(error, UnicodeDecodeError):
            bad = error.object[error.start : min(error.end, error.start + 8)]
            copy = UnicodeDecodeError(error.encoding, bad, 0, len(bad), error.reason)
        elif isinstance(error, pydantic.ValidationError):
            copy = UpstreamError(f"pydantic.{kind.__name__}", _validation_summary(error, redact))
        elif isinstance(error, httpx.HTTPError) and not isinstance(error, httpx.HTTPStatusError):
            copy = kind(text)  # without .request, which holds the headers
        elif kind in (TypeError, AttributeError, ValueError, RecursionError, ConnectionError):
            copy = kind(text)
        else:
            copy = UpstreamError(f"{kind.__module__}.{kind.__qualname__}", text)
    except Exception:  # a constructor that takes other arguments: the stand-in will do
        copy = UpstreamError(f"{kind.__module__}.{kind.__qualname__}", text)
    copy.__suppress_context__ = True
    return copy


class client_errors:
    """Map what the ollama client raises inside the block to llamaroute errors, as
    :func:`map_error` says, with :func:`clean_cause`'s copy of the original chained;
    llamaroute's own errors pass through. (The original still ends up as the error's
    ``__context__``: the provider clears that before the error leaves it.) A class rather
    than a generator-based context manager, which costs more: every call enters it (a stream
    four times: the call, its first read, its chunk loop and its close)."""

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
        mapped = map_error(error, model_id=self._model_id, host=self._host, redact=self._redact)
        raise mapped from clean_cause(error, self._redact)
