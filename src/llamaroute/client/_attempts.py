"""The bookkeeping of attempts, with no I/O: admitting one (deadline, breaker, rate limits,
budget), and recording how it ended (breakers, ledger, latency, calls in flight, rate limits,
events, the ``Attempt`` record).

:class:`AttemptBook` is the half of the routing driver (:mod:`._driver`) that keeps the books;
the driver decides what to try next. Every ``Attempt`` a call reports is built by
:meth:`AttemptBook.record`, and nowhere else.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from decimal import Decimal

from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ContextWindowExceededError,
    PaymentRequiredError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    StreamInterruptedError,
)
from .._records import Attempt, Cost, Outcome, trusted
from ..catalog import Price, Route
from ..money import Accounting, SpendEntry
from ..providers import ProviderCall
from ..routing import Candidate, Health, Hold, LatencyStats, Limit, RateLimits, Refusal
from ._call import Answer, Call, Run, Ticket
from ._events import AttemptFailed, AttemptStarted, BudgetRefused, EventHandler, emit

__all__ = [
    "AttemptBook",
    "Expired",
    "FallbackRule",
    "OverBudget",
    "OverLimit",
    "RateLimited",
    "Skip",
    "Throttled",
    "default_fallback",
]

logger = logging.getLogger("llamaroute")

FallbackRule = Callable[[ProviderError], bool]


def default_fallback(error: ProviderError) -> bool:
    """Whether another route may succeed where this error happened.

    Yes for connection failures, timeouts, rate limits, server errors, a model that is not
    available, malformed responses and authentication or billing problems (a misconfigured
    provider must not take the app down). No for a request the provider rejected as invalid:
    the next provider would refuse it too, except a prompt too long for the route's context
    window (:class:`ContextWindowExceededError`), which a route with a larger window can take.
    A stream that failed after text reached the caller never falls back (that would splice two
    answers).
    """
    if isinstance(error, ContextWindowExceededError):
        return True
    return not isinstance(error, BadRequestError | StreamInterruptedError)


class Skip(Exception):
    """A breaker or the budget refused the route just before sending: try the next route."""


class OverBudget(Skip):
    """The budget (or ``max_cost``) refused the route's reservation just before sending."""

    def __init__(self, refusal: BudgetExceededError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class RateLimited(Skip):
    """The deployment is at its ``rpm``/``tpm`` limit and another route is left: skip it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Throttled(Exception):
    """The call's last route is at its limit, and a slot frees within the call's time: wait
    ``seconds`` (a :class:`~._driver.Sleep`), then ask again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class OverLimit(Exception):
    """The call's last route is at its limit and no slot frees within the call's time:
    ``error`` (a :class:`RateLimitError`, no request sent) ends the route."""

    def __init__(self, error: RateLimitError) -> None:
        super().__init__(str(error))
        self.error = error


class Expired(Exception):
    """The call's deadline passed before the next attempt could start."""


class AttemptBook:
    """Admits attempts and keeps their books, for one client (thread-safe where it must be:
    the breakers, the ledger and the latency stats lock themselves)."""

    #: Whether attempts in flight are counted per candidate (for ``least_busy``): only when
    #: there is a choice to make, more than one deployment, as the count takes a lock.
    count_busy = False

    def __init__(
        self,
        health: Health,
        accounting: Accounting,
        stats: LatencyStats,
        on_event: EventHandler | None,
        fallback: FallbackRule,
        limits: RateLimits,
    ) -> None:
        self.health = health
        self.accounting = accounting
        self.stats = stats
        self.on_event = on_event
        self.fallback = fallback
        self.limits = limits
        #: Names this client's calls in the spend ledger: ``<call_prefix>-<call id>`` is
        #: unique across a fleet (random per client; the call id counts the client's calls),
        #: so a shared ledger writes each attempt once however often the write is retried.
        self.call_prefix = os.urandom(6).hex()

    # --- before an attempt --------------------------------------------------------------------

    def order(self, call: Call, run: Run) -> list[tuple[Candidate, bool]]:
        """The candidates to try, past open breakers; ``True`` marks a forced try (one that
        no breaker may stop: a breaker protects by diverting, and there is nowhere to go)."""
        candidates = call.candidates
        if len(candidates) == 1:
            return [(candidates[0], True)]
        shut = self.health.open_routes(candidates)
        if not shut:  # the usual case: every breaker closed
            return [(candidate, False) for candidate in candidates]
        closed = {candidate.key for candidate in shut}
        ready = [(c, False) for c in candidates if c.key not in closed]
        run.skipped.extend(f"{key} (circuit open)" for key in sorted(closed))
        if ready:
            return ready
        # Every route is open: try the one that failed longest ago rather than fail untried.
        run.all_open = True
        oldest = self.health.longest_failed(candidates)
        logger.warning("every route's circuit breaker is open; trying %s anyway", oldest.key)
        return [(oldest, True)]

    def admit(
        self, call: Call, run: Run, candidate: Candidate, forced: bool, routes_left: int
    ) -> tuple[Ticket, ProviderCall]:
        """Admit one attempt on ``candidate`` and build what the provider gets.

        Raises :class:`Expired` when the deadline has passed and :class:`Skip` when the
        route's breaker, its deployment's rate limits or the budget refuse it. A breaker is
        asked only while another route is left to divert to: the call's last route is tried
        (and retried) whatever its breaker says. A deployment at its limit is skipped while
        another route is left; on the last route, :class:`Throttled` says how long to wait
        for a slot when that fits in the call's time, else :class:`OverLimit`. With a
        deadline, the attempt gets an equal share of the time left among the routes not yet
        tried, so that a provider that never answers cannot starve the fallback.
        """
        remaining = call.remaining()
        if remaining is not None and remaining <= 0:
            raise Expired
        if not forced and routes_left > 1 and not self.health.admit(candidate):
            raise Skip
        provider = candidate.provider
        hold = None
        if provider.rpm is not None or provider.tpm is not None:  # (two reads when unlimited)
            hold = self._take_slot(call, candidate, forced or routes_left <= 1, remaining)
        try:
            reservation = self._reserve(call, run, candidate)
        except OverBudget:
            if hold is not None:
                self.limits.cancel(provider.deployment, hold)
            raise
        # The reserved price goes to the provider as a ceiling (OpenRouter's
        # provider.max_price), so that a price that moved since the table was read cannot bill
        # more than was reserved: such a request is refused, and the call falls back.
        cap = None
        if reservation is not None:
            cap = self.accounting.price(candidate.route, deployment=provider.deployment)
        call.attempts_started += 1
        number = run.numbers[candidate.key] = call.attempts_started
        if self.count_busy:
            self.stats.started(candidate.key)
        if self.on_event is not None:  # (no event object built for nobody)
            route = candidate.route
            emit(self.on_event, AttemptStarted(call.id, route.provider, route.model_id, number,
                                               call.request.max_tokens))  # fmt: skip
        if remaining is not None:
            remaining /= max(1, routes_left)
        ticket = Ticket(number, reservation, hold)
        return ticket, _provider_call(call, candidate.route, remaining, cap)

    def _take_slot(
        self, call: Call, candidate: Candidate, last: bool, remaining: float | None
    ) -> Hold:
        """Count the attempt against its deployment's ``rpm``/``tpm``, or say why not."""
        provider = candidate.provider
        tokens = 0
        if provider.tpm is not None:
            # The prompt's ceiling (its UTF-8 bytes: no tokenizer counts more, and it costs a
            # fraction of the fast estimate's 40 us) plus every output token it may use (what
            # Bedrock's own quota counts): a limit must not let through what the provider
            # would refuse. The real usage replaces it after the answer.
            wanted, cap = call.request.max_tokens, candidate.route.max_output_tokens
            output = min(wanted, cap) if wanted is not None and cap is not None else wanted
            tokens = call.ceiling() + (output or 0)
        got = self.limits.acquire(provider.deployment, Limit(provider.rpm, provider.tpm), tokens)
        if not isinstance(got, Refusal):
            return got
        if not last:
            self.health.release(candidate)  # the half-open breaker's probe admit() reserved
            raise RateLimited(f"{candidate.key} ({got.reason})")
        if got.wait < math.inf and (remaining is None or got.wait < remaining):
            raise Throttled(got.wait)
        route = candidate.route
        when = "ever fits" if got.wait == math.inf else f"frees in {got.wait:.1f} s"
        within = "" if remaining is None else f" (the call has {max(remaining, 0):.1f} s left)"
        error = RateLimitError(
            f"deployment {provider.deployment!r} is at its limit ({got.reason}) and no slot "
            f"{when}{within}; no request was sent (add a deployment, raise its limit or "
            "retry later)",
            provider=route.provider, model_id=route.model_id, code="local_rate_limit",
            retry_after=None if got.wait == math.inf else got.wait, retryable=False,
        )  # fmt: skip
        raise OverLimit(error)

    def _reserve(self, call: Call, run: Run, candidate: Candidate) -> str | None:
        """Hold the attempt's worst case against the budget and ``max_cost`` (if any)."""
        if not self.accounting.limited(call.max_cost):
            return None
        worst = self.accounting.worst_case(call.shape(), candidate.route, call.ceiling(),
                                           deployment=candidate.deployment)  # fmt: skip
        try:
            return self.accounting.reserve(candidate.route, worst, call.max_cost, run.spent)
        except BudgetExceededError as refusal:
            # Other calls took the budget meanwhile, or this call's own spending did.
            self.health.release(candidate)
            emit(self.on_event, BudgetRefused(call.id, candidate.route.pinned, worst,
                                              self.accounting.ledger.remaining()))  # fmt: skip
            raise OverBudget(refusal) from None

    # --- after an attempt ---------------------------------------------------------------------

    def record(
        self,
        run: Run,
        candidate: Candidate,
        outcome: Outcome,
        started: float,
        *,
        cost: Cost | None = None,
        error: ProviderError | None = None,
        partial: bool = False,
    ) -> float:
        """Add the attempt to the call's record (the one place an ``Attempt`` is built);
        returns its elapsed seconds."""
        elapsed = time.perf_counter() - started
        route = candidate.route
        if error is None:
            # Every field comes from the validated route and deployment, the clock and the
            # cost this client built: not validated again.
            attempt = trusted(
                Attempt,
                {"provider": route.provider, "model_id": route.model_id, "outcome": outcome,
                 "error_type": None, "error": None, "code": None, "status_code": None,
                 "retry_after": None, "elapsed_s": elapsed, "cost": cost, "partial": partial,
                 "deployment": candidate.provider.deployment},
                _GIVEN,
            )  # fmt: skip
            run.attempts.append(attempt)
            return elapsed
        run.attempts.append(
            Attempt(
                provider=route.provider,
                model_id=route.model_id,
                outcome=outcome,
                elapsed_s=elapsed,
                cost=cost,
                partial=partial,
                deployment=candidate.provider.deployment,
                # The error's fields are the provider's (a status, a code, a wait): checked.
                error_type=type(error).__name__,
                error=error.message,
                code=error.code,
                status_code=error.status_code,
                retry_after=error.retry_after,
            )
        )
        return elapsed

    def failed(
        self,
        call: Call,
        run: Run,
        candidate: Candidate,
        ticket: Ticket,
        error: ProviderError,
        started: float,
        *,
        partial_text: str | None = None,
        share_of_deadline: bool = False,
        ref: str | None = None,
    ) -> None:
        """An attempt ended with ``error``: tell the breaker, bill what was likely billed (a
        stream cut after text was generated), and record it."""
        if share_of_deadline and isinstance(error, ProviderTimeoutError):
            # This route used up its share of the call's time; what is left belongs to the
            # routes after it, so do not retry here.
            error.retryable = False
        self.health.record(candidate, error)
        if self.count_busy:
            self.stats.ended(candidate.key)
        run.errors.append(error)
        cost = None
        if partial_text or _reached_the_model(error):
            # Billed, most likely: the prompt (and any text sent) went through the model, but
            # no usage came back. Recorded as an estimate, as a cut stream is.
            text = partial_text or ""
            cost = self.accounting.partial_cost(candidate.route, call.shape(), text,
                                                prompt_ceiling=call.ceiling(),
                                                deployment=candidate.deployment)  # fmt: skip
        self.settle(call, run, candidate, ticket.reservation, cost, partial=True, ref=ref,
                    attempt=ticket.number)  # fmt: skip
        self.record(run, candidate, "error", started, cost=cost, error=error,
                    partial=bool(partial_text))  # fmt: skip
        logger.debug("attempt %d on %s failed: %s", ticket.number, candidate.route.pinned,
                     type(error).__name__)  # fmt: skip

    def cancelled(self, call: Call, run: Run, candidate: Candidate, ticket: Ticket) -> None:
        """The attempt was interrupted (cancelled task, Ctrl-C): give back what it held."""
        self.health.release(candidate)
        if self.count_busy:
            self.stats.ended(candidate.key)
        self.settle(call, run, candidate, ticket.reservation, None, partial=True,
                    attempt=ticket.number)  # fmt: skip

    def abandoned(self, call: Call, run: Run, answer: Answer, text: str) -> None:
        """The caller left a stream before its end (``break``, ``close()``, garbage
        collection, a cancelled task): the route answered, and what it was likely billed, the
        prompt and the text received, is recorded as an estimate in place of the
        reservation."""
        candidate = answer.candidate
        self.health.record(candidate, None)
        if self.count_busy:
            self.stats.ended(candidate.key)
        note = f"the stream was abandoned after {len(text)} characters: prompt and text estimated"
        cost = self.accounting.partial_cost(candidate.route, call.shape(), text, note,
                                            prompt_ceiling=call.ceiling(),
                                            deployment=candidate.deployment)  # fmt: skip
        self.settle(call, run, candidate, answer.ticket.reservation, cost, partial=True,
                    ref=answer.ref, attempt=answer.ticket.number)  # fmt: skip
        self.record(run, candidate, "cancelled", answer.started, cost=cost, partial=True)
        logger.debug("stream on %s abandoned by the caller", candidate.route.pinned)

    def cut_off(self, call: Call, run: Run, candidate: Candidate, started: float) -> None:
        """Record an attempt cancelled mid-request (a hedge that lost): the provider has likely
        processed, and billed, the prompt; the output is unknown. (Its books on the breaker,
        in-flight count and limits were closed by :meth:`cancelled`.)"""
        cost = self.accounting.partial_cost(candidate.route, call.shape(), "",
                                            prompt_ceiling=call.ceiling(),
                                            deployment=candidate.deployment)  # fmt: skip
        self.settle(call, run, candidate, None, cost, partial=True,
                    attempt=run.numbers.get(candidate.key))  # fmt: skip
        self.record(run, candidate, "cancelled", started, cost=cost, partial=True)

    def settle(
        self,
        call: Call,
        run: Run,
        candidate: Candidate,
        reservation: str | None,
        cost: Cost | None,
        *,
        partial: bool,
        ref: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """End an attempt's budget hold and record what it cost (if it cost anything);
        ``ref`` is the provider's id for the attempt, kept with an estimate so that the
        provider's own figure can replace it later (``Client.reconcile_generations``).
        ``attempt`` is its call-wide number: with the call's fleet-wide id, it keys the
        attempt's record in a shared ledger."""
        entry = None
        if cost is not None:
            run.spent += cost.total
            route = candidate.route
            entry = SpendEntry(route.provider, call.resolution.model.key, route.model_id,
                               cost.total, cost.source, partial=partial,
                               reported=cost.reported, table=cost.table,
                               ref=ref if cost.source == "estimate" else None,
                               call_id=f"{self.call_prefix}-{call.id}",
                               attempt=attempt)  # fmt: skip
        self.accounting.settle(reservation, entry)

    def on_retry(self, run: Run, candidate: Candidate) -> Callable[[BaseException, float], None]:
        """The retry loop's ``before_sleep``: the failed attempt's event, with the wait."""
        route, key = candidate.route, candidate.key

        def before_sleep(error: BaseException, wait: float) -> None:
            if isinstance(error, ProviderError):
                number = run.numbers[key]
                failed = AttemptFailed(run.call_id, route.provider, route.model_id, number,
                                       error, wait)  # fmt: skip
                emit(self.on_event, failed)

        return before_sleep

    def warn_misconfigured(self, candidate: Candidate, error: ProviderError) -> None:
        """A provider refused the credentials or the account: say so, once per failure."""
        if isinstance(error, AuthenticationError | PaymentRequiredError):
            logger.warning(
                "%s refused the credentials or account (%s); falling back to the next route",
                candidate.route.provider, type(error).__name__,
            )  # fmt: skip


#: The fields an attempt without an error is given (the error's keep their defaults).
_GIVEN = frozenset(("provider", "model_id", "outcome", "elapsed_s", "cost", "partial",
                    "deployment"))  # fmt: skip

#: Timeout codes that mean the request never reached the provider (nothing was billed).
_NOT_SENT = frozenset({"ConnectTimeout", "ConnectTimeoutError", "PoolTimeout", "connect_timeout"})


def _reached_the_model(error: ProviderError) -> bool:
    """Whether a failed attempt was likely billed though it brought no usage: a timeout after
    the request was sent (a read timeout, a gateway's 504, the call's deadline mid-answer)."""
    return isinstance(error, ProviderTimeoutError) and error.code not in _NOT_SENT


def _provider_call(
    call: Call, route: Route, timeout: float | None, cap: Price | None
) -> ProviderCall:
    wanted, limit = call.request.max_tokens, route.max_output_tokens
    return ProviderCall(
        request=call.request,
        route=route,
        images=call.images.for_route(route),
        max_tokens=min(wanted, limit) if wanted is not None and limit is not None else wanted,
        timeout=timeout,
        max_price=cap,
    )


def spent_total(run: Run) -> Decimal:
    """What every billed attempt of the call cost."""
    return sum((a.cost.total for a in run.attempts if a.cost is not None), Decimal(0))
