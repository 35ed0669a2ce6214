"""Ask Llama 3.2 90B Vision about an image on AWS Bedrock, then stream a 3B answer.

    AWS_PROFILE=my-profile AWS_REGION=us-east-1 python examples/vision_bedrock.py
    python examples/vision_bedrock.py path/to/picture.png

Needs the extra: pip install 'llamaroute[bedrock]'. With AWS credentials in the environment
(AWS_ACCESS_KEY_ID, AWS_PROFILE, ...) it calls Bedrock in AWS_REGION (us-east-1 if unset;
vision models have inference profiles in us-east-1, us-east-2 and us-west-2 only). Without
them it runs against llamaroute's fake Bedrock on 127.0.0.1, through the same boto3 code,
so you can see what comes back without an account (the answers are then canned).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from llamaroute import Client, LlamarouteError
from llamaroute.providers import AWS_CREDENTIAL_ENV
from llamaroute.providers.bedrock import BedrockProvider
from llamaroute.testing import FakeBedrock, Step


def sample_chart() -> bytes:
    """A small bar chart drawn with Pillow, so the example needs no file."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(picture)
    for index, height in enumerate((60, 120, 90, 160)):
        left = 30 + index * 70
        draw.rectangle((left, 190 - height, left + 40, 190), fill=(40, 90, 200))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    image: bytes | str = sys.argv[1] if len(sys.argv) > 1 else sample_chart()
    with contextlib.ExitStack() as stack:
        if any(os.environ.get(name) for name in AWS_CREDENTIAL_ENV):
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            provider = BedrockProvider(region=region or "us-east-1")
        else:
            print("(no AWS credentials: using the fake Bedrock, answers are canned)\n")
            fake = stack.enter_context(
                FakeBedrock(default=Step.reply("Four blue bars; the last one is the tallest."))
            )
            provider = BedrockProvider(
                region="us-east-1", endpoint_url=fake.url,
                aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example",
            )  # fmt: skip
        client = stack.enter_context(Client(providers=[provider]))

        try:
            reply = client.chat(
                "llama-3.2-90b-vision", "Describe this chart in one sentence.",
                image=image, max_tokens=80, temperature=0.2,
            )  # fmt: skip
        except LlamarouteError as error:  # no model access, throttled, ...: the message says
            print(f"the call failed: {error}")
            return
        print(reply.text)
        print(f"-> {reply.provider} {reply.provider_model_id}, {reply.usage.input_tokens} tokens"
              f" in, {reply.usage.output_tokens} out, Bedrock latency"
              f" {reply.details.get('latency_ms')} ms\n")  # fmt: skip

        with client.stream("llama-3.2-3b", "Name three uses of a llama.", max_tokens=60) as stream:
            for chunk in stream:
                print(chunk.text, end="", flush=True)
        print(f"\n-> {stream.response.provider_model_id}: {stream.response.finish_reason}, "
              f"{stream.response.usage.output_tokens} tokens out")  # fmt: skip


if __name__ == "__main__":
    main()
