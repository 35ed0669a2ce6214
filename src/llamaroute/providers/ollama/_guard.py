"""A whole-attempt deadline and response-size caps under the ollama client's HTTP connections.

httpx's timeouts count each read on its own: a server that sends one byte just before every
read would time out keeps a call alive for ever, and an endless body is read into memory to
the end. The ollama client takes no per-call limits at all. So the clients the provider builds
get a transport of their own (``transport=``, passed through ``ollama.Client(**kwargs)`` to
httpx), which enforces the :class:`Guard` of the attempt in progress:

* **Deadline**: every connect, write and read on the socket waits at most until
  :attr:`Guard.deadline` (the network backend shortens the timeout httpcore asks for), so a
  trickled body, an endless body or endless keep-alive lines end at the deadline itself, not
  one read later. A read cut short raises httpcore's own ``ReadTimeout`` (``ConnectTimeout``,
  ``WriteTimeout``), which httpx and the provider map as any other timeout.
* **Size**: the response body is counted as it arrives; past :attr:`Guard.limit` bytes, or past
  :attr:`Guard.max_line` bytes without a newline (one NDJSON line), it raises
  :class:`~llamaroute.MalformedResponseError` with code ``response_too_large`` (not retryable:
  the same server would send the same answer). Memory stays within the cap plus one chunk.

* **Timeouts**: the attempt's own httpx timeouts (:attr:`Guard.timeout`), set on the request
  as it goes out (``ollama.Client.chat`` takes no timeout).

The guard travels in the deadline context variable of :mod:`.._reading` (the guard is a
moving deadline, set with :class:`guarded`, a ``deadline_scope``), which the provider sets
around each request into the ollama client; the transport finds it there when the request
goes out and binds the size checks and the deadline to the response, whose body then sets
the deadline around each of its own reads: a stream's reads obey it without the provider
setting anything per chunk, and nothing between two reads (the consumer's own requests,
across a ``yield``) does. The deadline part is the one every httpx-based provider uses; the
size caps are added here, on the transport, because the ollama client reads the body itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx

from ..._exceptions import MalformedResponseError
from .._reading import AsyncDeadlineBackend, DeadlineBackend, deadline_scope, deadline_var

__all__ = ["Guard", "guarded", "guarded_transport"]


class Guard:
    """The limits of one attempt. :attr:`deadline` (a ``time.monotonic()`` instant, or
    ``None``) may move while the attempt runs: a stream moves it forward as text arrives.
    ``why`` says what the deadline is, for the timeout's message. :attr:`timeout` is the
    request's httpx timeouts (``httpx.Timeout.as_dict()``; ``None``: the client's own)."""

    __slots__ = ("deadline", "limit", "max_line", "model_id", "provider", "timeout", "why")

    def __init__(
        self,
        provider: str,
        model_id: str,
        *,
        deadline: float | None = None,
        why: str = "the attempt's time ran out",
        limit: int | None = None,
        max_line: int | None = None,
        timeout: dict[str, float | None] | None = None,
    ) -> None:
        self.provider, self.model_id = provider, model_id
        self.deadline, self.why = deadline, why
        self.limit, self.max_line = limit, max_line
        self.timeout = timeout

    def too_large(self, what: str, cap: int) -> MalformedResponseError:
        return MalformedResponseError(
            f"the response is too large: {what} went past {cap:,} bytes (the provider's cap); "
            "the rest was not read",
            provider=self.provider,
            model_id=self.model_id,
            code="response_too_large",
            retryable=False,
        )


class guarded(deadline_scope):
    """Requests sent inside the block obey ``guard`` (on clients built with
    :func:`guarded_transport`): its timeouts, its deadline, and its size caps on the response
    they get, whose body keeps obeying it wherever it is read. Keep the block around one call
    into the client: a sync generator shares its consumer's context, so a guard left set
    across a ``yield`` would apply to the consumer's own requests."""

    __slots__ = ()

    def __init__(self, guard: Guard) -> None:
        super().__init__(guard)


def _current() -> Guard | None:
    guard = deadline_var.get()
    return guard if type(guard) is Guard else None


# --- the response body: counted as it arrives ----------------------------------------------


