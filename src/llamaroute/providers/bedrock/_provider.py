"""The Bedrock provider: the I/O around the wire functions, over boto3's Converse and
ConverseStream APIs.

boto3 is the optional ``bedrock`` extra and is imported on first use, never at
``import llamaroute``. Construction keeps settings only: no boto3 session, no credential
look-up, no network. The boto3 client is built on the first call, once, and botocore's own
retries are off: llamaroute's loop is the only one.

Building and checking the request, parsing answers and stream events, and mapping errors are
plain functions (``_wire.py``, ``_mapping.py``). Deadlines and size caps are kept around
botocore's reads (``_io.py``): each attempt has a guard that a watchdog thread expires at the
deadline by shutting the attempt's socket down, so a server that trickles bytes cannot hold a
call past it, sync or async. boto3 is synchronous, so the async methods run each blocking step
(the call, then each read of the event stream) in a thread pool owned by the provider, sized
so that concurrent calls do not queue behind each other; a cancelled step is never closed
under the thread still running it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..._exceptions import (
    AuthenticationError,
    ConfigurationError,
    LlamarouteError,
    MalformedResponseError,
    ProviderError,
)
from ..._secrets import Secret
from ..._version import __version__
from ...catalog import Catalog, Route
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import check_base_url
from ._closing import close_after, close_opened, close_pools
from ._io import Guard, Limits, Sender, Watchdog
from ._logs import scrub_botocore_logs
from ._mapping import NAME, map_exception
from ._redact import Redactor
from ._setup import check_settings, import_boto3, resolve_region
from ._wire import (
    ConverseStreamState,
    build_converse_request,
    iter_events,
    next_text,
    parse_converse,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_STREAM_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_STREAM_IDLE_TIMEOUT",
    "BedrockProvider",
]

#: Seconds. boto3's defaults are 60 s each; a long Llama generation can take longer to finish
#: (the read timeout bounds the whole answer's wait), so reads get more.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
#: Seconds a stream may go without a new chunk once its first chunk has come.
DEFAULT_STREAM_IDLE_TIMEOUT = 30.0
#: Bytes: a Converse answer (Llama 3.2 writes at most 8,192 tokens, a few tens of kB), one
#: event-stream frame (botocore's own limit is 24 MiB), and a whole stream.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_MAX_STREAM_BYTES = 64 * 1024 * 1024
#: Connections and worker threads: enough that 50 concurrent async calls run side by side.
DEFAULT_MAX_CONNECTIONS = 64

_T = TypeVar("_T")


class BedrockProvider(Provider):
    """Llama 3.2 on AWS Bedrock, through boto3's Converse and ConverseStream.

    Credentials (at most one way): ``aws_access_key_id`` + ``aws_secret_access_key`` (+
    ``aws_session_token``), a named ``profile``, a ready ``session`` (``boto3.Session``), an
    injected ``client`` (used as it is: its own retries and endpoint), or nothing for boto3's
    default chain (environment, profile, SSO, container or instance role). Nothing is looked
    up at construction; the client is built on the first call. Whichever way credentials come,
    errors never show them: the secret key, the session token and the request's signature are
    redacted from messages and from the chained botocore exception.

    Time: a call's ``timeout`` (its share of the call's deadline) bounds the whole answer of
    :meth:`chat`, and the wait for a stream's first chunk, whatever the server sends: a
    trickle of bytes does not reset it. Without one, ``read_timeout`` does. After a stream's
    first chunk, each further chunk must come within ``stream_idle_timeout``.

    Size: a Converse answer over ``max_response_bytes``, an event-stream frame over
    ``max_event_bytes`` or a stream over ``max_stream_bytes`` in all is cut off as it is read
    (memory stays near the cap) and raises :class:`MalformedResponseError` with code
    ``"response_too_large"``, which is not retried.

    Args:
        region: the AWS region the client runs in (default: see :func:`resolve_region`). It
            picks the inference profile: ``us.`` IDs from us-east-1/us-east-2/us-west-2,
            ``eu.`` IDs (1B and 3B only) from eu-central-1/eu-west-1/eu-west-3.
        endpoint_url: another endpoint (a VPC endpoint, a test server).
        connect_timeout, read_timeout: seconds (defaults 10 and 300; boto3's are 60 and 60).
            ``read_timeout`` bounds a whole answer, not each read.
        stream_idle_timeout: seconds between two chunks of a stream (default 30).
        max_response_bytes, max_event_bytes, max_stream_bytes: the size caps (defaults 16 MiB,
            1 MiB and 64 MiB).
        max_connections: the HTTP pool size, and the worker threads of the async methods.
        deployment, rpm, tpm, weight: this region's (or account's) name when a client holds
            several (default ``"bedrock"``), its requests and tokens per minute (checked before
            sending; ``None``: no limit) and its share for the ``weighted`` strategy. Each is
            priced for its own region.
    """

    name: ClassVar[str] = NAME

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        session: boto3.session.Session | None = None,
        client: BedrockRuntimeClient | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        deployment: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        weight: float = 1.0,
    ) -> None:
        self._deploy(deployment, rpm, tpm, weight)
        check_settings(
            keys=(aws_access_key_id, aws_secret_access_key, aws_session_token),
            ways=(profile is not None, session is not None, client is not None),
            seconds=(connect_timeout, read_timeout, stream_idle_timeout),
            sizes=(max_response_bytes, max_event_bytes, max_stream_bytes),
            max_connections=max_connections,
        )
        self.region = resolve_region(region, profile=profile, session=session, client=client)
        self.profile = profile
        self.endpoint_url = (
            check_base_url(endpoint_url, what="endpoint_url") if endpoint_url else None
        )
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.stream_idle_timeout = float(stream_idle_timeout)
        self.limits = Limits(max_response_bytes, max_event_bytes, max_stream_bytes)
        self.max_connections = max_connections
        self._key_id = Secret(aws_access_key_id) if aws_access_key_id else None
        self._secret = Secret(aws_secret_access_key) if aws_secret_access_key else None
        self._token = Secret(aws_session_token) if aws_session_token else None
        self._session = session
        self._injected = client
        self._client: BedrockRuntimeClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._watchdog = Watchdog()
        self._sender = Sender(self._local, self.limits, self.read_timeout)
        secrets = [s for s in (self._secret, self._token, self._key_id) if s is not None]
        self._redactor = Redactor(secrets, self._resolved_credentials)

    def __repr__(self) -> str:
        if self._key_id is not None:
            credentials = f"access key {self._key_id.masked}"
        elif self.profile is not None:
            credentials = f"profile {self.profile!r}"
        elif self._session is not None or self._injected is not None:
            credentials = "session" if self._session is not None else "injected client"
        else:
            credentials = "default chain"
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return (
            f"BedrockProvider(region={self.region!r}, credentials={credentials}{endpoint}"
            f"{self._deployment_repr()})"
        )

    def route_for(self, model: str, *, catalog: Catalog | None = None) -> Route:
        """The route this provider calls for ``model`` (a key, alias or pinned name) from its
        region: :class:`UnsupportedFeatureError` when Bedrock has no profile there (vision
        models outside the US)."""
        spec = (catalog or Catalog.builtin()).get(model)
        return spec.route(NAME, region=self.region)

    def diagnose(self) -> str:
        # Resolving credentials is the one check that costs nothing on Bedrock; it may wait on
        # the instance metadata endpoint where there is one, which doctor may afford.
        if self._injected is not None:
            return f"region {self.region}; an injected boto3 client"
        try:
            import_boto3()
            self.client()
            assert self._session is not None
            credentials = self._session.get_credentials()
        except Exception as error:  # doctor reports; it never raises
            return f"region {self.region}; not usable: {self._redactor(str(error))}"
        if credentials is None:
            return f"region {self.region}; no AWS credentials found"
        method = getattr(credentials, "method", "found")
        return f"region {self.region}; AWS credentials from {method}"

    def _resolved_credentials(self) -> object | None:
        client = self._client
        return None if client is None else client._get_credentials()  # type: ignore[attr-defined]

    # --- the boto3 client, built on first use --------------------------------------------------

    def client(self) -> BedrockRuntimeClient:
        """The boto3 ``bedrock-runtime`` client this provider calls through (built now if it
        has not been: boto3 is imported and credentials are resolved, with no request)."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._injected or self._build()
                    self._sender.install(client)
                    scrub_botocore_logs(self._redactor)
                    self._client = client
        return client

    def _build(self) -> BedrockRuntimeClient:
        boto3 = import_boto3()
        import botocore.exceptions
        from botocore.config import Config

        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # One retry layer only: llamaroute's. botocore's default would add up to 4.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=self.max_connections,
            tcp_keepalive=True,
            user_agent_extra=f"llamaroute/{__version__}",
        )
        try:
            if self._session is None:
                self._session = boto3.session.Session(
                    aws_access_key_id=self._key_id.reveal() if self._key_id else None,
                    aws_secret_access_key=self._secret.reveal() if self._secret else None,
                    aws_session_token=self._token.reveal() if self._token else None,
                    profile_name=self.profile,
                )
            client: BedrockRuntimeClient = self._session.client(
                "bedrock-runtime",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=config,
            )
        except botocore.exceptions.BotoCoreError as error:
            redact = self._redactor.bind()
            mapped = map_exception(error, model_id="", redact=redact)
            if not isinstance(mapped, AuthenticationError):
                mapped = ConfigurationError(  # type: ignore[assignment]
                    f"cannot set up the Bedrock client: {redact(str(error))}"
                )
            clean = Redactor.clean_chain(error, redact)
            raise mapped from (error if clean else None)  # type: ignore[misc]
        return client

    def _client_within(self, guard: Guard) -> BedrockRuntimeClient:
        """:meth:`client`, within the guard's deadline: the first build (~0.1 s, boto3 loads
        its service model) runs in the pool, and a deadline that passes meanwhile ends the
        attempt before anything was sent."""
        if self._client is not None:
            return self._client
        future = self._pool().submit(self.client)
        try:
            return future.result(timeout=max(0.0, guard.remaining()))
        except concurrent.futures.TimeoutError:
            raise guard.timeout_error("setting up the boto3 client") from None

    async def _aclient_within(self, guard: Guard) -> BedrockRuntimeClient:
        if self._client is not None:
            return self._client
        future = asyncio.wrap_future(self._pool().submit(self.client))
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, guard.remaining()))
        except TimeoutError:
            raise guard.timeout_error("setting up the boto3 client") from None

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_connections, thread_name_prefix="llamaroute-bedrock"
                )
            return self._executor

    # --- one attempt: its guard, its steps, its failure --------------------------------------

    def _guard(self, call: ProviderCall, model_id: str) -> Guard:
        budget = self.read_timeout if call.timeout is None else min(call.timeout, self.read_timeout)
        guard = self._watchdog.guard(model_id)
        guard.arm(max(budget, 0.0))
        return guard

    def _send(self, guard: Guard, function: Callable[..., _T], /, **kwargs: Any) -> _T:
        """``function(**kwargs)`` (a boto3 call) with ``guard`` as this thread's guard, which
        the before-send hook and the pool's connections report to."""
        local = self._local
        local.guard = guard
        try:
            return function(**kwargs)
        finally:
            local.guard = None

    async def _step(self, guard: Guard, function: Callable[..., _T], /, *args: Any,
                    **kwargs: Any) -> _T:  # fmt: skip
        """One blocking step in the pool. If the waiting task is cancelled (the client's
        deadline, the caller), the attempt is expired, so the thread's read ends now."""
        future = guard.pending = self._pool().submit(function, *args, **kwargs)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            guard.expire()
            raise

    def _failure(self, error: Exception, guard: Guard, what: str) -> LlamarouteError:
        """The one llamaroute error an attempt ends with, its chain scrubbed of secrets (or
        dropped when it cannot be)."""
        if isinstance(error, LlamarouteError) and not isinstance(error, ProviderError):
            return error  # raised before anything was sent (setup, configuration)
        redact = self._redactor.bind(guard.sent)
        mapped: ProviderError | None
        if guard.expired:
            mapped = guard.timeout_error(what)
            cause: BaseException | None = None
        else:
            cause = error
            if isinstance(error, ProviderError):
                mapped = error
                cause = error.__cause__
            else:
                mapped = map_exception(error, model_id=guard.model_id, redact=redact)
            if mapped is None:
                name = type(error).__name__
                if guard.received:  # botocore could not parse what came back
                    mapped = MalformedResponseError(
                        f"unreadable Bedrock response ({name}: {redact(str(error))[:200]})",
                        provider=NAME, model_id=guard.model_id, code=name,
                    )  # fmt: skip
                else:
                    mapped = ProviderError(
                        f"boto3 failed ({name}: {redact(str(error))[:200]})",
                        provider=NAME, model_id=guard.model_id, code=name, retryable=False,
                    )  # fmt: skip
        if cause is not None and not Redactor.clean_chain(cause, redact):
            cause = None
        mapped.__cause__ = cause
        mapped.__suppress_context__ = True
        return mapped

    # --- calls ----------------------------------------------------------------------------

    def chat(self, call: ProviderCall) -> ProviderResult:
        request = build_converse_request(call)
        model_id = request["modelId"]
        guard = self._guard(call, model_id)
        failure: LlamarouteError | None = None
        try:
            client = self._client_within(guard)
            response = self._send(guard, client.converse, **request)
            result = parse_converse(response, model_id=model_id, call=call)
        except Exception as error:
            failure = self._failure(error, guard, "the answer")
        finally:
            guard.finish()
        if failure is not None:
            raise failure
        return result

    async def achat(self, call: ProviderCall) -> ProviderResult:
        request = build_converse_request(call)
        model_id = request["modelId"]
        guard = self._guard(call, model_id)
        failure: LlamarouteError | None = None
        try:
            client = self._client
            if client is None:  # the first call only: no coroutine for it on every call
                client = await self._aclient_within(guard)
            response = await self._step(guard, self._send, guard, client.converse, **request)
            result = parse_converse(response, model_id=model_id, call=call)
        except Exception as error:
            failure = self._failure(error, guard, "the answer")
        finally:
            guard.finish()
        if failure is not None:
            raise failure
        return result

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        request = build_converse_request(call, stream=True)
        model_id = request["modelId"]
        state = ConverseStreamState(model_id)
        guard = self._guard(call, model_id)
        opened: list[Any] = []
        failure: LlamarouteError | None = None
        what = "the stream's first chunk"
        try:
            client = self._client_within(guard)
            response = self._send(guard, client.converse_stream, **request)
            opened.append(response["stream"])
            events = iter_events(response["stream"])
            opened.insert(0, events)
            while (piece := next_text(events, state)) is not None:
                guard.rest()
                yield piece
                guard.arm(self.stream_idle_timeout)
                what = "the next chunk (stream_idle_timeout)"
            if guard.expired:
                raise _Expired
        except Exception as error:
            failure = self._failure(error, guard, what)
        finally:
            guard.finish()
            if opened:
                close_opened(opened)
        if failure is not None:
            raise failure
        yield state.result()

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        request = build_converse_request(call, stream=True)
        model_id = request["modelId"]
        state = ConverseStreamState(model_id)
        guard = self._guard(call, model_id)
        opened: list[Any] = []
        failure: LlamarouteError | None = None
        what = "the stream's first chunk"
        try:
            client = await self._aclient_within(guard)
            response = await self._step(guard, self._send, guard, client.converse_stream,
                                        **request)  # fmt: skip
            opened.append(response["stream"])
            events = iter_events(response["stream"])
            opened.insert(0, events)
            # One worker-thread step per chunk: reading the socket never blocks the loop.
            while (piece := await self._step(guard, next_text, events, state)) is not None:
                guard.rest()
                yield piece
                guard.arm(self.stream_idle_timeout)
                what = "the next chunk (stream_idle_timeout)"
            if guard.expired:
                raise _Expired
        except Exception as error:
            failure = self._failure(error, guard, what)
        finally:
            guard.finish()
            close_after(guard.pending, opened)
        if failure is not None:
            raise failure
        yield state.result()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            executor, self._executor = self._executor, None
        self._watchdog.close()
        if client is not None and client is not self._injected:
            close_pools(client)
            client.close()
        if executor is not None:
            # Threads still inside a boto3 call finish it on their own; nothing waits here.
            executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        self.close()


class _Expired(Exception):
    """The guard expired and the read ended quietly (a clean end of the body)."""
