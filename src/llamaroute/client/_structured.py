"""Structured output after the call, free of I/O and shared by both clients: reading the answer
against ``response_format``, the repair attempt's request, and the response or error that ends
the call.

A repair attempt is the same call once more (same routes, deadline and budget rules), with the
bad answer and what was wrong with it appended to the conversation. It is a real attempt: it
is billed, goes to the ledger, and the final response's ``attempts``, ``usage``, ``cost`` and
``total_cost`` include it. Streams are checked at the end without a repair (the text has
already been delivered): a bad answer raises :class:`~llamaroute.StructuredOutputError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator
from decimal import Decimal

from .._exceptions import InvalidRequestError, StructuredOutputError
from .._records import Cost, Usage
from .._request import Message
from .._response import ChatResponse
from .._schema import Checked, OutputSchema
from ._call import Call

__all__ = ["check_repairs", "failure", "merged", "parsed", "repair_call", "streamed", "structured"]

#: How much of a bad answer a repair attempt quotes back (the rest would only cost tokens).
QUOTE_CHARS = 4000


def check_repairs(repairs: object) -> int:
    """``repair_attempts`` as a count (0 disables repairs), else a typed error."""
    if isinstance(repairs, bool) or not isinstance(repairs, int) or not 0 <= repairs <= 5:
        raise InvalidRequestError("repair_attempts must be a whole number from 0 to 5")
    return repairs


def parsed(response: ChatResponse, schema: OutputSchema) -> tuple[ChatResponse, Checked]:
    """The answer read against ``schema``: the response with ``parsed`` set when it passes."""
    checked = schema.check(response.text)
    if checked.ok:
        response = response.model_copy(update={"parsed": checked.value})
    return response, checked


def repair_call(call: Call, response: ChatResponse, checked: Checked, new_id: int) -> Call | None:
    """The call to send for a repair: the conversation, the bad answer, and what was wrong
    (``None`` when the bad answer cannot be quoted back as a message)."""
    request = call.request
    schema = request.response_format
    assert schema is not None
    quoted = response.text[:QUOTE_CHARS] or "(an empty answer)"
    try:
        messages = (*request.messages, Message.assistant(quoted),
                    Message.user(schema.repair_prompt(checked.errors)))  # fmt: skip
    except (ValueError, InvalidRequestError):  # text a message cannot carry
        return None
    repaired = request.model_copy(update={"messages": messages})
    return dataclasses.replace(call, request=repaired, id=new_id,
                               attempts_started=0, _shape=None, _ceiling=None)  # fmt: skip


def merged(first: ChatResponse, then: ChatResponse) -> ChatResponse:
    """``then`` (the repair's answer) with ``first``'s attempts, usage and cost added in."""
    return then.model_copy(
        update={
            "attempts": first.attempts + then.attempts,
            "usage": Usage(input_tokens=first.usage.input_tokens + then.usage.input_tokens,
                           output_tokens=first.usage.output_tokens + then.usage.output_tokens),
            "cost": _cost_sum(first.cost, then.cost),
            "total_cost": _sum(first.total_cost, then.total_cost),
            "latency_s": first.latency_s + then.latency_s,
        }
    )  # fmt: skip


def failure(response: ChatResponse, checked: Checked, repairs: int) -> StructuredOutputError:
    """The error that ends a call whose last answer still fails the schema."""
    tried = f" and {repairs} repair attempt(s)" if repairs else ""
    return StructuredOutputError(
        f"the answer from {response.provider} {response.provider_model_id} failed the "
        f"response_format schema after the first attempt{tried}: " + "; ".join(checked.errors[:5]),
        raw_text=response.text,
        validation_errors=checked.errors,
        attempts=response.attempts,
    )


def _sum(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _cost_sum(a: Cost | None, b: Cost | None) -> Cost | None:
    if a is None or b is None:
        return None  # one part unknown: the sum is unknown, never a partial figure
    return b.model_copy(
        update={
            "input": _sum(a.input, b.input),
            "output": _sum(a.output, b.output),
            "total": a.total + b.total,
            "reported": _sum(a.reported, b.reported),
            "table": _sum(a.table, b.table),
            "note": "the first answer and its repair attempt, added",
        }
    )


def structured(
    call: Call, response: ChatResponse, repairs: int, ids: Iterator[int]
) -> Generator[Call, ChatResponse, ChatResponse]:
    """Check the answer; while it fails and repairs are left, yield the repair call and receive
    its response. Returns the response with ``parsed``, or raises StructuredOutputError."""
    schema = call.request.response_format
    assert schema is not None
    response, checked = parsed(response, schema)
    done = 0
    while not checked.ok and done < repairs:
        again = repair_call(call, response, checked, next(ids))
        if again is None:
            break
        done += 1
        response, checked = parsed(merged(response, (yield again)), schema)
    if not checked.ok:
        raise failure(response, checked, done)
    return response


def streamed(call: Call, response: ChatResponse) -> ChatResponse:
    """A stream's final response, with ``parsed`` when the call has a ``response_format``
    (no repair: the text has been delivered; a bad answer raises StructuredOutputError)."""
    schema = call.request.response_format
    if schema is None:
        return response
    response, checked = parsed(response, schema)
    if not checked.ok:
        raise failure(response, checked, 0)
    return response
