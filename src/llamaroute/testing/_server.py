"""The machinery shared by the fake provider servers: a real HTTP/1.1 server on 127.0.0.1
that answers each request from a script of :class:`Step` objects (see ``_script.py``) and
records what it received.

A fake is a :class:`FakeServer` subclass that knows one provider's wire format (JSON bodies,
SSE, NDJSON, AWS event stream). The base class does everything else: serving on a free port
in a thread, taking the next :class:`Step` for each request, delays, cutting, dropping or
resetting a stream after N chunks, recording requests and noticing when a client hangs up.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

from ._script import RecordedRequest, Step, StreamPlan, is_fault

__all__ = ["Exchange", "FakeServer"]


class Exchange:
    """One request being answered: its parsed parts, and the low-level ways to respond."""

    def __init__(self, handler: _Handler, request: RecordedRequest) -> None:
        self.handler = handler
        self.request = request
        self.json: Any = request.json
        self._chunked = False

    @property
    def path(self) -> str:
        """The request path without the query string."""
        return self.request.path.split("?", 1)[0]

    def send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """A complete response with a ``Content-Length``."""
        handler = self.handler
        handler.send_response(status)
        merged = {"Content-Type": "application/json", **(headers or {})}
        for name, value in merged.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def start_stream(self, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        """Send a 200 with chunked transfer encoding; follow with :meth:`write`."""
        handler = self.handler
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.flush()
        self._chunked = True

    def write(self, data: bytes, *, split: bool = False, pause: float = 0.0) -> None:
        """Send ``data`` as one chunk (or one chunk per byte with ``split``, ``pause``
        seconds apart)."""
        pieces = [data[i : i + 1] for i in range(len(data))] if split or pause else [data]
        for index, piece in enumerate(pieces):
            if pause and index:
                time.sleep(pause)
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.handler.wfile.flush()

    def send_slowly(
        self, status: int, body: bytes, headers: Mapping[str, str] | None, pause: float
    ) -> None:
        """A complete response with a ``Content-Length``, whose body goes one byte at a time,
        ``pause`` seconds apart (the headers at once)."""
        handler = self.handler
        handler.send_response(status)
        merged = {"Content-Type": "application/json", **(headers or {})}
        for name, value in merged.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for index in range(len(body)):
            if index:
                time.sleep(pause)
            handler.wfile.write(body[index : index + 1])
            handler.wfile.flush()

    def end_stream(self) -> None:
        """End the chunked body properly."""
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection without finishing the body."""
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.wfile.flush()
            self.handler.connection.shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.wfile.flush()
        connection = self.handler.connection
        with contextlib.suppress(OSError):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # A client that vanishes must not pin a server thread for long.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # The handler writes the headers and the body (or each stream frame) separately. With
        # Nagle's algorithm on, the second write waits for the client's delayed ACK of the
        # first: about 40 ms added to every response on Linux loopback. Real servers turn it
        # off, and so must a fake that tests measure time against.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the record, not stderr

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.monotonic(),
        )
        fake = self.server.fake
        fake._record(request)
        try:
            fake.handle(Exchange(self, request))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            fake._note_hangup()
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            # A client dropping or resetting an idle keep-alive connection is a close, not a
            # server error.
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._note_closed()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of concurrent clients (a 50-call async
    # test) would see dropped SYNs and a 1 s retransmit instead of the fake's own delay.
    request_queue_size = 128
    fake: FakeServer


class FakeServer:
    """Base class of the fake provider servers (a context manager; port 0 on 127.0.0.1).

    Each request takes the next scripted :class:`Step` (see :meth:`script`); when the script
    is empty, chaos mode (if on) may pick a fault, else the ``default`` step answers.
    Subclasses implement :meth:`handle` for their provider's paths and formats.
    """

    #: The answer text when a step does not give one.
    default_text: ClassVar[str] = "Hello from the fake provider."

    def __init__(self, *steps: Step, default: Step | None = None) -> None:
        self.default = default or Step()
        self._steps: deque[Step] = deque(steps)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._closed: list[float] = []
        self._hangups = 0
        self._chaos: tuple[float, random.Random, tuple[Step, ...]] | None = None
        self.faults_injected = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (both: otherwise clients would hang)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the fake server is not running; use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # --- script ---------------------------------------------------------------------------

    def script(self, *steps: Step) -> Self:
        """Queue steps: the next requests take them in order."""
        with self._lock:
            self._steps.extend(steps)
        return self

    def chaos(self, rate: float, seed: int, faults: Sequence[Step]) -> Self:
        """Once the script is empty, answer each request with a random fault from ``faults``
        with probability ``rate`` (seeded, so a run can be repeated), else the default."""
        with self._lock:
            self._chaos = (rate, random.Random(seed), tuple(faults))
        return self

    def next_step(self) -> Step:
        """The step for the request being handled now."""
        with self._lock:
            if self._steps:
                step = self._steps.popleft()
            elif self._chaos is not None and self._chaos[1].random() < self._chaos[0]:
                step = self._chaos[1].choice(self._chaos[2])
            else:
                return self.default
            if step.is_error or is_fault(step):
                self.faults_injected += 1
            return step

    # --- record ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def hits(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    @property
    def hangups(self) -> int:
        """How many times a client went away while the fake was still writing to it."""
        with self._lock:
            return self._hangups

    def closed_since(self, moment: float) -> bool:
        """Whether a client connection ended after ``moment`` (a ``time.monotonic()``)."""
        with self._lock:
            return any(closed >= moment for closed in self._closed)

    def wait_closed(self, since: float, timeout: float = 1.0) -> float | None:
        """Seconds from ``since`` until a connection ended, or ``None`` within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                later = [closed for closed in self._closed if closed >= since]
            if later:
                return min(later) - since
            time.sleep(0.005)
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _note_closed(self) -> None:
        with self._lock:
            self._closed.append(time.monotonic())

    def _note_hangup(self) -> None:
        with self._lock:
            self._hangups += 1

    # --- answering --------------------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        """Answer one request (implemented by each provider's fake)."""
        raise NotImplementedError

    def chunks_for(self, step: Step) -> list[str]:
        """The text chunks a step streams: its ``chunks``, or its text word by word."""
        if step.chunks is not None:
            return list(step.chunks)
        text = self.default_text if step.text is None else step.text
        words = text.split(" ")
        return [word if i == 0 else " " + word for i, word in enumerate(words)] if text else []

    def usage_for(self, step: Step, request: Any, chunks: Sequence[str]) -> tuple[int, int]:
        """Token counts to report: the step's, or a rough count of the request and answer."""
        if step.usage is not None:
            return step.usage
        return max(1, len(json.dumps(request)) // 4), max(1, len(chunks))

    def answer(self, exchange: Exchange, step: Step, *, stream: bool) -> bool:
        """The shared part of every answer: the delay and the faults that need no wire format.

        Returns ``True`` if the exchange is already over (connection reset).
        """
        if step.delay and self._stall(exchange, step.delay):
            return True
        if step.reset_after == 0:
            exchange.reset()
            return True
        return False

    @staticmethod
    def _stall(exchange: Exchange, seconds: float) -> bool:
        """Wait like a slow server, but notice a client that hangs up meanwhile (as a real
        server does): ``True`` if it did, and the exchange is over."""
        connection = exchange.handler.connection
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([connection], [], [], min(left, 0.05))
            if not readable:
                continue
            try:
                gone = not connection.recv(1, socket.MSG_PEEK)
            except OSError:
                gone = True
            if gone:
                exchange.handler.close_connection = True
                return True
            time.sleep(min(left, 0.05))  # pipelined bytes, not a hang-up: keep stalling
        return False

    def send_answer(
        self, exchange: Exchange, step: Step, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """A non-streamed 200 answer with ``body`` (or the step's ``raw_body``), applying the
        step's ``trickle`` and ``endless`` faults."""
        body = step.raw_body if step.raw_body is not None else body
        merged = {**(headers or {})}
        if step.content_type is not None:
            merged["Content-Type"] = step.content_type
        if step.endless is not None:
            exchange.start_stream(merged.pop("Content-Type", "application/json"), merged)
            if body:
                exchange.write(body)
            self._forever(exchange, step)
        elif step.trickle:
            exchange.send_slowly(200, body, merged, step.trickle)
        else:
            exchange.send(200, body, merged)

    def _forever(self, exchange: Exchange, step: Step) -> None:
        """Write ``step.endless`` until the client hangs up (a write then fails) or the fake
        stops."""
        assert step.endless is not None
        while self._server is not None:
            if step.chunk_delay:
                time.sleep(step.chunk_delay)
            exchange.write(step.endless, pause=step.trickle)

    def play_stream(
        self, exchange: Exchange, step: Step, plan: StreamPlan, content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """Write a streamed answer frame by frame, applying the step's stream faults."""
        exchange.start_stream(step.content_type or content_type, headers)
        split, pause = step.split_writes, step.trickle
        if step.raw_body is not None:
            exchange.write(step.raw_body, split=split, pause=pause)
            exchange.end_stream()
            return
        for frame in plan.preamble:
            exchange.write(frame, split=split, pause=pause)
        for sent, frame in enumerate(plan.content):
            if self._interrupt(exchange, step, plan, sent):
                return
            if sent and step.chunk_delay:
                time.sleep(step.chunk_delay)
            exchange.write(frame, split=split, pause=pause)
        if self._interrupt(exchange, step, plan, len(plan.content)):
            return
        closing = (
            plan.closing[: len(plan.closing) - plan.end_marker] if step.omit_end else plan.closing
        )
        for frame in closing:
            exchange.write(frame, split=split, pause=pause)
        exchange.end_stream()

    def _interrupt(self, exchange: Exchange, step: Step, plan: StreamPlan, sent: int) -> bool:
        if step.endless is not None and step.endless_after == sent:
            self._forever(exchange, step)
        elif step.cut_after == sent:
            exchange.end_stream()
        elif step.drop_after == sent:
            exchange.drop()
        elif step.reset_after == sent:
            exchange.reset()
        elif step.error_after == sent:
            exchange.write(plan.error_frame)
            exchange.end_stream()
        elif step.malformed_after == sent:
            exchange.write(plan.malformed_frame)
            exchange.end_stream()
        else:
            return False
        return True
