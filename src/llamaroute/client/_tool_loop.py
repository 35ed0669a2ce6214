"""``client.run``: the tool loop, written once as an I/O-free generator that both clients drive.

The generator yields :class:`Ask` (send this conversation, receive the ``ChatResponse``) and
:class:`Invoke` (run this tool function with these arguments, receive its return value, or
have its exception thrown in). The sync shell calls the function; the async shell awaits it
(or runs a sync one in a thread). Everything else (the conversation, error results, the round
limit, the totals) lives here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from .._exceptions import InvalidRequestError, InvalidToolError, ToolExecutionError, ToolLoopError
from .._records import Attempt
from .._request import Message
from .._response import ChatResponse
from .._tools import Tool, ToolCall, coerce_tools

__all__ = [
    "Ask",
    "Invoke",
    "RunResult",
    "check_rounds",
    "functions",
    "is_async",
    "start",
    "tool_loop",
]

#: The most rounds one ``run`` may take (a runaway loop is a bill).
MAX_ROUNDS = 100


@dataclass(frozen=True, slots=True)
class Ask:
    """Send ``messages`` (with the loop's tools); the shell sends back the ``ChatResponse``.
    ``tool_choice`` is the caller's on the first round and ``None`` ("auto") after it."""

    messages: tuple[Message, ...]
    tool_choice: str | None


@dataclass(frozen=True, slots=True)
class Invoke:
    """Call ``function(**arguments)``; the shell sends back its return value or throws in the
    exception it raised."""

    call: ToolCall
    function: Callable[..., Any]
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What ``client.run`` returns: the final answer and how the loop got there.

    ``response`` is the last round's ``ChatResponse`` (the answer without tool calls) and
    ``text`` its text. ``rounds`` holds every round's ``ChatResponse`` in order, ``attempts``
    every request they sent (each round's attempts, concatenated: retries and fallbacks
    included) and ``messages`` the whole conversation, the final answer last (pass it as
    ``messages=`` to carry on). ``cost`` is the sum of the rounds' ``cost.total`` and
    ``total_cost`` the sum of their ``total_cost`` (failed but billed attempts included);
    either is ``None`` when any round's figure is unknown (never a partial sum).
    ``tool_errors`` counts the tool results that went back to the model as errors.
    """

    response: ChatResponse
    rounds: tuple[ChatResponse, ...]
    messages: tuple[Message, ...]
    tool_errors: int = 0

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.response.text

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every request sent, round after round."""
        return tuple(attempt for response in self.rounds for attempt in response.attempts)

    @property
    def cost(self) -> Decimal | None:
        """The sum of every round's ``cost.total`` (USD); ``None`` if any is unknown."""
        figures = [None if r.cost is None else r.cost.total for r in self.rounds]
        return None if None in figures else sum((f for f in figures if f), Decimal(0))

    @property
    def total_cost(self) -> Decimal | None:
        """The sum of every round's ``total_cost`` (USD); ``None`` if any is unknown."""
        figures = [r.total_cost for r in self.rounds]
        return None if None in figures else sum((f for f in figures if f), Decimal(0))


def check_rounds(max_rounds: object) -> int:
    """``max_rounds`` checked: an int from 1 to :data:`MAX_ROUNDS`."""
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int):
        raise InvalidToolError(f"max_rounds must be an int, not {type(max_rounds).__name__}")
    if not 1 <= max_rounds <= MAX_ROUNDS:
        raise InvalidToolError(f"max_rounds must be from 1 to {MAX_ROUNDS}, not {max_rounds}")
    return max_rounds


def functions(tools: object, *, allow_async: bool) -> tuple[tuple[Tool, ...], dict[str, Any]]:
    """The tools as :class:`Tool` objects, and the function behind each name. Every tool must
    be a Python function (the loop has to run it); on the sync client it must not be async.
    Raises :class:`InvalidToolError` before any request."""
    if not tools:
        raise InvalidToolError("run() needs tools=[...] (Python functions); use chat() without")
    described = coerce_tools(tools)
    runnable: dict[str, Any] = {}
    for tool, given in zip(described, tools, strict=True):  # type: ignore[call-overload]
        if isinstance(given, Tool | Mapping) or (
            isinstance(given, type) and issubclass(given, BaseModel)
        ):
            raise InvalidToolError(
                f"tool {tool.name!r}: run() calls the tools itself, so each must be a Python "
                "function (use chat(tools=...) and your own loop for schema-only tools)"
            )
        if not allow_async and _is_async(given):
            raise InvalidToolError(
                f"tool {tool.name!r} is an async function: use AsyncClient.run() for it"
            )
        runnable[tool.name] = given
    return described, runnable


