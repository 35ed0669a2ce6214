"""The gateway as the official openai SDK (and curl) sees it: plain, async, streamed, tools,
structured output, headers, models, estimates and errors, over llamaroute.testing fakes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._gateway import (  # close_sdk_clients: an autouse fixture
    MASTER,
    PLACEHOLDER_KEY,
    Running,
    close_sdk_clients,  # noqa: F401
    sdk,
    serve,
)

openai = pytest.importorskip("openai")

from llamaroute import estimate  # noqa: E402
from llamaroute.providers import OllamaProvider, OpenRouterProvider  # noqa: E402
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step  # noqa: E402

MODEL = "llama-3.2-3b"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(default=Step.reply("Hello from the fake", usage=(12, 5))) as server:
        yield server


@pytest.fixture
def gateway(fake: FakeOpenRouter, tmp_path: Path) -> Iterator[Running]:
    provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
    with serve([provider], tmp_path / "gw.sqlite3") as running:
        yield running


def test_a_plain_chat_through_the_sdk(gateway: Running, fake: FakeOpenRouter) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=20,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=7,
        user="alice",
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from the fake"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 5)
    assert raw.headers["x-llamaroute-provider"] == "openrouter"
    assert raw.headers["x-llamaroute-route"] == "openrouter:meta-llama/llama-3.2-3b-instruct"
    assert raw.headers["x-llamaroute-attempts"] == "1"
    assert float(raw.headers["x-llamaroute-cost"]) > 0
    sent = fake.requests[-1].json
    assert sent["max_tokens"] == 20
    assert sent["seed"] == 7
    assert sent["stop"] == ["END"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_an_async_chat_through_the_sdk(gateway: Running) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=MASTER, max_retries=0) as ai:
        answer = await ai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=9
        )
    assert answer.choices[0].message.content == "Hello from the fake"


def test_a_stream_with_its_usage_chunk_and_done(gateway: Running) -> None:
    stream = sdk(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    body = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    ).text
    assert body.rstrip().endswith("data: [DONE]")


def test_tool_calls_plain_and_streamed(gateway: Running, fake: FakeOpenRouter) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    fake.script(
        Step.tool_call("get_weather", {"city": "Paris"}, id="call_1"),
        Step.tool_call("get_weather", {"city": "Rome"}, id="call_2"),
        Step.reply("Sunny"),
    )
    ai = sdk(gateway)
    answer = ai.chat.completions.create(
        model=MODEL,
        tools=tools,
        tool_choice="auto",
        messages=[{"role": "user", "content": "Weather?"}],
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert fake.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"
    streamed = list(
        ai.chat.completions.create(
            model=MODEL,
            tools=tools,
            stream=True,
            messages=[{"role": "user", "content": "Weather?"}],
        )
    )
    deltas = [c.choices[0].delta for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].tool_calls[0].function.name == "get_weather"
    assert json.loads(deltas[0].tool_calls[0].function.arguments) == {"city": "Rome"}
    # The tool's result goes back in OpenAI's shape.
    final = ai.chat.completions.create(
        model=MODEL,
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        ],
    )
    assert final.choices[0].message.content == "Sunny"
    assert fake.requests[-1].json["messages"][-1]["tool_call_id"] == "call_1"


def test_structured_output_with_a_json_schema(gateway: Running, fake: FakeOpenRouter) -> None:
    fake.script(Step.structured({"name": "Ada", "age": 36}, fenced=True))
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    answer = sdk(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Who?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    assert json.loads(answer.choices[0].message.content) == {"name": "Ada", "age": 36}


def test_an_image_url_part_reaches_the_provider(gateway: Running, fake: FakeOpenRouter) -> None:
    png = Path(__file__).parent.parent / "examples" / "chart.png"
    import base64

    url = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    sdk(gateway).chat.completions.create(
        model="llama-3.2-11b-vision",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    parts = fake.requests[-1].json["messages"][-1]["content"]
    assert any(part.get("type") == "image_url" for part in parts)


def test_a_file_path_is_never_taken_as_an_image(gateway: Running, fake: FakeOpenRouter) -> None:
    with pytest.raises(openai.BadRequestError):
        sdk(gateway).chat.completions.create(
            model="llama-3.2-11b-vision",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}],
                }
            ],
        )
    assert fake.hits == 0


def test_curl_gets_a_plain_answer(gateway: Running) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-i",
            f"{gateway.base_url}/chat/completions",
            "-H",
            f"Authorization: Bearer {MASTER}",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    assert "x-llamaroute-provider: openrouter" in head.lower()
    assert json.loads(payload)["choices"][0]["message"]["content"] == "Hello from the fake"


def test_models_estimate_health_and_metrics(gateway: Running) -> None:
    ai = sdk(gateway)
    ids = [model.id for model in ai.models.list()]
    assert "llama-3.2-3b" in ids
    assert "openrouter:meta-llama/llama-3.2-3b-instruct" in ids
    auth = {"Authorization": f"Bearer {MASTER}"}
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "How tall is Everest?"}],
        "max_tokens": 100,
    }
    got = httpx.post(f"{gateway.base_url}/estimate", json=body, headers=auth).json()
    want = estimate(MODEL, messages=body["messages"], max_tokens=100)
    assert [(e["provider"], e["model_id"], e["expected"], e["high"]) for e in got] == [
        (e.provider, e.model_id, str(e.expected), str(e.high)) for e in want
    ]
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    ai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    metrics = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "llamaroute_gateway_requests_total",
        "llamaroute_gateway_attempts_total",
        "llamaroute_gateway_request_seconds_bucket",
        "llamaroute_gateway_tokens_total",
        "llamaroute_gateway_cost_usd_total",
        "llamaroute_gateway_breaker_state",
    ):
        assert name in metrics
    assert 'llamaroute_gateway_tokens_total{direction="output",model="llama-3.2-3b"} 5.0' in metrics


def test_errors_have_openais_shape_and_status(gateway: Running, fake: FakeOpenRouter) -> None:
    ai = sdk(gateway)
    with pytest.raises(openai.NotFoundError) as unknown:
        ai.chat.completions.create(model="llama-9", messages=[{"role": "user", "content": "Hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        ai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], temperature=7
        )
    with pytest.raises(openai.BadRequestError):
        ai.chat.completions.create(model=MODEL, messages=[{"role": "assistant", "content": "x"}])
    url, auth = f"{gateway.base_url}/chat/completions", {"Authorization": f"Bearer {MASTER}"}
    bad = httpx.post(url, content=b"{not json", headers=auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_json"
    assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
    huge = httpx.post(url, content=b"x" * 5_000_000, headers=auth)
    assert huge.status_code == 413
    assert fake.hits == 0
    assert (
        httpx.options(url, headers={"Origin": "https://evil.example"}).headers.get(
            "access-control-allow-origin"
        )
        is None
    )


def test_a_provider_outage_falls_back(tmp_path: Path) -> None:
    with (
        FakeOpenRouter(default=Step.error(503)) as down,
        FakeOllama(default=Step.reply("local")) as up,
    ):
        providers = [
            OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=down.base_url),
            OllamaProvider(host=up.url),
        ]
        with serve(providers, tmp_path / "gw.sqlite3", client_options={"retries": 0}) as gateway:
            raw = sdk(gateway).chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}]
            )
            assert raw.parse().choices[0].message.content == "local"
            assert raw.headers["x-llamaroute-provider"] == "ollama"
            assert raw.headers["x-llamaroute-attempts"] == "2"


def test_every_provider_down_is_a_5xx(tmp_path: Path) -> None:
    with FakeOpenRouter(default=Step.error(503)) as down:
        provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=down.base_url)
        with serve([provider], tmp_path / "gw.sqlite3", client_options={"retries": 0}) as gateway:
            with pytest.raises(openai.APIStatusError) as failed:
                sdk(gateway).chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Hi"}]
                )
            assert failed.value.status_code == 503


def test_a_stream_that_breaks_after_text_ends_with_an_error_event(
    gateway: Running, fake: FakeOpenRouter
) -> None:
    fake.script(Step.reply("one two three four five", error_after=2))
    body = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    ).text
    assert "[DONE]" not in body
    last = json.loads(body.strip().split("\n\n")[-1].removeprefix("data: "))
    assert last["error"]["code"] == "stream_interrupted"
    fake.script(Step.reply("one two three four five", error_after=2))
    with pytest.raises(openai.APIError):
        for _ in sdk(gateway).chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "Hi"}]
        ):
            pass


def test_image_urls_the_gateway_fetches_go_through_the_ssrf_policy(tmp_path: Path) -> None:
    # Ollama takes no URLs: the client must fetch this one, and a loopback address is refused
    # before anything is sent.
    with FakeOllama() as local:
        with serve([OllamaProvider(host=local.url)], tmp_path / "gw.sqlite3") as gateway:
            with pytest.raises(openai.BadRequestError) as refused:
                sdk(gateway).chat.completions.create(model="llama-3.2-11b-vision", messages=[
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"{local.url}/secret.png"}},
                    ]}])  # fmt: skip
            assert "private" in str(refused.value) or "loopback" in str(refused.value)
        assert not [r for r in local.requests if r.path.startswith("/api/chat")]
        assert not [r for r in local.requests if r.path == "/secret.png"]


def test_the_sdks_parse_and_stream_helpers_get_validated_json(
    gateway: Running, fake: FakeOpenRouter
) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    ai = sdk(gateway)
    fake.script(Step.structured({"name": "Ada", "age": 36}, fenced=True))
    parsed = ai.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Who?"}], response_format=Person
    )
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    fake.script(Step.structured({"name": "Alan", "age": 41}, fenced=True))
    with ai.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "Who?"}], response_format=Person
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Person(name="Alan", age=41)


def test_a_bug_in_the_chat_handler_is_a_500_in_openai_shape(gateway: Running) -> None:
    # The chat endpoint bypasses Starlette's middlewares (bench/README.md): what they did for
    # an unexpected exception, answering 500 before anything was sent, it must do itself.
    async def broken(headers: object, receive: object) -> None:
        raise RuntimeError("a bug")

    gateway.app.chat = broken
    answer = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=30,
    )
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"
    # The other endpoints still go through Starlette, 405 included.
    wrong = httpx.get(f"{gateway.base_url}/chat/completions", timeout=30)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"


def test_the_gateway_example_runs_against_the_gateway(gateway: Running) -> None:
    # examples/gateway/openai_sdk.py as a user runs it: its own process, a key in the
    # environment, the gateway's URL on the command line (issue 16, item 14).
    import os
    import sys

    example = Path(__file__).parent.parent / "examples" / "gateway" / "openai_sdk.py"
    env = {**os.environ, "LLAMAROUTE_KEY": gateway.key("example")}
    done = subprocess.run([sys.executable, str(example), gateway.base_url], capture_output=True,
                          text=True, timeout=60, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "Hello from the fake"
    assert lines[1].startswith("cost 0.")
    assert "via openrouter:" in lines[1]
    assert "E-" not in lines[1]  # a plain decimal
    assert lines[-1] == "17 tokens"
