"""``Client`` and ``AsyncClient``: thin twins over the shared, I/O-free code in
``_base_client.py``. They differ only in the lines that wait for the network: a tenacity loop
per route (sync or async, built by the same ``RetryPolicy``) inside a loop over the planned
routes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ._base_client import BaseClient, _bounded, _Call, _Expired, _no_result, _Run, _Skip
from ._exceptions import ProviderError
from ._images import Image
from ._retry import RetryPolicy
from ._routing import Candidate
from ._streaming import AsyncStream, Stream
from ._types import ChatChunk, ChatResponse, Message
from .providers._base import ProviderResult, StreamItem

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
            if call.images.needs_fetch(candidate.route):
                call.images.fetch()
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
            if call.images.needs_fetch(candidate.route):
                call.images.fetch()
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


class AsyncClient(BaseClient):
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
            if call.images.needs_fetch(candidate.route):
                await call.images.afetch()
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
            if call.images.needs_fetch(candidate.route):
                await call.images.afetch()
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
