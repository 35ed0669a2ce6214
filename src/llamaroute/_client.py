"""``Client`` and ``AsyncClient``: thin twins over shared, I/O-free code.

Everything that decides lives in :class:`_BaseClient` and is written once: validating the
request, resolving the model, planning routes, ordering them past open circuit breakers,
building each attempt, recording attempts, deciding whether to fall back, and turning a provider
result into a ``ChatResponse``. The two clients differ only in the lines that wait for the
network: a tenacity loop per route (sync or async, built by the same :class:`RetryPolicy`)
inside a loop over the planned routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ._catalog import Catalog, Resolution
from ._exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DeadlineExceededError,
    MalformedResponseError,
    PaymentRequiredError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from ._health import BreakerPolicy, Health
from ._images import Image, load_image
from ._retry import RetryPolicy
from ._routing import Candidate, Plan, plan
from ._streaming import AsyncStream, Stream
from ._types import Attempt, ChatChunk, ChatRequest, ChatResponse, Cost, Message
from .providers import discover
from .providers._base import Provider, ProviderCall, ProviderResult, StreamItem

__all__ = ["AsyncClient", "Client", "default_fallback"]

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


@dataclass(frozen=True, slots=True)
class _Call:
    """A validated, planned call: everything decided before the first byte is sent."""

    request: ChatRequest
    resolution: Resolution
    plan: Plan
    images: tuple[Image, ...]
    retry: RetryPolicy
    timeout: float | None
    deadline: float | None


@dataclass(slots=True)
class _Run:
    """What happened so far in one routed call."""

    attempts: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    all_open: bool = False
    deadline_hit: bool = False

    def hit_deadline(self) -> None:
        self.deadline_hit = True


class _BaseClient:
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} providers={list(self._providers)}>"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured providers by name, in the order they are tried."""
        return dict(self._providers)

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
        routing = plan(request, resolution, self._providers, providers)
        # Read and check every image now, so a bad file fails before any request is sent.
        images = tuple(load_image(part.image) for part in request.images)
        deadline = retry.clock() + timeout if timeout is not None else None
        return _Call(request, resolution, routing, images, retry, timeout, deadline)

    def _order(self, call: _Call, run: _Run) -> list[tuple[Candidate, bool]]:
        """The candidates to try, past open breakers; ``True`` marks a forced try."""
        candidates = call.plan.candidates
        closed = {route.pinned for route in self._health.open_routes([c.route for c in candidates])}
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
        self, call: _Call, candidate: Candidate, forced: bool, routes_left: int
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
        if remaining is not None:
            remaining /= max(1, routes_left)
        route, wanted = candidate.route, call.request.max_tokens
        limit = route.max_output_tokens
        return ProviderCall(
            request=call.request,
            route=route,
            images=call.images,
            max_tokens=min(wanted, limit) if wanted is not None and limit is not None else wanted,
            timeout=remaining,
        )

    def _failed(
        self,
        run: _Run,
        candidate: Candidate,
        error: ProviderError,
        started: float,
        *,
        partial: bool = False,
        share_of_deadline: bool = False,
    ) -> None:
        if share_of_deadline and isinstance(error, ProviderTimeoutError):
            # This route used up its share of the call's time; what is left belongs to the
            # routes after it, so do not retry here.
            error.retryable = False
        self._health.record(candidate.route, error)
        run.errors.append(error)
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
                partial=partial,
            )
        )
        logger.debug(
            "attempt %d on %s failed: %s", len(run.attempts), candidate.route.pinned,
            type(error).__name__,
        )  # fmt: skip

    def _give_up_route(self, run: _Run, candidate: Candidate, error: ProviderError) -> None:
        """After a route's last attempt failed: raise ``error`` if no fallback may follow."""
        if not self._fallback(error):
            raise error
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
        if expired:
            return DeadlineExceededError(
                f"the call's {call.timeout:g} s timeout ran out after {len(run.attempts)} "
                f"attempt(s): {summary}{note}",
                run.errors, run.attempts,
            )  # fmt: skip
        return AllProvidersFailedError(
            f"all {len(run.attempts)} attempt(s) failed: {summary}{note}", run.errors, run.attempts
        )

    def _cost(self, candidate: Candidate, result: ProviderResult) -> Cost | None:
        if result.cost is not None:
            return Cost(total=result.cost, source="provider")
        return None

    def _response(
        self, call: _Call, candidate: Candidate, result: ProviderResult, started: float, run: _Run
    ) -> ChatResponse:
        self._health.record(candidate.route, None)
        elapsed = time.perf_counter() - started
        route = candidate.route
        cost = self._cost(candidate, result)
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
        return ChatResponse(
            text=result.text,
            model=call.resolution.model.key,
            provider=route.provider,
            provider_model_id=route.model_id,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=cost,
            attempts=tuple(run.attempts),
            latency_s=elapsed,
            details=details,
        )

    def _interrupted(
        self, candidate: Candidate, error: ProviderError, text: str, run: _Run, started: float
    ) -> StreamInterruptedError:
        self._failed(run, candidate, error, started, partial=True)
        return StreamInterruptedError(
            f"the stream failed after {len(text)} characters had been delivered: {error.message}",
            partial_text=text,
            attempts=run.attempts,
            provider=candidate.route.provider,
            model_id=candidate.route.model_id,
            status_code=error.status_code,
            code=error.code,
        )


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


