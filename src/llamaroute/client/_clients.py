"""``Client`` and ``AsyncClient``: thin twins over the shared, I/O-free code in
``_base_client.py``. They differ only in the lines that wait for the network: a tenacity loop
per route (sync or async, built by the same ``RetryPolicy``) inside a loop over the planned
routes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .._exceptions import ProviderError
from .._request import Message
from .._response import ChatChunk, ChatResponse
from ..images._source import Image
from ..providers._base import Provider, ProviderResult, StreamItem
from ..routing._plan import Candidate
from ..routing._retry import RetryPolicy
from ..routing._strategies import HedgePolicy, Strategy, StrategyName
from ._base import BaseClient, _bounded, _Call, _Expired, _no_result, _Run, _Skip
from ._events import HedgeStarted, emit
from ._streaming import AsyncStream, Stream

__all__ = ["AsyncClient", "Client"]


class Client(BaseClient):
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
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
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
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        run = _Run(call.id)
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            if call.images.needs_fetch(candidate.route):
                call.images.fetch()
            try:
                for attempt in call.retry.attempt_loop(
                    call.deadline, run.hit_deadline, self._on_retry(run, candidate)
                ):
                    with attempt:
                        provider_call = self._admit(call, run, candidate, forced, left)
                        started = time.perf_counter()
                        try:
                            result = candidate.provider.chat(provider_call)
                        except ProviderError as error:
                            self._failed(
                                call, run, candidate, error, started, share_of_deadline=left > 1
                            )
                            raise
                        except BaseException:
                            self._cancelled(call, run, candidate)
                            raise
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as error:
                self._give_up_route(run, candidate, error, _next(order, index))
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
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
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
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        call.streaming = True
        parts: list[str] = []
        return Stream(self._stream_events(call, parts), parts)

    def _stream_events(
        self, call: _Call, parts: list[str]
    ) -> Generator[ChatChunk, None, ChatResponse]:
        """The routed stream; each chunk's text is appended to ``parts`` as it is yielded."""
        run = _Run(call.id)
        opened: tuple[Candidate, Generator[StreamItem, None, None], StreamItem, float] | None = None
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            if call.images.needs_fetch(candidate.route):
                call.images.fetch()
            try:
                for attempt in call.retry.attempt_loop(
                    call.deadline, run.hit_deadline, self._on_retry(run, candidate)
                ):
                    with attempt:
                        provider_call = self._admit(call, run, candidate, forced, left)
                        started = time.perf_counter()
                        events = candidate.provider.stream(provider_call)
                        try:
                            first = next(events)
                        except StopIteration:
                            error: ProviderError = _no_result(candidate)
                            self._failed(
                                call, run, candidate, error, started, share_of_deadline=left > 1
                            )
                            raise error from None
                        except ProviderError as failure:
                            self._failed(
                                call, run, candidate, failure, started, share_of_deadline=left > 1
                            )
                            raise
                        except BaseException:
                            self._cancelled(call, run, candidate)
                            raise
                        self._stats.observe(
                            candidate.route.pinned, time.perf_counter() - started, first_token=True
                        )
                        opened = (candidate, events, first, started)
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as failure:
                self._give_up_route(run, candidate, failure, _next(order, index))
                continue
            break
        if opened is None:
            raise self._exhausted(call, run)
        candidate, events, item, started = opened
        route = candidate.route
        try:
            while not isinstance(item, ProviderResult):
                parts.append(item)
                yield ChatChunk(item, route.provider, route.model_id)
                item = next(events)
        except StopIteration:
            raise self._interrupted(call, candidate, _no_result(candidate), "".join(parts), run,
                                    started) from None  # fmt: skip
        except ProviderError as failure:
            raise self._interrupted(
                call, candidate, failure, "".join(parts), run, started
            ) from failure
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