def _is_async(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 (an object with async __call__)
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def tool_loop(
    conversation: Sequence[Message],
    tools: tuple[Tool, ...],
    runnable: dict[str, Any],
    *,
    tool_choice: str | None,
    max_rounds: int,
    raise_tool_errors: bool,
) -> Generator[Ask | Invoke, Any, RunResult]:
    """The loop: ask; run each tool call the answer makes and append the results; repeat
    until an answer without tool calls (returned as a :class:`RunResult`) or ``max_rounds``
    answers that all asked for tools (:class:`ToolLoopError`)."""
    messages = list(conversation)
    rounds: list[ChatResponse] = []
    errors = 0
    for number in range(max_rounds):
        response: ChatResponse = yield Ask(tuple(messages), tool_choice if number == 0 else None)
        rounds.append(response)
        messages.append(Message.assistant(response.text, tool_calls=response.tool_calls))
        if not response.tool_calls:
            return RunResult(response, tuple(rounds), tuple(messages), errors)
        for call in response.tool_calls:
            if call.error is not None or call.name not in runnable:
                errors += 1
                why = call.error or f"no tool named {call.name!r}"
                content = _error(f"{why}; call the tool again with valid arguments")
            else:
                try:
                    value = yield Invoke(call, runnable[call.name], _arguments(call, tools))
                    content = _result(value)
                except Exception as error:
                    if raise_tool_errors:
                        raise ToolExecutionError(
                            f"tool {call.name!r} (call {call.id}) raised "
                            f"{type(error).__name__}: {error}",
                            tool_name=call.name, tool_call_id=call.id,
                            rounds=rounds, messages=messages,
                        ) from error  # fmt: skip
                    errors += 1
                    content = _error(f"{type(error).__name__}: {error}")
            messages.append(Message.tool(call.id, content, name=call.name))
    raise ToolLoopError(
        f"the model still asked for tools after max_rounds={max_rounds} rounds "
        f"({sum(len(r.tool_calls) for r in rounds)} tool calls)",
        rounds=rounds, messages=messages,
    )  # fmt: skip


def _arguments(call: ToolCall, tools: tuple[Tool, ...]) -> dict[str, Any]:
    """The call's arguments as the function takes them: validated by the tool's pydantic
    model (so ``"3"`` for an ``int`` arrives as ``3``, a nested model as its class)."""
    tool = next(tool for tool in tools if tool.name == call.name)
    if tool.validator is None:
        return dict(call.arguments)
    validated = tool.validator.validate_python(call.arguments)
    if isinstance(validated, BaseModel):
        given = set(call.arguments)
        # Only what the model sent (and what it left to defaults stays the function's own).
        return {name: getattr(validated, name) for name in type(validated).model_fields
                if name in given}  # fmt: skip
    return dict(call.arguments)


def _result(value: object) -> str:
    """A tool's return value as the tool message's text: a string as it is, anything else
    as JSON (pydantic models, dataclasses, dates included)."""
    if isinstance(value, str):
        return value
    try:
        return to_json(value).decode()
    except Exception as error:
        return _error(f"the tool's result is not JSON: {type(error).__name__}: {error}")


def _error(text: str) -> str:
    return json.dumps({"error": text}, ensure_ascii=False)


def start(
    prompt: str | None,
    messages: Sequence[Message | Mapping[str, Any]] | None,
    image: Any,
    tools: object,
    *,
    tool_choice: str | None,
    max_rounds: int,
    raise_tool_errors: bool,
    allow_async: bool,
    options: Mapping[str, Any],
) -> tuple[tuple[Tool, ...], Generator[Ask | Invoke, Any, RunResult]]:
    """Everything ``run`` checks before the first request, and the loop to drive."""
    for name in ("response_format", "repair_attempts", "tools", "tool_choice"):
        if name in options:
            raise InvalidRequestError(f"run() does not take {name}=")
    rounds = check_rounds(max_rounds)
    described, runnable = functions(tools, allow_async=allow_async)
    conversation = [
        m if isinstance(m, Message) else Message.model_validate(m) for m in messages or ()
    ]
    if prompt is not None:
        conversation.append(Message.user(prompt, image=image))
    elif image is not None:
        raise InvalidRequestError("image= goes with prompt=; put it in a message instead")
    steps = tool_loop(conversation, described, runnable, tool_choice=tool_choice,
                      max_rounds=rounds, raise_tool_errors=raise_tool_errors)  # fmt: skip
    return described, steps


def is_async(function: object) -> bool:
    """Whether calling ``function`` gives a coroutine (an ``async def``, or an object whose
    ``__call__`` is one)."""
    return _is_async(function)
