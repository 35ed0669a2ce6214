"""How the Bedrock provider keeps a call's deadline and a size cap while botocore does the I/O.

botocore's timeouts are per socket read, and it reads a Converse body whole: a server that
trickles bytes, or never stops sending them, would hold a call past its deadline and fill the
memory. Three pieces bound that, with no change to what boto3 sends or how it parses:

* :class:`Guard`: one attempt's deadline, armed before each blocking step. At the deadline
  it shuts down the attempt's socket, which wakes the blocked read at once (a ``close()``
  would not), in whichever thread it runs.
* :class:`Watchdog`: one thread per provider that expires the guards whose deadline passed.
  Streams re-arm their guard at each chunk without waking it: it wakes at most once per
  deadline.
* :class:`Sender`: botocore's ``before-send`` hook. It sends the signed request through the
  client's own HTTP session (its proxies and TLS settings), after marking the connection
  pool so that each connection reports itself to the thread's guard, then reads a Converse
  body under the size cap, or wraps an event stream in :class:`CappedStream`, which checks
  each frame's declared size and the stream's total as bytes arrive.

This module imports botocore and urllib3 only inside functions: ``import llamaroute`` loads
neither.
"""

from __future__ import annotations

import contextlib
import io
import math
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._exceptions import MalformedResponseError, ProviderTimeoutError
from ._redact import request_secrets

if TYPE_CHECKING:
    pass

__all__ = [
    "CappedStream",
    "Guard",
    "Limits",
    "Sender",
    "Watchdog",
]

_CHUNK = 64 * 1024
_PRELUDE = struct.Struct(">II")
#: An event-stream frame's fixed part: the prelude (total and headers lengths, CRC) and the
#: message CRC.
_FRAME_OVERHEAD = 16


@dataclass(frozen=True, slots=True)
class Limits:
    """What one answer may weigh: a Converse body, one event-stream frame, a whole stream."""

    body: int
    frame: int
    stream: int


def too_large(what: str, cap: int, setting: str, model_id: str) -> MalformedResponseError:
    """The error for an answer over a size cap: malformed, and not worth sending again."""
    return MalformedResponseError(
        f"the Bedrock {what} is over the {cap:,}-byte cap ({setting}); the rest was not read",
        provider="bedrock", model_id=model_id, code="response_too_large", retryable=False,
    )  # fmt: skip


def _corrupt(length: int, headers: int, model_id: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"unreadable Bedrock response: an event-stream frame declares {length} bytes with "
        f"{headers} bytes of headers",
        provider="bedrock", model_id=model_id, code="corrupt_frame",
    )  # fmt: skip


def _shut(sock: Any) -> None:
    # shutdown() wakes a read blocked in another thread (close() does not) and sends a FIN, so
    # the server sees the hang-up. socket.socket's own method: SSLSocket.shutdown would also
    # drop the SSL object under a read that is still running.
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Guard:
    """One attempt's deadline, and the means to end it early.

    The attempt's thread :meth:`arm`\\ s it before each blocking step (the request, each
    stream read) with the seconds that step may take, and :meth:`rest`\\ s it when a stream
    hands a chunk to its reader, whose time is not the server's. The watchdog, or a waiter
    that gives up, calls :meth:`expire`: the connection is shut down and the blocked step
    fails at once; :meth:`timeout_error` then says what happened.
    """

    __slots__ = ("_lock", "_watchdog", "busy", "connected", "deadline", "expired", "model_id",
                 "pending", "received", "request_headers", "sock", "window")  # fmt: skip

    def __init__(self, watchdog: Watchdog, model_id: str) -> None:
        self._watchdog = watchdog
        self.model_id = model_id
        self._lock = threading.Lock()
        self.deadline = math.inf
        self.window = math.inf
        self.busy = False
        self.expired = False
        #: The socket carrying the attempt (kept, not read from the connection: http.client
        #: hands it to the response and forgets it when the server says Connection: close).
        self.sock: Any = None
        self.connected = False
        self.received = False
        #: The signed request's headers: their token and signature are redacted from errors.
        self.request_headers: Any = None
        #: The async step running in a worker thread, if any.
        self.pending: Future[Any] | None = None

    def arm(self, seconds: float) -> None:
        """The next step must end within ``seconds`` from now."""
        deadline = time.monotonic() + seconds
        earlier = deadline < self.deadline
        self.window = seconds
        self.deadline = deadline  # before busy: the watchdog reads busy first
        self.busy = True
        if earlier and deadline < self._watchdog.wake:
            self._watchdog.poke()

    def rest(self) -> None:
        """The step is over; the time until the next :meth:`arm` is the reader's."""
        self.busy = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def overdue(self) -> bool:
        """Whether the step's deadline has passed (then the guard is expired now): what a
        reader that keeps receiving checks, without waiting for the watchdog's turn."""
        if not self.expired and self.busy and time.monotonic() >= self.deadline:
            self.expire()
        return self.expired

    def attach(self, sock: Any) -> None:
        """The socket now carrying this attempt (shut at once if already expired)."""
        with self._lock:
            self.sock = sock
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        """End the attempt: shut its connection down so the blocked read returns now."""
        with self._lock:
            if self.expired:
                return
            self.expired = True
            sock = self.sock
        _shut(sock)

    @property
    def sent(self) -> list[str]:
        """The secret parts of the signed request (its token, signature, credential scope)."""
        return [] if self.request_headers is None else request_secrets(self.request_headers)

    def timeout_error(self, what: str) -> ProviderTimeoutError:
        """The timeout this attempt ended with; its code says whether the request went out
        (``ReadTimeoutError``, likely billed) or never did (``ConnectTimeoutError``)."""
        code = "ReadTimeoutError" if self.connected else "ConnectTimeoutError"
        return ProviderTimeoutError(
            f"timed out: {what} took longer than {self.window:.3g} s ({code})",
            provider="bedrock", model_id=self.model_id, code=code,
        )  # fmt: skip

    def finish(self) -> None:
        self.busy = False
        self._watchdog.forget(self)