# The body streams set the guard as the deadline around each read of the body, with the
# context variable's own set and reset, and count the body as it comes, in the loop itself: a
# stream's body is read a chunk (an NDJSON line) at a time, so anything per read is per chunk.
_set, _reset = deadline_var.set, deadline_var.reset


def _counted(guard: Guard, chunk: bytes, total: int, line: int) -> tuple[int, int]:
    """The body's bytes so far and the bytes since its last newline (the line in progress),
    with ``chunk`` read: either past its cap raises ``response_too_large``."""
    total += (size := len(chunk))
    if guard.limit is not None and total > guard.limit:
        raise guard.too_large("the body", guard.limit)
    if guard.max_line is not None:
        newline = chunk.rfind(b"\n")
        line = line + size if newline < 0 else size - newline - 1
        if line > guard.max_line:
            raise guard.too_large("one line", guard.max_line)
    return total, line


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, guard: Guard) -> None:
        self._stream, self._guard = stream, guard

    def __iter__(self) -> Iterator[bytes]:
        guard = self._guard
        chunks, total, line = iter(self._stream), 0, 0
        while True:
            token = _set(guard)
            try:
                chunk = next(chunks, None)
            finally:
                _reset(token)
            if chunk is None:
                return
            total, line = _counted(guard, chunk, total, line)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _AsyncCappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, guard: Guard) -> None:
        self._stream, self._guard = stream, guard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        guard = self._guard
        chunks, total, line = aiter(self._stream), 0, 0
        while True:
            token = _set(guard)
            try:
                chunk = await anext(chunks, None)
            finally:
                _reset(token)
            if chunk is None:
                return
            total, line = _counted(guard, chunk, total, line)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def _unencoded(response: httpx.Response, guard: Guard) -> None:
    # Requests ask for "identity": a compressed body would be inflated by httpx after the size
    # check (a few MB of gzip can hold gigabytes), so one is refused unread.
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise MalformedResponseError(
            f"the server sent a {encoding!r}-encoded body though the request asked for none; "
            "it is not read",
            provider=guard.provider,
            model_id=guard.model_id,
            code="unexpected_encoding",
            retryable=False,
        )


# --- the transports --------------------------------------------------------------------------
#
# httpx's transports take no network backend; their connection pool does. The pool is built
# here, with the same settings httpx would use, in place of the one httpx built (``_pool`` is
# the attribute both transports send through; tests check that the backend is in place).


def _pool_settings(limits: httpx.Limits, https: bool) -> dict[str, Any]:
    return {
        # An SSL context costs tens of milliseconds to build: only for an https host.
        "ssl_context": httpx.create_ssl_context() if https else None,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class _Transport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits, https: bool) -> None:
        # Not super().__init__(): it would build a pool (and an SSL context) only to drop it.
        settings = _pool_settings(limits, https)
        self._pool = httpcore.ConnectionPool(
            network_backend=DeadlineBackend(httpcore.SyncBackend()), **settings
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        guard = _current()
        if guard is None:
            return super().handle_request(request)
        if guard.timeout is not None:
            request.extensions["timeout"] = guard.timeout
        response = super().handle_request(request)
        try:
            _unencoded(response, guard)
        except MalformedResponseError:
            response.close()
            raise
        response.stream = _CappedStream(response.stream, guard)  # type: ignore[arg-type]
        return response


class _AsyncTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits, https: bool) -> None:
        settings = _pool_settings(limits, https)
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=AsyncDeadlineBackend(httpcore.AnyIOBackend()), **settings
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        guard = _current()
        if guard is None:
            return await super().handle_async_request(request)
        if guard.timeout is not None:
            request.extensions["timeout"] = guard.timeout
        response = await super().handle_async_request(request)
        try:
            _unencoded(response, guard)
        except MalformedResponseError:
            await response.aclose()
            raise
        response.stream = _AsyncCappedStream(response.stream, guard)  # type: ignore[arg-type]
        return response


def guarded_transport(
    *, asynchronous: bool, https: bool, limits: httpx.Limits | None = None
) -> httpx.BaseTransport | httpx.AsyncBaseTransport:
    """A transport whose requests obey the :class:`Guard` set with :class:`guarded`."""
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return _AsyncTransport(limits, https) if asynchronous else _Transport(limits, https)
