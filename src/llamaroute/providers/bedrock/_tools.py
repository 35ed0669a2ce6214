"""Tools on the Converse wire, with no I/O: ``toolConfig``, ``toolUse`` blocks in assistant
turns, ``toolResult`` blocks in user turns, and structured output by tool use.

Facts relied on (botocore's ``bedrock-runtime`` service model, 2023-09-30, and reports cited
where they are used):

* ``toolConfig = {tools: [{toolSpec: {name, description?, inputSchema: {json}}}], toolChoice?}``;
  a tool-use id is 1-64 of ``[a-zA-Z0-9_.:-]`` (``ToolUseId``), a tool name 1-64 of
  ``[a-zA-Z0-9_-]`` (``ToolName``, the same rule as llamaroute's tool names).
* ``toolChoice`` ``tool`` is "only supported by Anthropic Claude 3 and Amazon Nova models"
  (``SpecificToolChoice``), and Llama takes ``auto`` only (langchain-ai/langchain-aws#620, #627;
  aws-samples/bedrock-access-gateway#92 leaves toolChoice out for Llama). So ``required`` and a
  named choice are sent as ``auto`` with an instruction to call the tool(s), and structured
  output is one tool named after the schema, ``auto``, and an instruction to call it.
* ``toolResult.status`` is "only supported by Amazon Nova and Anthropic Claude 3 and 4" and is
  not sent.
* A request whose messages hold ``toolUse``/``toolResult`` blocks needs a ``toolConfig``
  (run-llama/llama_index#19841); for Llama a user turn may not mix tool results with other
  blocks ("Conversation blocks and tool result blocks cannot be provided in the same turn",
  browser-use/browser-use#710): a user's text after tool results goes inside the last result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ..._request import Message, MessageToolCall
from ..._tools import MAX_ARGUMENTS_CHARS, MAX_TOOLS, ToolCall, make_tool_call
from .._base import ProviderCall

__all__ = [
    "add_message",
    "answer_tool",
    "read_tool_uses",
    "tool_config",
    "tool_instruction",
    "wire_id",
]

_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")


def wire_id(call_id: str) -> str:
    """A tool-call id as Converse takes it: as given when it fits (Bedrock's own ``tooluse_``
    ids, OpenRouter's ``call_`` ids, the ``call_<n>`` ids llamaroute gives Ollama's calls), else
    a digest of it, so the ``toolUse`` and the ``toolResult`` answering it still match."""
    if _ID.fullmatch(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def _spec(name: str, description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": dict(schema)}}
    if description:
        spec["description"] = description  # NonEmptyString: left out when empty
    return {"toolSpec": spec}


def answer_tool(call: ProviderCall, *, stream: bool = False) -> str | None:
    """The tool the answer comes through, for a ``response_format`` on a route whose mechanism
    is ``tool``: its name (the schema's), or ``None``. Not with tools of the caller's own (the
    schema goes as instructions then), nor in a stream (Llama 3.2 streams no tool use)."""
    schema = call.request.response_format
    if schema is None or call.route.structured_output_mechanism != "tool":
        return None
    return None if stream or call.request.tools else schema.name


def tool_config(call: ProviderCall, *, stream: bool = False) -> dict[str, Any] | None:
    """The request's ``toolConfig``, or ``None`` when it needs none."""
    request = call.request
    if (name := answer_tool(call, stream=stream)) is not None:
        schema = request.response_format
        assert schema is not None
        about = "Give the answer: call this with the answer as its arguments."
        return {"tools": [_spec(name, about, schema.schema)], "toolChoice": {"auto": {}}}
    tools: list[dict[str, Any]] = []
    if request.tools and request.tool_choice != "none":
        tools = [_spec(tool.name, tool.description, tool.parameters) for tool in request.tools]
    offered = {tool.name for tool in request.tools} if tools else set()
    # Converse refuses toolUse/toolResult blocks without a toolConfig: the tools the
    # conversation called and that are not offered now are declared with an open schema.
    for message in request.messages:
        for made in message.tool_calls:
            if made.name not in offered and len(tools) < MAX_TOOLS:
                offered.add(made.name)
                tools.append(_spec(made.name, "", {"type": "object"}))
    if not tools:
        return None
    return {"tools": tools, "toolChoice": {"auto": {}}}


def tool_instruction(call: ProviderCall, *, stream: bool = False) -> str | None:
    """The system text that stands in for a forced tool choice Llama does not take."""
    request = call.request
    if (name := answer_tool(call, stream=stream)) is not None:
        schema = request.response_format
        assert schema is not None
        return (f"Answer by calling the tool {name} exactly once, with the answer as its "
                f"arguments. {schema.instruction()}")  # fmt: skip
    if not request.tools or request.tool_choice in (None, "auto", "none"):
        return None
    if request.tool_choice == "required":
        return "Answer by calling one (or more) of the tools."
    return f"Answer by calling the tool {request.tool_choice}."


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return {}  # arguments the model wrote badly, sent back as none
    return value if isinstance(value, dict) else {}


def _tool_use(made: MessageToolCall) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": wire_id(made.id), "name": made.name,
                        "input": _arguments(made.arguments)}}  # fmt: skip


def _tool_result(message: Message) -> dict[str, Any]:
    text = message.text
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        value = None
    content = [{"json": value}] if isinstance(value, dict) else [{"text": text}]
    return {"toolResult": {"toolUseId": wire_id(message.tool_call_id or ""), "content": content}}


def add_message(
    messages: list[dict[str, Any]], message: Message, blocks: list[dict[str, Any]]
) -> None:
    """Append one message (``blocks``: its text and image blocks) to the Converse messages.

    An assistant's tool calls become ``toolUse`` blocks after its text; a tool result becomes a
    ``toolResult`` block in a user turn, with the results before it merged into that turn
    (Converse alternates roles); a user's text after tool results goes into the last result."""
    last = messages[-1] if messages else None
    results = last is not None and last["role"] == "user" and "toolResult" in last["content"][-1]
    if message.role == "tool":
        block = _tool_result(message)
        if results:
            assert last is not None
            last["content"].append(block)
        else:
            messages.append({"role": "user", "content": [block]})
        return
    if message.role == "user" and results and all("text" in block for block in blocks):
        assert last is not None
        last["content"][-1]["toolResult"]["content"].extend(blocks)
        return
    if message.tool_calls:
        blocks = [block for block in blocks if block.get("text") != ""]
        blocks += [_tool_use(made) for made in message.tool_calls]
    messages.append({"role": message.role, "content": blocks})


def read_tool_uses(
    blocks: list[Mapping[str, Any]], call: ProviderCall | None
) -> tuple[ToolCall, ...]:
    """The ``toolUse`` blocks of an answer as :class:`ToolCall` objects, checked against the
    call's tools. ``input`` is JSON (an object as a rule; a string Llama wrote is read as JSON
    text): whatever is wrong with it, or too large, is the call's error, with the text as
    written; never an exception. A block without a usable ``toolUseId`` gets ``call_<n>``, n
    counting on from the conversation's calls (as for Ollama), so ids never repeat."""
    tools = call.request.tools if call is not None else ()
    first = sum(len(m.tool_calls) for m in call.request.messages) if call is not None else 0
    calls = []
    for index, block in enumerate(blocks[:MAX_TOOLS]):
        value = block.get("input")
        if not isinstance(value, str) and value is not None:
            try:
                value = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                value = repr(value)[:MAX_ARGUMENTS_CHARS]
        calls.append(make_tool_call(block.get("toolUseId"), block.get("name"), value, tools,
                                    first + index))  # fmt: skip
    return tuple(calls)