class Watchdog:
    """Expires guards at their deadlines, from one thread started on first use.

    :attr:`wake` is when the thread will look next (``inf`` while it is looking, since it may
    miss a deadline set meanwhile): a guard armed for an earlier moment pokes it, any other
    arming costs nothing.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._guards: set[Guard] = set()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.wake = math.inf

    def guard(self, model_id: str) -> Guard:
        """A new guard, watched until :meth:`Guard.finish`."""
        guard = Guard(self, model_id)
        with self._cond:
            self._guards.add(guard)
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._run, name="llamaroute-bedrock-deadlines", daemon=True
                )
                self._thread.start()
        return guard

    def forget(self, guard: Guard) -> None:
        with self._cond:
            self._guards.discard(guard)

    def poke(self) -> None:
        """A deadline moved earlier than :attr:`wake`: look again."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                self.wake = math.inf  # looking: whoever arms a guard now pokes
                now = time.monotonic()
                due, wake = [], math.inf
                for guard in self._guards:
                    busy = guard.busy  # read before the deadline: arm() writes it last
                    deadline = guard.deadline
                    if deadline > now:
                        wake = min(wake, deadline)
                    elif busy:
                        due.append(guard)
                    else:  # resting past its deadline: the reader holds it; look again later
                        wake = min(wake, now + max(guard.window, 0.01))
                for guard in due:
                    self._guards.discard(guard)
                    guard.expire()
                self.wake = wake
                self._cond.wait(None if wake == math.inf else wake - now)

    def close(self) -> None:
        """Stop the thread (a later :meth:`guard` starts a new one)."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._closing = True
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1)


class CappedStream:
    """botocore's raw event-stream body, read under the frame and total caps.

    botocore's ``EventStream`` reads ``stream()`` and calls ``close()``; anything else is the
    urllib3 response's. Each frame's declared total length is checked as its prelude arrives,
    before botocore buffers the frame.
    """

    def __init__(self, raw: Any, limits: Limits, guard: Guard) -> None:
        self._raw = raw
        self._limits = limits
        self._guard = guard
        self._model_id = guard.model_id

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        raw, limits = self._raw, self._limits
        total, left, prelude = 0, 0, b""
        for chunk in _chunks(raw):
            if self._guard.overdue():  # bytes that keep coming after the deadline
                raise _Stopped
            total += len(chunk)
            if total > limits.stream:
                self.close()
                raise too_large("stream", limits.stream, "max_stream_bytes", self._model_id)
            at, size = 0, len(chunk)
            while at < size:
                if left:
                    step = min(left, size - at)
                    left -= step
                    at += step
                    continue
                need = _PRELUDE.size - len(prelude)
                prelude += chunk[at : at + need]
                at += need
                if len(prelude) < _PRELUDE.size:
                    break
                length, headers = _PRELUDE.unpack(prelude)
                prelude = b""
                if length > limits.frame:
                    self.close()
                    raise too_large("stream's event", limits.frame, "max_event_bytes",
                                    self._model_id)  # fmt: skip
                if length < _FRAME_OVERHEAD or headers > length - _FRAME_OVERHEAD:
                    self.close()
                    raise _corrupt(length, headers, self._model_id)
                left = length - _PRELUDE.size
            yield chunk

    def close(self) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _chunks(raw: Any) -> Iterator[bytes]:
    """The body's bytes as they arrive: each HTTP chunk, else whatever one read returns."""
    if getattr(raw, "chunked", False) and raw.supports_chunked_reads():
        yield from raw.read_chunked(_CHUNK, decode_content=False)
        return
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        yield from raw.stream(_CHUNK, decode_content=False)
        return
    while data := read1(_CHUNK, decode_content=False):
        yield data


