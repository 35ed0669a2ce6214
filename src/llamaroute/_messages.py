"""Messages and their parts: what a conversation is made of, in llamaroute's own form and in
the forms openai-python users write (``image_url`` parts, ``name``, assistant ``tool_calls``
with ``content: None``, ``tool`` results).

Every model here is strict (unknown fields are errors, types are taken strictly) and building
one with bad fields raises :class:`~llamaroute.InvalidRequestError`, never pydantic's own
``ValidationError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ._exceptions import InvalidRequestError
from ._records import trusted, validation_message
from ._tools import ToolCall
from .images import is_image_source

__all__ = ["ImagePart", "Message", "MessageToolCall", "Part", "Role", "Text", "TextPart"]

if TYPE_CHECKING:
    from .images import ImageSource


Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a message (``tool``: a tool's result, answering an assistant's tool call)."""


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
    """Strict: what callers send. Unknown fields are errors, instances are immutable, and
    building one with bad fields raises :class:`~llamaroute.InvalidRequestError`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Each field's default (a required field's placeholder) in field order, and the fields
    #: whose default comes from a factory, for :meth:`_trusted` (set per model class).
    _defaults: ClassVar[dict[str, Any]] = {}
    _factories: ClassVar[tuple[tuple[str, Any], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        cls._defaults = {name: info.default for name, info in fields.items()}
        cls._factories = tuple(
            (name, info.default_factory)
            for name, info in fields.items()
            if info.default_factory is not None
        )

    if not TYPE_CHECKING:  # mypy keeps the pydantic plugin's typed signature of each model

        def __init__(self, /, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as error:
                raise InvalidRequestError(validation_message(error)) from None

        # Tells pydantic this __init__ only wraps its own: models nested in a request keep
        # being built by pydantic-core, without a call to it (and without the wrapping, so an
        # error inside stays a plain validation error of the outer model).
        __init__.__pydantic_base_init__ = True

        @classmethod
        def model_validate(cls, obj: Any, **options: Any) -> Any:
            try:
                return super().model_validate(obj, **options)
            except ValidationError as error:
                raise InvalidRequestError(validation_message(error)) from None

    @classmethod
    def _checked(cls, fields: dict[str, Any]) -> Any:
        """``cls(**fields)``, built by pydantic-core's validator straight away: the same
        checks, result and error, without the two ``__init__`` frames above it (every call
        builds its request and message this way)."""
        try:
            return cls.__pydantic_validator__.validate_python(fields)
        except ValidationError as error:
            raise InvalidRequestError(validation_message(error)) from None

    @classmethod
    def _trusted(cls, given: dict[str, Any]) -> Any:
        """The instance ``cls(**given)`` would build, without validating: only for values our
        own code has checked the way the model's validators would (a plain prompt's user
        message and its request, on every call), and for every required field. What
        ``model_construct`` does, without its per-field Python loop."""
        values = {**cls._defaults, **given}
        if cls._factories:
            for name, factory in cls._factories:
                if name not in given:
                    values[name] = factory()
        return trusted(cls, values, given.keys())


def is_text(value: object) -> bool:
    """Whether ``value`` is a plain ``str`` that :data:`Text` takes as it is (a subclass, or
    a lone surrogate, is left to the validators and their error messages)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TextPart(_Input):
    """A piece of text inside a message."""

    type: Literal["text"] = "text"
    text: Text


#: The URL schemes an OpenAI-style ``image_url`` part may carry. A bare string is a file path
#: for ``image=``, but never for ``image_url``: a message list from elsewhere must not make
#: llamaroute read a local file.
_IMAGE_URL_SCHEMES = ("data:", "http://", "https://")


