"""The gateway on a real socket for tests: uvicorn in a thread on 127.0.0.1 (a free port), over
providers played by llamaroute.testing fakes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn

from llamaroute.providers import Provider
from llamaroute.server import GatewayConfig, Store, create_app

MASTER = "master-placeholder-not-a-key"
PLACEHOLDER_KEY = "placeholder-not-a-key"  # the fakes accept any provider key


@dataclass
class Running:
    """A gateway being served: its URL, its store (same file, its own connection)."""

    url: str
    db: Path
    app: Any

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def store(self) -> Store:
        return Store(self.db)

    def key(self, name: str = "team", **options: Any) -> str:
        store = self.store()
        try:
            return store.create_key(name, **options)[1]
        finally:
            store.close()


@contextmanager
def serve(
    providers: Sequence[Provider],
    db: Path,
    *,
    config: GatewayConfig | None = None,
    client_options: dict[str, Any] | None = None,
) -> Iterator[Running]:
    """Run the gateway until the block ends (a graceful shutdown)."""
    app = create_app(
        config or GatewayConfig(timeout=20),
        db=str(db),
        providers=providers,
        master_key=MASTER,
        client_options=client_options,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", db, app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


_OPEN: list[Any] = []  # the openai SDK clients sdk() made, closed after each test


def sdk(gateway: Running, key: str = MASTER) -> Any:
    """The official openai SDK pointed at ``gateway`` with ``key`` (no retries of its own)."""
    import openai

    client = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30)
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
def close_sdk_clients() -> Iterator[None]:
    """Autouse in the modules that import it: closes the SDK clients a test made."""
    yield
    while _OPEN:
        _OPEN.pop().close()
