"""``Client`` and ``AsyncClient``: thin twins over shared, I/O-free code.

Everything that decides (validating the request, resolving the model, planning routes, loading
images, building the provider call, turning a provider result into a ``ChatResponse``) lives in
:class:`_BaseClient` and is written once; the two clients only differ in the lines that wait
for the network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ._catalog import Catalog, Resolution
from ._exceptions import (
    ConfigurationError,
    MalformedResponseError,
    ProviderError,
    RateLimitError,
    StreamInterruptedError,
)
from ._images import Image, load_image
from ._routing import Candidate, Plan, plan
from ._streaming import AsyncStream, Stream
from ._types import Attempt, ChatChunk, ChatRequest, ChatResponse, Cost, Message
from .providers import discover
from .providers._base import Provider, ProviderCall, ProviderResult

__all__ = ["AsyncClient", "Client"]

logger = logging.getLogger("llamaroute")


@dataclass(frozen=True, slots=True)
class _Call:
    """A validated, planned call: everything decided before the first byte is sent."""

    request: ChatRequest
    resolution: Resolution
    plan: Plan
    images: tuple[Image, ...]
    timeout: float | None


class _BaseClient:
    """The shared, I/O-free half of both clients."""

    def __init__(
        self,
        providers: Sequence[Provider] | None = None,
        *,
        catalog: Catalog | None = None,
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} providers={list(self._providers)}>"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured providers by name, in the order they are tried."""
        return dict(self._providers)

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
        params: dict[str, Any],
    ) -> _Call:
        if timeout is not None and timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
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
        return _Call(request, resolution, routing, images, timeout)

    @staticmethod
    def _provider_call(call: _Call, candidate: Candidate) -> ProviderCall:
        route, wanted = candidate.route, call.request.max_tokens
        limit = route.max_output_tokens
        max_tokens = min(wanted, limit) if wanted is not None and limit is not None else wanted
        return ProviderCall(
            request=call.request,
            route=route,
            images=call.images,
            max_tokens=max_tokens,
            timeout=call.timeout,
        )

    @staticmethod
    def _failed(candidate: Candidate, error: ProviderError, started: float) -> Attempt:
        logger.debug("attempt on %s failed: %s", candidate.route.pinned, type(error).__name__)
        return Attempt(
            provider=candidate.route.provider,
            model_id=candidate.route.model_id,
            outcome="error",
            error_type=type(error).__name__,
            error=str(error),
            status_code=error.status_code,
            retry_after=error.retry_after if isinstance(error, RateLimitError) else None,
            elapsed_s=time.perf_counter() - started,
        )

    def _cost(self, candidate: Candidate, result: ProviderResult) -> Cost | None:
        if result.cost is not None:
            return Cost(total=result.cost, source="provider")
        return None

    def _response(
        self,
        call: _Call,
        candidate: Candidate,
        result: ProviderResult,
        started: float,
        earlier: Sequence[Attempt] = (),
    ) -> ChatResponse:
        elapsed = time.perf_counter() - started
        route = candidate.route
        cost = self._cost(candidate, result)
        attempt = Attempt(
            provider=route.provider,
            model_id=route.model_id,
            outcome="ok",
            elapsed_s=elapsed,
            cost=cost,
        )
        details = dict(result.details)
        if result.served_model and result.served_model != route.model_id:
            details["served_model"] = result.served_model
        wanted = call.request.max_tokens
        if wanted is not None and route.max_output_tokens and wanted > route.max_output_tokens:
            details["max_tokens_capped_to"] = route.max_output_tokens
        return ChatResponse(
            text=result.text,
            model=call.resolution.model.key,
            provider=route.provider,
            provider_model_id=route.model_id,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=cost,
            attempts=(*earlier, attempt),
            latency_s=elapsed,
            details=details,
        )

    def _interrupted(
        self, candidate: Candidate, error: ProviderError, text: str, attempts: Sequence[Attempt]
    ) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the stream failed after {len(text)} characters had been delivered: {error.message}",
            partial_text=text,
            attempts=attempts,
            provider=candidate.route.provider,
            model_id=candidate.route.model_id,
            status_code=error.status_code,
            code=error.code,
        )


