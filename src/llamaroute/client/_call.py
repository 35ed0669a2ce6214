"""The records one call carries through the client: what was decided before the first byte
(:class:`Call`), what has happened since (:class:`Run`), one attempt's hold on the route and
the budget (:class:`Ticket`), and a route's answer (:class:`Answer`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from .._exceptions import (
    ConfigurationError,
    MalformedResponseError,
    ProviderError,
    RateLimitError,
)
from .._records import Attempt
from .._request import ChatRequest
from ..catalog import Resolution
from ..images import ImageFetchPolicy, RequestImages
from ..money import RequestShape, request_shape, request_token_ceiling
from ..providers import ProviderCall
from ..routing import Candidate, Hold, RetryPolicy

__all__ = ["Answer", "Call", "Run", "Ticket", "check_timeout", "no_result"]


@dataclass(slots=True)
class Call:
    """A validated, planned call: everything decided before the first byte is sent.

    ``candidates`` are the plan's routes in the strategy's order, without those the budget
    or ``max_cost`` rules out. The images are read on first need (planning may need their
    tiles) and fitted once per set of route limits.
    """

    request: ChatRequest
    resolution: Resolution
    retry: RetryPolicy
    timeout: float | None
    deadline: float | None
    image_fetch: ImageFetchPolicy | None = None
    max_cost: Decimal | None = None
    streaming: bool = False
    candidates: tuple[Candidate, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (route, why) the plan left out, before any I/O
    image_policy: dict[str, Any] | None = None  # older images image_policy= left out, if any
    too_long: int = 0  # how many of those the prompt does not fit (context window)
    id: int = 0  # unique within the client: events carry it
    attempts_started: int = 0  # across every route, hedges included
    _images: RequestImages | None = None
    _shape: RequestShape | None = None
    _ceiling: int | None = None

    @property
    def images(self) -> RequestImages:
        """The call's images, loaded and checked on first use."""
        if self._images is None:
            images = self.request.images
            parts: Iterable[Any] = (part.image for part in images) if images else ()
            self._images = RequestImages(parts, self.image_fetch)
        return self._images

    def shape(self) -> RequestShape:
        """The request's token shape, for costs (computed once, on first need).

        Counted by the fast estimate, never the exact tokenizer: loading that takes a third
        of a second on first use, which a call must not spend (often after its deadline, to
        price a failed attempt), and every bound a call applies (reservations, the cost of a
        cut attempt) is the UTF-8 ceiling, which no count exceeds."""
        if self._shape is None:
            self._shape = request_shape(
                self.request, tiles=self.images.tiles(), counter="heuristic"
            )
        return self._shape

    def ceiling(self) -> int:
        """At most how many prompt tokens the request can be billed as, images' own tokens
        aside (UTF-8 bytes and the chat template's ceiling), for reservations."""
        if self._ceiling is None:
            self._ceiling = request_token_ceiling(self.request)
        return self._ceiling

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        return None if self.deadline is None else self.deadline - self.retry.clock()


@dataclass(slots=True)
class Run:
    """What has happened so far in one routed call: shared by every route it tries, hedges
    included (one event loop thread runs them, so no lock is needed)."""

    call_id: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    all_open: bool = False
    deadline_hit: bool = False
    spent: Decimal = Decimal(0)  # what this call's billed attempts cost so far
    numbers: dict[str, int] = field(default_factory=dict)  # each route's latest attempt number
    over_budget: list[str] = field(default_factory=list)  # reservations refused mid-call
    # The largest context window a provider said the prompt is over, and the routes left out
    # for a window no larger (route -> why).
    overflowed: tuple[str, int] | None = None
    smaller_windows: dict[str, str] = field(default_factory=dict)
    over_limit: RateLimitError | None = None  # the last route at its rate limit, no slot soon

    def hit_deadline(self) -> None:
        self.deadline_hit = True


class Ticket(NamedTuple):  # a tuple: built on every attempt, and cheaper than a dataclass
    """One admitted attempt: its call-wide number, the budget it holds and its place in its
    deployment's rate limits (if any)."""

    number: int
    reservation: str | None
    hold: Hold | None = None


class Answer(NamedTuple):
    """A route that answered: the provider's reply (a result, or an opened stream and its first
    item), the attempt that got it, and when that attempt started."""

    candidate: Candidate
    ticket: Ticket
    reply: Any
    started: float
    call: ProviderCall | None = None  # what was sent (its receipt names the attempt)

    @property
    def ref(self) -> str | None:
        """The provider's id for the attempt (OpenRouter's generation id), if it gave one."""
        return None if self.call is None else self.call.receipt.get("generation_id")


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` if it is a positive number of seconds (or ``None``), else a typed error."""
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ConfigurationError("timeout must be a positive number of seconds")
    return timeout


def no_result(candidate: Candidate) -> MalformedResponseError:
    """The error for a provider stream that ended without its final result."""
    # A provider stream must end with a result; one that does not is a bug we report, typed.
    return MalformedResponseError(
        "the provider stream ended without a final result",
        provider=candidate.route.provider,
        model_id=candidate.route.model_id,
    )
