"""The gateway's ASGI app: Starlette routes over one :class:`~llamaroute.AsyncClient`, the key
store and the metrics. :func:`create_app` builds it; ``llamaroute serve`` runs it on uvicorn.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/estimate``,
``GET /v1/spend`` (master key), ``/healthz``, ``/readyz``, ``/metrics``, ``/ui`` (master key).
No CORS headers are sent: browsers on other origins cannot call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._exceptions import LlamarouteError
from ..client import AsyncClient
from ..money import estimate, open_ledger
from ..providers import Provider
from ._books import TabLedger
from ._chat import chat_completions
from ._config import GatewayConfig
from ._errors import HttpError, http_error
from ._gateway import Gateway
from ._openai import parse_chat
from ._store import Store, default_db_path
from ._ui import dashboard_data, dashboard_page

__all__ = ["create_app"]


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
    if config.state is not None:
        options.setdefault("state", config.state)
    # Every billed attempt goes to the request's tab (the key's books) and, when the config
    # names one, to a shared ledger too (a PostgreSQL URL or a SQLite path).
    shared = open_ledger(config.ledger, None) if config.ledger is not None else None
    client = AsyncClient(providers=found, ledger=TabLedger(shared), **options)
    store = Store(db or config.db or default_db_path())
    config.provision_keys(store)
    gateway = Gateway(config, client, store, master_key or config.master_key())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()
            store.close()
            if shared is not None:
                shared.close()

    async def chat(request: Request) -> Response:
        return await chat_completions(gateway, request.headers, request.receive)  # type: ignore[return-value]

    async def models(request: Request) -> Response:
        caller = gateway.authorize(request.headers)
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
        caller = gateway.authorize(request.headers)
        if isinstance(caller, HttpError):
            return gateway.error(caller, "estimate")
        body = await gateway.read_json(request.headers, request.receive)
        if isinstance(body, HttpError):
            return gateway.error(body, "estimate")
        try:
            found = _estimate(body)
        except LlamarouteError as error:
            return gateway.error(http_error(error), "estimate")
        return JSONResponse(found)

    async def spend(request: Request) -> Response:
        refusal = gateway.admin(request.headers)
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
        refusal = gateway.admin(request.headers)
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
    app = _GatewayApp(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.gateway = gateway
    app.chat = partial(chat_completions, gateway)
    return app


_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_SERVER_ERROR = HttpError(500, "server_error", None, "the gateway failed: see its log")


class _GatewayApp(Starlette):
    """Starlette, except that ``POST`` to the chat endpoint goes straight to its handler, as
    plain ASGI: headers read from the scope, the body from ``receive``, the answer sent as
    two messages.

    Starlette's router, its two exception middlewares, its per-route wrapper and its request
    and response objects cost several percent of a chat request's CPU under load (py-spy,
    bench/gateway.py), for nothing: the handler answers every expected error itself. What they
    would still do is kept: an unexpected exception is answered with a 500 (OpenAI's shape) if
    nothing was sent yet, and raised on for the server to log."""

    chat: Callable[[Mapping[str, str], Receive], Awaitable[ASGIApp]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in _CHAT_PATHS:
            await super().__call__(scope, receive, send)
            return
        # ASGI servers give header names in lower case; the last of a repeated header wins.
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await self.chat(headers, receive)
            await response(scope, receive, sending)
        except Exception:
            if not started:
                failure = JSONResponse(_SERVER_ERROR.body(), status_code=500)
                await failure(scope, receive, send)
            raise


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
