"""The provider interface: what every provider package implements, and what it exchanges.

A provider turns one :class:`ProviderCall` (a validated request, the route chosen for it, and the
images prepared for that route) into one :class:`ProviderResult`, or raises exactly one
:class:`~llamaroute.ProviderError`. It makes a single attempt: retries, fallback and pricing
are the client's job, so that there is one retry layer only.

Streaming: ``stream()`` / ``astream()`` are generators that yield each new piece of text as a
``str`` and, last, one :class:`ProviderResult` carrying the finish reason and usage. A stream
that ends without the provider's end marker raises instead of returning a result, so a
truncated answer is never mistaken for a complete one. Closing the generator early closes the
connection.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from .._exceptions import ConfigurationError
from .._records import FinishReason, Usage
from .._request import ChatRequest
from .._tools import ToolCall
from ..catalog import Price, Route
from ..images import PreparedImage

__all__ = [
    "Provider",
    "ProviderCall",
    "ProviderResult",
    "StreamItem",
    "with_schema_instruction",
]


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One attempt's input: the request, the route it goes to, and what to send with it.

    ``images`` are the request's images, already checked and fitted to ``route`` (in order of
    appearance): bytes in a format the route takes, or a URL for a route with ``image_urls``.
    ``max_tokens`` is the request's value after the route's cap. ``timeout`` is
    this attempt's budget in seconds (``None``: the provider's configured timeouts).
    ``max_price`` is the price the attempt's budget reservation was computed at, when it has
    one: a provider that can refuse a dearer upstream (OpenRouter's ``provider.max_price``)
    sends it, so a price that moved cannot bill more than was reserved. ``receipt`` is
    where the provider notes what identifies the attempt on its side (OpenRouter:
    ``generation_id``), even for a stream cut short, so that its cost can be looked up later.
    """

    request: ChatRequest
    route: Route
    images: tuple[PreparedImage, ...] = ()
    max_tokens: int | None = None
    timeout: float | None = None
    max_price: Price | None = None
    receipt: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """One successful attempt's output, before the client adds cost, attempts and timing.

    ``cost`` is what the provider itself reported (USD), when it does; ``cost_problem`` why a
    figure the provider sent was not usable (negative, not finite, not a number): the client
    then prices the answer from its table and says so, and the answer is kept.
    ``served_model`` is the model ID the provider says answered, when it says so.
    """

    text: str
    finish_reason: FinishReason | None
    usage: Usage
    cost: Decimal | None = None
    served_model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    cost_problem: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


StreamItem = str | ProviderResult
"""What a provider stream yields: text deltas, then one final result."""


def with_schema_instruction(call: ProviderCall, system: str | None) -> str | None:
    """The system prompt to send: ``system`` plus the schema instruction when the call has a
    ``response_format`` and its route's mechanism is ``instructions`` (no native one used)."""
    schema = call.request.response_format
    if schema is None or call.route.structured_output_mechanism != "instructions":
        return system
    return schema.instruction() if not system else f"{system}\n\n{schema.instruction()}"