class ImagePart(_Input):
    """An image inside a user message.

    ``image`` is what the caller has: a file path (``str`` or ``Path``), raw bytes, a
    ``data:`` or ``http(s)://`` URL, a PIL image, or a :class:`~llamaroute.Image`. Only its
    type is checked here; it is read, sniffed and fitted to the route's limits when the request
    is planned, before any call.

    OpenAI's form is taken as well, as openai-python users write it:
    ``{"type": "image_url", "image_url": {"url": "data:..." | "https://...", "detail": "low"}}``
    (or ``"image_url": "https://..."``). Its URL must be a ``data:`` or ``http(s)://`` URL (never
    a file path), and goes through the same checks, fitting and SSRF-safe fetching as
    ``image=``. ``detail`` ("auto", "low" or "high") is sent on OpenRouter's (OpenAI's) wire,
    where the upstream may use it; Bedrock and Ollama have no such field and ignore it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    type: Literal["image"] = "image"
    image: Any
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _openai_form(cls, value: object) -> object:
        if not isinstance(value, Mapping) or value.get("type") != "image_url":
            return value
        if set(value) - {"type", "image_url"}:
            extra = sorted(map(str, set(value) - {"type", "image_url"}))
            raise ValueError(f"an image_url part takes only type and image_url, not {extra}")
        given = value.get("image_url")
        if isinstance(given, str):
            given = {"url": given}
        if not isinstance(given, Mapping) or set(given) - {"url", "detail"}:
            raise ValueError(
                'image_url must be {"url": "data:..." or "https://...", "detail": ...} or a URL'
            )
        url = given.get("url")
        if not isinstance(url, str) or not url[:8].lower().startswith(_IMAGE_URL_SCHEMES):
            raise ValueError("image_url.url must be a data: or http(s):// URL")
        return {"type": "image", "image": url, "detail": given.get("detail")}

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


def _part_kind(value: object) -> str | None:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return "image" if kind == "image_url" else kind if isinstance(kind, str) else None


Part = Annotated[
    Annotated[TextPart, Tag("text")] | Annotated[ImagePart, Tag("image")],
    Discriminator(
        _part_kind,
        custom_error_type="part_type",
        custom_error_message="a part's type must be 'text', 'image' or 'image_url'",
    ),
]
"""A part of a message's content: text or an image (``image_url`` parts become images)."""


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


#: The keys of a message dict that need no translation (the usual case, checked at once).
_PLAIN_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name"})

#: Fields of openai-python's ``ChatCompletionMessage.model_dump()`` that llamaroute does not
#: send back; they are dropped when empty (a refusal or audio in a turn is not something a
#: Llama route can take, so a filled one is still refused as an unknown field).
_OPENAI_EMPTY_EXTRAS = ("refusal", "annotations", "audio", "function_call")


def _openai_extras(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if value.get("role") == "developer":  # OpenAI's newer name for the system message
        value = {**value, "role": "system"}
    if any(key in value and not value[key] for key in _OPENAI_EMPTY_EXTRAS):
        value = {k: v for k, v in value.items() if k not in _OPENAI_EMPTY_EXTRAS or v}
    return value


def _text_parts(content: object) -> bool:
    return (
        isinstance(content, list | tuple)
        and bool(content)
        and all(isinstance(part, Mapping) and part.get("type") == "text" for part in content)
    )


def _content_kind(value: object) -> str:
    # Only one branch is tried, so an error names what was wrong with that one.
    return "text" if isinstance(value, str) else "parts"


class Message(_Input):
    """One turn of a conversation. ``content`` is a string or a sequence of parts.

    Takes OpenAI's chat message dicts as openai-python users write them: ``content`` as a
    string or a list of ``text`` and ``image_url`` parts (see :class:`ImagePart`); the
    ``developer`` role, read as ``system``; an assistant's ``tool_calls`` beside
    ``content: None``; ``tool`` results with ``tool_call_id``; and what openai-python's
    ``message.model_dump()`` adds to an assistant message (``refusal``, ``annotations``,
    ``audio``, ``function_call``) when those are empty.

    ``name`` (the participant's name, at most 64 characters) may be on any message. It is sent
    on OpenRouter's (OpenAI's) wire as is; Bedrock's Converse and Ollama's chat have no such
    field, so there it is dropped, except that Ollama gets a tool message's ``name`` as the
    tool's name. Building a message with bad fields raises
    :class:`~llamaroute.InvalidRequestError`.
    """

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
        # result given as JSON (an object, a number) rather than text (a list of text parts,
        # OpenAI's other form of a tool result, stays parts).
        if isinstance(value, Mapping):
            if value.get("role") == "developer" or not _PLAIN_KEYS.issuperset(value):
                value = _openai_extras(value)
            content = value.get("content")
            if content is None and "content" in value and value.get("tool_calls"):
                value = {**value, "content": ""}
            elif (
                value.get("role") == "tool"
                and not isinstance(content, str | None)
                and not _text_parts(content)
            ):
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
        if is_text(text):  # nothing for the validators to check or convert
            return cls._trusted({"role": "system", "content": text})  # type: ignore[no-any-return]
        return cls._checked({"role": "system", "content": text})  # type: ignore[no-any-return]

    @classmethod
    def user(cls, text: str, *, image: ImageSource | None = None) -> Message:
        """A user message, with an optional image (anything ``image=`` takes) after the text."""
        if image is None:
            if is_text(text):  # nothing for the validators to check or convert
                return cls._trusted({"role": "user", "content": text})  # type: ignore[no-any-return]
            return cls._checked({"role": "user", "content": text})  # type: ignore[no-any-return]
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
