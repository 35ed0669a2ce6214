"""``Stream`` and ``AsyncStream``: what ``client.stream(...)`` returns.

Iterate one to get :class:`~llamaroute.ChatChunk` objects (``chunk.text`` is the new text);
when the iteration ends, :attr:`Stream.response` holds the final
:class:`~llamaroute.ChatResponse`. Use it as a context manager so that leaving early (a
``break``, an exception) closes the connection at once::

    with client.stream(model="llama-3.2-3b", prompt="Tell me a story") as stream:
        for chunk in stream:
            print(chunk.text, end="", flush=True)
    print(stream.response.usage)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from types import TracebackType
from typing import Self

from .._exceptions import LlamarouteError
from .._pieces import TextPieces
from .._response import ChatChunk, ChatResponse

__all__ = ["AsyncStream", "Stream"]

_NOT_DONE = "the stream has not finished: iterate it to the end (or call read()) first"


class Stream:
    """A streamed chat answer (synchronous). Nothing is sent until iteration starts."""

    def __init__(
        self, events: Generator[ChatChunk, None, ChatResponse], parts: list[str] | None = None
    ) -> None:
        self._events = events
        self._response: ChatResponse | None = None
        # ``parts``: the list to which ``events`` itself appends each chunk's text just before
        # yielding it (the client's does). Then each chunk passes straight through here.
        self._shared = parts is not None
        self._parts: list[str] = TextPieces() if parts is None else parts

    def __iter__(self) -> Generator[ChatChunk, None, None]:
        if self._shared:
            # ``yield from`` hands each chunk through without a Python-level step here, and
            # closes the events when the caller leaves the loop early, as below.
            self._response = yield from self._events
            return
        try:
            while True:
                chunk = next(self._events)
                self._parts.append(chunk.text)
                yield chunk
        except StopIteration as done:
            self._response = done.value
        except GeneratorExit:
            # The caller broke out of the loop: hang up now rather than when garbage collected.
            self._events.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream and close its connection (safe to call more than once)."""
        self._events.close()

    def read(self) -> ChatResponse:
        """Consume what is left and return the final response."""
        for _ in self:
            pass
        return self.response

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def response(self) -> ChatResponse:
        """The final response, once the stream has ended."""
        if self._response is None:
            raise LlamarouteError(_NOT_DONE)
        return self._response


class AsyncStream:
    """A streamed chat answer (asynchronous). Nothing is sent until iteration starts."""

    def __init__(self, events: AsyncGenerator[ChatChunk | ChatResponse, None]) -> None:
        # Async generators cannot return a value, so the last item is the response.
        self._events = events
        self._response: ChatResponse | None = None
        self._parts: list[str] = TextPieces()
        self._closed = False

    # The stream is its own iterator, not an async generator over ``events``: leaving an
    # ``async for`` early then leaves nothing of ours for the event loop to finalize, and
    # ``events`` is closed exactly once, by aclose() or by its own finalizer. (An async
    # generator wrapped in another one is closed twice when both are collected, and the
    # second closer meets "aclose(): asynchronous generator is already running".)
    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._response is not None or self._closed:
            raise StopAsyncIteration
        item = await anext(self._events, None)
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, ChatResponse):
            self._response = item
            raise StopAsyncIteration
        self._parts.append(item.text)
        return item

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and close its connection (safe to call more than once). A stream
        left before its end is settled: what it was likely billed (the prompt and the text
        received, estimated) replaces its budget reservation."""
        if self._closed:
            return
        self._closed = True
        await self._events.aclose()

    async def read(self) -> ChatResponse:
        """Consume what is left and return the final response."""
        async for _ in self:
            pass
        return self.response

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def response(self) -> ChatResponse:
        """The final response, once the stream has ended."""
        if self._response is None:
            raise LlamarouteError(_NOT_DONE)
        return self._response
