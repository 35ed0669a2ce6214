"""Async httpx pools that follow the event loop.

An ``httpx.AsyncClient`` belongs to the event loop it first ran on: its connections are that
loop's transports, and using them from another loop fails with ``RuntimeError: Event loop is
closed``. :class:`AsyncPools` keeps one client per running loop, so that one provider (and the
``AsyncClient`` over it) can serve several ``asyncio.run()`` calls in turn, or loops in several
threads at once.

Each pool is closed on its own loop while that loop shuts down: an async generator is started
with the pool, and ``asyncio.run`` (like ``asyncio.Runner`` and any loop that calls
``shutdown_asyncgens()``) closes every live async generator before closing the loop. A loop
closed by hand without that step leaves its pool to the garbage collector: its sockets belong
to the dead loop, which must not be touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import httpx

__all__ = ["AsyncPools"]


@dataclass(slots=True)
class _Pool:
    loop: weakref.ref[asyncio.AbstractEventLoop]
    client: httpx.AsyncClient
    key: int
    guard: AsyncGenerator[None, None] | None = None
    abandoned: bool = False


class AsyncPools:
    """One ``httpx.AsyncClient`` per running event loop, made by ``build`` on first use."""

    def __init__(self, build: Callable[[], httpx.AsyncClient]) -> None:
        self._build = build
        self._pools: dict[int, _Pool] = {}
        self._lock = threading.Lock()

    def current(self) -> httpx.AsyncClient | None:
        """The running loop's client, if it has one (``None`` outside a loop)."""
        try:
            pool = self._pools.get(id(asyncio.get_running_loop()))
        except RuntimeError:
            return None
        return None if pool is None else pool.client

    async def get(self) -> httpx.AsyncClient:
        """The running loop's client, built (and registered for closing) on first use."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(id(loop))
        if pool is not None and pool.loop() is loop:
            return pool.client
        self._abandon_dead()
        pool = _Pool(weakref.ref(loop), self._build(), id(loop))
        with self._lock:
            self._pools[pool.key] = pool
        pool.guard = self._close_at_shutdown(pool)
        await pool.guard.asend(None)  # now the loop knows it, and closes it as it shuts down
        return pool.client

    async def aclose(self) -> None:
        """Close the running loop's client (the others close with their loops)."""
        pool = self._pools.get(id(asyncio.get_running_loop()))
        if pool is not None and pool.guard is not None:
            await pool.guard.aclose()
        self._abandon_dead()

    async def _close_at_shutdown(self, pool: _Pool) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._pools.get(pool.key) is pool:
                    del self._pools[pool.key]
            if not pool.abandoned:
                await pool.client.aclose()

    def _abandon_dead(self) -> None:
        """Forget the pools of loops that were closed without shutting down their async
        generators (a loop closed by hand)."""
        with self._lock:
            dead = [pool for pool in self._pools.values() if _closed(pool.loop())]
            for pool in dead:
                del self._pools[pool.key]
        for pool in dead:
            pool.abandoned = True
            if pool.guard is not None:
                # Finishes at once, with no loop: an abandoned pool's guard awaits nothing.
                with contextlib.suppress(StopIteration):
                    pool.guard.aclose().send(None)


def _closed(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is None or loop.is_closed()