class Client(_BaseClient):
    """The synchronous client.

    ``Client()`` discovers providers from the environment (``OPENROUTER_API_KEY``, ...);
    ``Client(providers=[...])`` uses exactly the given provider objects, in that order.
    ``retries`` (per route), ``breaker``, ``fallback`` (``True``, ``False`` or a predicate on
    the error) and ``timeout`` (per call, seconds) set the defaults for every call. Closing the
    client closes its providers. Safe to share between threads.

    Example::

        with Client() as client:
            reply = client.chat("llama-3.2-90b-vision", "What does this chart show?",
                                image="chart.png")
            print(reply.text, reply.provider, reply.cost, reply.attempts)
    """

    def chat(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Image | bytes | str | Path | Any | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> ChatResponse:
        """Ask ``model`` and wait for the whole answer, retrying and falling back as needed.

        Returns a ``ChatResponse`` whose ``attempts`` lists every request sent. Raises
        ``InvalidRequestError`` (and subclasses) for bad input before anything is sent, the
        provider's error when it must not fall back (a rejected request), or
        ``AllProvidersFailedError`` / ``DeadlineExceededError`` listing every attempt.

        Args:
            model: a model key (``"llama-3.2-3b"``), an alias, or a pinned
                ``"provider:model_id"`` (that route only).
            prompt: the user's message; ``messages`` holds earlier turns (``Message`` objects
                or ``{"role", "content"}`` dicts); ``prompt`` is appended after them.
            image: one image for a vision model: a path, bytes, a ``data:`` or ``http(s)://``
                URL, a PIL image or a ``llamaroute.Image``.
            system: a system prompt.
            max_tokens, temperature, top_p, stop, seed: sampling parameters.
            providers: provider names for this call, in the order to try them.
            timeout: seconds for the whole call, every attempt and wait included.
            retries: retries per route for this call (an int or a ``RetryPolicy``).
        """
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        run = _Run()
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            try:
                for attempt in call.retry.retrying(call.deadline, run.hit_deadline):
                    with attempt:
                        provider_call = self._admit(call, candidate, forced, left)
                        started = time.perf_counter()
                        try:
                            result = candidate.provider.chat(provider_call)
                        except ProviderError as error:
                            self._failed(run, candidate, error, started, share_of_deadline=left > 1)
                            raise
                        except BaseException:
                            self._health.release(candidate.route)
                            raise
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as error:
                self._give_up_route(run, candidate, error)
                continue
            return self._response(call, candidate, result, started, run)
        raise self._exhausted(call, run)

    def stream(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Image | bytes | str | Path | Any | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> Stream:
        """Ask ``model`` and stream the answer: a :class:`Stream` of ``ChatChunk`` objects
        whose ``.response`` is the final ``ChatResponse``. Arguments as in :meth:`chat`.

        The request is validated and planned here (bad input raises now) and sent when
        iteration starts. Retries and fallback apply until the first chunk reaches you; after
        that a failure raises ``StreamInterruptedError`` with the partial text, never a spliced
        answer. ``timeout`` bounds the wait for the first chunk.
        """
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        return Stream(self._stream_events(call))

    def _stream_events(self, call: _Call) -> Generator[ChatChunk, None, ChatResponse]:
        run = _Run()
        opened: tuple[Candidate, Generator[StreamItem, None, None], StreamItem, float] | None = None
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            try:
                for attempt in call.retry.retrying(call.deadline, run.hit_deadline):
                    with attempt:
                        provider_call = self._admit(call, candidate, forced, left)
                        started = time.perf_counter()
                        events = candidate.provider.stream(provider_call)
                        try:
                            first = next(events)
                        except StopIteration:
                            error: ProviderError = _no_result(candidate)
                            self._failed(run, candidate, error, started, share_of_deadline=left > 1)
                            raise error from None
                        except ProviderError as failure:
                            self._failed(
                                run, candidate, failure, started, share_of_deadline=left > 1
                            )
                            raise
                        except BaseException:
                            self._health.release(candidate.route)
                            raise
                        opened = (candidate, events, first, started)
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as failure:
                self._give_up_route(run, candidate, failure)
                continue
            break
        if opened is None:
            raise self._exhausted(call, run)
        candidate, events, item, started = opened
        route, parts = candidate.route, []
        try:
            while not isinstance(item, ProviderResult):
                parts.append(item)
                yield ChatChunk(item, route.provider, route.model_id)
                item = next(events)
        except StopIteration:
            raise self._interrupted(candidate, _no_result(candidate), "".join(parts), run,
                                    started) from None  # fmt: skip
        except ProviderError as failure:
            raise self._interrupted(candidate, failure, "".join(parts), run, started) from failure
        finally:
            events.close()
        return self._response(call, candidate, item, started, run)

    def close(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            provider.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asynchronous client: :class:`Client`'s twin, with ``await client.chat(...)`` and
    ``async with client.stream(...) as stream: async for chunk in stream``. The call's
    ``timeout`` is enforced as a hard bound on every attempt."""

    async def chat(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Image | bytes | str | Path | Any | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> ChatResponse:
        """Async :meth:`Client.chat`."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        run = _Run()
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            try:
                async for attempt in call.retry.async_retrying(call.deadline, run.hit_deadline):
                    with attempt:
                        provider_call = self._admit(call, candidate, forced, left)
                        started = time.perf_counter()
                        try:
                            async with _bounded(provider_call, candidate):
                                result = await candidate.provider.achat(provider_call)
                        except ProviderError as error:
                            self._failed(run, candidate, error, started, share_of_deadline=left > 1)
                            raise
                        except BaseException:
                            self._health.release(candidate.route)
                            raise
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as error:
                self._give_up_route(run, candidate, error)
                continue
            return self._response(call, candidate, result, started, run)
        raise self._exhausted(call, run)

    def stream(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        image: Image | bytes | str | Path | Any | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> AsyncStream:
        """Async :meth:`Client.stream`; use ``async with`` and ``async for``."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        return AsyncStream(self._stream_events(call))

    async def _stream_events(self, call: _Call) -> AsyncGenerator[ChatChunk | ChatResponse, None]:
        run = _Run()
        opened: tuple[Candidate, AsyncGenerator[StreamItem, None], StreamItem, float] | None = None
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            try:
                async for attempt in call.retry.async_retrying(call.deadline, run.hit_deadline):
                    with attempt:
                        provider_call = self._admit(call, candidate, forced, left)
                        started = time.perf_counter()
                        events = candidate.provider.astream(provider_call)
                        try:
                            async with _bounded(provider_call, candidate):
                                first = await anext(events)
                        except StopAsyncIteration:
                            error: ProviderError = _no_result(candidate)
                            self._failed(run, candidate, error, started, share_of_deadline=left > 1)
                            raise error from None
                        except ProviderError as failure:
                            await events.aclose()
                            self._failed(
                                run, candidate, failure, started, share_of_deadline=left > 1
                            )
                            raise
                        except BaseException:
                            await events.aclose()
                            self._health.release(candidate.route)
                            raise
                        opened = (candidate, events, first, started)
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as failure:
                self._give_up_route(run, candidate, failure)
                continue
            break
        if opened is None:
            raise self._exhausted(call, run)
        candidate, events, item, started = opened
        route, parts = candidate.route, []
        try:
            while not isinstance(item, ProviderResult):
                parts.append(item)
                yield ChatChunk(item, route.provider, route.model_id)
                item = await anext(events)
        except StopAsyncIteration:
            raise self._interrupted(candidate, _no_result(candidate), "".join(parts), run,
                                    started) from None  # fmt: skip
        except ProviderError as failure:
            raise self._interrupted(candidate, failure, "".join(parts), run, started) from failure
        finally:
            await events.aclose()
        yield self._response(call, candidate, item, started, run)

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            await provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class _bounded:
    """``asyncio.timeout`` for one attempt, turning its ``TimeoutError`` into a typed error."""

    def __init__(self, call: ProviderCall, candidate: Candidate) -> None:
        self._timeout = asyncio.timeout(call.timeout)
        self._candidate = candidate

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, traceback)
        except TimeoutError as error:
            raise ProviderTimeoutError(
                "the call's timeout ran out during this attempt",
                provider=self._candidate.route.provider,
                model_id=self._candidate.route.model_id,
                code="deadline",
            ) from error
