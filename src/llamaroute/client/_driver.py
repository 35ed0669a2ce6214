"""The routing loop, written once and free of I/O: fallback over the planned routes, retries on
each, hedging, and the error that ends a call.

The loop is a generator that *yields actions* and is sent their outcomes, the shape of httpx's
auth flow: ``Client`` and ``AsyncClient`` each run it with a short loop that only does what an
action asks (send an attempt, sleep, fetch the images, race two routes) and hands the outcome
back, or throws the exception in. Everything else, what to try, when to give up, what to
record, happens here, once for all four public methods::

    run, steps = driver.start(call)
    action = next(steps)
    while True:                                # the sync shell; the async one awaits instead
        outcome = do(action)                   # provider.chat / time.sleep / images.fetch
        action = steps.send(outcome)           # or steps.throw(error); StopIteration: done
    return driver.response(call, run, answer, answer.reply)   # answer: StopIteration's value
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, get_args

from .._exceptions import (
    AllProvidersFailedError,
    BudgetExceededError,
    ContextWindowExceededError,
    DeadlineExceededError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    StreamInterruptedError,
)
from .._records import FinishReason, Usage, trusted
from .._response import ChatResponse
from .._tools import ToolCall
from ..providers import ProviderCall, ProviderResult
from ..routing import Candidate, HedgePolicy, uses_tools
from ._attempts import (
    AttemptBook,
    Expired,
    OverBudget,
    OverLimit,
    RateLimited,
    Skip,
    Throttled,
    spent_total,
)
from ._call import Answer, Call, Run

if TYPE_CHECKING:
    from tenacity import AttemptManager

from ._events import AttemptFailed, CallFailed, FallbackTaken, HedgeStarted, ResponseReady, emit

__all__ = ["Action", "Driver", "FetchImages", "Race", "RaceOutcome", "Send", "Sleep", "Steps"]


class Send(NamedTuple):  # a tuple, like Sleep: built on every attempt
    """Send one attempt: call the provider (``chat``, or open the stream and read its first
    item) and send back the reply, or throw the exception in."""

    candidate: Candidate
    call: ProviderCall


class Sleep(NamedTuple):
    """Wait before the next attempt on the same route (a retry's backoff, or a rate limit's
    slot to free)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class FetchImages:
    """Download the call's URL images now: the next route cannot take URLs."""


@dataclass(frozen=True, slots=True)
class Race:
    """Hedging (async only): run ``first``, and ``second`` too if ``first`` has not answered
    after ``delay`` seconds; send back a :class:`RaceOutcome`."""

    first: Steps
    second: Steps
    candidates: tuple[Candidate, Candidate]
    delay: float


@dataclass(slots=True)
class RaceOutcome:
    """How a race ended: the winner's answer (if any), the sides that failed and the sides cut
    off when the other won (with when they started), and whether the second side ran."""

    winner: Answer | None = None
    failed: list[tuple[Candidate, BaseException]] = field(default_factory=list)
    cut: list[tuple[Candidate, float]] = field(default_factory=list)
    hedged: bool = False


Action: TypeAlias = Send | Sleep | FetchImages | Race
Steps: TypeAlias = Generator[Action, Any, Answer]

_FETCH = FetchImages()
#: The values a response's ``finish_reason`` may take.
_FINISH_REASONS = frozenset((*get_args(FinishReason), None))
#: The fields a response is given (``parsed`` is set later, for ``response_format``).
_GIVEN = frozenset(name for name in ChatResponse.model_fields if name != "parsed")


