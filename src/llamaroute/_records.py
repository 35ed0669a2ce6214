"""Plain records at the bottom of the package: what a call used, cost and tried.

:class:`Usage`, :class:`Cost` and :class:`Attempt` are what llamaroute returns about a call;
they are immutable and lenient about extra provider fields. ``validation_message`` turns a
pydantic error into one readable line for llamaroute's own typed errors. This module imports
nothing from llamaroute but the error tree.

Money is :class:`~decimal.Decimal` USD everywhere.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "Amount",
    "Attempt",
    "Cost",
    "CostSource",
    "Count",
    "FinishReason",
    "Outcome",
    "Usage",
    "trusted",
    "validation_message",
]


#: The most output tokens a request may ask for: the largest context window of any route in
#: the catalog (131,072). A route with a smaller ``max_output_tokens`` is capped to it when the
#: call is made; this bound only stops absurd values (``10**9``) from being sent anywhere.
#: (Declared here, below the request layer that re-exports it, so that the workload estimate
#: checks it without importing the request models: `llamaroute estimate` starts faster.)
MAX_OUTPUT_TOKENS = 131_072


def plain_decimal(amount: Decimal) -> str:
    """An exact amount as a plain decimal string: ``"0.00000024"``, never ``"2.4E-7"`` (which
    is what ``str()`` of a small :class:`~decimal.Decimal` gives, and what a JSON reader
    expecting money may not parse)."""
    return f"{amount:f}"


#: A USD amount: an exact Decimal, written in JSON (``model_dump(mode="json")``,
#: ``model_dump_json()``) as a plain decimal string.
Amount = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]

if TYPE_CHECKING:
    pass


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]
"""Why generation ended, normalised across providers (``length``: hit ``max_tokens``)."""

CostSource = Literal["provider", "price_table", "estimate"]
"""Where a cost figure came from: reported by the provider, usage x our price table, or an
estimate (an attempt cut short before the provider reported usage)."""


class _Output(BaseModel):
    """What llamaroute returns: immutable, and lenient about extra provider fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)


_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__


def trusted(model: type[_Model], values: dict[str, Any], given: AbstractSet[str]) -> _Model:
    """A ``model`` built from fields llamaroute's own code has just made, each already of its
    field's type (a ``Decimal`` from Decimal arithmetic, a ``date`` from a validated price...),
    without validating them again: the instance a validating constructor would build when
    given the fields named in ``given`` (the same ``__dict__``, defaults and set fields, so
    dumps with or without ``exclude_unset`` are identical), at a fraction of its cost. A
    call builds several; the public constructors, for objects users build, still validate.
    (``model_construct`` does the same, but costs more than validating.)

    ``values`` holds every field of ``model``, in declaration order, as validation fills
    ``__dict__``; the tests compare such instances with validated ones."""
    instance = model.__new__(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", set(given))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def validation_message(error: ValidationError) -> str:
    """One readable line from a pydantic ``ValidationError`` (``where: what; ...``)."""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function"))
        problems.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(problems)


def _none_as_zero(value: object) -> object:
    # Providers omit or null a count that is zero (Ollama's omitempty, for one).
    return 0 if value is None else value


Count = Annotated[int, BeforeValidator(_none_as_zero), Field(ge=0)]


class Usage(_Output):
    """Tokens counted by the provider for one call."""

    input_tokens: Count = 0
    output_tokens: Count = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class Cost(_Output):
    """What a call cost, in USD.

    ``source`` says where the figure came from: ``"provider"`` when the provider reported it
    (OpenRouter's ``usage.cost``, plus the upstream's charge on a BYOK call),
    ``"price_table"`` when llamaroute computed it from usage and its dated price data,
    ``"estimate"`` when no usage came back (a stream the caller abandoned, a stream cut short,
    a stream without its usage chunk): the prompt and the text received, estimated.
    ``input`` and ``output`` are ``None`` when only the total is known.

    ``reported`` is the provider's own figure and ``table`` usage x the price table, side by
    side where both are known (the ledger keeps both, for ``llamaroute spend --reconcile``).
    ``note`` says why the figure is not the provider's own when the provider sent one that
    could not be used (negative, not finite, not a number), or why it is an estimate.

    For a figure computed from the price table, ``price_source`` and ``price_checked`` say where
    that price was read and when, and ``price_origin`` names the user file it came from (the
    refreshed prices of ``llamaroute prices refresh``, say; ``None``: shipped with llamaroute).
    """

    input: Amount | None = None
    output: Amount | None = None
    total: Amount
    source: CostSource
    currency: Literal["USD"] = "USD"
    price_source: str | None = None
    price_checked: date | None = None
    price_origin: str | None = None
    reported: Amount | None = None
    table: Amount | None = None
    note: str | None = None


Outcome = Literal["ok", "error", "cancelled"]


class Attempt(_Output):
    """One request sent to one provider during a call (each retry is its own attempt).

    ``error_type`` is the llamaroute error class name, ``code`` the provider's own error code,
    ``retry_after`` the server's wait hint, ``partial`` whether text had been delivered before
    a stream failed, ``cost`` what the attempt cost where anything was billed. ``deployment``
    names the deployment that was sent the request (its ``deployment=``, or the provider's
    name): never a key or a host's credentials.
    """

    provider: str
    model_id: str
    outcome: Outcome
    error_type: str | None = None
    error: str | None = None
    code: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    elapsed_s: float = 0.0
    cost: Cost | None = None
    partial: bool = False
    deployment: str | None = None