#: A deployment name: it shows in attempts, ``client.health()`` and log lines, so plain.
_DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Provider(ABC):
    """Base class of the providers (``providers/openrouter/`` and the others).

    Subclasses set :attr:`name` to the provider name used in the catalog data, and
    :attr:`region` when their routes are regional. Instances hold their connection pools and
    are safe to share between threads; close them with :meth:`close` / :meth:`aclose` (or by
    closing the client that owns them).

    An instance is one *deployment* of its provider (one key, one host, one region): a client
    may hold several of one provider, each named by ``deployment=`` and each with its own
    breaker, optional ``rpm``/``tpm`` limits and ``weight`` (see :meth:`_deploy`).
    """

    #: The provider's name in the catalog (``"openrouter"``, ``"bedrock"``, ``"ollama"``).
    name: ClassVar[str]

    #: The region the provider's client runs in, for regional routes (``None``: not regional).
    region: str | None = None

    #: Whether llamaroute sends tools to this provider. A provider whose tool wire is not
    #: written yet sets it to False: the plan then skips its routes for a tools request, with
    #: :attr:`tools_missing` as the reason, whatever the catalog says the route can do.
    tools_wired: ClassVar[bool] = True
    tools_missing: ClassVar[str] = ""

    #: Whether the provider runs on the caller's own machine or network (free and private);
    #: the ``local_first`` strategy puts such routes first.
    local: ClassVar[bool] = False

    # One deployment of the provider (a key, a host, a region): set by :meth:`_deploy`.
    # Class defaults, so that a provider written before deployments existed is one deployment
    # named like its provider, with no limits.
    _deployment: str | None = None
    #: This deployment's name: ``deployment=`` as given, else the provider's name. A client
    #: keys its providers by it; attempts, breakers and rate limits name it. (A plain
    #: attribute, not a property: it is read on every attempt.)
    deployment: str
    #: Requests per minute this deployment may be sent (``None``: no limit of ours).
    rpm: int | None = None
    #: Tokens per minute (the prompt's ceiling plus ``max_tokens``, then the real usage).
    tpm: int | None = None
    #: The share of calls the ``weighted`` strategy gives this deployment (relative).
    weight: float = 1.0

    def _deploy(
        self, deployment: str | None, rpm: int | None, tpm: int | None, weight: float
    ) -> None:
        """Check and set the deployment's name, limits and weight (every provider's
        constructor calls this with its ``deployment=``, ``rpm=``, ``tpm=``, ``weight=``)."""
        if deployment is not None and (
            not isinstance(deployment, str) or not _DEPLOYMENT_NAME.fullmatch(deployment)
        ):
            raise ConfigurationError(
                f"deployment= is a short name such as 'openrouter-team-b' (letters, digits, "
                f"'.', '_' and '-', at most 64), not {deployment!r}"
            )
        for label, limit in (("rpm", rpm), ("tpm", tpm)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                      or limit < 1):  # fmt: skip
                raise ConfigurationError(
                    f"{label}= is a whole number of {'requests' if label == 'rpm' else 'tokens'}"
                    f" per minute above 0, or None for no limit (got {limit!r})"
                )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (0 < weight < math.inf)
        ):
            raise ConfigurationError(f"weight= is a finite number above 0 (got {weight!r})")
        self._deployment, self.rpm, self.tpm, self.weight = deployment, rpm, tpm, float(weight)
        self.deployment = deployment or self.name

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        if "name" in cls.__dict__:  # the default deployment is named like its provider
            cls.deployment = cls.name

    def _deployment_repr(self) -> str:
        """The deployment settings for ``repr()`` (none when left at their defaults)."""
        parts = [f"deployment={self._deployment!r}"] if self._deployment else []
        parts += [f"{k}={v!r}" for k, v in (("rpm", self.rpm), ("tpm", self.tpm)) if v]
        if self.weight != 1.0:
            parts.append(f"weight={self.weight:g}")
        return "".join(f", {part}" for part in parts)

    def available(self, route: Route) -> bool | None:
        """A cheap, cached check that ``route`` can be served now (server up, model present):
        ``True`` or ``False``, or ``None`` when the provider has no such probe."""
        return None

    def diagnose(self) -> str:
        """One line on whether the provider looks usable, for ``llamaroute doctor``. May use
        the network briefly; never raises and never spends money."""
        return "configured"

    def serves(self, route: Route) -> bool:
        """Whether this provider instance can call ``route`` (its provider and region)."""
        return route.provider == self.name and route.serves_region(self.region)

    @abstractmethod
    def chat(self, call: ProviderCall) -> ProviderResult:
        """Send one request and wait for the whole answer."""

    @abstractmethod
    async def achat(self, call: ProviderCall) -> ProviderResult:
        """Async :meth:`chat`."""

    @abstractmethod
    def stream(self, call: ProviderCall) -> Generator[StreamItem, None, None]:
        """Send one streaming request; yield text deltas, then one :class:`ProviderResult`."""

    @abstractmethod
    def astream(self, call: ProviderCall) -> AsyncGenerator[StreamItem, None]:
        """Async :meth:`stream` (an async generator)."""

    @abstractmethod
    def close(self) -> None:
        """Close the provider's synchronous connections."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close every connection the provider holds, async ones included."""
