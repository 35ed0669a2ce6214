"""The Bedrock provider: the I/O around the wire functions, over boto3's Converse and
ConverseStream APIs.

boto3 is the optional ``bedrock`` extra and is imported on first use, never at
``import llamaroute``. Construction keeps settings only: no boto3 session, no credential
look-up, no network. The boto3 client is built on the first call, once, and botocore's own
retries are off: llamaroute's loop is the only one.

Building and checking the request, parsing answers and stream events, and mapping errors are
the plain functions of ``_wire.py``; the sync and async methods differ only in how they wait.
boto3 is synchronous, so the async methods run each blocking step (the call, then each
``next()`` on the event stream) in a thread pool owned by the provider, sized so that
concurrent calls do not queue behind each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..._exceptions import AuthenticationError, ConfigurationError, LlamarouteError
from ..._secrets import Secret
from ..._version import __version__
from ...catalog import Catalog, Route
from .._base import Provider, ProviderCall, ProviderResult, StreamItem
from .._http import check_base_url
from ._setup import import_boto3, resolve_region
from ._wire import (
    NAME,
    ConverseStreamState,
    build_converse_request,
    close_stream,
    iter_events,
    map_exception,
    parse_converse,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_READ_TIMEOUT",
    "BedrockProvider",
]

#: Seconds. boto3's defaults are 60 s each; a long Llama generation can take longer to finish
#: (a read timeout on a Converse call is the whole answer's wait), so reads get more.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
#: Connections and worker threads: enough that 50 concurrent async calls run side by side.
DEFAULT_MAX_CONNECTIONS = 64

_T = TypeVar("_T")

#: Clients kept for per-call timeouts (botocore sets timeouts per client, not per request).
_MAX_CLIENTS = 8


class BedrockProvider(Provider):
    """Llama 3.2 on AWS Bedrock, through boto3's Converse and ConverseStream.

    Credentials (at most one way): ``aws_access_key_id`` + ``aws_secret_access_key`` (+
    ``aws_session_token``), a named ``profile``, a ready ``session`` (``boto3.Session``), an
    injected ``client`` (used as it is: its own timeouts, retries and endpoint), or nothing
    for boto3's default chain (environment, profile, SSO, container or instance role).
    Nothing is looked up at construction; the client is built on the first call.

    Args:
        region: the AWS region the client runs in (default: see :func:`resolve_region`). It
            picks the inference profile: ``us.`` IDs from us-east-1/us-east-2/us-west-2,
            ``eu.`` IDs (1B and 3B only) from eu-central-1/eu-west-1/eu-west-3.
        endpoint_url: another endpoint (a VPC endpoint, a test server).
        connect_timeout, read_timeout: seconds (defaults 10 and 300; boto3's are 60 and 60).
            A call's own ``timeout`` lowers both for that call.
        max_connections: the HTTP pool size, and the worker threads of the async methods.
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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        keys = aws_access_key_id is not None or aws_secret_access_key is not None
        if sum((keys, profile is not None, session is not None, client is not None)) > 1:
            raise ConfigurationError(
                "pass at most one of: access keys, profile=, session=, client="
            )
        if keys and not (aws_access_key_id and aws_secret_access_key):
            raise ConfigurationError(
                "pass both aws_access_key_id and aws_secret_access_key (or neither)"
            )
        if aws_session_token is not None and not keys:
            raise ConfigurationError("aws_session_token goes with aws_access_key_id/secret")
        for label, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ConfigurationError(f"{label} must be a finite number of seconds above 0")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.region = resolve_region(region, profile=profile, session=session, client=client)
        self.profile = profile
        self.endpoint_url = (
            check_base_url(endpoint_url, what="endpoint_url") if endpoint_url else None
        )
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_connections = max_connections
        self._key_id = Secret(aws_access_key_id) if aws_access_key_id else None
        self._secret = Secret(aws_secret_access_key) if aws_secret_access_key else None
        self._token = Secret(aws_session_token) if aws_session_token else None
        self._session = session
        self._injected = client
        self._clients: OrderedDict[tuple[float, float], BedrockRuntimeClient] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

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
        return f"BedrockProvider(region={self.region!r}, credentials={credentials}{endpoint})"

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
            self._client_for(None)
            assert self._session is not None
            credentials = self._session.get_credentials()
        except Exception as error:  # doctor reports; it never raises
            return f"region {self.region}; not usable: {self._redact(str(error))}"
        if credentials is None:
            return f"region {self.region}; no AWS credentials found"
        method = getattr(credentials, "method", "found")
        return f"region {self.region}; AWS credentials from {method}"

    def _redact(self, text: str) -> str:
        for secret in (self._secret, self._token, self._key_id):
            if secret is not None:
                text = secret.redact(text)
        return text

    # --- boto3 clients, built on first use ---------------------------------------------------

    def _build(self, connect: float, read: float) -> BedrockRuntimeClient:
        boto3 = import_boto3()
        import botocore.exceptions
        from botocore.config import Config

        config = Config(
            connect_timeout=connect,
            read_timeout=read,
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
            mapped = map_exception(error, model_id="", redact=self._redact)
            if isinstance(mapped, AuthenticationError):
                raise mapped from error
            raise ConfigurationError(
                f"cannot set up the Bedrock client: {self._redact(str(error))}"
            ) from error
        return client

    def _timeouts(self, timeout: float | None) -> tuple[float, float]:
        connect, read = self.connect_timeout, self.read_timeout
        if timeout is not None:
            # Rounded down to 100 ms, so that varying budgets share a few clients and an
            # attempt never runs past its share of the call's deadline.
            budget = max(0.1, math.floor(timeout * 10) / 10)
            connect, read = min(connect, budget), min(read, budget)
        return connect, read

    def _client_for(self, timeout: float | None) -> BedrockRuntimeClient:
        if self._injected is not None:
            return self._injected
        if timeout is not None and not self._clients:
            # The first client costs ~0.1 s (boto3 loads the service model); later ones a few
            # ms. Build it first and charge that time to this attempt's budget.
            started = time.monotonic()
            self._client_for(None)
            timeout -= time.monotonic() - started
        key = self._timeouts(timeout)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._build(*key)
                if len(self._clients) > _MAX_CLIENTS:
                    # Not closed: a call may still be using it; its pool closes when collected.
                    self._clients.popitem(last=False)
            else:
                self._clients.move_to_end(key)
        return client

    async def _aclient_for(self, timeout: float | None) -> BedrockRuntimeClient:
        """:meth:`_client_for` from async code: building a client can block (boto3 reads its
        config files), so that goes to a worker thread; a client already built is returned
        at once, without the round trip through the pool (a third of a call's cost under
        load)."""
        if self._injected is not None:
            return self._injected
        key = self._timeouts(timeout)
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        return await self._run(self._client_for, timeout)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_connections, thread_name_prefix="llamaroute-bedrock"
                )
            return self._executor

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        # A dedicated pool: the loop's default one has min(32, cpus + 4) threads, which would
        # queue concurrent calls behind each other.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(function, *args))

    @contextlib.contextmanager
    def _mapped(self, model_id: str) -> Iterator[None]:
        try:
            yield
        except LlamarouteError:
            raise
        except Exception as error:
            mapped = map_exception(error, model_id=model_id, redact=self._redact)
            if mapped is None:
                raise
            raise mapped from error

    # --- calls ----------------------------------------------------------------------------

    def chat(self, call: ProviderCall) -> ProviderResult:
        request = build_converse_request(call)
        model_id = request["modelId"]
        with self._mapped(model_id):
            response = self._client_for(call.timeout).converse(**request)
        return parse_converse(response, model_id=model_id)

    async def achat(self, call: ProviderCall) -> ProviderResult:
        request = build_converse_request(call)
        model_id = request["modelId"]
        with self._mapped(model_id):
            client = await self._aclient_for(call.timeout)
            response = await self._run(functools.partial(client.converse, **request))
        return parse_converse(response, model_id=model_id)

    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        request = build_converse_request(call)
        model_id = request["modelId"]
        state = ConverseStreamState(model_id)
        with self._mapped(model_id):
            response = self._client_for(call.timeout).converse_stream(**request)
            events = iter_events(response["stream"])
            try:
                for event in events:
                    if piece := state.feed(event):
                        yield piece
            finally:
                close_stream(events, response["stream"])
        yield state.result()

    async def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        request = build_converse_request(call)
        model_id = request["modelId"]
        state = ConverseStreamState(model_id)
        with self._mapped(model_id):
            client = await self._aclient_for(call.timeout)
            response = await self._run(functools.partial(client.converse_stream, **request))
            events = iter_events(response["stream"])
            try:
                # One worker-thread step per event: reading the socket never blocks the loop.
                while (event := await self._run(next, events, None)) is not None:
                    if piece := state.feed(event):
                        yield piece
            finally:
                await self._run(close_stream, events, response["stream"])
        yield state.result()

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            executor, self._executor = self._executor, None
        for client in clients:
            _close_pools(client)
            client.close()
        if executor is not None:
            # Threads still inside a boto3 call finish it on their own; nothing waits here.
            executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        self.close()


def _close_pools(client: BedrockRuntimeClient) -> None:
    """Close the client's urllib3 connection pools, idle connections included.

    botocore's ``close()`` only makes its pool manager forget the pools: with urllib3 2, a pool
    closes its connections when it is garbage collected. After an error or an incomplete
    stream, the pool is still referenced (by the response, through the error's traceback), so
    its idle connections would stay open after ``close()`` until the cyclic collector runs.
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    managers = [getattr(session, "_manager", None)]
    managers += list(getattr(session, "_proxy_managers", {}).values())
    for manager in managers:
        pools = getattr(manager, "pools", None)
        if pools is None:
            continue
        for key in pools.keys():  # noqa: SIM118 (urllib3 refuses to iterate its container)
            pool = pools.get(key)
            if pool is not None:
                pool.close()
