"""What callers send: messages, their parts and the normalised :class:`ChatRequest`.

Inputs forbid unknown fields and check ranges, so a typo or an out-of-range value fails here,
before any network call, as an :class:`~llamaroute.InvalidRequestError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ._exceptions import InvalidRequestError
from ._records import validation_message
from .images._source import is_image_source

__all__ = ["ChatRequest", "ImagePart", "Message", "Part", "Role", "TextPart"]

if TYPE_CHECKING:
    from .images._source import ImageSource


Role = Literal["system", "user", "assistant"]
"""Who wrote a message. Tool roles are not supported yet."""


class _Input(BaseModel):
    """Strict: what callers send. Unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Input):
    """A piece of text inside a message."""

    type: Literal["text"] = "text"
    text: str


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
        # Mutable buffers are copied, so the frozen request cannot change under the caller.
        return bytes(value) if isinstance(value, bytearray | memoryview) else value


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Input):
    """One turn of a conversation. ``content`` is a string or a sequence of parts."""

    role: Role
    content: str | tuple[Part, ...]

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
    def assistant(cls, text: str) -> Message:
        """An assistant message (an earlier answer, for multi-turn conversations)."""
        return cls(role="assistant", content=text)


def _stop_tuple(value: object) -> object:
    # Accept the OpenAI-style single string as well as a list.
    return (value,) if isinstance(value, str) else value


class ChatRequest(_Input):
    """A normalised chat request: a model name and a conversation, plus sampling parameters.

    Build one with :meth:`create` from the same keyword arguments ``Client.chat`` takes.
    Ranges here are the widest any provider accepts; a route with a narrower range (for
    example a temperature cap of 1.0) is checked again when the route is planned.
    """

    model: str = Field(min_length=1)
    messages: tuple[Message, ...] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: Annotated[tuple[str, ...], BeforeValidator(_stop_tuple)] = Field(default=(), max_length=4)
    seed: int | None = None

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
        if roles[-1] != "user":
            raise ValueError("the conversation must end with a user message")
        return self

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
        messages: list[Message] | tuple[Message, ...] | None = None,
        image: bytes | str | Path | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatRequest:
        """Build a request from ``Client.chat``-style arguments.

        ``prompt`` becomes a final user message (after ``messages``, if both are given);
        ``image`` is attached to that prompt, or to the last user message when there is no
        prompt; ``system`` becomes a leading system message. Raises
        :class:`~llamaroute.InvalidRequestError` with a readable reason on bad input.
        """
        try:
            turns = [_coerce_message(item) for item in (messages or ())]
            if system is not None:
                if turns and turns[0].role == "system":
                    raise InvalidRequestError(
                        "pass the system prompt either as system= or as the first message, not both"
                    )
                turns.insert(0, Message.system(system))
            if prompt is not None:
                turns.append(Message.user(prompt, image=image))
            elif image is not None:
                turns = _attach_image_to_last_user(turns, image)
            if not any(turn.role == "user" for turn in turns):
                raise InvalidRequestError("nothing to send: pass prompt= or messages=")
            return cls(model=model, messages=tuple(turns), **params)
        except ValidationError as error:
            raise InvalidRequestError(validation_message(error)) from None


def _coerce_message(item: object) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, dict):
        return Message.model_validate(item)
    raise InvalidRequestError(
        f"messages must be Message objects or dicts, not {type(item).__name__}"
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
