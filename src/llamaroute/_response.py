"""What a call returns: :class:`ChatResponse`, and :class:`ChatChunk` for streams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    SkipValidation,
)

from ._records import Amount, Attempt, Cost, FinishReason, Usage, _Output
from ._tools import ToolCall
from .images import PreparedImage

__all__ = ["ChatChunk", "ChatResponse"]

if TYPE_CHECKING:
    pass


class ChatResponse(_Output):
    """The answer to a chat call, and how it was obtained.

    ``model`` is the catalog key, ``provider_model_id`` the native ID that answered.
    ``cost`` is ``None`` when the price is unknown (never a made-up 0). ``attempts`` lists
    every request sent for this call, the successful one last. ``total_cost`` adds every
    attempt that was billed (a stream cut after tokens were generated, a hedge that lost), so
    it is at least ``cost``. ``price_stale`` says that the provider's own figure and our price
    table disagree (``details["price_check"]`` has both): the table needs a refresh.
    ``price_checked`` is the date the source of the price used was read and ``price_age_days``
    how many days ago that was (both ``None`` when the price is unknown); a price older than
    its provider's threshold is also warned about, once.
    ``images`` are the images as sent on the route that answered (resized, re-encoded or
    fetched, with the reasons).
    ``tool_calls`` are the calls the model asked for (``finish_reason`` is then
    ``"tool_calls"``); each one with bad arguments carries its ``error`` and raw text.
    """

    text: str
    model: str
    provider: str
    provider_model_id: str
    finish_reason: FinishReason | None = None
    usage: Usage = Usage()
    cost: Cost | None = None
    attempts: tuple[Attempt, ...] = ()
    latency_s: float = 0.0
    total_cost: Amount | None = None
    price_stale: bool = False
    price_checked: date | None = None
    price_age_days: int | None = None
    images: Annotated[tuple[PreparedImage, ...], SkipValidation] = ()
    details: dict[str, Any] = Field(default_factory=dict)
    # With response_format=: the validated answer (a model instance, or JSON data for a dict
    # schema); None without it.
    parsed: Annotated[Any, SkipValidation] = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A piece of a streamed answer. ``text`` is the new text since the previous chunk.

    A plain slotted dataclass rather than a pydantic model: streams create one per token, and
    validating each would cost more than parsing it.
    """

    text: str
    provider: str = ""
    provider_model_id: str = ""
