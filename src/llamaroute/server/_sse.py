"""A streamed answer as Server-Sent Events, closed properly when the client leaves.

Starlette's ``StreamingResponse`` either watches for the disconnect inside an anyio task group
(whose cancellation is level-triggered: every later ``await``, the upstream's own closing
included, is cancelled again) or, on ASGI 2.4 servers, only notices on the next write. Here a
plain asyncio task writes the events and a second one waits for ``http.disconnect``: when the
client hangs up, the writer is cancelled once, and the events' generator is closed, which
closes the upstream stream and settles its cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

from starlette.types import Receive, Scope, Send

__all__ = ["EventStream"]


class EventStream:
    """An ASGI response that sends ``events`` (already-encoded SSE frames) as they come."""

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        self._events = events
        raw = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        raw += [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        self._headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.ensure_future(self._write(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if writer not in done:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await self._events.aclose()

    async def _write(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        try:
            async for frame in self._events:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return  # the client left (an ASGI 2.4 server says so on the write)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
