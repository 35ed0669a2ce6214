"""BedrockProvider against the fake Bedrock over real sockets, with real boto3 (signing, JSON
parsing, event-stream decoding), sync and async.

Every fault ends in exactly one typed llamaroute error (or a success): never a botocore or
urllib3 exception, never a truncated stream passed off as complete, and never more than one
request per call (botocore's retries are off).
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions
from botocore.eventstream import ChecksumMismatch

from llamaroute import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ConfigurationError,
    InvalidImageError,
    InvalidRequestError,
    LlamarouteError,
    MalformedResponseError,
    ModelNotAvailableError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    UnsupportedFeatureError,
    get_model,
)
from llamaroute.images import load_image
from llamaroute.providers import ProviderCall, ProviderResult
from llamaroute.providers.bedrock import (
    BedrockProvider,
    ConverseStreamState,
    build_converse_request,
    map_error,
    parse_converse,
)
from llamaroute.testing import FakeBedrock, Step

from .conftest import PNG, provider_chat, provider_stream

TEXT = get_model("llama-3.2-3b").route("bedrock", region="us-east-1")
VISION = get_model("llama-3.2-90b-vision").route("bedrock", region="us-east-1")


def call(prompt: str = "Hello", route: Any = TEXT, **kwargs: Any) -> ProviderCall:
    key = "llama-3.2-90b-vision" if route.vision else "llama-3.2-3b"
    images = tuple(load_image(kwargs["image"]) for _ in [0] if "image" in kwargs)
    return ProviderCall(
        request=ChatRequest.create(key, prompt, **kwargs),
        route=route,
        images=images,
        max_tokens=kwargs.get("max_tokens"),
    )


def picture(width: int, height: int, kind: str = "PNG") -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), (200, 30, 30)).save(buffer, kind)
    return buffer.getvalue()


@pytest.fixture
async def provider(fake_bedrock: FakeBedrock) -> AsyncIterator[BedrockProvider]:
    provider = BedrockProvider(
        region="us-east-1", endpoint_url=fake_bedrock.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip
    yield provider
    await provider.aclose()


# --- requests ---------------------------------------------------------------------------------


def test_request_has_profile_id_system_text_then_image_and_inference_config() -> None:
    the_call = call("What is this?", VISION, system="Be brief", image=PNG, max_tokens=20,
                    temperature=0.3, top_p=0.9, stop=["END"], seed=7)  # fmt: skip
    request = build_converse_request(the_call)
    assert request["modelId"] == "us.meta.llama3-2-90b-instruct-v1:0"
    assert request["system"] == [{"text": "Be brief"}]
    content = request["messages"][0]["content"]
    assert content[0] == {"text": "What is this?"}
    assert content[1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert request["inferenceConfig"] == {
        "maxTokens": 20, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"],
    }  # fmt: skip
    assert "seed" not in str(request)  # Converse has no seed


def test_image_format_is_sniffed_from_the_bytes() -> None:
    jpeg = picture(8, 8, "JPEG")
    request = build_converse_request(call("What?", VISION, image=jpeg))
    assert request["messages"][0]["content"][1]["image"]["format"] == "jpeg"


def test_max_tokens_is_capped_by_the_route() -> None:
    request = build_converse_request(call(max_tokens=100_000))
    assert request["inferenceConfig"]["maxTokens"] == TEXT.max_output_tokens


async def test_signed_request_on_the_wire(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    await provider_chat(provider, sync_or_async, call())
    await provider_stream(provider, sync_or_async, call())
    first, second = fake_bedrock.requests
    assert first.path == "/model/us.meta.llama3-2-3b-instruct-v1%3A0/converse"
    assert second.path == "/model/us.meta.llama3-2-3b-instruct-v1%3A0/converse-stream"
    assert first.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in first.headers["authorization"]
    assert "llamaroute/" in first.headers["user-agent"]
    assert first.json["messages"] == [{"role": "user", "content": [{"text": "Hello"}]}]
    assert fake_bedrock.model_ids == ["us.meta.llama3-2-3b-instruct-v1:0"] * 2


def test_stubber_checks_the_request_shape_against_the_service_model() -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip
    the_call = call("What is this?", VISION, system="Brief", image=PNG, max_tokens=9,
                    temperature=0.5)  # fmt: skip
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "A dot."}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
        "metrics": {"latencyMs": 120},
    }
    with Stubber(client) as stub:
        stub.add_response("converse", answer, build_converse_request(the_call))
        result = BedrockProvider(client=client).chat(the_call)
        stub.assert_no_pending_responses()
    assert (result.text, result.finish_reason) == ("A dot.", "length")
    assert result.details["latency_ms"] == 120


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"temperature": 1.5}, InvalidRequestError),  # Converse: 0-1 (the request allows 2)
        ({"route": TEXT.model_copy(update={"model_id": "meta.llama3-2-3b-instruct-v1:0"})},
         ConfigurationError),
        ({"route": VISION, "image": "https://example.com/chart.png"}, InvalidImageError),
        ({"route": VISION, "image": picture(1200, 10)}, InvalidImageError),
        ({"route": TEXT.model_copy(update={"max_stop_sequences": 1}), "stop": ["a", "b"]},
         InvalidRequestError),
    ],
)  # fmt: skip
async def test_bad_values_fail_before_any_request(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock,
    kwargs: dict[str, Any], error: type[LlamarouteError],
) -> None:  # fmt: skip
    the_call = call(**kwargs)
    with pytest.raises(error):
        await provider_chat(provider, sync_or_async, the_call)
    with pytest.raises(error):
        await provider_stream(provider, sync_or_async, the_call)
    assert fake_bedrock.hits == 0


def test_more_images_than_the_route_takes_and_assistant_first_are_refused() -> None:
    two = ProviderCall(call("x", VISION, image=PNG).request, VISION,
                       images=(load_image(PNG), load_image(PNG)))  # fmt: skip
    with pytest.raises(UnsupportedFeatureError, match="at most 1 image"):
        build_converse_request(two)
    request = ChatRequest.create(
        "llama-3.2-3b", "hi", messages=[{"role": "assistant", "content": "Hello!"}]
    )
    with pytest.raises(InvalidRequestError, match="start with a user message"):
        build_converse_request(ProviderCall(request, TEXT))


# --- answers ----------------------------------------------------------------------------------


async def test_chat_reports_text_usage_stop_reason_and_latency(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.script(Step.reply("Hi there", usage=(12, 3)))
    result = await provider_chat(provider, sync_or_async, call())
    assert result.text == "Hi there"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
    assert result.finish_reason == "stop"
    assert result.details == {"stop_reason": "end_turn", "latency_ms": 42,
                              "request_id": "fake-request-1"}  # fmt: skip
    assert result.cost is None  # Bedrock reports none: the price table's job


async def test_stream_yields_deltas_then_the_result_with_usage(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.script(Step(chunks=("Hel", "lo", "!"), usage=(5, 3), finish_reason="length"))
    items = await provider_stream(provider, sync_or_async, call())
    assert items[:3] == ["Hel", "lo", "!"]
    result = items[-1]
    assert isinstance(result, ProviderResult)
    assert (result.text, result.usage.output_tokens) == ("Hello!", 3)
    assert result.finish_reason == "length"
    assert result.details["latency_ms"] == 42


async def test_vision_chat_and_stream_send_the_us_profile(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    jpeg = picture(40, 30, "JPEG")  # the fake refuses a format that does not match the bytes
    result = await provider_chat(provider, sync_or_async, call("What?", VISION, image=jpeg))
    items = await provider_stream(provider, sync_or_async, call("What?", VISION, image=PNG))
    assert result.usage.output_tokens > 0
    assert items[-1].usage.input_tokens > 0
    assert fake_bedrock.model_ids == ["us.meta.llama3-2-90b-instruct-v1:0"] * 2
    sent = fake_bedrock.requests[0].json["messages"][0]["content"][1]["image"]
    assert sent["format"] == "jpeg"


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
     ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
     ("malformed_model_output", "other")],
)  # fmt: skip
def test_stop_reasons_are_mapped(raw: str, mapped: str) -> None:
    body = {"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": raw}
    assert parse_converse(body, model_id="m").finish_reason == mapped


def test_iter_events_falls_back_to_plain_iteration() -> None:
    from llamaroute.providers.bedrock import iter_events

    # A stream object without botocore's raw-message internals is iterated as it is.
    events = [{"messageStart": {"role": "assistant"}}, {"messageStop": {}}]
    assert list(iter_events(iter(events))) == events


def test_stream_state_without_metadata_is_complete_but_says_usage_is_missing() -> None:
    state = ConverseStreamState("m")
    for event in ({"messageStart": {"role": "assistant"}},
                  {"contentBlockDelta": {"delta": {"text": "ok"}, "contentBlockIndex": 0}},
                  {"messageStop": {"stopReason": "end_turn"}}):  # fmt: skip
        state.feed(event)
    result = state.result()
    assert (result.text, result.details["usage_missing"]) == ("ok", True)
    with pytest.raises(RateLimitError):
        ConverseStreamState("m").feed({"throttlingException": {"message": "slow down"}})


# --- faults -----------------------------------------------------------------------------------

HTTP_FAULTS = [
    (429, "ThrottlingException", RateLimitError, True),
    (400, "ServiceQuotaExceededException", RateLimitError, True),
    (429, "ModelNotReadyException", ServerError, True),
    (503, "ServiceUnavailableException", ServerError, True),
    (500, "InternalServerException", ServerError, True),
    (424, "ModelErrorException", ServerError, True),
    (408, "ModelTimeoutException", ProviderTimeoutError, True),
    (400, "ValidationException", BadRequestError, False),
    (403, "AccessDeniedException", AuthenticationError, False),
    (400, "UnrecognizedClientException", AuthenticationError, False),
    (403, "ExpiredTokenException", AuthenticationError, False),
    (404, "ResourceNotFoundException", ModelNotAvailableError, False),
    (418, "SomethingNewException", BadRequestError, False),
    (502, "SomethingNewException", ServerError, True),
    (504, "SomethingNewException", ProviderTimeoutError, True),  # a timeout on every provider
]


@pytest.mark.parametrize(("status", "code", "error", "retryable"), HTTP_FAULTS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors_are_typed_and_sent_once(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock, streaming: bool,
    status: int, code: str, error: type[ProviderError], retryable: bool,
) -> None:  # fmt: skip
    fake_bedrock.script(Step.error(status, code))
    with pytest.raises(error) as caught:
        await (provider_stream if streaming else provider_chat)(provider, sync_or_async, call())
    assert type(caught.value) is error
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.retryable is retryable
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    assert fake_bedrock.hits == 1  # botocore's own retries are off


async def test_retry_hints(provider: BedrockProvider, fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.script(Step.error(429, retry_after=2),
                        Step.error(429, headers={"x-amz-retry-after": "1500"}))  # fmt: skip
    with pytest.raises(RateLimitError) as first:
        provider.chat(call())
    with pytest.raises(RateLimitError) as second:
        provider.chat(call())
    assert (first.value.retry_after, second.value.retry_after) == (2.0, 1.5)


async def test_messages_say_what_to_fix(
    provider: BedrockProvider, fake_bedrock: FakeBedrock
) -> None:
    on_demand = (
        "Invocation of model ID meta.llama3-2-3b-instruct-v1:0 with on-demand throughput "
        "isn\u2019t supported. Retry your request with the ID or ARN of an inference profile."
    )
    fake_bedrock.script(Step.error(400, "ValidationException", on_demand),
                        Step.error(403, "AccessDeniedException", "not authorized"))  # fmt: skip
    with pytest.raises(BadRequestError, match="catalog"):
        provider.chat(call())
    with pytest.raises(AuthenticationError, match="model access"):
        provider.chat(call())


MID_STREAM = [
    ("ThrottlingException", RateLimitError),
    ("ModelStreamErrorException", ServerError),
    ("InternalServerException", ServerError),
    ("ServiceUnavailableException", ServerError),
    ("ValidationException", BadRequestError),
]


@pytest.mark.parametrize(("code", "error"), MID_STREAM)
@pytest.mark.parametrize("after", [0, 2])
async def test_exception_events_mid_stream_map_like_their_http_twins(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock,
    code: str, error: type[ProviderError], after: int,
) -> None:  # fmt: skip
    fake_bedrock.script(Step.reply("one two three", error_after=after, error_type=code))
    with pytest.raises(error) as caught:
        await provider_stream(provider, sync_or_async, call())
    assert type(caught.value) is error
    assert caught.value.code == code  # lowerCamel on the wire, normalised
    assert isinstance(caught.value.__cause__, botocore.exceptions.EventStreamError)


async def test_corrupt_frame_chains_the_checksum_error(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.script(Step.reply("one two", malformed_after=1))
    with pytest.raises(MalformedResponseError) as caught:
        await provider_stream(provider, sync_or_async, call())
    assert isinstance(caught.value.__cause__, ChecksumMismatch)


@pytest.mark.parametrize("fault", [{"omit_end": True}, {"cut_after": 2}, {"cut_after": 0}])
async def test_stream_without_message_stop_is_never_a_success(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock,
    fault: dict[str, Any],
) -> None:  # fmt: skip
    fake_bedrock.script(Step.reply("one two three", **fault))
    with pytest.raises(MalformedResponseError) as caught:
        await provider_stream(provider, sync_or_async, call())
    assert caught.value.code == "incomplete_stream"


async def test_invalid_json_body(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.script(Step(malformed_after=0))
    with pytest.raises(MalformedResponseError):
        await provider_chat(provider, sync_or_async, call())


@pytest.mark.parametrize("fault", ["drop_after", "reset_after"])
async def test_connection_lost_mid_stream_maps_the_raw_urllib3_error(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock, fault: str
) -> None:
    fake_bedrock.script(Step.reply("one two three four", **{fault: 2}))
    with pytest.raises(ProviderConnectionError) as caught:
        await provider_stream(provider, sync_or_async, call())
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, urllib3.exceptions.HTTPError)


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_reset_before_the_answer(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock, streaming: bool
) -> None:
    fake_bedrock.script(Step(reset_after=0))
    with pytest.raises(ProviderConnectionError) as caught:
        await (provider_stream if streaming else provider_chat)(provider, sync_or_async, call())
    assert caught.value.retryable
    assert fake_bedrock.hits == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_slow_answer_times_out_within_the_call_budget(
    provider: BedrockProvider, sync_or_async: str, fake_bedrock: FakeBedrock, streaming: bool
) -> None:
    fake_bedrock.script(Step(delay=1.5))
    provider.client()  # built beforehand: the request goes out, and then times out
    slow = ProviderCall(call().request, TEXT, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError) as caught:
        await (provider_stream if streaming else provider_chat)(provider, sync_or_async, slow)
    assert time.perf_counter() - started < 1.2
    assert caught.value.code == "ReadTimeoutError"  # sent: likely billed
    assert fake_bedrock.hits == 1


async def test_refused_port_is_fast_and_not_retryable(sync_or_async: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        provider = BedrockProvider(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        )  # fmt: skip
        started = time.perf_counter()
        with pytest.raises(ProviderConnectionError) as caught:
            await provider_chat(provider, sync_or_async, call())
        await provider.aclose()
    # About 0.35 s alone, nearly all of it building the first boto3 client; the bound leaves
    # room for a loaded 2-core machine and is still far below a connect timeout or a retry.
    assert time.perf_counter() - started < 2.0
    assert caught.value.code == "connection_refused"
    assert not caught.value.retryable


def test_map_error_normalises_lower_camel_and_falls_back_to_the_status() -> None:
    assert type(map_error("throttlingException", None, "x", model_id="m")) is RateLimitError
    assert type(map_error("", 503, "x", model_id="m")) is ServerError
    assert type(map_error("429", 429, "x", model_id="m")) is RateLimitError
    assert type(map_error("", None, "x", model_id="m")) is ServerError


async def test_chaos_every_fault_ends_in_one_typed_error_or_success(
    provider: BedrockProvider, fake_bedrock: FakeBedrock
) -> None:
    faults = [Step.error(429), Step.error(500), Step.error(503), Step(reset_after=0),
              Step.reply("a b c", reset_after=1), Step.reply("a b c", error_after=1),
              Step.reply("a b c", malformed_after=1), Step.reply("a b c", omit_end=True),
              Step.reply("a b c", drop_after=2), Step(malformed_after=0)]  # fmt: skip
    fake_bedrock.chaos(0.5, seed=7, faults=faults)
    outcomes: dict[str, int] = {}
    for number in range(80):
        mode, streaming = ("sync", "async")[number % 2], number % 4 >= 2
        try:
            if streaming:
                items = await provider_stream(provider, mode, call())
                assert "".join(i for i in items if isinstance(i, str)) == items[-1].text
            else:
                await provider_chat(provider, mode, call())
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except LlamarouteError as error:  # anything else fails the test
            outcomes[type(error).__name__] = outcomes.get(type(error).__name__, 0) + 1
    print(f"80 calls, {fake_bedrock.faults_injected} faults injected, outcomes {outcomes}")
    assert fake_bedrock.hits == 80  # one request per call, none lost or repeated
    # Every error comes from an injected fault (stream faults on a Converse call do nothing).
    assert 80 - outcomes["ok"] <= fake_bedrock.faults_injected
    assert len(outcomes) >= 4  # several kinds of fault, each typed
