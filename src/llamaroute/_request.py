"""What callers send: messages, their parts and the normalised :class:`ChatRequest`.

Inputs forbid unknown fields, take their types strictly (``True`` is not a number, ``b"hi"`` is
not text) and check ranges, so a typo, a wrong type or an out-of-range value fails here, before
any network call, as an :class:`~llamaroute.InvalidRequestError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Set
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ._exceptions import InvalidRequestError
from ._extra import ProviderOptions, check_extra
from ._records import validation_message
from ._schema import OutputSchema, output_schema
from ._tools import Tool, ToolCall, check_tool_choice, coerce_tools
from .images._source import is_image_source

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

if TYPE_CHECKING:
    from .images._source import ImageSource


Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a message (``tool``: a tool's result, answering an assistant's tool call)."""

#: The most output tokens a request may ask for: the largest context window of any route in
#: the catalog (131,072). A route with a smaller ``max_output_tokens`` is capped to it when the
#: call is made; this bound only stops absurd values (``10**9``) from being sent anywhere.
MAX_OUTPUT_TOKENS = 131_072

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


def _unicode(value: str) -> str:
    # A lone surrogate ("\ud800") is a str but not text: it cannot be encoded to UTF-8, so
    # it would fail later, in the token counter or the HTTP body, as a UnicodeEncodeError.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"text must be valid Unicode: a lone surrogate {value[error.start]!r} at "
                f"position {error.start}"
            ) from None
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_unicode)]
"""A string, strictly (bytes are refused), that can be encoded as UTF-8."""


class _Input(BaseModel):
    """Strict: what callers send. Unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Input):
    """A piece of text inside a message."""

    type: Literal["text"] = "text"
    text: Text


class ImagePart(_Input):
    """An image inside a user message.

    ``image`` is what the caller has: a file path (``str`` or ``Path``), raw bytes, a
    ``data:`` or ``http(s)://`` URL, a PIL image, or a :class:`~llamaroute.Image`. Only its
    type is checked here; it is read, sniffed and fitted to the route's limits when the request
    is planned, before any call.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    type: Literal["image"] = "image"
    image: Any

    @field_validator("image", mode="before")
    @classmethod
    def _image_source(cls, value: object) -> object:
        if not is_image_source(value):
            raise ValueError(
                "image takes a file path, bytes, a data: or http(s):// URL, a PIL image or a "
                f"llamaroute.Image, not {type(value).__name__}"
            )
        if isinstance(value, str):
            _unicode(value)
        # Mutable buffers are copied, so the frozen request cannot change under the caller.
        return bytes(value) if isinstance(value, bytearray | memoryview) else value


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class MessageToolCall(_Input):
    """A tool call in an assistant message of the conversation: ``id``, ``name`` and the
    ``arguments`` as JSON text. Takes a :class:`~llamaroute.ToolCall` (from a response), an
    OpenAI-format dict (``{"id", "type": "function", "function": {"name", "arguments"}}``) or
    ``{"id", "name", "arguments"}`` (arguments as text or an object)."""

    id: Text = Field(min_length=1, max_length=256)
    name: Text = Field(min_length=1, max_length=64)
    arguments: Text = "{}"

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, value: object) -> object:
        if isinstance(value, ToolCall):
            return {"id": value.id, "name": value.name, "arguments": value.raw_arguments or "{}"}
        if isinstance(value, Mapping) and isinstance(value.get("function"), Mapping):
            if value.get("type", "function") != "function":
                raise ValueError("a tool call's type must be 'function'")
            value = {"id": value.get("id"), **value["function"]}
        if isinstance(value, Mapping) and not isinstance(value.get("arguments", ""), str):
            try:
                arguments = json.dumps(value["arguments"], ensure_ascii=False)
            except (TypeError, ValueError):
                raise ValueError("a tool call's arguments must be JSON") from None
            value = {**value, "arguments": arguments}
        return value


