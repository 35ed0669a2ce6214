"""A fake Ollama server: ``/api/chat`` as JSON and NDJSON, ``/api/tags``, and its errors."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from ._script import Step, StreamPlan
from ._server import Exchange, FakeServer

__all__ = ["FakeOllama"]

#: The Llama 3.2 tags of the catalog's Ollama routes: what a fresh ``FakeOllama()`` has pulled.
DEFAULT_MODELS = ("llama3.2:1b", "llama3.2:3b", "llama3.2-vision:11b", "llama3.2-vision:90b")

# The server's own texts, for steps that give no message (ollama/ollama server/routes.go).
_MESSAGES = {
    400: "invalid request",
    429: "rate limit exceeded",
    500: "an error was encountered while running the model",
    502: "cloud model unreachable",
    503: "server busy, please try again.  maximum pending requests exceeded",
}

#: Durations reported on the final line, in nanoseconds as on the wire.
_DURATIONS = {
    "total_duration": 1_250_000_000,
    "load_duration": 250_000_000,
    "prompt_eval_duration": 200_000_000,
    "eval_duration": 800_000_000,
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


#: A hostile answer ends after this long whatever happens, so that a client that never hangs up
#: cannot pin a server thread.
HOSTILE_LIMIT = 30.0


@dataclass(frozen=True)
class _Hostile:
    kind: Literal["trickle", "flood", "keep_alive", "oversized"]
    interval: float = 0.0
    chunks: int = 0
    size: int = 0
    lines: bool = False


class FakeOllama(FakeServer):
    """A fake Ollama server on 127.0.0.1. Point a provider at :attr:`url`::

        with FakeOllama(Step.reply("Hi"), models=["llama3.2:3b"]) as fake:
            provider = OllamaProvider(host=fake.url)

    Serves ``POST /api/chat`` (one JSON object for ``"stream": false``; otherwise NDJSON lines
    ending with a ``done: true`` line that carries ``done_reason``, ``prompt_eval_count`` /
    ``eval_count`` (left out when 0, as the real server does) and durations in nanoseconds) and
    ``GET /api/tags`` (the pulled ``models``). A chat for a model that is not pulled gets the
    server's 404 ``model "X" not found, try pulling it first`` without taking a step.

    Faults come from the :class:`Step` script: an HTTP error is ``{"error": "<message>"}`` with
    the step's status; ``error_after`` is a last ``{"error": ...}`` line under HTTP 200;
    ``omit_end`` leaves out the ``done: true`` line; ``malformed_after`` sends a line that is
    not valid JSON (``0`` on a non-streamed call: a truncated body); ``cut_after``,
    ``drop_after``, ``reset_after``, ``delay`` and ``chunk_delay`` work as for every fake.

    Hostile answers, for the next chat requests (before any step; each takes no step):
    :meth:`trickle` (one byte at a time, for ever), :meth:`flood` (an endless body, as fast as
    the client reads), :meth:`keep_alive` (lines with no text, for ever) and :meth:`oversized`
    (a complete answer of a given size). Streams can send ``chunks`` good lines first. Each
    goes on until the client hangs up (or :data:`HOSTILE_LIMIT` seconds).
    """

    default_text: ClassVar[str] = "Hello from the fake Ollama."

    def __init__(
        self, *steps: Step, default: Step | None = None, models: Iterable[str] = DEFAULT_MODELS
    ) -> None:
        super().__init__(*steps, default=default)
        self._models = list(models)
        self._models_lock = threading.Lock()
        self._hostile: deque[_Hostile] = deque()

    # --- hostile answers ------------------------------------------------------------------

    def trickle(self, interval: float = 0.3, *, chunks: int = 0) -> FakeOllama:
        """The next chat answer sends one byte every ``interval`` seconds of a JSON line that
        never ends (after ``chunks`` good lines, when streamed)."""
        return self._queue(_Hostile("trickle", interval, chunks))

    def flood(self, *, chunks: int = 0) -> FakeOllama:
        """The next chat answer is an endless JSON line, sent as fast as the client reads."""
        return self._queue(_Hostile("flood", 0.0, chunks))

    def keep_alive(self, interval: float = 0.05, *, chunks: int = 0) -> FakeOllama:
        """The next chat answer sends, every ``interval`` seconds, a stream line with no text
        (after ``chunks`` good lines); a non-streamed answer sends a space (JSON whitespace)."""
        return self._queue(_Hostile("keep_alive", interval, chunks))

    def oversized(self, size: int, *, lines: bool = False) -> FakeOllama:
        """The next chat answer is complete and valid, with ``size`` bytes of text: in one
        body or, streamed, in one line (``lines=True``: in lines of 64 KiB)."""
        return self._queue(_Hostile("oversized", size=size, lines=lines))

    def _queue(self, hostile: _Hostile) -> FakeOllama:
        with self._lock:
            self._hostile.append(hostile)
        return self

    def _next_hostile(self) -> _Hostile | None:
        with self._lock:
            return self._hostile.popleft() if self._hostile else None

    @property
    def models(self) -> list[str]:
        """The pulled models that ``/api/tags`` lists and ``/api/chat`` accepts."""
        with self._models_lock:
            return list(self._models)

    @models.setter
    def models(self, names: Iterable[str]) -> None:
        with self._models_lock:
            self._models = list(names)

    def handle(self, exchange: Exchange) -> None:
        method, path = exchange.request.method, exchange.path
        if method == "GET" and path == "/api/tags":
            exchange.send(200, _dumps({"models": [self._listing(name) for name in self.models]}))
        elif method in ("GET", "HEAD") and path == "/":
            exchange.send(200, b"Ollama is running", {"Content-Type": "text/plain"})
        elif method == "POST" and path == "/api/chat":
            self._chat(exchange)
        else:
            exchange.send(404, b"404 page not found", {"Content-Type": "text/plain"})

    @staticmethod
    def _listing(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2026-08-21T12:00:00Z",
            "size": 2_019_393_189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                        "quantization_level": "Q4_K_M"},
        }  # fmt: skip

    def _chat(self, exchange: Exchange) -> None:
        body = exchange.json if isinstance(exchange.json, dict) else {}
        model = str(body.get("model", ""))
        if _tag(model) not in {_tag(name) for name in self.models}:
            message = f'model "{model}" not found, try pulling it first'
            exchange.send(404, _dumps({"error": message}))
            return
        stream = body.get("stream", True) is not False  # the API streams unless told not to
        hostile = self._next_hostile()
        if hostile is not None:
            self._misbehave(exchange, hostile, model, stream=stream)
            return
        if body.get("tools") and _tag(model).startswith("llama3.2-vision"):
            # What the server answers for a model whose template takes no tools.
            message = f"registry.ollama.ai/library/{model} does not support tools"
            exchange.send(400, _dumps({"error": message}))
            return
        step = self.next_step()
        if self.answer(exchange, step, stream=stream):
            return
        if step.is_error or 300 <= step.status < 400:  # a 3xx too: redirects are tested
            message = step.message or _MESSAGES.get(step.status, f"fake error {step.status}")
            exchange.send(step.status, _dumps({"error": message}), step.error_headers)
            return
        chunks = self.chunks_for(step)
        usage = self.usage_for(step, body.get("messages"), chunks)
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if stream:
            self.play_stream(exchange, step, self._plan(step, model, created, chunks, usage),
                             "application/x-ndjson", step.headers)  # fmt: skip
        elif step.malformed_after == 0:
            exchange.send(200, b'{"model":"' + model.encode() + b'","message":{"content":"tr')
        else:
            final = self._final(step, model, created, usage, "".join(chunks))
            if step.tool_calls:
                final["message"]["tool_calls"] = _ollama_calls(step)
            exchange.send(200, _dumps(final), step.headers)

    def _final(
        self, step: Step, model: str, created: str, usage: tuple[int, int], text: str = ""
    ) -> dict[str, Any]:
        final: dict[str, Any] = {
            "model": model,
            "created_at": created,
            "message": {"role": "assistant", "content": text},
            "done": True,
            # Ollama ends an answer that calls tools with "stop".
            "done_reason": "stop" if step.finish_reason == "tool_calls" else step.finish_reason,
            **_DURATIONS,
        }
        # omitempty on the server: a zero count is absent, not 0.
        if usage[0]:
            final["prompt_eval_count"] = usage[0]
        if usage[1]:
            final["eval_count"] = usage[1]
        return final

    def _plan(
        self, step: Step, model: str, created: str, chunks: list[str], usage: tuple[int, int]
    ) -> StreamPlan:
        newline = b"\r\n" if step.crlf else b"\n"

        def line(payload: Any) -> bytes:
            return _dumps(payload) + newline

        def delta(content: str) -> bytes:
            message = {"role": "assistant", "content": content}
            return line({"model": model, "created_at": created, "message": message, "done": False})

        message = step.message or "an error was encountered while running the model"
        calls = []
        if step.tool_calls:
            # Since Ollama 0.8 a line of its own carries the calls, before the done line.
            said = {"role": "assistant", "content": "", "tool_calls": _ollama_calls(step)}
            calls.append(line({"model": model, "created_at": created, "message": said,
                               "done": False}))  # fmt: skip
        return StreamPlan(
            content=[delta(chunk) for chunk in chunks],
            closing=[*calls, line(self._final(step, model, created, usage))],
            error_frame=line({"error": message}),
            malformed_frame=b'{"model":"'
            + model.encode()
            + b'","message":{"content":"tr'
            + newline,
        )

    def _misbehave(
        self, exchange: Exchange, hostile: _Hostile, model: str, *, stream: bool
    ) -> None:
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")

        def line(content: str, done: bool = False) -> bytes:
            message = {"role": "assistant", "content": content}
            return _dumps({"model": model, "created_at": created, "message": message,
                           "done": done}) + b"\n"  # fmt: skip

        exchange.start_stream("application/x-ndjson" if stream else "application/json")
        if stream:
            for index in range(hostile.chunks):
                exchange.write(line(f" word{index}"))
        opening = b'{"model":"' + model.encode() + b'","message":{"role":"assistant","content":"'
        if hostile.kind == "oversized":
            text = "x" * hostile.size
            if stream and hostile.lines:
                piece = 65536
                for start in range(0, hostile.size, piece):
                    exchange.write(line(text[start : start + piece]))
                exchange.write(line("", done=True))
            else:
                exchange.write(line(text, done=True))
            exchange.end_stream()
            return
        ends = time.monotonic() + HOSTILE_LIMIT
        if hostile.kind == "flood":
            exchange.write(opening)
            block = b"x" * 65536
            while time.monotonic() < ends:
                exchange.write(block)
            return
        if hostile.kind == "trickle":
            pending = opening
            while time.monotonic() < ends:
                exchange.write(pending[:1] or b"x")
                pending = pending[1:]
                time.sleep(hostile.interval)
            return
        filler = line("") if stream else b" "
        while time.monotonic() < ends:
            exchange.write(filler)
            time.sleep(hostile.interval)


def _ollama_calls(step: Step) -> list[dict[str, Any]]:
    """The step's tool calls as Ollama sends them: arguments as an object (text that is JSON
    is sent as its object; other text as is, as a broken server would)."""
    calls = []
    for call in step.tool_calls or ():
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        calls.append({"function": {"name": call.get("name"), "arguments": arguments}})
    return calls
