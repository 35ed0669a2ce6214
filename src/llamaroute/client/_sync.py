"""``Client``: the synchronous shell over the routing driver (:mod:`._driver`). It does only
what the driver asks (call a provider, sleep, fetch the images) and reads a stream's chunks."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Generator, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from .._exceptions import ProviderError
from .._pieces import TextPieces
from .._request import Message
from .._response import ChatChunk, ChatResponse
from ..catalog import ImagePolicy
from ..images import Image
from ..money import Corrections
from ..providers import ProviderResult, StreamItem
from ..routing import RetryPolicy, Strategy, StrategyName
from ._base import BaseClient
from ._call import Call, no_result
from ._driver import Action, Send, Sleep
from ._streaming import Stream
from ._structured import check_repairs, streamed, structured
from ._tool_loop import Ask, RunResult, start

__all__ = ["Client"]

T = TypeVar("T")


class Client(BaseClient):
    """The synchronous client.

    ``Client()`` discovers providers from the environment (``OPENROUTER_API_KEY``, ...);
    ``Client(providers=[...])`` uses exactly the given provider objects, in that order.
    ``retries`` (per route), ``breaker``, ``fallback`` (``True``, ``False`` or a predicate on
    the error) and ``timeout`` (per call, seconds) set the defaults for every call. Several
    deployments of one provider (two keys, two hosts, two regions) each need their own
    ``deployment=`` name; their ``rpm``/``tpm`` limits are counted in ``rate_limits`` (in
    memory by default; fleet-wide with ``state="redis://..."``), and ``rng`` is the
    ``weighted`` strategy's random source. Closing the client closes its providers. Safe to
    share between threads.

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
            top_k, frequency_penalty, presence_penalty: more sampling parameters
                (``top_k`` 1 to 128,256, penalties -2 to 2); routes that cannot take one
                (Bedrock, for these three) are skipped, with the reason in ``skipped``.
            tools: functions the model may call: Python functions, pydantic models,
                OpenAI-format dicts or ``llamaroute.Tool``; the calls it makes are in
                ``response.tool_calls``. Routes that cannot take tools are skipped.
            tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a tool's name.
            providers: provider or deployment names for this call, in the order to try
                them (a provider's name: each of its deployments, in configured order).
            timeout: seconds for the whole call, every attempt and wait included.
            retries: retries per route for this call (an int or a ``RetryPolicy``).
            strategy: the order to try routes in, for this call.
            max_cost: the most this call may spend (Decimal USD), retries included.
            response_format: a pydantic model class or a JSON-schema dict for an object: the
                answer is validated and set on ``response.parsed`` (see the README's
                "Structured output" for each route's mechanism).
            repair_attempts: how many times a schema-invalid answer is sent back to be
                fixed (default 1; 0 disables). Each repair is a billed attempt, listed in
                ``attempts`` and added to ``cost``; if the answer still fails,
                ``StructuredOutputError`` carries the raw text and the validation errors.
            extra: provider-specific options, keyed by provider name; each provider sends
                only its own (a fallback never passes OpenRouter's options to Bedrock):
                ``{"openrouter": {"provider": {"order": [...]}}, "ollama": {"options":
                {"num_ctx": 8192}, "keep_alive": "10m"}, "bedrock": {"guardrailConfig":
                {...}}}``. Checked before anything is sent: an unknown provider name, a
                value that is not a dict, or an option that would break llamaroute's
                guarantees (OpenRouter ``models``/``stream``/usage off, Bedrock ``modelId``,
                a call keyword given again...) is an ``InvalidRequestError`` saying why. See
                the README's "Provider options".
            image_policy: what to do when the conversation has more images than the model
                takes (Llama 3.2 Vision: one per request): ``"refuse"`` (default) raises
                ``UnsupportedFeatureError`` before sending; ``"keep_newest"`` drops the older
                image parts and keeps their text; ``"placeholder"`` replaces each older image
                with the text ``"[image omitted]"``. Applied before sending; when it leaves
                images out, ``response.details["image_policy"]`` says so, e.g.
                ``{"policy": "keep_newest", "images": 2, "kept": 1, "dropped": 1}``.
        """
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
        run, steps = self._driver.start(call)  # inline: the loop warning's stacklevel counts
        answer = self._run(call, steps)
        response = self._driver.response(call, run, answer, answer.reply)
        if call.request.response_format is None:
            return response
        checking = structured(call, response, repairs, self._ids)
        try:
            again = next(checking)
            while True:
                again = checking.send(self._answer(again))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _answer(self, call: Call) -> ChatResponse:
        run, steps = self._driver.start(call)
        answer = self._run(call, steps)
        return self._driver.response(call, run, answer, answer.reply)

    def run(
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
        """Ask ``model`` with ``tools`` (Python functions) and run the tool calls it makes,
        round after round, until it answers without one; returns a :class:`RunResult`.

        Each round is an ordinary :meth:`chat` (or, with ``stream=True``, a :meth:`stream`
        read to its end) with the whole conversation so far and ``options`` (``system``,
        ``max_tokens``, ``providers``, ``max_cost``, ``timeout``, ``image_policy``...: each
        applies per round), so retries, fallback, budgets and the ledger work as for any call;
        ``extra=`` (provider options, as for :meth:`chat`) and the sampling keywords go in
        ``options`` too. ``tool_choice`` applies to the first round only (later rounds are
        ``"auto"``, so the model can stop).

        A tool call with bad arguments (``ToolCall.error``) goes back to the model as an error
        result without calling the function; so does an exception the function raises
        (``{"error": "ValueError: ..."}``), unless ``raise_tool_errors=True``: then
        ``ToolExecutionError`` is raised, the exception as its cause. After ``max_rounds``
        answers that all asked for tools, ``ToolLoopError`` (with every round). Tools that are
        not Python functions, and async functions (use ``AsyncClient.run``), raise
        ``InvalidToolError`` before any request.
        """
        tools_, steps = start(
            prompt, messages, image, tools, tool_choice=tool_choice, max_rounds=max_rounds,
            raise_tool_errors=raise_tool_errors, allow_async=False, options=options,
        )  # fmt: skip
        try:
            action = next(steps)
            while True:
                if isinstance(action, Ask):
                    ask = {"messages": action.messages, "tools": tools_,
                           "tool_choice": action.tool_choice, **options}  # fmt: skip
                    if stream:
                        with self.stream(model, **ask) as streamed_:
                            action = steps.send(streamed_.read())
                    else:
                        action = steps.send(self.chat(model, **ask))
                    continue
                try:
                    value = action.function(**action.arguments)
                    if inspect.isawaitable(value):
                        close = getattr(value, "close", None)
                        if callable(close):
                            close()
                        raise TypeError("the tool returned an awaitable: use AsyncClient.run()")
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
                    "stop": stop, "seed": seed, "top_k": top_k,
                    "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty,
                    "tools": tools, "tool_choice": tool_choice,
                    "response_format": response_format, "extra": extra}, streaming=True,
            image_policy=image_policy,
        )  # fmt: skip
        parts = TextPieces()
        return Stream(self._stream_events(call, parts), parts)

    def _run(self, call: Call, steps: Generator[Action, Any, T]) -> T:
        """Carry out the driver's actions until it returns its result (or raises)."""
        if not self._warned_in_loop and asyncio._get_running_loop() is not None:
            self._warn_in_loop()
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
                    provider = action.candidate.provider
                    if not call.streaming:
                        reply = provider.chat(action.call)
                    else:
                        events = provider.stream(action.call)
                        reply = (events, next(events, None))
                        if reply[1] is None:
                            raise no_result(action.candidate)
                elif isinstance(action, Sleep):
                    call.retry.sleep(action.seconds)
                else:  # FetchImages (a Race is only ever asked of the async client)
                    call.images.fetch(timeout=call.remaining())
            except BaseException as error:
                failure = error

    def _stream_events(
        self, call: Call, parts: list[str]
    ) -> Generator[ChatChunk, None, ChatResponse]:
        """The routed stream; each chunk's text is appended to ``parts`` as it is yielded."""
        run, steps = self._driver.start(call)
        answer = self._run(call, steps)
        events: Generator[StreamItem, None, None]
        events, item = answer.reply
        route = answer.candidate.route
        provider, model_id = route.provider, route.model_id  # (read once, not per chunk)
        try:
            while not isinstance(item, ProviderResult):
                parts.append(item)
                yield ChatChunk(item, provider, model_id)
                item = next(events)
        except StopIteration:
            failure = no_result(answer.candidate)
            raise self._driver.interrupted(call, run, answer, failure, "".join(parts)) from None
        except ProviderError as failure:
            raise self._driver.interrupted(call, run, answer, failure, "".join(parts)) from failure
        except BaseException:
            # The caller left early: a break (GeneratorExit), close(), garbage collection,
            # Ctrl-C. The attempt still settles: an estimate replaces its reservation.
            self._driver.abandoned(call, run, answer, "".join(parts))
            raise
        finally:
            events.close()
        return streamed(call, self._driver.response(call, run, answer, item))

    def reconcile_generations(self) -> Corrections:
        """Replace the ledger's estimates with what the provider billed, where it can say:
        an OpenRouter stream cut short or abandoned was recorded as an estimate with its
        generation id, and ``GET /generation?id=`` gives its real cost once OpenRouter has
        written it (a few seconds after the request; ``pending`` counts those not there yet).
        Call it now and then, e.g. before reading ``client.spend``."""
        return self._corrections()

    _warned_in_loop = False

    def _warn_in_loop(self) -> None:
        # As httpx and requests users learn the hard way: a blocking call inside a coroutine
        # stalls every other task on the loop until it returns. Said once per client.
        self._warned_in_loop = True
        warnings.warn(
            "llamaroute.Client was called from inside a running event loop (async code): each "
            "call blocks the loop, and every other task with it, until it ends. Use "
            "llamaroute.AsyncClient (await client.chat(...)) in async code.",
            RuntimeWarning,
            stacklevel=4,
        )

    def close(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            provider.close()
        self._close_state()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