def _content_kind(value: object) -> str:
    # Only one branch is tried, so an error names what was wrong with that one.
    return "text" if isinstance(value, str) else "parts"


class Message(_Input):
    """One turn of a conversation. ``content`` is a string or a sequence of parts."""

    role: Role
    content: Annotated[
        Annotated[Text, Tag("text")] | Annotated[tuple[Part, ...], Tag("parts")],
        Discriminator(_content_kind),
    ] = ""
    tool_calls: tuple[MessageToolCall, ...] = ()
    tool_call_id: Text | None = Field(default=None, min_length=1, max_length=256)
    name: Text | None = Field(default=None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _tool_forms(cls, value: object) -> object:
        # OpenAI's shapes: an assistant's `content: null` beside its tool calls, and a tool
        # result given as JSON (an object, a number) rather than text.
        if isinstance(value, Mapping):
            content = value.get("content")
            if content is None and "content" in value and value.get("tool_calls"):
                value = {**value, "content": ""}
            elif value.get("role") == "tool" and not isinstance(content, str | None):
                try:
                    value = {**value, "content": json.dumps(content, ensure_ascii=False)}
                except (TypeError, ValueError):
                    raise ValueError("a tool result must be text or JSON") from None
            if value.get("tool_calls") is None and "tool_calls" in value:
                value = {key: item for key, item in value.items() if key != "tool_calls"}
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _content_is_text_or_parts(cls, value: object) -> object:
        # Without this, a dict or a set would be read as a sequence of parts. (Text, nearly
        # always, skips the abstract-class checks, which cost a call more than the rest.)
        if type(value) is not str and isinstance(
            value, Mapping | Set | bytes | bytearray | memoryview
        ):
            raise ValueError(
                f"content must be a string or a list of parts, not {type(value).__name__}"
            )
        return value

    @field_validator("content")
    @classmethod
    def _content_not_empty(cls, value: str | tuple[Part, ...]) -> str | tuple[Part, ...]:
        if isinstance(value, tuple) and not value:
            raise ValueError("a message needs at least one part")
        return value

    @model_validator(mode="after")
    def _images_only_from_user(self) -> Message:
        if self.role != "user" and self.images:
            raise ValueError(f"only user messages can carry images, not {self.role} messages")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs a tool_call_id (only tool messages have one)")
        if self.name is not None and self.role != "tool":
            raise ValueError("name (the tool's name) is only for tool messages")
        return self

    @property
    def text(self) -> str:
        """The message's text parts joined together (images left out)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        """The image parts of the message, in order."""
        if isinstance(self.content, str):
            return ()
        return tuple(part for part in self.content if isinstance(part, ImagePart))

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str, *, image: ImageSource | None = None) -> Message:
        """A user message, with an optional image (anything ``image=`` takes) after the text."""
        if image is None:
            return cls(role="user", content=text)
        return cls(role="user", content=(TextPart(text=text), ImagePart(image=image)))

    @classmethod
    def assistant(cls, text: str = "", *, tool_calls: Iterable[Any] = ()) -> Message:
        """An assistant message (an earlier answer, for multi-turn conversations), with the
        tool calls it made (``response.tool_calls``, or OpenAI-format dicts)."""
        return cls(role="assistant", content=text, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, content: Any, *, name: str | None = None) -> Message:
        """A tool's result for the call ``tool_call_id``: text, or anything JSON (sent as its
        JSON text)."""
        return cls.model_validate(
            {"role": "tool", "tool_call_id": tool_call_id, "content": content, "name": name}
        )


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
            return cls(model=model, messages=tuple(turns), **params)
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
    except ValidationError as error:
        raise InvalidRequestError(f"{where}: {validation_message(error)}") from None


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
    if isinstance(item, dict):
        try:
            return Message.model_validate(item)
        except ValidationError as error:
            raise InvalidRequestError(f"messages[{index}]: {validation_message(error)}") from None
    raise InvalidRequestError(
        f"messages must be Message objects or dicts, not {type(item).__name__} (messages[{index}])"
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
