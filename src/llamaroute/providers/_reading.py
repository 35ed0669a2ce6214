"""Reading an HTTP answer under a deadline and a size cap, for the providers built on httpx.

httpx's timeouts are per socket operation: a server that sends one byte every few seconds, or
keep-alive comments forever, never trips them. Two pieces close that gap:

* :func:`enforce_deadlines` wraps the network backend of an httpx client's connection pools so
  that every connect, read and write waits at most until the deadline set by
  :class:`deadline_scope` (a context variable: each thread and task has its own). A read that
  would block past the deadline raises httpcore's own timeout at the deadline, so a blocking
  read cannot overshoot it; a read that starts after the deadline fails at once.
* :class:`BodyReader` counts what arrives (decoded, for gzip or deflate bodies) against a cap,
  so that a huge or endless body costs at most the cap in memory, and checks the deadline
  between reads (for injected clients, whose backends are left alone).
"""

from __future__ import annotations

import select
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Protocol

import httpcore
import httpx

from .._exceptions import MalformedResponseError, ProviderError, ProviderTimeoutError
from ._http import transport_failure

__all__ = [
    "AsyncDeadlineBackend",
    "BodyReader",
    "DeadlineBackend",
    "MovingDeadline",
    "StreamClock",
    "deadline_after",
    "deadline_error",
    "deadline_scope",
    "deadline_var",
    "enforce_deadlines",
    "too_large",
]


class MovingDeadline(Protocol):
    """A deadline that may move while the I/O under it runs (a stream's idle timeout moves it
    forward as text arrives), with ``why``: the message of the timeout it causes."""

    deadline: float | None
    why: str


# What the wrapped backends obey, set by deadline_scope: a time.monotonic() instant, or a
# MovingDeadline read again at every socket operation.
_DEADLINE: ContextVar[float | MovingDeadline | None] = ContextVar(
    "llamaroute_io_deadline", default=None
)
#: The variable itself, for code that sets it around each of many reads (a stream's body):
#: its bare ``set`` and ``reset`` cost less per use than a :class:`deadline_scope`.
deadline_var = _DEADLINE


def _capped(timeout: float | None, expired: type[Exception]) -> tuple[float | None, str | None]:
    """``timeout`` capped at the time left before the deadline (``expired`` if none is), and
    the deadline's own timeout message when it was the deadline that set the timeout."""
    limit = _DEADLINE.get()
    if limit is None:
        return timeout, None
    if isinstance(limit, (float, int)):  # a tuple: no union object built on every read
        deadline: float | None = limit
        why = None
    else:
        deadline, why = limit.deadline, limit.why
    if deadline is None:
        return timeout, None
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired(why or "the call's deadline passed")
    if timeout is None or left < timeout:
        return left, why
    return timeout, None


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the deadline in force.

    A request's head is held back and sent with the first write after it (its body, or the
    empty write httpcore makes at the end of every request), or before any read: one send
    (a system call, and a wake-up of the server) per request instead of two; the socket
    writes were ~12-18% of the gateway's samples under wrk (bench/README.md)."""

    __slots__ = ("_held", "_inner", "_plain")

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._held = b""
        # A plain TCP socket (not TLS): see write().
        sock = inner.get_extra_info("socket")
        self._plain: socket.socket | None = sock if type(sock) is socket.socket else None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            self.write(b"", timeout)
        timeout, why = _capped(timeout, httpcore.ReadTimeout)
        if why is None:
            return self._inner.read(max_bytes, timeout)
        try:
            return self._inner.read(max_bytes, timeout)
        except httpcore.ReadTimeout:
            raise httpcore.ReadTimeout(why) from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._held:
            buffer, self._held = self._held + buffer, b""
        elif buffer.endswith(b"\r\n\r\n"):  # a request's head: its body comes next
            self._held = buffer
            return
        timeout, why = _capped(timeout, httpcore.WriteTimeout)
        plain = self._plain
        if plain is not None and buffer:
            # One non-blocking send first. A socket with a timeout (ours always have one)
            # makes a poll() before every send; a request nearly always fits the socket's
            # buffer, so that poll is a system call per write for nothing. What does not go
            # out at once is sent below, as before, waiting at most until the deadline.
            try:
                plain.settimeout(0)
                sent = plain.send(buffer)
            except BlockingIOError:
                sent = 0
            except OSError as error:  # as httpcore maps it
                raise httpcore.WriteError(error) from error
            if sent == len(buffer):
                return
            buffer = buffer[sent:]
        if why is None:
            self._inner.write(buffer, timeout)
            return
        try:
            self._inner.write(buffer, timeout)
        except httpcore.WriteTimeout:
            raise httpcore.WriteTimeout(why) from None

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    """:class:`DeadlineStream` for async I/O (a request's head sent with its body too)."""

    __slots__ = ("_held", "_inner", "_socket")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: Any = None
        self._held = b""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            await self.write(b"", timeout)
        timeout, why = _capped(timeout, httpcore.ReadTimeout)
        if why is None:
            return await self._inner.read(max_bytes, timeout)
        try:
            return await self._inner.read(max_bytes, timeout)
        except httpcore.ReadTimeout:
            raise httpcore.ReadTimeout(why) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._held:
            buffer, self._held = self._held + buffer, b""
        elif buffer.endswith(b"\r\n\r\n"):  # a request's head: its body comes next
            self._held = buffer
            return
        timeout, why = _capped(timeout, httpcore.WriteTimeout)
        if why is None:
            await self._inner.write(buffer, timeout)
            return
        try:
            await self._inner.write(buffer, timeout)
        except httpcore.WriteTimeout:
            raise httpcore.WriteTimeout(why) from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return AsyncDeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and _POLL:
            # httpcore asks this of every idle pooled connection on every request (has the
            # server closed it?); anyio answers through a dict of attribute getters it builds
            # anew each time, which was the pool's largest cost under load. The socket is
            # looked up once and polled directly, as httpcore itself does.
            if self._socket is None:
                self._socket = self._inner.get_extra_info("socket")
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


