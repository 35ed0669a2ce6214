"""The newer surfaces for ``bench/run.py``: tool calls, structured output and the tool loop
(against raw httpx and the openai SDK on the same mock), and the Redis state backend's cost
per call (against the in-memory default).

Each ``*_subjects`` function returns ``run.Subject``s for ``run.measure_sync``, so that they
are measured in the same interleaved rounds as everything else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from pydantic import BaseModel

REDIS_URL = "redis://127.0.0.1:6379/0"


class Herd(BaseModel):
    """The structured answer asked for (the mock answers ``{"city": ..., "llamas": ...}``)."""

    city: str
    llamas: int


def count_llamas(city: str, llamas: int) -> dict[str, object]:
    """Count the llamas in a city."""
    return {"city": city, "llamas": llamas, "counted": True}


TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "count_llamas",
        "description": "Count the llamas in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "llamas": {"type": "integer"}},
            "required": ["city", "llamas"],
        },
    },
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "Herd", "schema": Herd.model_json_schema(), "strict": True},
}


def tool_subjects(run: Any, url: str, peers: bool, kind: str) -> list[Any]:
    """``kind``: ``"tool call"`` (one call with ``tools=``, its call's arguments parsed),
    ``"structured"`` (``response_format=`` a pydantic model, the answer validated) or
    ``"tool loop"`` (the model calls the tool, it runs, the result goes back: two requests)."""
    import httpx

    import llamaroute
    from llamaroute.providers import OpenRouterProvider

    base = f"{url}/api/v1"
    endpoint = f"{base}/chat/completions"
    headers = {"Authorization": f"Bearer {run.KEY}"}
    messages = run.MESSAGES
    raw = httpx.Client()

    def post(body: dict[str, Any]) -> dict[str, Any]:
        response = raw.post(endpoint, json={"model": run.OPENROUTER_ID, **body}, headers=headers)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]  # type: ignore[no-any-return]

    def raw_tool_call() -> object:
        message = post({"messages": messages, "tools": [TOOL_SCHEMA]})
        call = message["tool_calls"][0]
        return json.loads(call["function"]["arguments"])

    def raw_structured() -> object:
        message = post({"messages": messages, "response_format": RESPONSE_FORMAT})
        return Herd.model_validate_json(message["content"])

    def raw_tool_loop() -> object:
        message = post({"messages": messages, "tools": [TOOL_SCHEMA]})
        call = message["tool_calls"][0]
        result = count_llamas(**json.loads(call["function"]["arguments"]))
        turn = [*messages, message, {"role": "tool", "tool_call_id": call["id"],
                                     "content": json.dumps(result)}]  # fmt: skip
        return post({"messages": turn, "tools": [TOOL_SCHEMA]})["content"]

    client = llamaroute.Client([OpenRouterProvider(api_key=run.KEY, base_url=base)])

    def ours_tool_call() -> object:
        reply = client.chat(run.MODEL, run.PROMPT, tools=[count_llamas])
        assert reply.tool_calls, reply
        return reply.tool_calls[0].arguments

    def ours_structured() -> object:
        reply = client.chat(run.MODEL, run.PROMPT, response_format=Herd)
        assert isinstance(reply.parsed, Herd), reply
        return reply.parsed

    def ours_tool_loop() -> object:
        result = client.run(run.MODEL, run.PROMPT, tools=[count_llamas])
        assert len(result.rounds) == 2, result.rounds
        return result.text

    raw_fn, ours = {
        "tool call": (raw_tool_call, ours_tool_call),
        "structured": (raw_structured, ours_structured),
        "tool loop": (raw_tool_loop, ours_tool_loop),
    }[kind]
    subjects = [
        run.Subject("raw httpx", raw_fn, close=[raw.close]),
        run.Subject("llamaroute", ours, close=[client.close]),
    ]
    if peers and run._installed("openai"):
        subjects.append(_openai_subject(run, base, kind))
    return subjects


def _openai_subject(run: Any, base: str, kind: str) -> Any:
    import openai

    sdk = openai.OpenAI(api_key=run.KEY, base_url=base, max_retries=0)
    create = partial(sdk.chat.completions.create, model=run.OPENROUTER_ID)

    def tool_call() -> object:
        call = create(messages=run.MESSAGES, tools=[TOOL_SCHEMA]).choices[0].message.tool_calls
        assert call
        return json.loads(call[0].function.arguments)  # type: ignore[union-attr]

    def structured() -> object:
        done = sdk.chat.completions.parse(
            model=run.OPENROUTER_ID, messages=run.MESSAGES, response_format=Herd
        )
        assert isinstance(done.choices[0].message.parsed, Herd)
        return done.choices[0].message.parsed

    def tool_loop() -> object:
        message = create(messages=run.MESSAGES, tools=[TOOL_SCHEMA]).choices[0].message
        assert message.tool_calls
        call = message.tool_calls[0]
        result = count_llamas(**json.loads(call.function.arguments))  # type: ignore[union-attr]
        turn = [
            *run.MESSAGES,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
        ]
        return create(messages=turn, tools=[TOOL_SCHEMA]).choices[0].message.content

    chosen = {"tool call": tool_call, "structured": structured, "tool loop": tool_loop}[kind]
    return run.Subject("openai SDK", chosen, close=[sdk.close])


# --- Redis state ----------------------------------------------------------------------------


def redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except Exception:  # no package, no server: the figure is left out
        return False


@contextmanager
def counted_round_trips() -> Iterator[list[int]]:
    """Counts what redis-py sends (one ``send_packed_command`` is one round trip: a pipeline
    is sent in one) while the block runs: ``[count]``."""
    from redis.connection import Connection

    count = [0]
    original = Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        original(self, command, check_health)

    Connection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield count
    finally:
        Connection.send_packed_command = original  # type: ignore[method-assign]


def redis_subjects(run: Any, url: str) -> tuple[list[Any], Callable[[], None]]:
    """A sync chat on OpenRouter with the default in-memory state and with
    ``state="redis://..."`` (its own key prefix, deleted afterwards)."""
    import redis

    import llamaroute
    from llamaroute.providers import OpenRouterProvider

    base = f"{url}/api/v1"
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    memory = llamaroute.Client([OpenRouterProvider(api_key=run.KEY, base_url=base)])
    shared = llamaroute.Client(
        [OpenRouterProvider(api_key=run.KEY, base_url=base)],
        state=f"{REDIS_URL}?prefix={prefix}",
    )

    def cleanup() -> None:
        connection = redis.Redis.from_url(REDIS_URL)
        for key in connection.scan_iter(f"llamaroute:{prefix}:*"):
            connection.delete(key)
        connection.close()

    subjects = [
        run.Subject("in-memory state", partial(memory.chat, run.MODEL, run.PROMPT),
                    close=[memory.close]),
        run.Subject("llamaroute", partial(shared.chat, run.MODEL, run.PROMPT),
                    close=[shared.close]),
    ]  # fmt: skip
    return subjects, cleanup


def redis_round_trips(subject: Any, calls: int = 20) -> float:
    """Redis round trips per call of ``subject`` (after its warm-up)."""
    subject.chat()
    with counted_round_trips() as count:
        for _ in range(calls):
            subject.chat()
    return count[0] / calls