class AsyncClient(BaseClient):
    """The asynchronous client: :class:`Client`'s twin, with ``await client.chat(...)`` and
    ``async with client.stream(...) as stream: async for chunk in stream``. The call's
    ``timeout`` is enforced as a hard bound on every attempt.

    ``hedge=HedgePolicy(...)`` (opt-in) starts the second route when the first has not
    answered after a delay, takes the first success and cancels the other (its connection is
    closed; what it was likely billed is recorded). Other arguments as for :class:`Client`.
    """

    def __init__(
        self,
        providers: Sequence[Provider] | None = None,
        *,
        hedge: HedgePolicy | None = None,
        **options: Any,
    ) -> None:
        super().__init__(providers, **options)
        self._hedge = hedge
        self._calls = 0
        self._hedges = 0

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
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
    ) -> ChatResponse:
        """Async :meth:`Client.chat`. With ``hedge`` set on the client, a call whose first
        route has not answered after the hedge delay also starts the second route."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        run = _Run(call.id)
        order = self._order(call, run)
        self._calls += 1
        first = 0
        if self._may_hedge(order):
            won = await self._hedged(call, run, order)
            if won is not None:
                candidate, result, started = won
                return self._response(call, candidate, result, started, run)
            first = 2
        for index in range(first, len(order)):
            candidate, forced = order[index]
            try:
                result, started = await self._route(
                    call, run, candidate, forced, len(order) - index
                )
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as error:
                self._give_up_route(run, candidate, error, _next(order, index))
                continue
            return self._response(call, candidate, result, started, run)
        raise self._exhausted(call, run)

    async def _route(
        self, call: _Call, run: _Run, candidate: Candidate, forced: bool, left: int
    ) -> tuple[ProviderResult, float]:
        """Every attempt on one route (the attempt loop); the last error if all fail."""
        if call.images.needs_fetch(candidate.route):
            await call.images.afetch()
        async for attempt in call.retry.async_attempt_loop(
            call.deadline, run.hit_deadline, self._on_retry(run, candidate)
        ):
            with attempt:
                provider_call = self._admit(call, run, candidate, forced, left)
                started = time.perf_counter()
                try:
                    async with _bounded(provider_call, candidate):
                        result = await candidate.provider.achat(provider_call)
                except ProviderError as error:
                    self._failed(call, run, candidate, error, started, share_of_deadline=left > 1)
                    raise
                except BaseException:
                    self._cancelled(call, run, candidate)
                    raise
                return result, started
        raise AssertionError("tenacity ends with a result or an exception")  # pragma: no cover

    def _may_hedge(self, order: list[tuple[Candidate, bool]]) -> bool:
        if self._hedge is None or len(order) < 2 or order[0][1]:
            return False
        return self._hedges + 1 <= self._hedge.max_share * self._calls

    async def _hedged(
        self, call: _Call, run: _Run, order: list[tuple[Candidate, bool]]
    ) -> tuple[Candidate, ProviderResult, float] | None:
        """Race the first two routes, the second after the hedge delay. Returns the winner, or
        ``None`` when both failed (their attempts are in ``run``; the call goes on)."""
        assert self._hedge is not None
        (first, _), (second, _) = order[0], order[1]
        runs = {first.route.pinned: _Run(call.id), second.route.pinned: _Run(call.id)}
        tasks = {asyncio.create_task(self._route(call, runs[first.route.pinned], first,
                                                 False, len(order))): first}  # fmt: skip
        wait = self._hedge.wait_for(first.route.pinned, self._stats)
        done, _ = await asyncio.wait(tasks, timeout=wait)
        if not done:
            self._hedges += 1
            emit(
                self._on_event, HedgeStarted(call.id, first.route.pinned, second.route.pinned, wait)
            )
            hedge_started = time.perf_counter()
            tasks[asyncio.create_task(self._route(call, runs[second.route.pinned], second, False,
                                                  len(order) - 1))] = second  # fmt: skip
        winner: asyncio.Task[tuple[ProviderResult, float]] | None = None
        pending = set(tasks)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner = next((t for t in done if not t.cancelled() and t.exception() is None), None)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            # The loser was cut off mid-request: its prompt was likely processed and billed.
            loser = tasks[task]
            self._account_cancelled(call, runs[loser.route.pinned], loser, hedge_started)
        for task, candidate in tasks.items():
            side = runs[candidate.route.pinned]
            run.attempts.extend(side.attempts)
            run.errors.extend(side.errors)
            run.spent += side.spent
            if task is not winner and not task.cancelled() and task.exception() is not None:
                error = task.exception()
                if isinstance(error, ProviderError):
                    self._give_up_route(run, candidate, error, None)
                elif not isinstance(error, _Skip | _Expired):
                    raise error  # type: ignore[misc]
        if winner is None:
            return None
        result, started = winner.result()
        return tasks[winner], result, started

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
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
    ) -> AsyncStream:
        """Async :meth:`Client.stream`; use ``async with`` and ``async for``."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed},
        )  # fmt: skip
        call.streaming = True
        return AsyncStream(self._stream_events(call))

    async def _stream_events(self, call: _Call) -> AsyncGenerator[ChatChunk | ChatResponse, None]:
        run = _Run(call.id)
        opened: tuple[Candidate, AsyncGenerator[StreamItem, None], StreamItem, float] | None = None
        order = self._order(call, run)
        for index, (candidate, forced) in enumerate(order):
            left = len(order) - index
            if call.images.needs_fetch(candidate.route):
                await call.images.afetch()
            try:
                async for attempt in call.retry.async_attempt_loop(
                    call.deadline, run.hit_deadline, self._on_retry(run, candidate)
                ):
                    with attempt:
                        provider_call = self._admit(call, run, candidate, forced, left)
                        started = time.perf_counter()
                        events = candidate.provider.astream(provider_call)
                        try:
                            async with _bounded(provider_call, candidate):
                                first = await anext(events)
                        except StopAsyncIteration:
                            error: ProviderError = _no_result(candidate)
                            self._failed(
                                call, run, candidate, error, started, share_of_deadline=left > 1
                            )
                            raise error from None
                        except ProviderError as failure:
                            await events.aclose()
                            self._failed(
                                call, run, candidate, failure, started, share_of_deadline=left > 1
                            )
                            raise
                        except BaseException:
                            await events.aclose()
                            self._cancelled(call, run, candidate)
                            raise
                        self._stats.observe(
                            candidate.route.pinned, time.perf_counter() - started, first_token=True
                        )
                        opened = (candidate, events, first, started)
            except _Skip:
                run.skipped.append(f"{candidate.route.pinned} (circuit open)")
                continue
            except _Expired:
                run.deadline_hit = True
                break
            except ProviderError as failure:
                self._give_up_route(run, candidate, failure, _next(order, index))
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
            raise self._interrupted(call, candidate, _no_result(candidate), "".join(parts), run,
                                    started) from None  # fmt: skip
        except ProviderError as failure:
            raise self._interrupted(
                call, candidate, failure, "".join(parts), run, started
            ) from failure
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


def _next(order: list[tuple[Candidate, bool]], index: int) -> Candidate | None:
    return order[index + 1][0] if index + 1 < len(order) else None
