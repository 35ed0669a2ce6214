"""The shared, I/O-free half of ``Client`` and ``AsyncClient``.

Everything that decides lives here and is written once: validating the request, resolving the
model, planning routes, fitting images to each route, ordering routes past open circuit
breakers, building each attempt, recording attempts, deciding whether to fall back, and turning
a provider result into a ``ChatResponse``. ``_client.py`` holds the two thin shells that wait
for the network.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from os import PathLike
from types import TracebackType
from typing import Any

from .._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    DeadlineExceededError,
    MalformedResponseError,
    PaymentRequiredError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from .._records import Attempt, Cost
from .._request import ChatRequest, Message
from .._response import ChatResponse
from ..catalog import check_image_count
from ..catalog._catalog import Catalog, Resolution
from ..images._fit import RequestImages
from ..images._source import ImageFetchPolicy
from ..money._accounting import Accounting
from ..money._estimate import Estimates, RequestShape, estimate_shape, request_shape
from ..money._ledger import Ledger, SpendEntry, open_ledger
from ..providers import discover
from ..providers._base import Provider, ProviderCall, ProviderResult
from ..routing._breakers import BreakerPolicy, Health
from ..routing._plan import Candidate, Plan, plan
from ..routing._retry import RetryPolicy
from ..routing._strategies import LatencyStats, Strategy, StrategyName, apply_strategy
from ._events import (
    AttemptFailed,
    AttemptStarted,
    BudgetRefused,
    CallFailed,
    EventHandler,
    FallbackTaken,
    ResponseReady,
    emit,
)
from ._telemetry import chain, tracing_handler

__all__ = ["BaseClient", "FallbackRule", "default_fallback"]


logger = logging.getLogger("llamaroute")

FallbackRule = Callable[[ProviderError], bool]


def default_fallback(error: ProviderError) -> bool:
    """Whether another route may succeed where this error happened.

    Yes for connection failures, timeouts, rate limits, server errors, a model that is not
    available, malformed responses and authentication or billing problems (a misconfigured
    provider must not take the app down). No for a request the provider rejected as invalid:
    the next provider would refuse it too. A stream that failed after text reached the caller
    never falls back (that would splice two answers).
    """
    return not isinstance(error, BadRequestError | StreamInterruptedError)


class _Skip(Exception):
    """A breaker refused the route just before sending: move to the next route."""


class _Expired(Exception):
    """The call's deadline passed before the next attempt could start."""


@dataclass(slots=True)
class _Call:
    """A validated, planned call: everything decided before the first byte is sent.

    ``candidates`` are the plan's routes in the strategy's order, without those the budget
    or ``max_cost`` rules out.
    """

    request: ChatRequest
    resolution: Resolution
    plan: Plan
    images: RequestImages
    retry: RetryPolicy
    timeout: float | None
    deadline: float | None
    max_cost: Decimal | None = None
    streaming: bool = False
    candidates: list[Candidate] = field(default_factory=list)
    id: int = 0  # unique within the client: events carry it
    attempts_started: int = 0  # across every route, hedges included
    _shape: RequestShape | None = None

    def shape(self) -> RequestShape:
        """The request's token shape, for costs (computed once, on first need)."""
        if self._shape is None:
            self._shape = request_shape(self.request, tiles=self.images.tiles())
        return self._shape


@dataclass(slots=True)
class _Run:
    """What happened so far in one routed call."""

    call_id: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    all_open: bool = False
    deadline_hit: bool = False
    reservation: str | None = None  # the budget held by the attempt in flight
    number: int = 0  # the call-wide number of the attempt in flight on this route
    spent: Decimal = Decimal(0)  # what this call's billed attempts cost so far

    def hit_deadline(self) -> None:
        self.deadline_hit = True


