"""The Ollama provider: the I/O around the wire functions, over the official ``ollama`` client.

Building the call, parsing answers and stream lines, and mapping errors are the plain
functions of ``_wire.py`` and ``_mapping.py``, shared by the sync and async methods; only the
lines that do I/O are written twice. The clients are built by ``_clients.py``, over the
transport of ``_guard.py`` that holds each attempt to its deadline and size caps.
``GET /api/tags`` (the models pulled on the server) answers :meth:`OllamaProvider.available`,
and picks the installed name of a model that has several.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from functools import partial
from typing import Any, ClassVar, cast

import httpx
import ollama

from ..._exceptions import ConfigurationError, LlamarouteError
from ..._secrets import Secret
from ...catalog import Route
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import attempt_timeout, finite_timeout
from ._body import wire_body
from ._clients import Clients, Redactor, header_secrets, send_chat
from ._context import check_fixed_context
from ._guard import Guard, guarded
from ._mapping import client_errors, map_error
from ._stream import StreamState
from ._tags import tag as _tag
from ._tags import wanted as _wanted
from ._wire import (
    DEFAULT_HOST,
    NAME,
    build_request,
    first_call_number,
    normalise_host,
    parse_response,
    split_credentials,
)

__all__ = ["API_KEY_ENV", "DEFAULT_TIMEOUT", "HOST_ENV", "MAX_LINE_BYTES", "MAX_RESPONSE_BYTES",
           "MAX_STREAM_BYTES", "PROBE_TIMEOUT", "PROBE_TTL", "STREAM_IDLE_TIMEOUT",
           "OllamaProvider"]  # fmt: skip

HOST_ENV = "OLLAMA_HOST"
#: The path the ollama client's chat posts to (a body written in ``_body.py`` goes there too).
API_KEY_ENV = "OLLAMA_API_KEY"

#: Always finite (the ollama client's own default is no timeout at all). Connecting is short:
#: the server is local or on the LAN, and a refused port fails at once anyway. Reading is long:
#: the first token waits for the model to load, which takes minutes for the 90B model.
DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=10.0)

#: Once a stream has sent text, the model is loaded and generating: a minute without a new
#: token (even the 90B model on a CPU makes several a minute) is a server that has stalled.
STREAM_IDLE_TIMEOUT = 60.0

#: Size caps, counted while reading: a whole answer (16 MiB is millions of tokens of text), one
#: NDJSON line (a line carries one token; the last one, counts and timings), a whole stream.
MAX_RESPONSE_BYTES = 16 * 2**20
MAX_LINE_BYTES = 2**20
MAX_STREAM_BYTES = 64 * 2**20

#: The availability probe must answer "no" fast, without waiting for a chat timeout.
PROBE_TIMEOUT = httpx.Timeout(connect=0.5, read=2.0, write=2.0, pool=0.5)
PROBE_TTL = 10.0

logger = logging.getLogger("llamaroute")


class OllamaProvider(Provider):
    """Llama 3.2 on an Ollama server, through the official ``ollama`` client.

    Args:
        host: the server (default ``$OLLAMA_HOST``, else ``http://127.0.0.1:11434``); a bare
            ``host:port`` works, as with the ``ollama`` CLI. Credentials in it
            (``https://user:password@host``) are taken out of the URL and sent as Basic auth.
        timeout: an ``httpx.Timeout`` or seconds; always finite. Each part bounds one
            connect, write or read; a call's ``timeout=`` bounds the whole attempt (without
            one, the parts added up do: a non-streamed answer, or a stream's first text).
        headers: extra HTTP headers (for a server behind a proxy).
        api_key: sent as ``Authorization: Bearer`` (default ``$OLLAMA_API_KEY``, if set).
        keep_alive: how long the server keeps the model loaded after a call (``"10m"``,
            seconds, ``-1`` forever, ``0`` unload at once); default: the server's (5 minutes).
        num_ctx: a fixed context size for every call, instead of one sized per request (see
            :func:`estimate_num_ctx`).
        stream_idle_timeout: once a stream has sent text, the longest wait for more text
            (seconds; never longer than the call's ``timeout=``). Lines without text do not
            count as text.
        max_response_bytes, max_line_bytes, max_stream_bytes: the size caps on a whole
            answer, one stream line and a whole stream; past one, the call fails with a
            :class:`~llamaroute.MalformedResponseError` (code ``response_too_large``).
        probe_ttl, probe_timeout: how long an :meth:`available` answer is reused, and the
            timeouts of its request (an injected client keeps its own).
        clock: the monotonic clock the probe cache reads (injectable for tests).
        client, async_client: injected ``ollama.Client`` / ``ollama.AsyncClient`` (for custom
            transports); used as they are, with their own timeouts, and not closed here. The
            whole-attempt deadline, the idle timeout and the size caps hold only on the
            clients the provider builds.
        deployment, rpm, tpm, weight: this host's name when a client holds several Ollama
            servers (default ``"ollama"``), its requests and tokens per minute (checked before
            sending; ``None``: no limit) and its share for the ``weighted`` strategy.
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
        stream_idle_timeout: float = STREAM_IDLE_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_stream_bytes: int = MAX_STREAM_BYTES,
        probe_ttl: float = PROBE_TTL,
        probe_timeout: httpx.Timeout | float = PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        client: ollama.Client | None = None,
        async_client: ollama.AsyncClient | None = None,
        deployment: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        weight: float = 1.0,
    ) -> None:
        self._deploy(deployment, rpm, tpm, weight)
        bare, basic, url_secrets = split_credentials(
            host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        )
        self.host = normalise_host(bare)
        self.timeout = finite_timeout(timeout, "Ollama timeout")
        self.probe_timeout = finite_timeout(probe_timeout, "Ollama probe_timeout")
        if num_ctx is not None and num_ctx < 1:
            raise ConfigurationError("num_ctx must be a positive number of tokens")
        if not stream_idle_timeout > 0:
            raise ConfigurationError("stream_idle_timeout must be a positive number of seconds")
        caps = (max_response_bytes, max_line_bytes, max_stream_bytes)
        if any(not isinstance(cap, int) or cap < 1 for cap in caps):
            raise ConfigurationError("the max_*_bytes caps must be positive whole numbers")
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.stream_idle_timeout = float(stream_idle_timeout)
        self.max_response_bytes, self.max_line_bytes, self.max_stream_bytes = caps
        self.probe_ttl = probe_ttl
        self._clock = clock
        environment_key = os.environ.get(API_KEY_ENV, "")
        key = api_key if api_key is not None else ("" if basic else environment_key)
        self._key = Secret(key)
        # Asked for unencoded: a compressed body would grow past the size caps only after they
        # were checked (see _guard.py).
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        if not any(name.lower() == "authorization" for name in sent):
            if key:
                sent["Authorization"] = f"Bearer {key}"
            elif basic:
                sent["Authorization"] = basic
        # The ollama client adds $OLLAMA_API_KEY by itself when no Authorization is sent.
        self._redact = Redactor([key, environment_key, *url_secrets, *header_secrets(sent)])
        self._clients = Clients(host=self.host, timeout=self.timeout, headers=sent,
                                client=client, async_client=async_client)  # fmt: skip
        self._lock = threading.Lock()
        self._probe: tuple[float, frozenset[str] | None] | None = None
        self._probe_failure = ""  # why the last probe failed, in plain words
        self._whole: tuple[httpx.Timeout, float, str] | None = None
        # The last attempt timeout's httpx timeouts, as the request takes them: calls give the
        # same timeout= again and again.
        self._attempt: tuple[float, httpx.Timeout, dict[str, float | None]] | None = None
        self._mappers: dict[str, client_errors] = {}
        self._idle_message: tuple[float, str] = (-1.0, "")

    def __repr__(self) -> str:
        key = f", api_key={self._key.masked!r}" if self._key else ""
        return f"OllamaProvider(host={self.host!r}{key}{self._deployment_repr()})"

    def _sync(self) -> ollama.Client:
        return self._clients.sync()

    def _async(self) -> ollama.AsyncClient:
        return self._clients.async_()

    # --- the shared halves of every call -----------------------------------------------------

    def _errors(self, model_id: str) -> client_errors:
        """Map whatever the ollama client raises inside the block (and nothing of ours).
        Stateless, so one per model serves every call (a provider sends few model tags)."""
        mapper = self._mappers.get(model_id)
        if mapper is None:
            mapper = self._mappers[model_id] = client_errors(model_id, self.host, self._redact)
        return mapper

    def _request(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        if self.num_ctx is not None:
            check_fixed_context(call, self.num_ctx)  # Ollama would cut the prompt silently
        return build_request(
            call, stream=stream, model=self._tag_for(call.route), keep_alive=self.keep_alive,
            num_ctx=self.num_ctx,
        )  # fmt: skip

    def _body(self, call: ProviderCall, request: dict[str, Any], own: bool) -> Any:
        """The JSON body to send as it is (see ``_body.py``), or ``None``: send through the
        client's ``chat``. Only on a client built here (an injected one may be anything that
        has a ``chat``), and only without the call's own Ollama options."""
        if not own or NAME in call.request.extra:
            return None
        return wire_body(request)

    def _guard(self, call: ProviderCall, model_id: str, *, stream: bool) -> Guard:
        """The attempt's limits: its deadline, size caps and timeouts. The deadline is
        ``call.timeout`` from now; without one, the provider's own timeouts added up (connect,
        write and read: what one answer may take when each part takes all it may), so that no
        server holds a call for ever a byte at a time. The request's httpx timeouts are the
        client's own, each capped at ``call.timeout`` when there is one."""
        if call.timeout is not None:
            seconds, why = call.timeout, f"the attempt's {call.timeout:g} s ran out"
            timeout = self._attempt_timeout(call.timeout)
        else:
            seconds, why = self._whole_answer()
            timeout = None
        return Guard(
            NAME, model_id, deadline=time.monotonic() + seconds, why=why,
            limit=self.max_stream_bytes if stream else self.max_response_bytes,
            max_line=self.max_line_bytes if stream else None, timeout=timeout,
        )  # fmt: skip

    def _attempt_timeout(self, seconds: float) -> dict[str, float | None]:
        cached = self._attempt
        if cached is not None and cached[0] == seconds and cached[1] is self.timeout:
            return cached[2]
        timeout = attempt_timeout(seconds, self.timeout).as_dict()
        self._attempt = (seconds, self.timeout, timeout)
        return timeout

    def _whole_answer(self) -> tuple[float, str]:
        """The deadline of an attempt without a ``timeout=`` (the timeouts' parts added up)
        and its message: worked out once per ``timeout`` (it is the same for every call)."""
        timeout = self.timeout
        cached = self._whole
        if cached is not None and cached[0] is timeout:
            return cached[1], cached[2]
        parts = (timeout.connect, timeout.write, timeout.read)
        seconds = sum(cast(float, part) for part in parts)
        why = f"no whole answer within the provider's timeouts ({seconds:g} s)"
        self._whole = (timeout, seconds, why)
        return seconds, why

    def _idle(self, call: ProviderCall) -> float:
        seconds = self.stream_idle_timeout
        return seconds if call.timeout is None else min(seconds, call.timeout)

    def _tag_for(self, route: Route) -> str:
        # When a fresh probe saw the route's tag missing but an alternate of it installed
        # (llama3.2:latest for llama3.2:3b), send the installed name: the server knows no
        # aliases, so the route's own tag would be a 404.
        if self._probe is None:
            return route.model_id  # never probed: nothing to choose from
        installed = self._fresh()[1]
        if installed is None or _tag(route.model_id) in installed:
            return route.model_id
        for alternate in route.alternate_ids:
            if _tag(alternate) in installed:
                return alternate
        return route.model_id

    # --- chat and stream ---------------------------------------------------------------------
    #
    # Every error leaves with its cause (a scrubbed copy of what the ollama client raised) and
    # without its context: the original, raised inside the client, may hold a secret.

    def chat(self, call: ProviderCall) -> ProviderResult:
        request = self._request(call, stream=False)
        model_id = request["model"]
        guard = self._guard(call, model_id, stream=False)
        try:
            body = self._body(call, request, self._clients.own_sync)
            with self._errors(model_id), guarded(guard):
                response = send_chat(self._sync(), request, body, stream=False)
            return parse_response(response, model_id=model_id, redact=self._redact,
                                  tools=call.request.tools,
                                  first_call=partial(first_call_number, call.request))  # fmt: skip
        except LlamarouteError as error:
            _detach(error)
            raise

    async def achat(self, call: ProviderCall) -> ProviderResult:
        request = self._request(call, stream=False)
        model_id = request["model"]
        guard = self._guard(call, model_id, stream=False)
        try:
            body = self._body(call, request, self._clients.own_async)
            with self._errors(model_id), guarded(guard):
                response = await send_chat(self._async(), request, body, stream=False)
            return parse_response(response, model_id=model_id, redact=self._redact,
                                  tools=call.request.tools,
                                  first_call=partial(first_call_number, call.request))  # fmt: skip
        except LlamarouteError as error:
            _detach(error)
            raise

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        request = self._request(call, stream=True)
        model_id = request["model"]
        state = StreamState(model_id, self._redact, call.request.tools,
                            partial(first_call_number, call.request),
                            build=ollama.ChatResponse)  # fmt: skip
        errors = self._errors(model_id)
        guard, idle = self._guard(call, model_id, stream=True), self._idle(call)
        # Built once for the stream, not per chunk: the idle timeout's message.
        idle_why, monotonic, feed = self._idle_why(idle), time.monotonic, state.feed
        try:
            body = self._body(call, request, self._clients.own_sync)
            with errors:
                sent = send_chat(self._sync(), request, body, stream=True)
                lines = cast(Iterator[ollama.ChatResponse], sent)
            try:
                # Lazy client: the request itself goes out on the first next(), inside the
                # guard's block, where the transport finds the guard: it applies the attempt's
                # timeouts and binds the deadline and the size caps to the response, whose
                # body sets the deadline around each of its later reads (not across a yield:
                # the consumer's own requests between two chunks are none of its business).
                with errors, guarded(guard):
                    chunk = next(lines, None)
                # One mapping block around the loop rather than one per chunk: feed() raises
                # only our own errors, and what comes in at the yield (GeneratorExit) passes
                # through unmapped.
                with errors:
                    while chunk is not None:
                        if piece := feed(chunk):
                            yield piece
                            # Text came: the wait for more starts now (the consumer's time
                            # between chunks does not count), and is the idle timeout.
                            guard.deadline = monotonic() + idle
                            guard.why = idle_why
                        if state.final is not None:
                            # Read on to the end of the response, so that the client hands the
                            # connection back to its pool: closing a response that is not read
                            # to the end drops the connection, and the next call pays a new
                            # connect. The answer is complete: what happens past it cannot fail
                            # the call.
                            with contextlib.suppress(Exception):
                                next(lines, None)
                            break
                        chunk = next(lines, None)
            finally:
                with errors:
                    cast(Generator[Any, None, None], lines).close()
            yield state.result()
        except LlamarouteError as error:
            _detach(error)
            raise

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        request = self._request(call, stream=True)
        model_id = request["model"]
        state = StreamState(model_id, self._redact, call.request.tools,
                            partial(first_call_number, call.request),
                            build=ollama.ChatResponse)  # fmt: skip
        errors = self._errors(model_id)
        guard, idle = self._guard(call, model_id, stream=True), self._idle(call)
        idle_why, monotonic, feed = self._idle_why(idle), time.monotonic, state.feed
        try:
            body = self._body(call, request, self._clients.own_async)
            with errors:
                sent = await send_chat(self._async(), request, body, stream=True)
                lines = cast(AsyncIterator[ollama.ChatResponse], sent)
            try:
                with errors, guarded(guard):  # as in stream()
                    chunk = await anext(lines, None)
                with errors:
                    while chunk is not None:
                        if piece := feed(chunk):
                            yield piece
                            guard.deadline = monotonic() + idle
                            guard.why = idle_why
                        if state.final is not None:
                            with contextlib.suppress(Exception):
                                await anext(lines, None)
                            break
                        chunk = await anext(lines, None)
            finally:
                with errors:
                    await cast(AsyncGenerator[Any, None], lines).aclose()
            yield state.result()
        except LlamarouteError as error:
            _detach(error)
            raise

    def _idle_why(self, idle: float) -> str:
        why = self._idle_message
        if why[0] != idle:
            why = self._idle_message = (idle, f"no new text for {idle:g} s (stream_idle_timeout)")
        return why[1]

    # --- availability ------------------------------------------------------------------------

    def _fresh(self) -> tuple[bool, frozenset[str] | None]:
        # Read on every call (the tag to send): one attribute read, atomic, needs no lock.
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
        failure = "" if error is None else map_error(error, model_id="", host=self.host,
                                                     redact=self._redact).args[0]  # fmt: skip
        with self._lock:
            self._probe = (self._clock(), installed)
            self._probe_failure = failure
        return installed

    def diagnose(self) -> str:
        self.available("llama3.2")  # refreshes the cached probe when it is stale
        _, installed = self._fresh()
        if installed is None:
            # The reason, as a call would give it: nothing listening (start it), a host that
            # does not resolve, a server that is not Ollama.
            return self._probe_failure or f"no Ollama server answering at {self.host}"
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
                with guarded(self._probe_guard()):
                    installed = self._store(self._sync().list())
            except Exception as error:  # whatever went wrong, the answer is "not available"
                installed = self._store(None, error)
        return installed is not None and any(_tag(tag) in installed for tag in _wanted(model))

    async def aavailable(self, model: str | Route) -> bool:
        """Async :meth:`available` (the same cache)."""
        fresh, installed = self._fresh()
        if not fresh:
            try:
                with guarded(self._probe_guard()):
                    installed = self._store(await self._async().list())
            except Exception as error:
                installed = self._store(None, error)
        return installed is not None and any(_tag(tag) in installed for tag in _wanted(model))

    def _probe_guard(self) -> Guard:
        # The probe's timeouts (the request's own), and their sum as the deadline: they bound
        # the whole probe, not each read of a trickled listing.
        timeout = self.probe_timeout
        seconds = cast(float, timeout.connect) + cast(float, timeout.read)
        why = f"the probe's {seconds:g} s ran out"
        return Guard(NAME, "", deadline=time.monotonic() + seconds, why=why,
                     limit=self.max_response_bytes, timeout=timeout.as_dict())  # fmt: skip

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()


def _detach(error: BaseException) -> None:
    """Drop the error's context: the exception it was mapped from, raised inside the ollama
    client, may hold a secret. What is worth keeping of it is in the (scrubbed) cause."""
    error.__context__ = None
    error.__suppress_context__ = True
