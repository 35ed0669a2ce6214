"""The provider's socket wrapper sends a request's head and body in one write (one send, one
wake-up of the server, instead of two), driven by httpcore's real HTTP/1.1 connection."""

from __future__ import annotations

import asyncio

import httpcore

from llamaroute.providers._reading import AsyncDeadlineStream, DeadlineStream

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
ORIGIN = httpcore.Origin(b"http", b"upstream.invalid", 80)


class Recording(httpcore.NetworkStream):
    """A socket that records what is written and answers one canned response."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.answer = ANSWER

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.writes.append(b"<read>")
        found, self.answer = self.answer, b""
        return found

    def close(self) -> None:
        pass

    def get_extra_info(self, info: str) -> object:
        return None


class AsyncRecording(httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self.sync = Recording()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sync.write(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.sync.read(max_bytes)

    async def aclose(self) -> None:
        pass

    def get_extra_info(self, info: str) -> object:
        return None


def sent(writes: list[bytes]) -> list[bytes]:
    return [w for w in writes if w]


def test_a_post_is_one_write_then_reads() -> None:
    inner = Recording()
    connection = httpcore.HTTP11Connection(ORIGIN, DeadlineStream(inner))
    response = connection.request("POST", "http://upstream.invalid/v1/chat", content=b'{"a":1}')
    assert response.content == b"ok"
    first, *rest = sent(inner.writes)
    assert first.startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert first.endswith(b'\r\n\r\n{"a":1}')
    assert set(rest) == {b"<read>"}


def test_an_async_post_and_a_get_are_one_write_each() -> None:
    async def go() -> list[bytes]:
        inner = AsyncRecording()
        connection = httpcore.AsyncHTTP11Connection(ORIGIN, AsyncDeadlineStream(inner))
        response = await connection.request("POST", "http://upstream.invalid/a", content=b"{}")
        assert response.content == b"ok"
        inner.sync.answer = ANSWER
        response = await connection.request("GET", "http://upstream.invalid/b")
        assert response.content == b"ok"
        return sent(inner.sync.writes)

    writes = asyncio.run(go())
    heads = [w for w in writes if w != b"<read>"]
    assert len(heads) == 2
    assert heads[0].startswith(b"POST /a ")
    assert heads[0].endswith(b"\r\n\r\n{}")
    assert heads[1].startswith(b"GET /b ")
    assert heads[1].endswith(b"\r\n\r\n")
    # Every request is written whole before its answer is read.
    assert writes.index(heads[1]) > writes.index(b"<read>")
