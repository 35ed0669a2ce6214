"""OpenTelemetry spans from the client's events: one span per attempt, GenAI attributes,
errors marked, no prompt or answer text, and nothing at all without OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llamaroute import AllProvidersFailedError, Client, StreamInterruptedError
from llamaroute.client import tracing_handler
from llamaroute.providers import OpenRouterProvider
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY

EXPORTER = InMemorySpanExporter()
PROMPT = "PII-CANARY Jane Doe 555-0100"


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    # The global provider can be set once per process: this module owns it.
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(tracer_provider)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    EXPORTER.clear()
    return EXPORTER


@pytest.fixture
def client(fake_openrouter: FakeOpenRouter) -> Iterator[Client]:
    openrouter = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake_openrouter.base_url)
    with Client(providers=[openrouter], retries=2) as client:
        yield client


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_one_span_per_attempt_with_genai_attributes(
    client: Client, fake_openrouter: FakeOpenRouter, spans: InMemorySpanExporter
) -> None:
    fake_openrouter.script(Step.error(503), Step.reply("ok", usage=(12, 3)))
    client.chat("llama-3.2-3b", PROMPT, max_tokens=50)
    first, second = spans.get_finished_spans()
    for span in (first, second):
        assert span.name == "chat meta-llama/llama-3.2-3b-instruct"
        assert span.kind == trace.SpanKind.CLIENT
        assert attributes(span)["gen_ai.operation.name"] == "chat"
        assert attributes(span)["gen_ai.provider.name"] == "openrouter"
        assert attributes(span)["gen_ai.request.max_tokens"] == 50
    assert first.status.status_code == StatusCode.ERROR
    assert attributes(first)["error.type"] == "ServerError"
    assert second.status.status_code != StatusCode.ERROR
    assert attributes(second)["gen_ai.usage.input_tokens"] == 12
    assert attributes(second)["gen_ai.usage.output_tokens"] == 3
    assert attributes(second)["gen_ai.response.finish_reasons"] == ("stop",)
    assert [attributes(s)["llamaroute.attempt"] for s in (first, second)] == [1, 2]


def test_no_prompt_or_answer_in_any_span(
    client: Client, fake_openrouter: FakeOpenRouter, spans: InMemorySpanExporter
) -> None:
    fake_openrouter.script(Step.reply(f"echo {PROMPT}"))
    client.chat("llama-3.2-3b", PROMPT)
    client.stream("llama-3.2-3b", PROMPT).read()
    text = repr([(s.name, attributes(s), s.events) for s in spans.get_finished_spans()])
    assert "PII-CANARY" not in text
    assert CANARY_KEY not in text


def test_every_span_ends_when_the_call_fails(
    client: Client, fake_openrouter: FakeOpenRouter, spans: InMemorySpanExporter
) -> None:
    fake_openrouter.script(*[Step.error(503)] * 3)
    with pytest.raises(AllProvidersFailedError):
        client.chat("llama-3.2-3b", "hi")
    finished = spans.get_finished_spans()
    assert len(finished) == 3
    assert all(s.status.status_code == StatusCode.ERROR for s in finished)


def test_a_broken_stream_ends_its_span_with_the_error(
    client: Client, fake_openrouter: FakeOpenRouter, spans: InMemorySpanExporter
) -> None:
    fake_openrouter.script(Step(chunks=("a", "b"), drop_after=1))
    with pytest.raises(StreamInterruptedError):
        client.stream("llama-3.2-3b", "hi").read()
    (span,) = spans.get_finished_spans()
    assert attributes(span)["error.type"] == "StreamInterruptedError"


def test_without_opentelemetry_there_is_no_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert tracing_handler() is None


def test_importing_llamaroute_does_not_import_opentelemetry() -> None:
    code = "import llamaroute, sys; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_no_span_is_started_until_a_tracer_provider_is_set() -> None:
    # A fresh process: this module's own provider is global once set. Until the application
    # sets one, starting spans would only cost time; once it does, the same client traces.
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from llamaroute.client import AttemptStarted
from llamaroute.client import Tracing

tracing = Tracing()
tracing(AttemptStarted(1, "ollama", "llama3.2:3b", 1, None))
print(len(tracing._spans))
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracing(AttemptStarted(2, "ollama", "llama3.2:3b", 1, None))
print(len(tracing._spans))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "1"], out.stderr
