"""What the gateway's endpoints share (:class:`Gateway`): the config, the client, the key
store, the metrics and the recent failures; who is calling (:class:`Caller`); reading a body
within its size limit; answering errors; settling and logging finished calls."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from .._exceptions import LlamarouteError
from .._records import Attempt
from ..client import AsyncClient
from ._config import GatewayConfig
from ._errors import HttpError
from ._metrics import Metrics
from ._openai import ChatArguments
from ._store import KeyRecord, Settlement, Store

__all__ = ["FLUSH_S", "Caller", "Gateway"]

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

    def authorize(self, headers: Mapping[str, str]) -> Caller | HttpError:
        """The caller whose request has these ``headers`` (names in lower case): 401 for a
        missing, wrong or revoked key."""
        header = headers.get("authorization", "")
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

    def admin(self, headers: Mapping[str, str]) -> HttpError | None:
        """401 unless the caller holds the master key."""
        caller = self.authorize(headers)
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

    async def read_json(self, headers: Mapping[str, str], receive: Receive) -> object | HttpError:
        """The body as JSON, read from the ASGI ``receive`` up to the size limit (413 beyond,
        400 if not JSON)."""
        limit = self.config.max_body_bytes
        too_big = HttpError(
            413,
            "invalid_request_error",
            "request_too_large",
            f"the request body is larger than {limit:,} bytes",
        )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return HttpError(400, "invalid_request_error", None, "the client left mid-body")
            piece = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(piece)
            if size > limit:
                return too_big
            chunks.append(piece)
        try:
            parsed: object = json.loads(chunks[0] if len(chunks) == 1 else b"".join(chunks))
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
        self.metrics.child(self.metrics.errors, failure.type, failure.code or "").inc()
        self.metrics.child(self.metrics.requests, endpoint, str(failure.status)).inc()
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
        self.metrics.child(self.metrics.latency, "chat").observe(seconds)
        self.metrics.child(self.metrics.requests, "chat", "200").inc()

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