def _incomplete(candidate: Candidate) -> MalformedResponseError:
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
    Closing the client closes its providers. Safe to share between threads.

    Example::

        with Client() as client:
            reply = client.chat("llama-3.2-90b-vision", "What does this chart show?",
                                image="chart.png")
            print(reply.text, reply.provider, reply.cost)
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
    ) -> ChatResponse:
        """Ask ``model`` and wait for the whole answer.

        Args:
            model: a model key (``"llama-3.2-3b"``), an alias, or a pinned
                ``"provider:model_id"``.
            prompt: the user's message; ``messages`` holds earlier turns (``Message`` objects
                or ``{"role", "content"}`` dicts); ``prompt`` is appended after them.
            image: one image for a vision model: a path, bytes, a ``data:`` or ``http(s)://``
                URL, a PIL image or a ``llamaroute.Image``.
            system: a system prompt.
            max_tokens, temperature, top_p, stop, seed: sampling parameters.
            providers: provider names to use for this call, in order (default: all
                configured).
            timeout: seconds for the whole call.

        Raises:
            InvalidRequestError: (and subclasses) bad input, before anything is sent.
            ProviderError: (and subclasses) the provider failed.
        """
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, params={"max_tokens": max_tokens, "temperature": temperature,
                                     "top_p": top_p, "stop": stop, "seed": seed},
        )  # fmt: skip
        candidate = call.plan.candidates[0]
        started = time.perf_counter()
        try:
            result = candidate.provider.chat(self._provider_call(call, candidate))
        except ProviderError as error:
            self._failed(candidate, error, started)
            raise
        return self._response(call, candidate, result, started)

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
    ) -> Stream:
        """Ask ``model`` and stream the answer: a :class:`Stream` of ``ChatChunk`` objects
        whose ``.response`` is the final ``ChatResponse``. Arguments as in :meth:`chat`.

        The request is validated and planned here (bad input raises now); it is sent when
        iteration starts. If the stream fails after text has reached you, it raises
        ``StreamInterruptedError`` with the partial text: never a spliced answer.
        """
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, params={"max_tokens": max_tokens, "temperature": temperature,
                                     "top_p": top_p, "stop": stop, "seed": seed},
        )  # fmt: skip
        return Stream(self._stream_events(call))

    def _stream_events(self, call: _Call) -> Generator[ChatChunk, None, ChatResponse]:
        candidate = call.plan.candidates[0]
        route = candidate.route
        started = time.perf_counter()
        parts: list[str] = []
        result: ProviderResult | None = None
        events = candidate.provider.stream(self._provider_call(call, candidate))
        try:
            for item in events:
                if isinstance(item, ProviderResult):
                    result = item
                else:
                    parts.append(item)
                    yield ChatChunk(item, route.provider, route.model_id)
        except ProviderError as error:
            attempt = self._failed(candidate, error, started)
            if parts:
                raise self._interrupted(candidate, error, "".join(parts), [attempt]) from error
            raise
        finally:
            events.close()
        if result is None:
            raise _incomplete(candidate)
        return self._response(call, candidate, result, started)

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
    ``async with client.stream(...) as stream: async for chunk in stream``."""

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
    ) -> ChatResponse:
        """Async :meth:`Client.chat`."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, params={"max_tokens": max_tokens, "temperature": temperature,
                                     "top_p": top_p, "stop": stop, "seed": seed},
        )  # fmt: skip
        candidate = call.plan.candidates[0]
        started = time.perf_counter()
        try:
            result = await candidate.provider.achat(self._provider_call(call, candidate))
        except ProviderError as error:
            self._failed(candidate, error, started)
            raise
        return self._response(call, candidate, result, started)

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
    ) -> AsyncStream:
        """Async :meth:`Client.stream`; use ``async with`` and ``async for``."""
        call = self._prepare(
            model, prompt, messages=messages, image=image, system=system, providers=providers,
            timeout=timeout, params={"max_tokens": max_tokens, "temperature": temperature,
                                     "top_p": top_p, "stop": stop, "seed": seed},
        )  # fmt: skip
        return AsyncStream(self._stream_events(call))

    async def _stream_events(self, call: _Call) -> AsyncGenerator[ChatChunk | ChatResponse, None]:
        candidate = call.plan.candidates[0]
        route = candidate.route
        started = time.perf_counter()
        parts: list[str] = []
        result: ProviderResult | None = None
        events = candidate.provider.astream(self._provider_call(call, candidate))
        try:
            async for item in events:
                if isinstance(item, ProviderResult):
                    result = item
                else:
                    parts.append(item)
                    yield ChatChunk(item, route.provider, route.model_id)
        except ProviderError as error:
            attempt = self._failed(candidate, error, started)
            if parts:
                raise self._interrupted(candidate, error, "".join(parts), [attempt]) from error
            raise
        finally:
            await events.aclose()
        if result is None:
            raise _incomplete(candidate)
        yield self._response(call, candidate, result, started)

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
