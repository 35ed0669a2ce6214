"""OpenTelemetry spans for llamaroute calls, when ``opentelemetry-api`` is installed.

One span per attempt (each request sent), named ``chat <model_id>`` with kind CLIENT and the
GenAI semantic-convention attributes: ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and
the older ``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.request.max_tokens``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons``,
``error.type``. Prompts and answers are never recorded.

It is driven by the client's events, so it costs nothing when OpenTelemetry is absent, and the
API is imported on the first event rather than at ``import llamaroute``. Without an SDK
configured (no tracer provider set), no span is started at all: that is checked on each
attempt, so a provider set up after the client was made is still used. (A provider named by
``OTEL_PYTHON_TRACER_PROVIDER`` is looked for when the environment named one as the client
was made.)
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

from .._version import __version__
from ._events import (
    AttemptFailed,
    AttemptStarted,
    CallFailed,
    Event,
    EventHandler,
    ResponseReady,
    emit,
)

__all__ = ["Tracing", "chain", "tracing_handler"]

#: The environment variable that names a tracer provider to load (OpenTelemetry's own).
_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"


class Tracing:
    """An event handler that turns a call's events into OpenTelemetry spans (thread-safe)."""

    def __init__(self) -> None:
        self._spans: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()
        self._tracer: Any = None
        self._unset: tuple[type, ...] = ()
        # OpenTelemetry's get_tracer_provider() looks this variable up in os.environ on every
        # call while no provider is set; it is read once here instead.
        self._from_environment = _PROVIDER_ENV in os.environ

    def _start(self, event: AttemptStarted) -> None:
        if self._tracer is None:
            from opentelemetry import trace

            self._trace = trace
            self._tracer = trace.get_tracer("llamaroute", __version__)
            self._kind = trace.SpanKind.CLIENT
            # What get_tracer_provider() returns while nobody has set one up: spans from it
            # record nothing, and starting them costs a call's worth of microseconds.
            self._unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        trace = self._trace
        # Nobody set a provider (the module's own record, read without get_tracer_provider's
        # environment lookup; an OpenTelemetry without it is asked as before).
        if not self._from_environment and getattr(trace, "_TRACER_PROVIDER", trace) is None:
            return
        if isinstance(trace.get_tracer_provider(), self._unset):
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": event.provider,
            "gen_ai.system": event.provider,
            "gen_ai.request.model": event.model_id,
            "llamaroute.attempt": event.number,
        }
        if event.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = event.max_tokens
        span = self._tracer.start_span(
            f"chat {event.model_id}", kind=self._kind, attributes=attributes
        )
        with self._lock:
            self._spans[(event.call_id, event.number)] = span

    def _take(self, call_id: int, number: int | None = None) -> list[Any]:
        with self._lock:
            keys = [k for k in self._spans if k[0] == call_id and number in (None, k[1])]
            return [self._spans.pop(key) for key in sorted(keys)]

    @staticmethod
    def _fail(span: Any, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", type(error).__name__)
        code = getattr(error, "code", None)
        if code:
            span.set_attribute("llamaroute.error.code", str(code))
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptStarted):
            self._start(event)
        elif not self._spans:
            # Nothing started (tracing not set up): nothing to end. The spans of this call
            # were stored before its later events, by the thread or task that runs it.
            return
        elif isinstance(event, AttemptFailed):
            for span in self._take(event.call_id, event.number):
                self._fail(span, event.error)
        elif isinstance(event, ResponseReady):
            response = event.response
            for span in self._take(event.call_id, event.number):
                self._succeed(span, response)
            for span in self._take(event.call_id):  # a hedge that lost, cancelled
                span.set_attribute("llamaroute.outcome", "cancelled")
                span.end()
        elif isinstance(event, CallFailed):
            for span in self._take(event.call_id):
                self._fail(span, event.error)

    @staticmethod
    def _succeed(last: Any, response: Any) -> None:
        last.set_attribute("gen_ai.response.model", response.provider_model_id)
        last.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
        last.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        if response.finish_reason:
            last.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        if response.cost is not None:
            last.set_attribute("llamaroute.cost_usd", f"{response.cost.total:f}")
        last.end()


def tracing_handler() -> EventHandler | None:
    """A :class:`Tracing` handler when ``opentelemetry-api`` is installed, else ``None``."""
    if importlib.util.find_spec("opentelemetry") is None:
        return None
    return Tracing()


def chain(*handlers: EventHandler | None) -> EventHandler | None:
    """One handler that calls each of ``handlers`` in turn (``None`` ones are left out)."""
    present = [handler for handler in handlers if handler is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def each(event: Event) -> None:
        # One failing handler (the user's, say) must not starve the others.
        for handler in present:
            emit(handler, event)

    return each