_POLL = hasattr(select, "poll")


def _readable(sock: Any) -> bool:
    """Whether ``sock`` has data (or an EOF) to read now; a closed socket counts as readable,
    so that the pool drops its connection."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class DeadlineBackend(httpcore.NetworkBackend):
    """A network backend whose connections obey :class:`deadline_scope`."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncDeadlineBackend(httpcore.AsyncNetworkBackend):
    """:class:`DeadlineBackend` for async I/O."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return AsyncDeadlineStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        timeout, _ = _capped(timeout, httpcore.ConnectTimeout)
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return AsyncDeadlineStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def enforce_deadlines(client: httpx.Client | httpx.AsyncClient) -> bool:
    """Make every connection pool of ``client`` (its transport and its proxy mounts) obey
    :class:`deadline_scope`; ``True`` if every pool could be wrapped.

    For clients llamaroute builds itself. httpx has no public hook below the per-operation
    timeouts, so this reaches the pools httpx's default transports keep (``_pool``, and
    httpcore's ``_network_backend``); a transport without them (a mock, a custom transport)
    is left alone, and its reads are then checked against the deadline only between reads.
    """
    transports: list[object] = [getattr(client, "_transport", None)]
    mounts = getattr(client, "_mounts", None)
    if isinstance(mounts, Mapping):
        transports.extend(mounts.values())
    wrapped = True
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, DeadlineBackend | AsyncDeadlineBackend):
            continue
        if isinstance(backend, httpcore.NetworkBackend):
            pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
        elif isinstance(backend, httpcore.AsyncNetworkBackend):
            pool._network_backend = AsyncDeadlineBackend(backend)  # type: ignore[union-attr]
        else:
            wrapped = False
    return wrapped


class deadline_scope:
    """Network operations inside the block end by ``deadline`` (a ``time.monotonic()``
    value, or a :class:`MovingDeadline` read again at each operation; ``None``: no deadline),
    on clients prepared with :func:`enforce_deadlines` or built on :class:`DeadlineBackend`.

    Keep the block around the I/O only, never across a ``yield``: a sync generator shares its
    consumer's context. (A class, not a generator-based context manager: it is entered on
    every read.)
    """

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: float | MovingDeadline | None) -> None:
        self._deadline = deadline

    def __enter__(self) -> None:
        self._token: Token[float | MovingDeadline | None] = _DEADLINE.set(self._deadline)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _DEADLINE.reset(self._token)


def deadline_after(timeout: float | None, start: float | None = None) -> float | None:
    """The deadline ``timeout`` seconds after ``start`` (default: now), or ``None``."""
    if timeout is None:
        return None
    return (time.monotonic() if start is None else start) + timeout


class StreamClock:
    """When a stream must have sent something by: the attempt's deadline (``timeout``) until
    its first text, and ``idle`` seconds without new text all along (either may be ``None``).

    :attr:`deadline` is the current one, for :class:`deadline_scope`; :attr:`code` says which
    it is (``deadline`` or ``stream_idle``).
    """

    __slots__ = ("code", "deadline", "idle", "provider")

    def __init__(self, provider: str, timeout: float | None, idle: float | None) -> None:
        start = time.monotonic()
        self.provider, self.idle = provider, idle
        first = deadline_after(timeout, start)
        idle_at = deadline_after(idle, start)
        self.deadline: float | None
        if first is not None and (idle_at is None or first <= idle_at):
            self.deadline, self.code = first, "deadline"
        else:
            self.deadline, self.code = idle_at, "stream_idle"

    def text_arrived(self) -> None:
        """New text came: from now on only the idle timeout applies."""
        idle, self.code = self.idle, "stream_idle"  # (deadline_after in line: every chunk)
        self.deadline = None if idle is None else time.monotonic() + idle

    def check(self, model_id: str) -> None:
        """Raise the timeout if the current deadline has passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise deadline_error(self.provider, model_id, self.code)

    def failure(
        self, error: httpx.HTTPError, model_id: str, redact: Callable[[str], str]
    ) -> ProviderError:
        """The llamaroute error for an httpx failure during the stream (see
        :func:`~._http.transport_failure`), named for the deadline that ran out, if one did."""
        failure = transport_failure(error, self.provider, model_id, redact, self.deadline)
        if failure.code == "deadline" and self.code != "deadline":
            return deadline_error(self.provider, model_id, self.code)
        return failure


