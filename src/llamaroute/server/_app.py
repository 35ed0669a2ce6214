"""The gateway's ASGI app: Starlette routes over one :class:`~llamaroute.AsyncClient`, the key
store and the metrics. :func:`create_app` builds it; ``llamaroute serve`` runs it on uvicorn.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/estimate``,
``GET /v1/spend`` (master key), ``/healthz``, ``/readyz``, ``/metrics``, ``/ui`` (master key).
No CORS headers are sent: browsers on other origins cannot call it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._exceptions import LlamarouteError
from .._records import Attempt
from ..client import AsyncClient
from ..money import estimate
from ..providers import Provider
from ._books import TabLedger
from ._chat import chat_completions
from ._config import GatewayConfig
from ._errors import HttpError, http_error
from ._metrics import Metrics
from ._openai import ChatArguments, parse_chat
from ._store import KeyRecord, Settlement, Store, default_db_path
from ._ui import dashboard_data, dashboard_page

__all__ = ["Caller", "Gateway", "create_app"]

access = logging.getLogger("llamaroute.gateway.access")
logger = logging.getLogger("llamaroute.gateway")

#: Seconds a finished request's settlement may wait to be written with others.
FLUSH_S = 0.05

_UNAUTHORIZED = HttpError(
    401,
    "invalid_request_error",
    "invalid_api_key",
    "Incorrect API key provided: pass a llamaroute key as 'Authorization: Bearer <key>'",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a virtual key, or the master key (``key`` is ``None``)."""

    key: KeyRecord | None

    @property
    def key_id(self) -> str:
        return "master" if self.key is None else self.key.id

    @property
    def tags(self) -> tuple[str, ...]:
        return () if self.key is None else self.key.tags


