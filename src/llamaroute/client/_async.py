"""``AsyncClient``: the asynchronous shell over the routing driver (:mod:`._driver`). It does
only what the driver asks (call a provider under the call's deadline, sleep, fetch the images,
race two routes when hedging) and reads a stream's chunks."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from .._exceptions import ProviderError, ProviderTimeoutError
from .._pieces import TextPieces
from .._request import Message
from .._response import ChatChunk, ChatResponse
from ..catalog import ImagePolicy
from ..images import Image
from ..money import Corrections
from ..providers import Provider, ProviderCall, ProviderResult, StreamItem
from ..routing import Candidate, HedgePolicy, RetryPolicy, Strategy, StrategyName
from ._base import BaseClient
from ._call import Answer, Call, no_result
from ._driver import Action, FetchImages, Race, RaceOutcome, Send, Sleep
from ._streaming import AsyncStream
from ._structured import check_repairs, streamed, structured
from ._tool_loop import Ask, RunResult, is_async, start

__all__ = ["AsyncClient"]

T = TypeVar("T")


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
        self._driver.hedge = hedge

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
        top_k: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
        response_format: type[BaseModel] | dict[str, Any] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
        repair_attempts: int = 1,
        image_policy: ImagePolicy = "refuse",
    ) -> ChatResponse:
        """Async :meth:`Client.chat` (the same arguments, ``extra=`` provider options and the
        sampling keywords among them). With ``hedge`` set on the client, a call whose first
        route has not answered after the hedge delay also starts the second route."""
        repairs = check_repairs(repair_attempts)
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed, "top_k": top_k,
                    "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty,
                    "tools": tools, "tool_choice": tool_choice,
                    "response_format": response_format, "extra": extra},
            image_policy=image_policy,
        )  # fmt: skip
        response = await self._answer(call)
        if call.request.response_format is None:
            return response
        checking = structured(call, response, repairs, self._ids)
        try:
            again = next(checking)
            while True:
                again = checking.send(await self._answer(again))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _answer(self, call: Call) -> ChatResponse:
        run, steps = self._driver.start(call, hedge=True)
        answer = await self._run(call, steps)
        return self._driver.response(call, run, answer, answer.reply)

    async def run(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        tools: Sequence[Any],
        tool_choice: str | None = None,
        max_rounds: int = 5,
        raise_tool_errors: bool = False,
        stream: bool = False,
        image: Image | bytes | str | Path | Any | None = None,
        **options: Any,
    ) -> RunResult:
        """Async :meth:`Client.run`: async tool functions are awaited, sync ones run in a
        thread (``asyncio.to_thread``), so a slow tool does not block the event loop. Tool
        calls of one answer run one after the other, in the order the model made them.
        ``extra=`` (provider options) goes in ``options``, as for every round's chat."""
        tools_, steps = start(
            prompt, messages, image, tools, tool_choice=tool_choice, max_rounds=max_rounds,
            raise_tool_errors=raise_tool_errors, allow_async=True, options=options,
        )  # fmt: skip
        try:
            action = next(steps)
            while True:
                if isinstance(action, Ask):
                    ask = {"messages": action.messages, "tools": tools_,
                           "tool_choice": action.tool_choice, **options}  # fmt: skip
                    if stream:
                        async with self.stream(model, **ask) as streamed_:
                            action = steps.send(await streamed_.read())
                    else:
                        action = steps.send(await self.chat(model, **ask))
                    continue
                try:
                    if is_async(action.function):
                        value = await action.function(**action.arguments)
                    else:
                        value = await asyncio.to_thread(action.function, **action.arguments)
                        if inspect.isawaitable(value):
                            value = await value
                except Exception as error:
                    action = steps.throw(error)
                    continue
                action = steps.send(value)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

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
        top_k: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        retries: RetryPolicy | int | None = None,
        strategy: StrategyName | Strategy | None = None,
        max_cost: Decimal | None = None,
        response_format: type[BaseModel] | dict[str, Any] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
        image_policy: ImagePolicy = "refuse",
    ) -> AsyncStream:
        """Async :meth:`Client.stream` (the same arguments, ``extra=`` among them); use
        ``async with`` and ``async for``."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, retries=retries, strategy=strategy, max_cost=max_cost,
            params={"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": stop, "seed": seed, "top_k": top_k,
                    "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty,
                    "tools": tools, "tool_choice": tool_choice,
                    "response_format": response_format, "extra": extra}, streaming=True,
            image_policy=image_policy,
        )  # fmt: skip
        return AsyncStream(self._stream_events(call))

    async def _run(self, call: Call, steps: Generator[Action, Any, T]) -> T:
        """Carry out the driver's actions until it returns its result (or raises)."""
        reply: Any = None
        failure: BaseException | None = None
        while True:
            try:
                action = steps.send(reply) if failure is None else steps.throw(failure)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            reply = failure = None
            try:
                if isinstance(action, Send):
                    reply = await (self._open(action) if call.streaming else _chat(action))
                elif isinstance(action, Sleep):
                    await call.retry.async_sleep(action.seconds)
                elif isinstance(action, FetchImages):
                    await call.images.afetch(timeout=call.remaining())
                else:
                    reply = await self._race(call, action)
            except BaseException as error:
                failure = error

    @staticmethod
    async def _open(action: Send) -> tuple[AsyncGenerator[StreamItem, None], StreamItem]:
        """Open the stream and read its first item, under the attempt's deadline."""
        events = action.candidate.provider.astream(action.call)
        try:
            async with _bounded(action.call, action.candidate):
                return events, await anext(events)
        except StopAsyncIteration:
            raise no_result(action.candidate) from None
        except BaseException:
            await events.aclose()
            raise

    async def _race(self, call: Call, race: Race) -> RaceOutcome:
        """Run the race's first side, and its second after the delay if the first has not
        answered; the first success wins and the other side is cancelled (its connection
        closed)."""
        outcome = RaceOutcome()
        first = asyncio.create_task(self._run(call, race.first))
        tasks: dict[asyncio.Task[Answer], Candidate] = {first: race.candidates[0]}
        cut_at = time.perf_counter()
        try:
            done, _ = await asyncio.wait(tasks, timeout=race.delay)
            if not done:
                outcome.hedged = True
                self._driver.hedge_started(call, race)
                cut_at = time.perf_counter()
                tasks[asyncio.create_task(self._run(call, race.second))] = race.candidates[1]
            pending = set(tasks)
            while pending and outcome.winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception() is None:
                        outcome.winner = task.result()
        finally:
            pending = {task for task in tasks if not task.done()}
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task, candidate in tasks.items():
            if task in pending:
                # The loser was cut off mid-request: its prompt was likely processed and billed.
                outcome.cut.append((candidate, cut_at))
            elif not task.cancelled() and (error := task.exception()) is not None:
                outcome.failed.append((candidate, error))
        return outcome

    async def _stream_events(self, call: Call) -> AsyncGenerator[ChatChunk | ChatResponse, None]:
        run, steps = self._driver.start(call)
        answer = await self._run(call, steps)
        events: AsyncGenerator[StreamItem, None]
        events, item = answer.reply
        route, parts = answer.candidate.route, TextPieces()
        provider, model_id = route.provider, route.model_id  # (read once, not per chunk)
        try:
            while not isinstance(item, ProviderResult):
                parts.append(item)
                yield ChatChunk(item, provider, model_id)
                item = await anext(events)
        except StopAsyncIteration:
            failure = no_result(answer.candidate)
            raise self._driver.interrupted(call, run, answer, failure, "".join(parts)) from None
        except ProviderError as failure:
            raise self._driver.interrupted(call, run, answer, failure, "".join(parts)) from failure
        except BaseException:
            # The caller left early: aclose(), garbage collection (the event loop's finalizer
            # closes us), a cancelled task. Settled at once, before any await, so that the
            # books never wait on the connection's closing.
            self._driver.abandoned(call, run, answer, "".join(parts))
            raise
        finally:
            await events.aclose()
        yield streamed(call, self._driver.response(call, run, answer, item))

    async def reconcile_generations(self) -> Corrections:
        """Async :meth:`Client.reconcile_generations` (the lookups run in a worker thread)."""
        return await asyncio.to_thread(self._corrections)

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            await provider.aclose()
        self._close_state()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _chat(action: Send) -> ProviderResult:
    async with _bounded(action.call, action.candidate):
        return await action.candidate.provider.achat(action.call)


class _bounded:
    """``asyncio.timeout`` for one attempt, turning its ``TimeoutError`` into a typed error."""

    __slots__ = ("_candidate", "_timeout")

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
