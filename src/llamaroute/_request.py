"""What callers send: the normalised :class:`ChatRequest` (messages and their parts are in
:mod:`._messages` and re-exported here).

Inputs forbid unknown fields, take their types strictly (``True`` is not a number, ``b"hi"`` is
not text) and check ranges, so a typo, a wrong type or an out-of-range value fails here, before
any network call, as an :class:`~llamaroute.InvalidRequestError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Set
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from ._exceptions import InvalidRequestError
from ._extra import ProviderOptions, check_extra
from ._messages import (
    ImagePart,
    Message,
    MessageToolCall,
    Part,
    Role,
    Text,
    TextPart,
    _Input,
    is_text,
)
from ._records import MAX_OUTPUT_TOKENS, validation_message
from ._schema import OutputSchema, output_schema
from ._tools import Tool, check_tool_choice, coerce_tools

__all__ = [
    "MAX_MESSAGES",
    "MAX_OUTPUT_TOKENS",
    "MAX_STOP_LENGTH",
    "SEED_MAX",
    "TOP_K_MAX",
    "ChatRequest",
    "ImagePart",
    "Message",
    "MessageToolCall",
    "Part",
    "Role",
    "TextPart",
]


#: The largest ``seed``: 2**31 - 1, so the seed is in [0, 2**31 - 1]. OpenRouter documents
#: only "integer" (its upstreams, vLLM among them, take a signed 64-bit one); Bedrock's
#: Converse has no seed (it is not sent); Ollama decodes it into a Go int and then truncates
#: it to an unsigned 32-bit seed, where 0xFFFFFFFF means "random". A non-negative signed
#: 32-bit seed is the one range every route keeps exactly and means the same everywhere.
SEED_MAX = 2**31 - 1

#: The largest ``top_k``: Llama 3's vocabulary (128,256 tokens); a larger one keeps every token.
#: OpenRouter takes 0 and up, Ollama any integer; ``top_k`` starts at 1 here (leave it unset
#: for the provider's default), so that it means the same on every route.
TOP_K_MAX = 128_256

#: The most messages a conversation may have: far more than any context window holds (each
#: message costs a few tokens of template); the bound stops an endless iterator.
MAX_MESSAGES = 100_000

#: The longest stop sequence, in characters. No provider documents a limit; stop sequences
#: are short markers, and one this long is a mistake (a prompt passed as ``stop``).
MAX_STOP_LENGTH = 1_000


def _stop_tuple(value: object) -> object:
    # Accept the OpenAI-style single string as well as a list (not a dict or a set).
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Mapping | Set | bytes | bytearray | memoryview):
        raise ValueError(f"stop takes a string or a list of strings, not {type(value).__name__}")
    return value


def _output_schema(value: object) -> OutputSchema | None:
    return None if value is None else output_schema(value)


class ChatRequest(_Input):
    """A normalised chat request: a model name and a conversation, plus sampling parameters.

    Build one with :meth:`create` from the same keyword arguments ``Client.chat`` takes.
    Ranges here are the widest any provider accepts; a route with a narrower range (for
    example a temperature cap of 1.0) is checked again when the route is planned.
    """

    model: Text = Field(min_length=1)
    messages: tuple[Message, ...] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS, strict=True)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, strict=True)
    stop: Annotated[
        tuple[Annotated[Text, Field(max_length=MAX_STOP_LENGTH)], ...],
        BeforeValidator(_stop_tuple),
    ] = Field(default=(), max_length=4)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX, strict=True)
    top_k: int | None = Field(default=None, ge=1, le=TOP_K_MAX, strict=True)
    # OpenAI's range, which OpenRouter documents too; Ollama documents none.
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0, strict=True)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0, strict=True)
    # Structured output: a pydantic model class or an object JSON schema (see _schema.py).
    response_format: Annotated[OutputSchema | None, PlainValidator(_output_schema)] = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    # Per-call provider options by provider name (see _extra.py): each provider reads its own.
    extra: Annotated[ProviderOptions, PlainValidator(check_extra)] = Field(default_factory=dict)

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item for item in value):
            raise ValueError("stop sequences must not be empty strings")
        return value

    @model_validator(mode="after")
    def _conversation_shape(self) -> ChatRequest:
        roles = [message.role for message in self.messages]
        if "system" in roles[1:]:
            raise ValueError("a system message may only come first")
        if roles[-1] not in ("user", "tool"):
            raise ValueError("the conversation must end with a user message (or a tool result)")
        called: dict[str, str] = {}
        for message in self.messages:
            called.update((call.id, call.name) for call in message.tool_calls)
            if message.tool_call_id is not None and message.tool_call_id not in called:
                raise ValueError(
                    f"tool message for {message.tool_call_id!r}: no earlier assistant message "
                    "made a tool call with that id"
                )
        return self

    def tool_name(self, tool_call_id: str) -> str:
        """The name of the tool an earlier assistant turn called as ``tool_call_id``."""
        for message in self.messages:
            for call in message.tool_calls:
                if call.id == tool_call_id:
                    return call.name
        return ""

    @property
    def tool_text(self) -> str:
        """The tools' schemas and the conversation's tool calls as JSON text: what the tools
        add to the prompt, for token estimates."""
        if not self.tools and not any(message.tool_calls for message in self.messages):
            return ""
        calls = [(call.name, call.arguments) for m in self.messages for call in m.tool_calls]
        return json.dumps([[tool.openai() for tool in self.tools], calls], ensure_ascii=False)

    @property
    def images(self) -> tuple[ImagePart, ...]:
        """Every image part in the conversation, in order."""
        for message in self.messages:
            if type(message.content) is not str:
                break
        else:  # all text (nearly every call): no image, and no generator to run
            return ()
        return tuple(image for message in self.messages for image in message.images)

    @classmethod
    def create(
        cls,
        model: str,
        prompt: str | None = None,
        *,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        image: bytes | str | Path | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatRequest:
        """Build a request from ``Client.chat``-style arguments.

        ``prompt`` becomes a final user message (after ``messages``, if both are given);
        ``image`` is attached to that prompt, or to the last user message when there is no
        prompt; ``system`` becomes a leading system message. ``messages`` is a list (or any
        ordered iterable) of :class:`Message` objects and dicts. Raises
        :class:`~llamaroute.InvalidRequestError` with a readable reason on any bad input: a
        wrong type anywhere (``True`` for a number, bytes for text), a value out of range
        (``max_tokens`` above :data:`MAX_OUTPUT_TOKENS`, ``seed`` outside [0, :data:`SEED_MAX`]),
        or input nested too deeply to check; and for ``extra`` (provider options by provider
        name, see ``llamaroute._extra``), an unknown provider name, a value that is not a dict
        or an option llamaroute refuses, with the reason.
        """
        if (
            not params
            and messages is None
            and system is None
            and image is None
            and is_text(prompt)
            and is_text(model)
            and model
        ):
            # A plain prompt (most calls): its one user message and the request pass every
            # check by the look of them, so neither is run through the validators.
            turn = Message._trusted({"role": "user", "content": prompt})
            return cls._trusted({"model": model, "messages": (turn,)})  # type: ignore[no-any-return]
        if "tools" in params or "tool_choice" in params:
            params["tools"] = coerce_tools(params.get("tools"))
            params["tool_choice"] = check_tool_choice(params.get("tool_choice"), params["tools"])
        if params.get("extra") is not None:
            try:
                params["extra"] = check_extra(params["extra"])
            except ValueError as error:
                message = str(error)
                where = "" if message.startswith("extra") else "extra: "
                raise InvalidRequestError(where + message) from None
        try:
            turns = _coerce_messages(messages)
            if system is not None:
                _check_text(system, "system")
                if turns and turns[0].role == "system":
                    raise InvalidRequestError(
                        "pass the system prompt either as system= or as the first message, not both"
                    )
                turns.insert(0, _build(lambda: Message.system(system), "system"))
            if prompt is not None:
                _check_text(prompt, "prompt")
                turns.append(_build(lambda: Message.user(prompt, image=image), "prompt"))
            elif image is not None:
                turns = _attach_image_to_last_user(turns, image)
            if not any(turn.role == "user" for turn in turns):
                raise InvalidRequestError("nothing to send: pass prompt= or messages=")
            return cls._checked({"model": model, "messages": tuple(turns), **params})  # type: ignore[no-any-return]
        except ValidationError as error:
            raise InvalidRequestError(validation_message(error)) from None
        except RecursionError:
            # Input nested (or referring to itself) past Python's recursion limit.
            raise InvalidRequestError("the request is nested too deeply to check") from None


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, not {type(value).__name__}")


def _build(make: Callable[[], Message], where: str) -> Message:
    try:
        return make()
    except InvalidRequestError as error:
        raise InvalidRequestError(f"{where}: {error}") from None


def _coerce_messages(messages: object) -> list[Message]:
    if messages is None:
        return []
    plain = type(messages) is list or type(messages) is tuple  # the usual case, checked cheaply
    if not plain and (
        isinstance(messages, str | bytes | bytearray | memoryview | Mapping | Set | Message)
        or not isinstance(messages, Iterable)
    ):
        raise InvalidRequestError(
            f"messages must be a list of Message objects or dicts, not {type(messages).__name__}"
        )
    turns = []
    for index, item in enumerate(cast("Iterable[object]", messages)):
        if index == MAX_MESSAGES:
            raise InvalidRequestError(f"messages: more than {MAX_MESSAGES:,} messages")
        turns.append(_coerce_message(item, index))
    return turns


def _coerce_message(item: object, index: int) -> Message:
    if isinstance(item, Message):
        return item
    kind = type(item).__name__
    if not isinstance(item, dict) and callable(getattr(item, "model_dump", None)):
        # An openai-python message object (``completion.choices[0].message``), as OpenAI's
        # tool-calling guide appends it to the conversation: read as its dict.
        try:
            item = item.model_dump(exclude_none=True)  # type: ignore[attr-defined]
        except Exception:
            item = None
    if isinstance(item, dict):
        try:
            return Message.model_validate(item)
        except InvalidRequestError as error:
            raise InvalidRequestError(f"messages[{index}]: {error}") from None
    raise InvalidRequestError(
        f"messages must be Message objects or dicts, not {kind} (messages[{index}])"
    )


def _attach_image_to_last_user(turns: list[Message], image: bytes | str | Path) -> list[Message]:
    for index in range(len(turns) - 1, -1, -1):
        turn = turns[index]
        if turn.role == "user":
            parts = (
                (TextPart(text=turn.content),) if isinstance(turn.content, str) else turn.content
            )
            turns[index] = Message(role="user", content=(*parts, ImagePart(image=image)))
            return turns
    raise InvalidRequestError("image= needs a prompt or a user message to go with it")