class Driver(AttemptBook):
    """The routing loop over one client's state (breakers, accounting, stats, events).

    :meth:`start` gives the steps; :meth:`response` and :meth:`interrupted` end a call.
    """

    hedge: HedgePolicy | None = None
    _calls = 0
    _hedges = 0

    # --- fallback over routes -------------------------------------------------------------

    def start(self, call: Call, *, hedge: bool = False) -> tuple[Run, Steps]:
        """The call's record, and the steps that end with the answering route's
        :class:`Answer` (a result, or an opened stream and its first item) or raise the error
        that ends the call. The shells then finish with :meth:`response`, or for a stream
        read the rest and finish with :meth:`response` or :meth:`interrupted`. ``hedge``: the
        async client may race the first two routes (:class:`Race`)."""
        run = Run(call.id)
        return run, self._fallback(call, run, hedge=hedge)

    def _fallback(self, call: Call, run: Run, *, hedge: bool) -> Steps:
        order = self.order(call, run)
        start = 0
        if hedge:
            self._calls += 1
            if self._may_hedge(order):
                (first, _), (second, _) = order[0], order[1]
                outcome: RaceOutcome = yield Race(
                    self._route(call, run, first, False, len(order)),
                    self._route(call, run, second, False, len(order) - 1),
                    (first, second), self.hedge.wait_for(first.key, self.stats),  # type: ignore[union-attr]
                )  # fmt: skip
                for candidate, started in outcome.cut:
                    self.cut_off(call, run, candidate, started)
                # A first route that failed before the delay never raced: the second is next.
                start = 2 if outcome.hedged else 1
                routes_left = outcome.winner is None and start < len(order)
                following = order[start][0] if routes_left else None
                concluded = [self._conclude(run, candidate, error, following)
                             for candidate, error in outcome.failed]  # fmt: skip
                if outcome.winner is not None:
                    return outcome.winner
                if not all(concluded):  # the deadline passed: no route may start
                    raise self.exhausted(call, run)
        for index in range(start, len(order)):
            candidate, forced = order[index]
            if run.overflowed is not None and smaller_window(run, candidate):  # (no call else)
                continue
            try:
                return (yield from self._route(call, run, candidate, forced, len(order) - index))
            except (Skip, Expired, OverLimit, ProviderError) as error:
                following = order[index + 1][0] if index + 1 < len(order) else None
                if not self._conclude(run, candidate, error, following):
                    break
        raise self.exhausted(call, run)

    def _conclude(
        self, run: Run, candidate: Candidate, error: BaseException, following: Candidate | None
    ) -> bool:
        """After a route ended without an answer: whether the call may go on to the next
        route. Raises ``error`` when it must end the call as it is (no fallback allowed)."""
        if isinstance(error, OverBudget):
            run.over_budget.append(str(error.refusal))
            return True
        if isinstance(error, RateLimited):
            run.skipped.append(error.reason)
            return True
        if isinstance(error, Skip):
            run.skipped.append(f"{candidate.key} (circuit open)")
            return True
        if isinstance(error, OverLimit):
            run.over_limit = error.error
            run.errors.append(error.error)
            return True
        if isinstance(error, Expired):
            run.deadline_hit = True
            return False
        if not isinstance(error, ProviderError):
            raise error
        route = candidate.route
        number = run.numbers.get(candidate.key, 0)
        emit(self.on_event, AttemptFailed(run.call_id, route.provider, route.model_id, number,
                                          error, None))  # fmt: skip
        largest = 0 if run.overflowed is None else run.overflowed[1]
        if isinstance(error, ContextWindowExceededError) and route.context_window > largest:
            run.overflowed = (route.pinned, route.context_window)
        if not self.fallback(error):
            error.attempts = tuple(run.attempts)  # it ends the call: it carries the call's record
            emit(self.on_event, CallFailed(run.call_id, error))
            raise error
        if following is not None:
            emit(self.on_event, FallbackTaken(run.call_id, candidate.key, following.key,
                                              error))  # fmt: skip
            self.warn_misconfigured(candidate, error)
        return True

    def _may_hedge(self, order: list[tuple[Candidate, bool]]) -> bool:
        if self.hedge is None or len(order) < 2 or order[0][1]:
            return False
        return self._hedges + 1 <= self.hedge.max_share * self._calls

    def hedge_started(self, call: Call, race: Race) -> None:
        """The shell started the race's second side."""
        self._hedges += 1
        first, second = race.candidates
        emit(self.on_event, HedgeStarted(call.id, first.key, second.key, race.delay))

    # --- retries on one route -------------------------------------------------------------

    def _route(
        self, call: Call, run: Run, candidate: Candidate, forced: bool, routes_left: int
    ) -> Steps:
        """Every attempt on one route: the answer, or the last error."""
        if call.images.needs_fetch(candidate.route):
            try:
                yield _FETCH
            except ProviderTimeoutError as error:  # the call's time ran out while fetching
                run.errors.append(error)
                raise Expired from None
        # One loop for every attempt on the route. The first runs bare (RetryPolicy.attempt_loop's
        # rule: nearly every call ends there, and a retry loop would cost more than the
        # attempt's books); after a retryable failure, tenacity's loop decides on each failure
        # (replayed into its attempt as a `with` block would) and says how long to wait.
        retries: Iterator[AttemptManager] | None = None
        attempt: AttemptManager | None = None
        waits: list[float] = []  # tenacity notes each wait here; the shell does the sleeping
        while True:
            try:
                ticket, provider_call = self.admit(call, run, candidate, forced, routes_left)
            except Throttled as throttled:  # the last route, at its limit: wait for a slot
                yield Sleep(throttled.seconds)
                continue
            started = time.perf_counter()
            try:
                reply = yield Send(candidate, provider_call)
            except ProviderError as error:
                self.failed(call, run, candidate, ticket, error, started,
                            share_of_deadline=routes_left > 1)  # fmt: skip
                if retries is None:
                    if not error.retryable:
                        raise
                    retries = call.retry.retries_after(
                        error, call.deadline, run.hit_deadline, self.on_retry(run, candidate),
                        sleep=waits.append,
                    )  # fmt: skip
                else:
                    assert attempt is not None
                    attempt.__exit__(type(error), error, error.__traceback__)  # its outcome
                attempt = next(retries)  # raises the last error when tenacity gives up
                attempt.__enter__()
                if waits:
                    yield Sleep(waits.pop())
                continue
            except BaseException:
                self.cancelled(call, run, candidate, ticket)
                raise
            if call.streaming:
                elapsed = time.perf_counter() - started
                self.stats.observe(candidate.key, elapsed, first_token=True)
            return Answer(candidate, ticket, reply, started, provider_call)

    # --- how a call ends ------------------------------------------------------------------

    def response(
        self, call: Call, run: Run, answer: Answer, result: ProviderResult
    ) -> ChatResponse:
        """The successful attempt's books, and the ``ChatResponse`` built from its result."""
        candidate = answer.candidate
        route, deployment = candidate.route, candidate.provider.deployment
        self.health.record(candidate, None)
        if self.count_busy:
            self.stats.ended(candidate.key)
        usage_missing = result.details.get("usage_missing")
        hold = answer.ticket.hold
        if hold is not None and candidate.provider.tpm is not None and not usage_missing:
            # The real usage replaces the estimate (without usage, the estimate stands).
            self.limits.settle(deployment, hold, result.usage.total_tokens)
        price = self.accounting.table_price(route, deployment=deployment)
        if result.cost is None and usage_missing:
            # No usage came back (a stream without its usage chunk): never priced as 0 tokens,
            # but as an estimate of the prompt and the text, and marked so.
            note = "the provider sent no usage: prompt and text estimated"
            cost = self.accounting.partial_cost(route, call.shape(), result.text, note,
                                                prompt_ceiling=call.ceiling(),
                                                deployment=deployment)  # fmt: skip
            price_check = None
        else:
            cost, price_check = self.accounting.answer_cost(
                route, result.usage, result.cost, call.images.count, problem=result.cost_problem,
                price=price,
            )  # fmt: skip
        self.settle(call, run, candidate, answer.ticket.reservation, cost, partial=False,
                    attempt=answer.ticket.number)  # fmt: skip
        elapsed = self.record(run, candidate, "ok", answer.started, cost=cost)
        self.stats.observe(candidate.key, elapsed)
        details = dict(result.details)
        if result.served_model and result.served_model != route.model_id:
            details["served_model"] = result.served_model
        wanted = call.request.max_tokens
        if wanted is not None and route.max_output_tokens and wanted > route.max_output_tokens:
            details["max_tokens_capped_to"] = route.max_output_tokens
        if run.all_open:
            details["all_breakers_open"] = True
        if run.skipped:  # routes passed over while the call ran: an open breaker, a rate limit
            details["skipped"] = list(run.skipped)
        if price_check is not None:
            details["price_check"] = price_check
        if result.cost_problem is not None:
            details["reported_cost_rejected"] = result.cost_problem
        if call.image_policy is not None:
            details["image_policy"] = dict(call.image_policy)
        if call.skipped and (call.too_long or uses_tools(call.request)):
            # Routes left out before sending (a route that takes no tools, or streams none;
            # a context window the prompt does not fit).
            details["skipped_routes"] = dict(call.skipped)
        if run.smaller_windows:
            # Routes left out after a route's provider said the prompt is over its window.
            details.setdefault("skipped_routes", {}).update(run.smaller_windows)
        attempts = tuple(run.attempts)
        total_cost = None if cost is None else cost.total if len(attempts) == 1 else (
            spent_total(run)
        )  # fmt: skip
        text, usage, finish, tool_calls = (result.text, result.usage, result.finish_reason,
                                           result.tool_calls)  # fmt: skip
        # Every field but the provider's four comes from this client's own validated records;
        # when those four are of their types too (as every built-in provider's are), the
        # response is not validated again. Anything else (a provider of the user's that
        # returns a list, a dict...) goes through validation, as ever.
        fields = {
            "text": text, "model": call.resolution.model.key, "provider": route.provider,
            "provider_model_id": route.model_id, "finish_reason": finish, "usage": usage,
            "cost": cost, "attempts": attempts, "latency_s": elapsed, "total_cost": total_cost,
            "price_stale": price_check is not None,
            "price_checked": None if price is None else price.checked,
            "price_age_days": self.accounting.catalog.price_age(price),
            "images": call.images.for_route(route), "details": details, "parsed": None,
            "tool_calls": tool_calls,
        }  # fmt: skip
        if (type(text) is str and finish in _FINISH_REASONS and isinstance(usage, Usage)
                and type(tool_calls) is tuple
                and (not tool_calls or all(type(c) is ToolCall for c in tool_calls))):  # fmt: skip
            response = trusted(ChatResponse, fields, _GIVEN)
        else:
            del fields["parsed"]
            response = ChatResponse(**fields)
        if self.on_event is not None:
            emit(self.on_event, ResponseReady(call.id, answer.ticket.number, response))
        return response

    def interrupted(
        self, call: Call, run: Run, answer: Answer, error: ProviderError, text: str
    ) -> StreamInterruptedError:
        """A stream failed after ``text`` reached the caller: the error to raise (never a
        fallback, which would splice two answers)."""
        candidate = answer.candidate
        self.failed(call, run, candidate, answer.ticket, error, answer.started, partial_text=text,
                    ref=answer.ref)  # fmt: skip
        interrupted = StreamInterruptedError(
            f"the stream failed after {len(text)} characters had been delivered: {error.message}",
            partial_text=text,
            attempts=run.attempts,
            provider=candidate.route.provider,
            model_id=candidate.route.model_id,
            status_code=error.status_code,
            code=error.code,
        )
        emit(self.on_event, CallFailed(call.id, interrupted))
        return interrupted

    def exhausted(
        self, call: Call, run: Run
    ) -> (
        AllProvidersFailedError | BudgetExceededError | ContextWindowExceededError | RateLimitError
    ):
        """The error for a call that ran out of routes (or of time), listing every attempt. If
        the budget refused a route's reservation, that is what ended the call: a
        :class:`BudgetExceededError`, whatever else happened. If nothing was sent because
        every route was at its rate limit with no slot freeing in time: that
        :class:`RateLimitError` (code ``local_rate_limit``, with ``retry_after``). If every
        route tried said the prompt is over its window, a :class:`ContextWindowExceededError`."""
        if run.over_budget:
            tried = f" after {len(run.attempts)} attempt(s)" if run.attempts else ""
            refused = BudgetExceededError(
                f"the budget refused the call{tried}: " + "; ".join(run.over_budget)
                + " (raise the budget or max_cost, lower max_tokens, or retry later)",
                attempts=run.attempts,
            )  # fmt: skip
            emit(self.on_event, CallFailed(call.id, refused))
            return refused
        if run.over_limit is not None and not run.attempts:
            limited = run.over_limit
            if run.skipped:
                limited.message += f" (skipped: {', '.join(run.skipped)})"
                limited.args = (limited.message,)
            limited.attempts = ()
            emit(self.on_event, CallFailed(call.id, limited))
            return limited
        expired = run.deadline_hit or (
            call.deadline is not None and call.retry.clock() >= call.deadline
        )
        if not run.errors:
            # Only possible when the deadline passed before the first attempt could start.
            run.errors.append(ProviderTimeoutError("the call's timeout ran out before any attempt"))
        # Each attempt in plain words: where, what kind of failure, and the provider's own
        # reason (already free of secrets), so the cause is in the message, not only inside
        # the group.
        causes = [
            f"{a.provider} {a.model_id}: {a.error_type}"
            + (f" (HTTP {a.status_code})" if a.status_code else "")
            + (f": {a.error}" if a.error else "")
            for a in run.attempts
        ]
        summary = "; ".join(
            cause if times == 1 else f"{cause} ({times} attempts)" for cause, times in _runs(causes)
        )
        notes = []
        if run.all_open:
            notes.append("every route's circuit breaker was open, so only the route that "
                         "failed longest ago was tried")  # fmt: skip
        elif run.skipped:
            notes.append(f"skipped: {', '.join(run.skipped)}")
        note = f" ({'; '.join(notes)})" if notes else ""
        if not expired and all(isinstance(e, ContextWindowExceededError) for e in run.errors):
            # Every route tried said the prompt is over its window: one typed error, as when
            # the plan finds no window before sending, with the call's record.
            last = run.errors[-1]
            overflow = ContextWindowExceededError(
                f"the prompt is over the context window of every route tried: {summary}{note} "
                "(shorten the prompt or the conversation, lower max_tokens, or pick a model or "
                "provider with a larger window)",
                provider=last.provider, model_id=last.model_id, status_code=last.status_code,
                code=last.code,
            )  # fmt: skip
            overflow.attempts = tuple(run.attempts)
            overflow.__cause__ = last
            emit(self.on_event, CallFailed(call.id, overflow))
            return overflow
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
        emit(self.on_event, CallFailed(call.id, group))
        return group


def smaller_window(run: Run, candidate: Candidate) -> bool:
    """Whether to leave ``candidate`` out because a route with a larger context window already
    said the prompt is over it (noted in ``run``). A window no smaller is still tried: the
    catalog's window is the model's, and an endpoint may serve less (OpenRouter's upstreams
    differ, an Ollama server runs the num_ctx it was given), so an equal one may still fit."""
    if run.overflowed is None:
        return False
    failed, window = run.overflowed
    route = candidate.route
    if route.context_window >= window:
        return False
    why = (f"context window is {route.context_window:,}, smaller than the {window:,} of "
           f"{failed}, which the prompt is over")  # fmt: skip
    run.smaller_windows[route.pinned] = why
    run.skipped.append(f"{route.pinned} ({why})")
    return True


def _runs(items: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal items, each once with its count (three identical retries read as one
    cause, "(3 attempts)", not three times the same sentence)."""
    runs: list[tuple[str, int]] = []
    for item in items:
        if runs and runs[-1][0] == item:
            runs[-1] = (item, runs[-1][1] + 1)
        else:
            runs.append((item, 1))
    return runs
