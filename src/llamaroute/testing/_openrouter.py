"""A fake OpenRouter: the ``/chat/completions`` wire format, JSON and SSE, with its errors."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

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


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class FakeOpenRouter(FakeServer):
    """A fake OpenRouter API on 127.0.0.1. Point a provider at :attr:`base_url`::

        with FakeOpenRouter(Step.error(429, retry_after=1), Step.reply("Hi")) as fake:
            provider = OpenRouterProvider(api_key="sk-or-v1-test", base_url=fake.base_url)

    Serves ``POST /api/v1/chat/completions`` (JSON, or SSE with ``: OPENROUTER PROCESSING``
    keep-alives, a usage chunk with empty ``choices`` and ``data: [DONE]``). A request without
    a Bearer token gets OpenRouter's 401. Errors use OpenRouter's body
    ``{"error": {"code", "message", "metadata": {"error_type"}}}``; a mid-stream error is the
    documented ``data:`` event with ``finish_reason: "error"`` under HTTP 200.
    """

    default_text: ClassVar[str] = "Hello from the fake OpenRouter."

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
        if exchange.request.method != "POST" or not exchange.path.endswith("/chat/completions"):
            # What a web front end answers for a path it does not know: a page, not an API
            # error (a base_url given with /chat/completions lands here).
            exchange.send(404, _NOT_FOUND_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            return
        if not exchange.request.headers.get("authorization", "").startswith("Bearer "):
            exchange.send(401, self._error_body(401, "authentication", "No auth credentials found"))
            return
        step = self.next_step()
        body = exchange.json if isinstance(exchange.json, dict) else {}
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
        chunks = self.chunks_for(step)
        usage = self.usage_for(step, body.get("messages"), chunks)
        if stream:
            self.play_stream(exchange, step, self._plan(step, model, chunks, usage),
                             "text/event-stream", step.headers)  # fmt: skip
        elif step.malformed_after == 0:
            exchange.send(200, b'{"id":"gen-fake","choices":[{"message":{"content":"tr')
        else:
            answer = _dumps(self._completion(step, model, "".join(chunks), usage))
            self.send_answer(exchange, step, answer,
                             {"X-Generation-Id": "gen-fake-1", **step.headers})  # fmt: skip

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
            data["cost"] = float(step.cost)
        return data

    def _completion(self, step: Step, model: str, text: str, usage: tuple[int, int]) -> Any:
        return {
            "id": "gen-fake-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "provider": "Fake",
            "choices": [{
                "index": 0,
                "finish_reason": step.finish_reason,
                "native_finish_reason": step.finish_reason,
                "message": {"role": "assistant", "content": text},
            }],
            "usage": self._usage(step, usage),
        }  # fmt: skip

    def _plan(
        self, step: Step, model: str, chunks: list[str], usage: tuple[int, int]
    ) -> StreamPlan:
        newline = b"\r\n" if step.crlf else b"\n"
        created = int(time.time())

        def event(payload: Any) -> bytes:
            body = _dumps({"id": "gen-fake-1", "object": "chat.completion.chunk",
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

        return StreamPlan(
            preamble=[b": OPENROUTER PROCESSING" + newline + newline],
            content=[delta(chunk) for chunk in chunks],
            closing=[
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
