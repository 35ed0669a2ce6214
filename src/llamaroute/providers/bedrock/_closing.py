"""Closing what a Bedrock attempt opened: its event stream, once no thread reads it, and the
client's connection pools, idle connections included."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._wire import close_stream

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

__all__ = ["close_after", "close_opened", "close_pools"]


def close_opened(opened: list[Any]) -> None:
    """Close the event iterator, then the botocore stream (and so the HTTP response)."""
    if len(opened) == 2:
        close_stream(opened[0], opened[1])
    else:
        opened[0].close()


def close_after(pending: Future[Any] | None, opened: list[Any]) -> None:
    """Close the stream once no thread reads it: at once, or when the step still running in
    a worker (its task was cancelled) ends; closing a generator that another thread is
    running raises ``ValueError: generator already executing``.

    A task cancelled while it waited for the request step may find that step already done:
    the stream it opened never reached ``opened``, and is taken from the step's result, done
    or not yet (else its connection stays open until the garbage collector finds it)."""

    def close(step: Future[Any] | None) -> None:
        if step is not None and not opened and not step.cancelled() and step.exception() is None:
            result = step.result()
            if isinstance(result, Mapping) and "stream" in result:
                opened.append(result["stream"])  # the stream opened as its task was cancelled
        if opened:
            close_opened(opened)

    if pending is None:
        close(None)
    else:
        pending.add_done_callback(close)  # called at once when the step is done already


def close_pools(client: BedrockRuntimeClient) -> None:
    """Close the client's urllib3 connection pools, idle connections included.

    botocore's ``close()`` only makes its pool manager forget the pools: with urllib3 2, a pool
    closes its connections when it is garbage collected. After an error or an incomplete
    stream, the pool is still referenced (by the response, through the error's traceback), so
    its idle connections would stay open after ``close()`` until the cyclic collector runs.
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    managers = [getattr(session, "_manager", None)]
    managers += list(getattr(session, "_proxy_managers", {}).values())
    for manager in managers:
        pools = getattr(manager, "pools", None)
        if pools is None:
            continue
        for key in pools.keys():  # noqa: SIM118 (urllib3 refuses to iterate its container)
            pool = pools.get(key)
            if pool is not None:
                pool.close()
