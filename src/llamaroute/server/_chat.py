"""``POST /v1/chat/completions``: one request from key check to settled spend.

The order is fixed: the key (401), the body (413, 400), the model (404, 403), the key's rate
and budget (429, holding the request's worst case), then the call, with ``max_cost`` set to
what was held so the client cannot spend more, and at the end, whatever happened (an answer,
an error, a client that hung up mid-stream), the key's hold is released and what the
providers billed is recorded for the key, the user and the tags.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .._exceptions import LlamarouteError, UnknownModelError
from .._response import ChatResponse
from ._books import TAB, Tab, worst_case
from ._errors import HttpError, http_error
from ._openai import (
    ChatArguments,
    chunk,
    completion,
    completion_id,
    content,
    parse_chat,
    tool_call_delta,
    usage_chunk,
)
from ._openai import finish_reason as openai_finish
from ._sse import EventStream
from ._store import Settlement

if TYPE_CHECKING:
    from ._gateway import Caller, Gateway

__all__ = ["chat_completions"]

_DONE = b"data: [DONE]\n\n"


def _frame(data: object) -> bytes:
    return (
        b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


class _Ticket:
    """One admitted request: who pays, what is held, what it has cost so far."""

    __slots__ = ("args", "caller", "reservation", "settled", "started", "tab", "tags")

    def __init__(
        self, caller: Caller, args: ChatArguments, tags: tuple[str, ...], reservation: int | None
    ) -> None:
        self.caller, self.args, self.tags, self.reservation = caller, args, tags, reservation
        self.tab = Tab()
        self.started = time.perf_counter()
        self.settled = False


async def chat_completions(
    gateway: Gateway, headers: Mapping[str, str], receive: Receive
) -> ASGIApp:
    """The endpoint, for a request with these ``headers`` (lower-case names) whose body comes
    from ``receive``: the ASGI response to send."""
    caller = gateway.authorize(headers)
    if isinstance(caller, HttpError):
        return gateway.error(caller, "chat")
    body = await gateway.read_json(headers, receive)
    if isinstance(body, HttpError):
        return gateway.error(body, "chat")
    try:
        args = parse_chat(body)
        key = gateway.client.catalog.resolve(args.model).model.key
    except LlamarouteError as error:
        return gateway.error(http_error(error), "chat")
    if caller.key is not None and caller.key.models and not gateway.allowed(caller.key.models, key):
        return gateway.error(
            HttpError(
                403,
                "permission_error",
                "model_not_allowed",
                f"this key may not use {args.model}; it may use {', '.join(caller.key.models)}",
                "model",
            ),
            "chat",
        )
    tags = caller.tags + _header_tags(headers)
    max_cost: Decimal | None = None
    reservation = None
    if caller.key is not None and (caller.key.budget is not None or caller.key.rpm is not None):
        try:
            worst = (
                worst_case(gateway.client, args.model, args.kwargs)
                if caller.key.budget is not None
                else None
            )
        except LlamarouteError as error:
            return gateway.error(http_error(error), "chat")
        admission = gateway.store.admit(caller.key, worst)
        if admission.refusal == "rate":
            return gateway.error(
                HttpError(
                    429,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    admission.message,
                    retry_after=admission.retry_after,
                ),
                "chat",
            )
        if admission.refusal == "budget":
            return gateway.error(
                HttpError(429, "insufficient_quota", "insufficient_quota", admission.message),
                "chat",
            )
        reservation = admission.reservation
        if caller.key.budget is not None:
            max_cost = worst if worst is not None else Decimal(0)
    ticket = _Ticket(caller, args, tags, reservation)
    TAB.set(ticket.tab)
    if args.stream:
        return await _stream(gateway, ticket, max_cost)
    try:
        response = await gateway.client.chat(
            args.model, timeout=gateway.config.timeout, max_cost=max_cost, **args.kwargs
        )
    except LlamarouteError as error:
        _settle(gateway, ticket, None, error)
        return gateway.error(http_error(error), "chat", attempts=getattr(error, "attempts", ()))
    except BaseException:
        # Cancelled (the server shutting down past its grace period) or a bug: the hold is
        # still released, and what was billed still recorded.
        _settle(gateway, ticket, None, None, status="failed")
        raise
    _settle(gateway, ticket, response, None)
    body = json.dumps(completion(response, args.model, completion_id()), ensure_ascii=False)
    return _Answer(body.encode(), _headers(response, ticket.tab.cost))


class _Answer:
    """A JSON answer as two ASGI messages, its headers already encoded (Starlette's
    ``Response`` rebuilds and re-checks them per request)."""

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _header_tags(headers: Mapping[str, str]) -> tuple[str, ...]:
    raw = headers.get("x-llamaroute-tags", "")
    if not raw:
        return ()
    return tuple(tag.strip()[:64] for tag in raw.split(",") if tag.strip())[:16]


def _headers(response: ChatResponse, cost: Decimal) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"x-llamaroute-cost", f"{cost:f}".encode()),
        (b"x-llamaroute-provider", response.provider.encode("latin-1")),
        (b"x-llamaroute-route",
         f"{response.provider}:{response.provider_model_id}".encode("latin-1")),
        (b"x-llamaroute-attempts", str(len(response.attempts)).encode()),
    ]  # fmt: skip


def _settle(
    gateway: Gateway,
    ticket: _Ticket,
    response: ChatResponse | None,
    error: BaseException | None,
    status: str | None = None,
) -> None:
    """Release the hold and record the cost (once, whatever ended the request)."""
    if ticket.settled:
        return
    ticket.settled = True
    caller, args = ticket.caller, ticket.args
    cost = ticket.tab.cost
    provider = model = ""
    input_tokens = output_tokens = 0
    if response is not None:
        provider, model = response.provider, response.model
        input_tokens, output_tokens = response.usage.input_tokens, response.usage.output_tokens
        attempts = response.attempts
    else:
        attempts = tuple(getattr(error, "attempts", ()) or ())
        if ticket.tab.attempts:
            provider, model = ticket.tab.attempts[-1].provider, ticket.tab.attempts[-1].model
    if not model:
        try:
            model = gateway.client.catalog.resolve(args.model).model.key
        except UnknownModelError:
            model = args.model
    outcome = status or ("ok" if error is None else type(error).__name__)
    settlement = Settlement(
        caller.key_id,
        ticket.reservation,
        cost,
        args.user,
        ticket.tags,
        provider,
        model,
        input_tokens,
        output_tokens,
        outcome,
        time.time(),
    )
    gateway.record(settlement)
    gateway.observe(
        attempts,
        provider,
        model,
        cost,
        input_tokens,
        output_tokens,
        time.perf_counter() - ticket.started,
    )
    gateway.access_log(ticket.caller, args, outcome, provider, cost, ticket.started)


async def _stream(gateway: Gateway, ticket: _Ticket, max_cost: Decimal | None) -> ASGIApp:
    """Open the stream and read its first chunk before answering, so that an error before any
    text is an HTTP error with its status; after that, errors are an SSE error event."""
    args = ticket.args
    stream = gateway.client.stream(
        args.model, timeout=gateway.config.timeout, max_cost=max_cost, **args.kwargs
    )
    try:
        first = await anext(stream, None)
    except LlamarouteError as error:
        await stream.aclose()
        _settle(gateway, ticket, None, error)
        return gateway.error(http_error(error), "chat", attempts=getattr(error, "attempts", ()))
    except BaseException:
        await stream.aclose()
        _settle(gateway, ticket, None, None, status="cancelled")
        raise
    gateway.metrics.first_token.observe(time.perf_counter() - ticket.started)
    headers = {}
    if first is not None:
        headers = {
            "x-llamaroute-provider": first.provider,
            "x-llamaroute-route": f"{first.provider}:{first.provider_model_id}",
        }
    return EventStream(_events(gateway, ticket, stream, first), headers)


async def _events(
    gateway: Gateway, ticket: _Ticket, stream: Any, first: Any
) -> AsyncGenerator[bytes, None]:
    args = ticket.args
    cid, created = completion_id(), int(time.time())
    response: ChatResponse | None = None
    try:
        yield _frame(chunk(cid, args.model, created, {"role": "assistant", "content": ""}))
        # Structured output is sent whole once validated: the model's raw text may be wrapped
        # in a code fence, which a client parsing the streamed JSON would choke on.
        structured = "response_format" in args.kwargs
        if first is not None:
            if first.text and not structured:
                yield _frame(chunk(cid, args.model, created, {"content": first.text}))
            async for piece in stream:
                if piece.text and not structured:
                    yield _frame(chunk(cid, args.model, created, {"content": piece.text}))
        response = stream.response
        assert response is not None
        if structured:
            yield _frame(chunk(cid, args.model, created, {"content": content(response)}))
        if response.tool_calls:
            yield _frame(chunk(cid, args.model, created, tool_call_delta(response)))
        yield _frame(chunk(cid, args.model, created, {}, openai_finish(response)))
        if args.include_usage:
            yield _frame(usage_chunk(cid, args.model, created, response))
        _settle(gateway, ticket, response, None)
        yield _DONE
    except LlamarouteError as error:
        # After the first chunk the status is sent: the failure is an error event, and the
        # stream never ends with [DONE], so no client takes a cut answer for a whole one.
        _settle(gateway, ticket, None, error)
        failure = http_error(error)
        gateway.metrics.child(gateway.metrics.errors, failure.type, failure.code or "").inc()
        yield _frame(failure.body())
    finally:
        if not ticket.settled:
            # The client hung up: close the upstream (the client settles what it was billed)
            # and record it for the key. No await may come before the books are settled.
            try:
                await stream.aclose()
            finally:
                _settle(gateway, ticket, response, None, status="client_disconnected")
        else:
            await stream.aclose()
