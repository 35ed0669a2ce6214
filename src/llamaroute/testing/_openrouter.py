"""A fake OpenRouter: the ``/chat/completions`` wire format, JSON and SSE, with its errors."""

from __future__ import annotations

import dataclasses
import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from ._script import Step, StreamPlan
from ._server import Exchange, FakeServer

__all__ = ["FakeOpenRouter"]

_STATUS_TYPES = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
    503: "provider_overloaded",
    524: "timeout",
    529: "provider_overloaded",
}


_NOT_FOUND_PAGE = (
    b"<!DOCTYPE html><html><head><title>404: This page could not be found</title></head>"
    b"<body><h1>404</h1><p>This page could not be found.</p></body></html>"
)


class _Raw(str):
    """A number to write into JSON exactly as this text (a cost with all its digits)."""

    __slots__ = ()


def _dumps(value: Any) -> bytes:
    raws: list[str] = []

    def mark(item: Any) -> Any:
        if isinstance(item, _Raw):
            raws.append(item)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value), separators=(",", ":"))
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000raw{index}\\u0000"', raw)
    return text.encode()


class FakeOpenRouter(FakeServer):
    """A fake OpenRouter API on 127.0.0.1. Point a provider at :attr:`base_url`::

        with FakeOpenRouter(Step.error(429, retry_after=1), Step.reply("Hi")) as fake:
            provider = OpenRouterProvider(api_key="sk-or-v1-test", base_url=fake.base_url)

    Serves ``POST /api/v1/chat/completions`` (JSON, or SSE with ``: OPENROUTER PROCESSING``
    keep-alives, a usage chunk with empty ``choices`` and ``data: [DONE]``). A request without
    a Bearer token gets OpenRouter's 401. Errors use OpenRouter's body
    ``{"error": {"code", "message", "metadata": {"error_type"}}}``; a mid-stream error is the
    documented ``data:`` event with ``finish_reason: "error"`` under HTTP 200.

    ``price=(prompt, completion)`` (USD per million tokens, decimal strings or Decimals) makes
    the fake an endpoint at that price, as OpenRouter's are: each answer reports
    ``usage.cost`` at it (exact decimal digits; a step's own ``cost`` wins), :attr:`billed`
    sums what every answer cost (a stream's output as far as it was written before the client
    hung up), and a request whose ``provider.max_price`` is below the
    price is refused as OpenRouter refuses it: HTTP 404, "No endpoints found ...", nothing
    billed and no scripted step used (``honour_max_price=False``: a gateway that ignores it).
    :attr:`refused` counts those refusals. Each answer has its own generation id
    (``gen-fake-1``, ``gen-fake-2``, ...), and ``GET /generation?id=`` says what it was billed
    (:attr:`generations`), or 404 for an id it does not know.
    """

    default_text: ClassVar[str] = "Hello from the fake OpenRouter."

    def __init__(
        self,
        *steps: Step,
        default: Step | None = None,
        price: tuple[Decimal | str, Decimal | str] | None = None,
        honour_max_price: bool = True,
    ) -> None:
        super().__init__(*steps, default=default)
        self.honour_max_price = honour_max_price
        self.price = None if price is None else (Decimal(price[0]), Decimal(price[1]))
        self.billed = Decimal(0)
        self.refused = 0
        #: What each answer was billed, by its generation id (``GET /generation?id=``).
        self.generations: dict[str, Decimal] = {}
        self._answered = 0

    def _over_max_price(self, body: Any) -> bool:
        """Whether the request's ``provider.max_price`` rules out this endpoint's price."""
        if self.price is None or not self.honour_max_price or not isinstance(body, dict):
            return False
        provider = body.get("provider")
        ceiling = provider.get("max_price") if isinstance(provider, dict) else None
        if not isinstance(ceiling, dict):
            return False
        for key, price in zip(("prompt", "completion"), self.price, strict=True):
            if key in ceiling:
                try:
                    if Decimal(str(ceiling[key])) < price:
                        return True
                except InvalidOperation:
                    return True
        return False

    def _cost(self, usage: tuple[int, int]) -> Decimal | None:
        if self.price is None:
            return None
        return (self.price[0] * usage[0] + self.price[1] * usage[1]) / 1_000_000

    def _bill(self, usage: tuple[int, int], generation: str) -> None:
        cost = self._cost(usage)
        if cost is not None:
            with self._lock:
                self.billed += cost
                self.generations[generation] = cost

    def _generation(self, exchange: Exchange) -> None:
        """``GET /generation?id=``: what an answer was billed, or OpenRouter's 404."""
        wanted = parse_qs(urlsplit(exchange.request.path).query).get("id", [""])[0]
        with self._lock:
            cost = self.generations.get(wanted)
        if cost is None:
            exchange.send(404, self._error_body(404, "not_found", "Generation not found"))
            return
        exchange.send(200, _dumps({"data": {"id": wanted, "total_cost": _Raw(f"{cost:f}"),
                                            "is_byok": False, "upstream_inference_cost": None,
                                            "provider_name": "Fake"}}))  # fmt: skip

    @staticmethod
    def _count_content(exchange: Exchange, plan: StreamPlan) -> list[int]:
        """Count the content frames that reach the socket (``[count]``, updated as written)."""
        written = [0]
        frames = {id(frame) for frame in plan.content}
        write = exchange.write

        def counted(data: bytes, **options: Any) -> None:
            write(data, **options)
            if id(data) in frames:
                written[0] += 1

        exchange.write = counted  # type: ignore[method-assign]
        return written

    @property
    def base_url(self) -> str:
        """The value for ``OpenRouterProvider(base_url=...)``."""
        return f"{self.url}/api/v1"

    def handle(self, exchange: Exchange) -> None:
        if exchange.request.method == "GET" and exchange.path.endswith("/models"):
            # The public model list needs no key; ``llamaroute doctor`` uses it.
            slugs = ("meta-llama/llama-3.2-1b-instruct", "meta-llama/llama-3.2-3b-instruct",
                     "meta-llama/llama-3.2-11b-vision-instruct",
                     "meta-llama/llama-3.2-90b-vision-instruct")  # fmt: skip
            exchange.send(200, _dumps({"data": [{"id": slug, "context_length": 131072}
                                                for slug in slugs]}))  # fmt: skip
            return
        if exchange.request.method == "GET" and exchange.path.endswith("/generation"):
            if not exchange.request.headers.get("authorization", "").startswith("Bearer "):
                exchange.send(401, self._error_body(401, "authentication", "No auth credentials"))
            else:
                self._generation(exchange)
            return
        if exchange.request.method != "POST" or not exchange.path.endswith("/chat/completions"):
            # What a web front end answers for a path it does not know: a page, not an API
            # error (a base_url given with /chat/completions lands here).
            exchange.send(404, _NOT_FOUND_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            return
        if not exchange.request.headers.get("authorization", "").startswith("Bearer "):
            exchange.send(401, self._error_body(401, "authentication", "No auth credentials found"))
            return
        body = exchange.json if isinstance(exchange.json, dict) else {}
        if self._over_max_price(body):
            with self._lock:
                self.refused += 1
            message = ("No endpoints found matching your price limits (provider.max_price). To "
                       "learn more about provider routing, visit: "
                       "https://openrouter.ai/docs/provider-routing")  # fmt: skip
            exchange.send(404, _dumps({"error": {"message": message, "code": 404}}))
            return
        step = self.next_step()
        stream = bool(body.get("stream"))
        if self.answer(exchange, step, stream=stream):
            return
        if step.is_error or 300 <= step.status < 400:  # a 3xx too: redirects are tested
            headers = dict(step.headers)
            if step.retry_after is not None:
                headers["Retry-After"] = str(step.retry_after)
            error_type = step.error_type or _STATUS_TYPES.get(step.status, "unmapped")
            message = step.message or f"fake {error_type} error"
            answer = step.raw_body
            if answer is None:
                answer = self._error_body(step.status, error_type, message)
            if step.content_type is not None:
                headers["Content-Type"] = step.content_type
            exchange.send(step.status, answer, headers)
            return
        model = str(body.get("model", "unknown"))
        with self._lock:
            self._answered += 1
            generation = f"gen-fake-{self._answered}"
        chunks = self.chunks_for(step)
        usage = self.usage_for(step, body.get("messages"), chunks)
        cost = self._cost(usage)
        if step.cost is None and cost is not None:
            step = dataclasses.replace(step, cost=f"{cost:f}")
        if stream:
            plan = self._plan(step, model, chunks, usage, generation)
            written = self._count_content(exchange, plan)
            try:
                self.play_stream(exchange, step, plan, "text/event-stream", step.headers)
            finally:
                # Billed as generated: the prompt, and the output of the chunks written
                # before the client hung up (all of them for a whole answer).
                share = -(-usage[1] * written[0] // max(1, len(plan.content)))
                whole = written[0] >= len(plan.content)
                self._bill((usage[0], usage[1] if whole else share), generation)
        elif step.malformed_after == 0:
            exchange.send(200, b'{"id":"gen-fake","choices":[{"message":{"content":"tr')
        else:
            self._bill(usage, generation)
            answer = _dumps(self._completion(step, model, "".join(chunks), usage, generation))
            self.send_answer(exchange, step, answer,
                             {"X-Generation-Id": generation, **step.headers})  # fmt: skip

    @staticmethod
    def _error_body(status: int, error_type: str, message: str) -> bytes:
        return _dumps({"error": {"code": status, "message": message,
                                 "metadata": {"error_type": error_type}}})  # fmt: skip

    def _usage(self, step: Step, usage: tuple[int, int]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
        if step.cost is not None:
            # The exact digits, as a JSON number (json.dumps would go through a float).
            data["cost"] = _Raw(step.cost)
        return data

    def _completion(
        self, step: Step, model: str, text: str, usage: tuple[int, int], generation: str
    ) -> Any:
        return {
            "id": generation,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "provider": "Fake",
            "choices": [{
                "index": 0,
                "finish_reason": step.finish_reason,
                "native_finish_reason": step.finish_reason,
                "message": {"role": "assistant", "content": text,
                            **({"tool_calls": _openai_calls(step)} if step.tool_calls else {})},
            }],
            "usage": self._usage(step, usage),
        }  # fmt: skip

    def _plan(
        self, step: Step, model: str, chunks: list[str], usage: tuple[int, int], generation: str
    ) -> StreamPlan:
        newline = b"\r\n" if step.crlf else b"\n"
        created = int(time.time())

        def event(payload: Any) -> bytes:
            body = _dumps({"id": generation, "object": "chat.completion.chunk",
                           "created": created, "model": model, **payload})  # fmt: skip
            if step.multiline_data:
                # Split the JSON at its first comma: still one event, over two data: lines.
                head, _, tail = body.partition(b",")
                body = head + b"," + newline + b"data: " + tail
            return b"data: " + body + newline + newline

        def delta(content: str, finish: str | None = None) -> bytes:
            return event({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                               "content": content},
                                       "finish_reason": finish}]})  # fmt: skip

        def fragments() -> list[bytes]:
            # The id, type and name in a call's first fragment only; its arguments in pieces.
            frames = []
            for index, call in enumerate(_openai_calls(step)):
                first = {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                frames.append(first)
                text = call["function"]["arguments"]
                frames += [
                    {"index": index, "function": {"arguments": text[at : at + 5]}}
                    for at in range(0, len(text), 5)
                ]
            return [
                event(
                    {
                        "choices": [
                            {"index": 0, "delta": {"tool_calls": [frame]}, "finish_reason": None}
                        ]
                    }
                )
                for frame in frames
            ]

        return StreamPlan(
            preamble=[b": OPENROUTER PROCESSING" + newline + newline],
            content=[delta(chunk) for chunk in chunks],
            closing=[
                *fragments(),
                delta("", step.finish_reason),
                event({"choices": [], "usage": self._usage(step, usage)}),
                b"data: [DONE]" + newline + newline,
            ],
            error_frame=event(
                {
                    "provider": "Fake",
                    "error": {
                        "code": 502,
                        "message": "upstream failed mid-stream",
                        "metadata": {"error_type": "provider_unavailable"},
                    },
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                }
            ),
            malformed_frame=b'data: {"choices":[{"delta":{"content":"tr' + newline + newline,
        )


def _openai_calls(step: Step) -> list[dict[str, Any]]:
    """The step's tool calls in OpenAI's shape (arguments as text: raw text is sent as is)."""
    calls = []
    for index, call in enumerate(step.tool_calls or ()):
        arguments = call.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        calls.append(
            {
                "id": call.get("id", f"call_fake_{index}"),
                "type": "function",
                "function": {"name": call.get("name"), "arguments": text},
            }
        )
    return calls