def deadline_error(provider: str, model_id: str, code: str = "deadline") -> ProviderTimeoutError:
    """The error for an answer that did not arrive by its deadline."""
    what = {
        "deadline": "the call's timeout ran out before the answer arrived",
        "stream_idle": "the stream sent no new text within its idle timeout",
    }.get(code, "timed out")
    return ProviderTimeoutError(what, provider=provider, model_id=model_id, code=code)


def too_large(provider: str, model_id: str, what: str, limit: int) -> MalformedResponseError:
    """The error for an answer over its size cap: typed, and not worth sending again."""
    return MalformedResponseError(
        f"{what} is larger than the {limit:,}-byte cap; the rest was not read", provider=provider,
        model_id=model_id, code="response_too_large", retryable=False,
    )  # fmt: skip


# Decoded output is produced in pieces of at most this size, so that a compressed chunk that
# inflates a thousandfold never exists whole in memory.
_PIECE = 64 * 1024


class BodyReader:
    """Counts and decodes one response body as it arrives (no I/O).

    ``limit`` caps the decoded size. ``Content-Encoding`` gzip and deflate are decoded here,
    in bounded pieces (httpx's own decoders would inflate each network read whole); other
    encodings are refused. ``Content-Length`` over the cap fails before a byte is read.
    """

    __slots__ = ("_decoder", "_deflate", "_model_id", "_provider", "_what", "limit", "size")

    def __init__(
        self,
        headers: httpx.Headers,
        limit: int,
        *,
        provider: str,
        model_id: str,
        what: str = "the response body",
    ) -> None:
        self.limit, self.size = limit, 0
        self._provider, self._model_id, self._what = provider, model_id, what
        encoding = headers.get("content-encoding", "identity").strip().lower()
        self._decoder: Any = None
        self._deflate = encoding == "deflate"
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()  # zlib-wrapped, as RFC 9110 says
        elif encoding not in ("identity", ""):
            raise MalformedResponseError(
                f"{what} uses Content-Encoding {encoding[:40]!r}, which was not asked for",
                provider=provider,
                model_id=model_id,
                code="unsupported_encoding",
                retryable=False,
            )
        length = headers.get("content-length", "")
        if self._decoder is None and length.isdigit() and int(length) > limit:
            raise self.too_large()

    def too_large(self) -> MalformedResponseError:
        """The error for this body going over its cap."""
        return too_large(self._provider, self._model_id, self._what, self.limit)

    def feed(self, raw: bytes) -> Iterable[bytes]:
        """``raw`` decoded, in pieces (``(raw,)`` if not compressed); raises past the cap."""
        if self._decoder is None:
            self.size += len(raw)
            if self.size > self.limit:
                raise self.too_large()
            return (raw,)
        return self._inflate(raw)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while data and not self._decoder.eof:
            room = self.limit - self.size
            try:
                piece = self._decoder.decompress(data, min(room + 1, _PIECE))
            except zlib.error as error:
                if self._raw_deflate_retry():
                    continue  # the body is raw deflate (no zlib header), as many servers send
                raise MalformedResponseError(
                    f"{self._what} is not valid compressed data: {error}",
                    provider=self._provider,
                    model_id=self._model_id,
                ) from None
            self.size += len(piece)
            if self.size > self.limit:
                raise self.too_large()
            if piece:
                yield piece
            data = self._decoder.unconsumed_tail

    def _raw_deflate_retry(self) -> bool:
        if not self._deflate or self.size:
            return False
        self._deflate = False
        self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        return True
