"""Call a running llamaroute gateway with the official openai SDK (``pip install openai``).

LLAMAROUTE_KEY=lr-... python examples/gateway/openai_sdk.py [http://127.0.0.1:4000/v1]
"""

import os
import sys

from openai import OpenAI

client = OpenAI(
    base_url=sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4000/v1",
    api_key=os.environ["LLAMAROUTE_KEY"],  # a key from `llamaroute keys create`
)

answer = client.chat.completions.with_raw_response.create(
    model="llama-3.2-3b",
    messages=[{"role": "user", "content": "Name three llamas."}],
    max_tokens=100,
    user="alice",
    extra_headers={"x-llamaroute-tags": "demo"},
)
print(answer.parse().choices[0].message.content)
print("cost", answer.headers["x-llamaroute-cost"], "via", answer.headers["x-llamaroute-route"])

for chunk in client.chat.completions.create(
    model="llama-3.2-3b",
    messages=[{"role": "user", "content": "Count to five."}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print(f"\n{chunk.usage.total_tokens} tokens")
