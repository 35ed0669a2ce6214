"""How late a Bedrock call with ``timeout=T`` ends against servers that keep sending, and how
much memory an answer over the size cap takes (FakeBedrock on 127.0.0.1, real boto3).

    PYTHONPATH=src python bench/bedrock_hostile.py [--tries 20] [--timeout 0.5]

Each line: one server behaviour, sync or async, chat or stream, through ``Client`` /
``AsyncClient`` (retries off); the overshoot is the call's wall time minus T (negative: it ended
early, as an over-cap answer does). A first good call per client is not measured (it builds
the boto3 client and imports what a first call imports).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
import warnings

from llamaroute import AsyncClient, Client, LlamarouteError
from llamaroute.providers import BedrockProvider
from llamaroute.testing import FakeBedrock, RawReply, Step

KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
START = FakeBedrock.event("messageStart", {"role": "assistant"})
DELTA = FakeBedrock.event("contentBlockDelta", {"delta": {"text": "hi "}, "contentBlockIndex": 0})
OPEN = b'{"output": {"message": {"content": [{"text": "'
SERVERS = {
    "headers never come": (Step(delay=30), Step(delay=30)),
    "head trickled, 1 B / 0.3 s": (RawReply(slow_head=True, trickle=0.3, body=b"{}"),
                                   RawReply(slow_head=True, trickle=0.3, body=START)),
    "body trickled, 1 B / 0.3 s": (RawReply(drip=OPEN + b"a" * 200, trickle=0.3),
                                   RawReply(body=START, drip=DELTA * 20, trickle=0.3)),
    "endless body / frames": (RawReply(body=OPEN, endless=b"a" * 65536),
                              RawReply(body=START, endless=START * 50)),
}  # fmt: skip


def sync_tries(url: str, step: Step, streaming: bool, tries: int, t: float) -> list[float]:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url, **KEYS)
    out = []
    with Client(providers=[provider], retries=0) as client:
        client.chat("llama-3.2-3b", "hi")
        for _ in range(tries):
            started = time.perf_counter()
            try:
                if streaming:
                    with client.stream("llama-3.2-3b", "hi", timeout=t) as stream:
                        for _ in stream:
                            pass
                else:
                    client.chat("llama-3.2-3b", "hi", timeout=t)
            except LlamarouteError:
                pass
            out.append(time.perf_counter() - started - t)
    return out


async def async_tries(url: str, step: Step, streaming: bool, tries: int, t: float) -> list[float]:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url, **KEYS)
    out = []
    async with AsyncClient(providers=[provider], retries=0) as client:
        await client.chat("llama-3.2-3b", "hi")
        for _ in range(tries):
            started = time.perf_counter()
            try:
                if streaming:
                    async with client.stream("llama-3.2-3b", "hi", timeout=t) as stream:
                        async for _ in stream:
                            pass
                else:
                    await client.chat("llama-3.2-3b", "hi", timeout=t)
            except LlamarouteError:
                pass
            out.append(time.perf_counter() - started - t)
    return out


def memory(cap_mib: int) -> None:
    with FakeBedrock(default=RawReply(body=OPEN, endless=b"a" * 65536)) as fake:
        provider = BedrockProvider(
            region="us-east-1", endpoint_url=fake.url, max_response_bytes=cap_mib * 2**20,
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        )  # fmt: skip
        provider.client()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with Client(providers=[provider], retries=0) as client:
            try:
                client.chat("llama-3.2-3b", "hi", timeout=30)
            except LlamarouteError as error:
                kind = type(error).__name__
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"endless body, {cap_mib} MiB cap: {kind}; peak RSS +{after - before:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"overshoot past timeout={args.timeout} s over {args.tries} tries (ms)")
    for name, steps in SERVERS.items():
        for streaming in (False, True):
            with FakeBedrock(default=steps[streaming]) as fake:
                for mode in ("sync", "async"):
                    fake.script(Step.reply("warm"))
                    if mode == "sync":
                        over = sync_tries(fake.url, steps[streaming], streaming, args.tries,
                                          args.timeout)  # fmt: skip
                    else:
                        over = asyncio.run(async_tries(fake.url, steps[streaming], streaming,
                                                       args.tries, args.timeout))  # fmt: skip
                    ms = [o * 1000 for o in over]
                    print(f"  {name:28} {mode:5} {'stream' if streaming else 'chat':6} "
                          f"median {statistics.median(ms):7.1f}  max {max(ms):7.1f}")  # fmt: skip
    memory(16)


if __name__ == "__main__":
    main()