class Gateway:
    """Everything the endpoints share: config, client, store, metrics, recent failures."""

    def __init__(
        self, config: GatewayConfig, client: AsyncClient, store: Store, master_key: str | None
    ) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.master_key = master_key
        self.metrics = Metrics()
        self.failures: deque[dict[str, object]] = deque(maxlen=50)

    # --- access ----------------------------------------------------------------------------

    def authorize(self, request: Request) -> Caller | HttpError:
        """The caller of ``request`` (401 for a missing, wrong or revoked key)."""
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return _UNAUTHORIZED
        if self.master_key is not None and hmac.compare_digest(
            secret.encode(), self.master_key.encode()
        ):
            return Caller(None)
        key = self.store.authenticate(secret)
        return _UNAUTHORIZED if key is None else Caller(key)

    def admin(self, request: Request) -> HttpError | None:
        """401 unless the caller holds the master key."""
        caller = self.authorize(request)
        if isinstance(caller, HttpError):
            return caller
        if caller.key is not None:
            return HttpError(
                403, "permission_error", "master_key_required", "this endpoint needs the master key"
            )
        return None

    def allowed(self, models: Sequence[str], key: str) -> bool:
        """Whether a key limited to ``models`` may use the catalog model ``key``."""
        for name in models:
            try:
                if self.client.catalog.resolve(name).model.key == key:
                    return True
            except LlamarouteError:
                continue
        return False

    async def read_json(self, request: Request) -> object | HttpError:
        """The body as JSON, read up to the size limit (413 beyond, 400 if not JSON)."""
        limit = self.config.max_body_bytes
        too_big = HttpError(
            413,
            "invalid_request_error",
            "request_too_large",
            f"the request body is larger than {limit:,} bytes",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_big
        chunks, size = [], 0
        try:
            async for piece in request.stream():
                size += len(piece)
                if size > limit:
                    return too_big
                chunks.append(piece)
        except ClientDisconnect:
            return HttpError(400, "invalid_request_error", None, "the client left mid-body")
        try:
            parsed: object = json.loads(b"".join(chunks))
            return parsed
        except (ValueError, RecursionError):
            return HttpError(
                400, "invalid_request_error", "invalid_json", "the request body is not valid JSON"
            )

    # --- answers and records ---------------------------------------------------------------

    def record(self, settlement: Settlement) -> None:
        """Settle a finished request: queued, and written with the others that finish within
        :data:`FLUSH_S` in one transaction (a write per request would cost more than the rest
        of the gateway's work). Its reservation stays held until then."""
        if not self.store.defer(settlement):
            return
        try:
            asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
        except RuntimeError:  # no loop (a generator closed by the garbage collector)
            self.flush()

    def flush(self) -> None:
        """Write the queued settlements now."""
        try:
            self.store.flush()
        except sqlite3.Error:
            logger.exception("could not record spend in %s", self.store.path)

    def error(
        self, failure: HttpError, endpoint: str, attempts: Sequence[Attempt] = ()
    ) -> Response:
        """An error answer, counted."""
        self.metrics.errors.labels(failure.type, failure.code or "").inc()
        self.metrics.requests.labels(endpoint, str(failure.status)).inc()
        self._failed(attempts)
        return JSONResponse(failure.body(), status_code=failure.status, headers=failure.headers())

    def _failed(self, attempts: Sequence[Attempt]) -> None:
        for attempt in attempts:
            if attempt.outcome != "ok":
                self.failures.append(
                    {
                        "at": time.time(),
                        "provider": attempt.provider,
                        "model_id": attempt.model_id,
                        "error_type": attempt.error_type,
                        "status_code": attempt.status_code,
                    }
                )

    def observe(
        self,
        attempts: Sequence[Attempt],
        provider: str,
        model: str,
        cost: Decimal,
        input_tokens: int,
        output_tokens: int,
        seconds: float,
    ) -> None:
        """Count a finished chat call."""
        self.metrics.attempted(tuple(attempts))
        self._failed(attempts)
        self.metrics.spent(provider, model, cost, input_tokens, output_tokens)
        self.metrics.latency.labels("chat").observe(seconds)
        self.metrics.requests.labels("chat", "200").inc()

    def access_log(
        self,
        caller: Caller,
        args: ChatArguments,
        outcome: str,
        provider: str,
        cost: Decimal,
        started: float,
    ) -> None:
        """One JSON line per call: no secrets, and no prompt text unless configured."""
        if not access.isEnabledFor(logging.INFO):
            return
        line: dict[str, Any] = {
            "at": round(time.time(), 3),
            "key": caller.key_id,
            "user": args.user,
            "model": args.model,
            "stream": args.stream,
            "outcome": outcome,
            "provider": provider,
            "cost": f"{cost:f}",
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if self.config.log_prompts:
            line["messages"] = args.kwargs.get("messages")
        access.info(json.dumps(line, ensure_ascii=False, default=str))

    def ready(self) -> bool:
        """At least one configured route whose breaker is not open."""
        health = self.client.health()
        providers = self.client.providers
        for spec in self.client.catalog.models():
            for route in spec.routes:
                if route.provider not in providers:
                    continue
                state = health.get(route.pinned, {}).get("state")
                whole = health.get(f"{route.provider}:*", {}).get("state")
                if state != "open" and whole != "open":
                    return True
        return False


def create_app(
    config: GatewayConfig | None = None,
    *,
    db: str | None = None,
    providers: Sequence[Provider] | None = None,
    master_key: str | None = None,
    client_options: dict[str, Any] | None = None,
) -> Starlette:
    """The gateway as an ASGI app. ``providers`` overrides the config's (tests pass fakes);
    ``master_key`` the environment's; ``db`` the config's database path."""
    config = config or GatewayConfig()
    found = list(providers) if providers is not None else config.build_providers()
    options: dict[str, Any] = {"strategy": config.strategy, **(client_options or {})}
    if config.retries is not None:
        options.setdefault("retries", config.retries)
    client = AsyncClient(providers=found, ledger=TabLedger(), **options)
    store = Store(db or config.db or default_db_path())
    gateway = Gateway(config, client, store, master_key or config.master_key())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()
            store.close()

    async def chat(request: Request) -> Response:
        return await chat_completions(gateway, request)

    async def models(request: Request) -> Response:
        caller = gateway.authorize(request)
        if isinstance(caller, HttpError):
            return gateway.error(caller, "models")
        allowed = caller.key.models if caller.key is not None else ()
        names = []
        for spec in client.catalog.models():
            if allowed and not gateway.allowed(allowed, spec.key):
                continue
            names.append(spec.key)
            names += [r.pinned for r in spec.routes if r.provider in client.providers]
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "meta"} for name in names]
        return JSONResponse({"object": "list", "data": data})

    async def estimates(request: Request) -> Response:
        caller = gateway.authorize(request)
        if isinstance(caller, HttpError):
            return gateway.error(caller, "estimate")
        body = await gateway.read_json(request)
        if isinstance(body, HttpError):
            return gateway.error(body, "estimate")
        try:
            found = _estimate(body)
        except LlamarouteError as error:
            return gateway.error(http_error(error), "estimate")
        return JSONResponse(found)

    async def spend(request: Request) -> Response:
        refusal = gateway.admin(request)
        if refusal is not None:
            return gateway.error(refusal, "spend")
        gateway.flush()
        try:
            result = store.spend(
                request.query_params.get("by", "key"), request.query_params.get("since")
            )
        except LlamarouteError as error:
            return gateway.error(
                HttpError(400, "invalid_request_error", None, str(error), "by"), "spend"
            )
        return JSONResponse(result)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = gateway.ready()
        return JSONResponse(
            {"status": "ready" if ok else "unavailable"}, status_code=200 if ok else 503
        )

    async def metrics(request: Request) -> Response:
        return Response(
            gateway.metrics.render(client.health()),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def ui(request: Request) -> Response:
        return Response(
            dashboard_page(),
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": "default-src 'self'; script-src "
                "'unsafe-inline'; style-src 'unsafe-inline'",
                "x-frame-options": "DENY",
            },
        )

    async def ui_data(request: Request) -> Response:
        refusal = gateway.admin(request)
        if refusal is not None:
            return gateway.error(refusal, "ui")
        gateway.flush()
        return JSONResponse(dashboard_data(gateway))

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/estimate", estimates, methods=["POST"]),
        Route("/v1/spend", spend, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/ui", ui, methods=["GET"]),
        Route("/ui/data", ui_data, methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        # OpenAI's error shape for unknown paths and methods too, not Starlette's plain text.
        status = getattr(exc, "status_code", 404)
        message = f"{request.method} {request.url.path}: no such endpoint"
        if status == 405:
            message = f"{request.url.path} does not take {request.method}"
        failure = HttpError(status, "invalid_request_error", None, message)
        return JSONResponse(failure.body(), status_code=status)

    handlers = {404: not_found, 405: not_found}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.gateway = gateway
    return app


def _estimate(body: object) -> list[dict[str, Any]]:
    """``POST /v1/estimate``: the body of a chat request (plus ``expected_output_tokens``),
    priced by :func:`llamaroute.estimate`, amounts as exact strings."""
    args = parse_chat(body)
    assert isinstance(body, dict)
    expected = body.get("expected_output_tokens")
    params = {
        k: v
        for k, v in args.kwargs.items()
        if k in ("messages", "max_tokens", "tools", "response_format")
    }
    found = estimate(args.model, expected_output_tokens=expected, **params)
    return [item.model_dump(mode="json") for item in found]