class _Stopped(Exception):
    """The guard expired while bytes were still arriving (the caller reports the timeout)."""


def read_body(raw: Any, cap: int, guard: Guard) -> bytes:
    """The whole body, or :func:`too_large` as soon as it passes ``cap`` bytes (memory stays
    near ``cap``; a declared length over the cap is refused before any byte is read)."""
    model_id = guard.model_id
    try:
        declared = str(raw.headers.get("content-length") or "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large("answer", cap, "max_response_bytes", model_id)
        buffer = io.BytesIO()
        for chunk in _chunks(raw):
            if guard.overdue():
                raise _Stopped
            if buffer.tell() + len(chunk) > cap:
                raise too_large("answer", cap, "max_response_bytes", model_id)
            buffer.write(chunk)
    except BaseException:
        raw.close()  # the rest of the body stays unread: this connection is not reused
        raise
    return buffer.getvalue()


class Sender:
    """The ``before-send`` handler of one provider's boto3 clients (see the module doc).

    It acts only in a thread whose ``local.guard`` is set (a call of this provider); any other
    use of the client goes through botocore untouched.
    """

    def __init__(self, local: threading.local, limits: Limits, read_timeout: float) -> None:
        self._local = local
        self._limits = limits
        self._read_timeout = read_timeout

    def install(self, client: Any) -> None:
        """Hook ``client``: the ``before-send`` handler, and connections that report to the
        thread's guard (botocore's session internals, best effort: without them each read
        still waits no longer than the time left, and a reader that keeps receiving still
        stops at the deadline)."""
        events = client.meta.events
        session = client._endpoint.http_session
        for operation in ("Converse", "ConverseStream"):
            events.register(
                f"before-send.bedrock-runtime.{operation}",
                lambda request, _s=session, _o=operation, **_: self._send(_s, _o, request),
                unique_id=f"llamaroute-send-{id(self)}-{operation}",
            )
        with contextlib.suppress(AttributeError, TypeError):
            self._guard_pools(session)

    def _guard_pools(self, session: Any) -> None:
        # The session's pool classes (a dict its pool managers share): pools made from now on
        # make guarded connections. Pools already made (an injected client) are changed too.
        classes = session._pool_classes_by_scheme
        for scheme, pool_class in list(classes.items()):
            connection = self._guarded(pool_class.ConnectionCls)
            if connection is not pool_class.ConnectionCls:
                name = f"Guarded{pool_class.__name__}"
                classes[scheme] = type(name, (pool_class,), {"ConnectionCls": connection})
        managers = [session._manager, *session._proxy_managers.values()]
        for manager in managers:
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.ConnectionCls = self._guarded(pool.ConnectionCls)

    def _guarded(self, base: type) -> type:
        if getattr(base, "_llamaroute_guarded", None) is self._local:
            return base
        return _guarded_connection(base, self._local)

    def _send(self, session: Any, operation: str, request: Any) -> Any:
        guard: Guard | None = getattr(self._local, "guard", None)
        if guard is None:
            return None
        from botocore.awsrequest import AWSResponse

        guard.request_headers = request.headers  # its token and signature, for redaction
        request.stream_output = True  # botocore reads no body: read_body does, capped
        context = getattr(request, "context", None)
        if isinstance(context, dict):
            # A fallback for a session whose connections could not be guarded: each read
            # waits no longer than the time left.
            context["read_timeout"] = max(0.001, min(self._read_timeout, guard.remaining()))
        response: AWSResponse = session.send(request)
        guard.connected = True
        if operation == "ConverseStream" and response.status_code < 300:
            response.raw = CappedStream(response.raw, self._limits, guard)
        else:
            response._content = read_body(  # type: ignore[attr-defined]
                response.raw, self._limits.body, guard
            )
        guard.received = True
        return response


def _guarded_connection(base: type, local: threading.local) -> type:
    """``base`` (botocore's urllib3 connection class) reporting to ``local.guard``: attached
    before it connects or sends, so that a deadline can shut it down mid-request; and its
    connect never waits past the deadline."""

    class Guarded(base):  # type: ignore[misc]
        _llamaroute_guarded = local

        def connect(self) -> None:
            guard: Guard | None = getattr(local, "guard", None)
            if guard is not None:
                left = max(0.001, guard.remaining())
                timeout = getattr(self, "timeout", None)
                if not isinstance(timeout, int | float) or timeout > left:
                    self.timeout = left  # urllib3 connects with this timeout
            super().connect()
            if guard is not None:
                guard.connected = True
                guard.attach(self.sock)  # shut at once if the guard expired meanwhile

        def request(self, *args: Any, **kwargs: Any) -> Any:
            guard: Guard | None = getattr(local, "guard", None)
            if guard is not None and self.sock is not None:  # a connection used before
                guard.connected = True
                guard.attach(self.sock)
            return super().request(*args, **kwargs)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


# --- closing ---------------------------------------------------------------------------
