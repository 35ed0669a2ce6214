"""The Bedrock provider against a Bedrock endpoint nobody on this project wrote.

aimock (CopilotKit's ``@copilotkit/aimock`` on npm, driven from Python by ``aimock-pytest``)
serves Converse (JSON) and ConverseStream (AWS binary event stream) on 127.0.0.1; boto3
reaches it through ``endpoint_url`` with dummy credentials, so its real signing, parsing and
event-stream decoding run against a server written from AWS's documentation by someone else.

Setup: aimock-pytest's own downloader fetches an npm release (1.45.0 in aimock-pytest 0.7.0)
that the npm registry does not have, so the module fixture installs the latest published one
with npm itself, once, into a cache directory (``$LLAMAROUTE_AIMOCK_DIR``, default
``~/.cache/llamaroute-aimock``), and hands its ``cli.js`` to aimock-pytest through
``AIMOCK_CLI_PATH``. npm runs as a child process, outside pytest-socket's 127.0.0.1-only guard
(which covers this process only); the tests themselves talk to 127.0.0.1 only. Without node or
npm, or offline with an empty cache, the module is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.parsers import ResponseParserError

from llamaroute import AllProvidersFailedError, AsyncClient, Client, RateLimitError
from llamaroute.providers.bedrock import BedrockProvider

from ._thirdparty import running_aimock
from .conftest import PNG

aimock_pytest = pytest.importorskip("aimock_pytest", reason="pip install -e '.[dev]'")

TEXT_ID, VISION_ID = "us.meta.llama3-2-3b-instruct-v1:0", "us.meta.llama3-2-90b-instruct-v1:0"

FIXTURES = {
    "fixtures": [
        {"match": {"userMessage": "Say hello"},
         "response": {"content": "Hello from a server we did not write.",
                      "usage": {"input_tokens": 11, "output_tokens": 8}}},
        {"match": {"userMessage": "What is in this image?"},
         "response": {"content": "A single red pixel.",
                      "usage": {"input_tokens": 1612, "output_tokens": 5}}},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_aimock(tmp_path_factory.mktemp("aimock") / "llama.json", FIXTURES) as server:
        yield server


@pytest.fixture
def provider(aimock: Any) -> Iterator[BedrockProvider]:
    aimock.reset_journal()
    provider = BedrockProvider(
        region="us-east-1", endpoint_url=aimock.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip
    yield provider
    provider.close()


def sent_model_ids(aimock: Any) -> list[str]:
    return [entry["path"].split("/")[2].replace("%3A", ":") for entry in aimock.get_journal()]


def test_chat_and_stream_3b_text_with_usage(provider: BedrockProvider, aimock: Any) -> None:
    with Client(providers=[provider]) as client:
        reply = client.chat("llama-3.2-3b", "Say hello", max_tokens=50)
        with client.stream("llama-3.2-3b", "Say hello") as stream:
            chunks = [chunk.text for chunk in stream]
    assert reply.text == "Hello from a server we did not write."
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 8)
    assert reply.finish_reason == "stop"
    assert len(chunks) > 1
    assert "".join(chunks) == stream.response.text == reply.text
    assert (stream.response.usage.input_tokens, stream.response.usage.output_tokens) == (11, 8)
    assert stream.response.finish_reason == "stop"
    assert sent_model_ids(aimock) == [TEXT_ID, TEXT_ID]


async def test_chat_and_stream_90b_vision_with_usage_async(
    provider: BedrockProvider, aimock: Any
) -> None:
    async with AsyncClient(providers=[provider]) as client:
        reply = await client.chat("llama-3.2-90b-vision", "What is in this image?", image=PNG)
        async with client.stream("llama-3.2-90b-vision", "What is in this image?",
                                 image=PNG) as stream:  # fmt: skip
            text = "".join([chunk.text async for chunk in stream])
    assert reply.text == text == "A single red pixel."
    assert reply.provider_model_id == VISION_ID
    assert (reply.usage.input_tokens, stream.response.usage.output_tokens) == (1612, 5)
    assert sent_model_ids(aimock) == [VISION_ID, VISION_ID]
    assert not [entry for entry in aimock.get_journal() if "/model/meta." in entry["path"]]


def test_a_rate_limit_from_aimock_is_typed_with_its_retry_hint(
    provider: BedrockProvider, aimock: Any
) -> None:
    aimock.next_error(429, {"error": {"message": "slow down", "type": "rate_limit_error"}})
    # retries=0: this test looks at how the single fault is reported, not at the retry.
    with (
        Client(providers=[provider], retries=0) as client,
        pytest.raises(AllProvidersFailedError) as caught,
    ):
        client.chat("llama-3.2-3b", "Say hello")
    (error,) = caught.value.exceptions
    assert isinstance(error, RateLimitError)
    # aimock sends no x-amzn-ErrorType, so botocore's code is the status: mapped by status.
    assert (error.status_code, error.retry_after) == (429, 1.0)


def test_why_the_provider_skips_content_block_start(aimock: Any) -> None:
    # aimock opens each text block with contentBlockStart {"start": {}}; botocore's parser
    # refuses an empty union, so iterating boto3's stream as it is fails on a whole answer.
    # The provider skips that event (it only ever opens tool-use blocks) unparsed.
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=aimock.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )  # fmt: skip
    response = client.converse_stream(
        modelId=TEXT_ID, messages=[{"role": "user", "content": [{"text": "Say hello"}]}]
    )
    with pytest.raises(ResponseParserError, match="ContentBlockStart"):
        list(response["stream"])
    response["stream"].close()
    client.close()
