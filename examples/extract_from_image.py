"""Extract structured data from an image: Llama 3.2 90B Vision plus a pydantic model.

    OPENROUTER_API_KEY=sk-or-... python examples/extract_from_image.py [receipt.png]
    AWS_PROFILE=my-profile python examples/extract_from_image.py [receipt.png]

``response_format=Receipt`` makes llamaroute ask each route in its own way (OpenRouter:
``response_format: json_schema`` with ``provider.require_parameters``; Ollama: ``format``;
Bedrock 90B: tool use, one tool whose input schema is the schema and whose input is the
answer), validate the answer and put a ``Receipt`` on
``reply.parsed``. A schema-invalid answer is sent back once to be fixed (a billed attempt).

With OPENROUTER_API_KEY or AWS credentials in the environment it calls those providers. Without
them it runs offline against llamaroute's fake OpenRouter, Bedrock and Ollama on 127.0.0.1,
through the same client libraries (httpx, boto3, ollama), with canned answers: the same model
class works unchanged on all three, and the last run shows a repair.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from pydantic import BaseModel

from llamaroute import Client, LlamarouteError
from llamaroute.providers import (
    AWS_CREDENTIAL_ENV,
    BedrockProvider,
    OllamaProvider,
    OpenRouterProvider,
    Provider,
)
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step


class Item(BaseModel):
    name: str
    price: float


class Receipt(BaseModel):
    shop: str
    items: list[Item]
    total: float


PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fake servers accept any key
CANNED = Receipt(
    shop="Llama Cafe", items=[Item(name="Tea", price=3.5), Item(name="Scone", price=4.0)], total=7.5
)


def sample_receipt() -> bytes:
    """A small receipt drawn with Pillow, so the example needs no file."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(picture)
    lines = ["LLAMA CAFE", "Tea      3.50", "Scone    4.00", "TOTAL    7.50"]
    for index, line in enumerate(lines):
        draw.text((30, 30 + index * 35), line, fill="black")
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def real_providers() -> list[Provider]:
    found: list[Provider] = []
    if os.environ.get("OPENROUTER_API_KEY"):
        found.append(OpenRouterProvider())
    if any(os.environ.get(name) for name in AWS_CREDENTIAL_ENV):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        found.append(BedrockProvider(region=region or "us-east-1"))
    return found


def extract(client: Client, image: bytes | str, provider: str | None = None) -> None:
    try:
        reply = client.chat(
            "llama-3.2-90b-vision", "Read this receipt: the shop, each item and the total.",
            image=image, response_format=Receipt, max_tokens=400, temperature=0,
            providers=None if provider is None else [provider],
        )  # fmt: skip
    except LlamarouteError as error:  # StructuredOutputError carries .raw_text too
        print(f"the call failed: {type(error).__name__}: {error}")
        return
    receipt: Receipt = reply.parsed
    print(f"{reply.provider}: {receipt.shop}, {len(receipt.items)} items, total {receipt.total}")
    print(f"   {len(reply.attempts)} attempt(s), cost {reply.cost.total if reply.cost else '?'}")


def main() -> None:
    image: bytes | str = sys.argv[1] if len(sys.argv) > 1 else sample_receipt()
    if providers := real_providers():
        with Client(providers=providers) as client:
            extract(client, image)
        return
    print("(no OPENROUTER_API_KEY or AWS credentials: using the fake providers, canned answers)")
    with contextlib.ExitStack() as stack:
        good = Step.structured(CANNED.model_dump())
        openrouter = stack.enter_context(FakeOpenRouter(default=good))
        # Bedrock answers by calling the "Receipt" tool llamaroute offers it (Converse toolUse).
        bedrock = stack.enter_context(
            FakeBedrock(default=Step.tool_call("Receipt", CANNED.model_dump()))
        )
        # Ollama's fake first answers with a wrong type: llamaroute asks once more, and wins.
        ollama = stack.enter_context(
            FakeOllama(Step.structured({"shop": "Llama Cafe", "total": "7.50"}), default=good)
        )
        client = stack.enter_context(Client(providers=[
            OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=openrouter.base_url),
            BedrockProvider(region="us-east-1", endpoint_url=bedrock.url,
                            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example"),
            OllamaProvider(host=ollama.url),
        ]))  # fmt: skip
        for name in ("openrouter", "bedrock", "ollama"):
            extract(client, image, name)


if __name__ == "__main__":
    main()