class BaseClient:
    """The shared, I/O-free half of both clients."""

    def __init__(
        self,
        providers: Sequence[Provider] | None = None,
        *,
        catalog: Catalog | None = None,
        retries: RetryPolicy | int | None = None,
        breaker: BreakerPolicy | None = None,
        fallback: bool | FallbackRule = True,
        timeout: float | None = None,
        image_fetch: ImageFetchPolicy | None = None,
        strategy: StrategyName | Strategy = "ordered",
        ledger: Ledger | str | PathLike[str] | None = None,
        budget: Decimal | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        found = list(providers) if providers is not None else discover()
        self._providers: dict[str, Provider] = {}
        for provider in found:
            if not isinstance(provider, Provider):
                raise ConfigurationError(
                    f"providers= takes provider objects (such as OpenRouterProvider(...)), "
                    f"not {type(provider).__name__}"
                )
            if provider.name in self._providers:
                raise ConfigurationError(f"provider {provider.name!r} is configured twice")
            self._providers[provider.name] = provider
        self.catalog = catalog or Catalog.builtin()
        self._retry = RetryPolicy.coerce(retries, RetryPolicy())
        self._health = Health(breaker or BreakerPolicy(), clock=self._retry.clock)
        if fallback is True:
            self._fallback: FallbackRule = default_fallback
        elif fallback is False:
            self._fallback = lambda error: False
        else:
            self._fallback = fallback
        self._timeout = _check_timeout(timeout)
        self._image_fetch = image_fetch
        self._strategy = strategy
        self._accounting = Accounting(self.catalog, open_ledger(ledger, budget))
        self._stats = LatencyStats()
        # Spans come from the same events, when OpenTelemetry is installed.
        self._on_event = chain(on_event, tracing_handler())
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} providers={list(self._providers)}>"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured providers by name, in the order they are tried."""
        return dict(self._providers)

    @property
    def spend(self) -> Ledger:
        """What this client has spent: ``client.spend.total`` (Decimal USD),
        ``client.spend.summary()`` by provider, model and day, ``remaining()`` of the budget."""
        return self._accounting.ledger

    def latency(self) -> dict[str, dict[str, float]]:
        """The latency estimates the ``fastest`` strategy uses, by route, in seconds."""
        return self._stats.snapshot()

    def health(self) -> dict[str, dict[str, object]]:
        """The circuit breakers that have seen traffic, by route (``provider:model_id``) and
        provider (``provider:*``): ``state`` (closed, open, half_open), consecutive failures,
        times opened, and seconds until an open breaker lets a probe through."""
        return self._health.snapshot()

    # --- before any I/O ----------------------------------------------------------------------

    def _prepare(
        self,
        model: str,
        prompt: str | None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None,
        image: Any,
        system: str | None,
        providers: Sequence[str] | None,
        timeout: float | None,
        retries: RetryPolicy | int | None,
        params: dict[str, Any],
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
        streaming: bool = False,
    ) -> _Call:
        timeout = _check_timeout(timeout) if timeout is not None else self._timeout
        retry = RetryPolicy.coerce(retries, self._retry)
        request = ChatRequest.create(
            model,
            prompt,
            messages=list(messages) if messages is not None else None,  # type: ignore[arg-type]
            image=image,
            system=system,
            **{key: value for key, value in params.items() if value is not None},
        )
        resolution = self.catalog.resolve(request.model)
        if request.images:
            # Text-only model, or more images than Llama 3.2 takes: say so before anything else.
            check_image_count(request, resolution.routes[0], self.catalog)
        routing = plan(request, resolution, self._providers, providers)
        # Read, check and fit every image now, so that a bad or oversized image fails before
        # any request is sent. Only URLs that some route must download wait for the attempt.
        images = RequestImages((part.image for part in request.images), self._image_fetch)
        for candidate in routing.candidates:
            if not images.needs_fetch(candidate.route):
                images.for_route(candidate.route)
        if max_cost is not None and (not isinstance(max_cost, Decimal) or max_cost < 0):
            raise ConfigurationError("max_cost must be a Decimal >= 0 (USD), e.g. Decimal('0.01')")
        deadline = retry.clock() + timeout if timeout is not None else None
        call = _Call(request, resolution, routing, images, retry, timeout, deadline, max_cost,
                     streaming, id=next(self._ids))  # fmt: skip
        ordered = apply_strategy(
            self._strategy if strategy is None else strategy, request, routing.candidates,
            self._stats, shape=call.shape, catalog=self.catalog, streaming=streaming,
        )  # fmt: skip
        call.candidates = self._within_limits(call, ordered)
        return call

    def _within_limits(self, call: _Call, ordered: list[Candidate]) -> list[Candidate]:
        """The candidates whose worst case fits the budget and ``max_cost``; if none does,
        :class:`BudgetExceededError` with each route's figure, before anything is sent."""
        if not self._accounting.limited(call.max_cost):
            return ordered
        fitting, reasons = [], []
        for candidate in ordered:
            worst = self._accounting.worst_case(call.shape(), candidate.route)
            reason = self._accounting.refusal(candidate.route, worst, call.max_cost, Decimal(0))
            if reason is None:
                fitting.append(candidate)
                continue
            reasons.append(reason)
            emit(self._on_event, BudgetRefused(call.id, candidate.route.pinned, worst,
                                               self.spend.remaining()))  # fmt: skip
        if not fitting:
            raise BudgetExceededError(
                "no route fits this call's limits: "
                + "; ".join(reasons)
                + " (lower max_tokens, raise max_cost or the budget, or pick a cheaper model)"
            )
        return fitting

    def _order(self, call: _Call, run: _Run) -> list[tuple[Candidate, bool]]:
        """The candidates to try, past open breakers; ``True`` marks a forced try."""
        candidates = call.candidates
        shut = self._health.open_routes([c.route for c in candidates])
        if not shut:  # the usual case: every breaker closed
            return [(candidate, False) for candidate in candidates]
        closed = {route.pinned for route in shut}
        ready = [
            (candidate, False) for candidate in candidates if candidate.route.pinned not in closed
        ]
        run.skipped.extend(f"{pinned} (circuit open)" for pinned in sorted(closed))
        if ready:
            return ready
        # Every route is open: try the one that failed longest ago rather than fail untried.
        run.all_open = True
        oldest = self._health.longest_failed([candidate.route for candidate in candidates])
        logger.warning("every route's circuit breaker is open; trying %s anyway", oldest.pinned)
        return [(next(c for c in candidates if c.route == oldest), True)]

    # --- around each attempt ------------------------------------------------------------------

    def _remaining(self, call: _Call) -> float | None:
        return None if call.deadline is None else call.deadline - call.retry.clock()

    def _admit(
        self, call: _Call, run: _Run, candidate: Candidate, forced: bool, routes_left: int
    ) -> ProviderCall:
        """Reserve the route for one attempt (breaker, deadline) and build its input.

        With a deadline, an attempt gets an equal share of the time left among the routes not
        yet tried, so that a provider that never answers cannot starve the fallback.
        """
        remaining = self._remaining(call)
        if remaining is not None and remaining <= 0:
            raise _Expired
        if not forced and not self._health.admit(candidate.route):
            raise _Skip
        run.reservation = None
        if self._accounting.limited(call.max_cost):
            worst = self._accounting.worst_case(call.shape(), candidate.route)
            try:
                run.reservation = self._accounting.reserve(
                    candidate.route, worst, call.max_cost, run.spent
                )
            except BudgetExceededError:
                # Other calls took the budget meanwhile, or this call's own spending did.
                self._health.release(candidate.route)
                emit(self._on_event, BudgetRefused(call.id, candidate.route.pinned, worst,
                                                   self.spend.remaining()))  # fmt: skip
                raise _Skip from None
        call.attempts_started += 1
        run.number = call.attempts_started
        if self._on_event is not None:  # (no event object built for nobody)
            emit(self._on_event, AttemptStarted(call.id, candidate.route.provider,
                                                candidate.route.model_id, run.number,
                                                call.request.max_tokens))  # fmt: skip
        if remaining is not None:
            remaining /= max(1, routes_left)
        route, wanted = candidate.route, call.request.max_tokens
        limit = route.max_output_tokens
        return ProviderCall(
            request=call.request,
            route=route,
            images=call.images.for_route(route),
            max_tokens=min(wanted, limit) if wanted is not None and limit is not None else wanted,
            timeout=remaining,
        )

    def _failed(
        self,
        call: _Call,
        run: _Run,
        candidate: Candidate,
        error: ProviderError,
        started: float,
        *,
        partial_text: str | None = None,
        share_of_deadline: bool = False,
    ) -> None:
        if share_of_deadline and isinstance(error, ProviderTimeoutError):
            # This route used up its share of the call's time; what is left belongs to the
            # routes after it, so do not retry here.
            error.retryable = False
        self._health.record(candidate.route, error)
        run.errors.append(error)
        # A stream cut after tokens were generated was billed: estimate and record it.
        cost = None
        if partial_text:
            cost = self._accounting.partial_cost(candidate.route, call.shape(), partial_text)
        self._settle(call, run, candidate, cost, partial=True)
        run.attempts.append(
            Attempt(
                provider=candidate.route.provider,
                model_id=candidate.route.model_id,
                outcome="error",
                error_type=type(error).__name__,
                error=error.message,
                code=error.code,
                status_code=error.status_code,
                retry_after=error.retry_after,
                elapsed_s=time.perf_counter() - started,
                cost=cost,
                partial=bool(partial_text),
            )
        )
        logger.debug(
            "attempt %d on %s failed: %s", len(run.attempts), candidate.route.pinned,
            type(error).__name__,
        )  # fmt: skip

    def _settle(
        self, call: _Call, run: _Run, candidate: Candidate, cost: Cost | None, *, partial: bool
    ) -> None:
        """End the attempt's budget hold and record what it cost (if it cost anything)."""
        entry = None
        if cost is not None:
            run.spent += cost.total
            route = candidate.route
            entry = SpendEntry(route.provider, call.resolution.model.key, route.model_id,
                               cost.total, cost.source, partial=partial)  # fmt: skip
        reservation, run.reservation = run.reservation, None
        self._accounting.settle(reservation, entry)

    def _cancelled(self, call: _Call, run: _Run, candidate: Candidate) -> None:
        """The attempt was interrupted (cancelled task, Ctrl-C): give back what it held."""
        self._health.release(candidate.route)
        self._settle(call, run, candidate, None, partial=True)

    def _account_cancelled(
        self, call: _Call, run: _Run, candidate: Candidate, started: float
    ) -> None:
        """Record an attempt cancelled mid-request (a hedge that lost): the provider has likely
        processed, and billed, the prompt; the output is unknown."""
        cost = self._accounting.partial_cost(candidate.route, call.shape(), "")
        self._settle(call, run, candidate, cost, partial=True)
        run.attempts.append(
            Attempt(
                provider=candidate.route.provider,
                model_id=candidate.route.model_id,
                outcome="cancelled",
                elapsed_s=time.perf_counter() - started,
                cost=cost,
                partial=True,
            )
        )

    def _on_retry(self, run: _Run, candidate: Candidate) -> Callable[[BaseException, float], None]:
        def before_sleep(error: BaseException, wait: float) -> None:
            if isinstance(error, ProviderError):
                emit(self._on_event, AttemptFailed(run.call_id, candidate.route.provider,
                                                   candidate.route.model_id, run.number,
                                                   error, wait))  # fmt: skip

        return before_sleep

    def _give_up_route(
        self, run: _Run, candidate: Candidate, error: ProviderError, following: Candidate | None
    ) -> None:
        """After a route's last attempt failed: raise ``error`` if no fallback may follow."""
        route = candidate.route
        emit(self._on_event, AttemptFailed(run.call_id, route.provider, route.model_id,
                                           run.number, error, None))  # fmt: skip
        if not self._fallback(error):
            emit(self._on_event, CallFailed(run.call_id, error))
            raise error
        if following is not None:
            emit(self._on_event, FallbackTaken(run.call_id, route.pinned,
                                               following.route.pinned, error))  # fmt: skip
        if isinstance(error, AuthenticationError | PaymentRequiredError):
            logger.warning(
                "%s refused the credentials or account (%s); falling back to the next route",
                candidate.route.provider, type(error).__name__,
            )  # fmt: skip

    def _exhausted(self, call: _Call, run: _Run) -> AllProvidersFailedError:
        expired = run.deadline_hit or (
            call.deadline is not None and call.retry.clock() >= call.deadline
        )
        if not run.errors:
            # Only possible when the deadline passed before the first attempt could start.
            run.errors.append(ProviderTimeoutError("the call's timeout ran out before any attempt"))
        summary = "; ".join(
            f"{a.provider} {a.model_id}: {a.error_type}"
            + (f" (HTTP {a.status_code})" if a.status_code else "")
            for a in run.attempts
        )
        notes = []
        if run.all_open:
            notes.append("every route's circuit breaker was open, so only the route that "
                         "failed longest ago was tried")  # fmt: skip
        elif run.skipped:
            notes.append(f"skipped: {', '.join(run.skipped)}")
        note = f" ({'; '.join(notes)})" if notes else ""
        group: AllProvidersFailedError
        if expired:
            group = DeadlineExceededError(
                f"the call's {call.timeout:g} s timeout ran out after {len(run.attempts)} "
                f"attempt(s): {summary}{note}",
                run.errors, run.attempts,
            )  # fmt: skip
        else:
            group = AllProvidersFailedError(
                f"all {len(run.attempts)} attempt(s) failed: {summary}{note}", run.errors,
                run.attempts,
            )  # fmt: skip
        emit(self._on_event, CallFailed(call.id, group))
        return group

    def _estimates(
        self,
        request: ChatRequest,
        providers: Sequence[str] | None,
        expected_output_tokens: int | None,
    ) -> Estimates:
        resolution = self.catalog.resolve(request.model)
        wanted = list(self._providers) if providers is None else list(providers)
        unknown = [name for name in wanted if name not in self._providers]
        if unknown:
            raise ConfigurationError(
                f"provider {', '.join(map(repr, unknown))} is not configured on this client "
                f"(configured: {', '.join(self._providers) or 'none'})"
            )
        routes = [
            route
            for name in wanted
            for route in resolution.routes
            if route.provider == name and self._providers[name].serves(route)
        ]
        shape = request_shape(request, expected_output_tokens=expected_output_tokens)
        return estimate_shape(shape, routes, catalog=self.catalog)

    def estimate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Any = None,
        system: str | None = None,
        max_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> Estimates:
        """What a call would cost on each route this client can use, cheapest first (no I/O).

        Like :func:`llamaroute.estimate`, but over the client's own providers (and their
        regions) and catalog; the list's ``skipped`` attribute says which routes cannot serve
        the request and why.
        """
        request = ChatRequest.create(
            model,
            prompt,
            messages=list(messages) if messages is not None else None,  # type: ignore[arg-type]
            image=image,
            system=system,
            **({"max_tokens": max_tokens} if max_tokens is not None else {}),
        )
        return self._estimates(request, providers, expected_output_tokens)

    def _response(
        self, call: _Call, candidate: Candidate, result: ProviderResult, started: float, run: _Run
    ) -> ChatResponse:
        self._health.record(candidate.route, None)
        elapsed = time.perf_counter() - started
        route = candidate.route
        cost, price_check = self._accounting.answer_cost(route, result, call.images.count)
        self._settle(call, run, candidate, cost, partial=False)
        self._stats.observe(route.pinned, elapsed)
        run.attempts.append(
            Attempt(
                provider=route.provider,
                model_id=route.model_id,
                outcome="ok",
                elapsed_s=elapsed,
                cost=cost,
            )
        )
        details = dict(result.details)
        if result.served_model and result.served_model != route.model_id:
            details["served_model"] = result.served_model
        wanted = call.request.max_tokens
        if wanted is not None and route.max_output_tokens and wanted > route.max_output_tokens:
            details["max_tokens_capped_to"] = route.max_output_tokens
        if run.all_open:
            details["all_breakers_open"] = True
        if price_check is not None:
            details["price_check"] = price_check
        billed = [attempt.cost.total for attempt in run.attempts if attempt.cost is not None]
        response = ChatResponse(
            text=result.text,
            model=call.resolution.model.key,
            provider=route.provider,
            provider_model_id=route.model_id,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=cost,
            attempts=tuple(run.attempts),
            latency_s=elapsed,
            total_cost=None if cost is None else sum(billed, Decimal(0)),
            price_stale=price_check is not None,
            images=call.images.for_route(route),
            details=details,
        )
        if self._on_event is not None:
            emit(self._on_event, ResponseReady(call.id, run.number, response))
        return response

    def _interrupted(
        self,
        call: _Call,
        candidate: Candidate,
        error: ProviderError,
        text: str,
        run: _Run,
        started: float,
    ) -> StreamInterruptedError:
        self._failed(call, run, candidate, error, started, partial_text=text)
        interrupted = StreamInterruptedError(
            f"the stream failed after {len(text)} characters had been delivered: {error.message}",
            partial_text=text,
            attempts=run.attempts,
            provider=candidate.route.provider,
            model_id=candidate.route.model_id,
            status_code=error.status_code,
            code=error.code,
        )
        emit(self._on_event, CallFailed(call.id, interrupted))
        return interrupted


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ConfigurationError("timeout must be a positive number of seconds")
    return timeout


def _no_result(candidate: Candidate) -> MalformedResponseError:
    # A provider stream must end with a result; one that does not is a bug we report, typed.
    return MalformedResponseError(
        "the provider stream ended without a final result",
        provider=candidate.route.provider,
        model_id=candidate.route.model_id,
    )


class _bounded:
    """``asyncio.timeout`` for one attempt, turning its ``TimeoutError`` into a typed error."""

    def __init__(self, call: ProviderCall, candidate: Candidate) -> None:
        # No deadline, no timer: asyncio.timeout(None) would never fire, only cost its upkeep.
        self._timeout = None if call.timeout is None else asyncio.timeout(call.timeout)
        self._candidate = candidate

    async def __aenter__(self) -> None:
        if self._timeout is not None:
            await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timeout is None:
            return
        try:
            await self._timeout.__aexit__(exc_type, exc, traceback)
        except TimeoutError as error:
            raise ProviderTimeoutError(
                "the call's timeout ran out during this attempt",
                provider=self._candidate.route.provider,
                model_id=self._candidate.route.model_id,
                code="deadline",
            ) from error
