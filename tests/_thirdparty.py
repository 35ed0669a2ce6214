"""Starting the third-party mock servers that llamaroute is checked against: LLMock (PyPI, an
OpenAI-compatible mock with fault injection) and aimock (npm ``@copilotkit/aimock``, driven by
``aimock-pytest``; it mocks Bedrock Converse and Ollama among others). Both run as child
processes on 127.0.0.1; without them, the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

LLMOCK = shutil.which("llmock", path=str(Path(sys.executable).parent)) or shutil.which("llmock")

AIMOCK_VERSION = "1.43.0"  # the newest @copilotkit/aimock on npm when this was written


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_llmock(*options: str) -> Iterator[str]:
    """``llmock serve`` with ``options`` on a free port of 127.0.0.1; yields its URL."""
    if LLMOCK is None:
        pytest.skip("llmock is not installed (pip install -e '.[dev]')")
    port = free_port()
    process = subprocess.Popen(
        [LLMOCK, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("llmock did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def install_aimock() -> Path:
    """aimock's ``cli.js``, installed once with npm into a cache directory
    (``$LLAMAROUTE_AIMOCK_DIR``, default ``~/.cache/llamaroute-aimock``).

    aimock-pytest's own downloader fetches a release (1.45.0 in aimock-pytest 0.7.0) that the
    npm registry does not have, and would do it inside the test session, where pytest-socket
    allows 127.0.0.1 only; npm runs as a child process, outside that guard. Skips without
    node or npm, or when the install fails (offline with an empty cache).
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("aimock needs Node.js >= 20 and npm on PATH")
    root = Path(os.environ.get("LLAMAROUTE_AIMOCK_DIR", Path.home() / ".cache/llamaroute-aimock"))
    prefix = root / AIMOCK_VERSION
    cli = prefix / "node_modules/@copilotkit/aimock/dist/cli.js"
    if not cli.is_file():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
             f"@copilotkit/aimock@{AIMOCK_VERSION}"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not cli.is_file():
            pytest.skip(f"could not install aimock with npm: {done.stderr.strip()[-300:]}")
    return cli


@contextmanager
def running_aimock(fixtures: Path, content: dict[str, Any]) -> Iterator[Any]:
    """aimock on a free port of 127.0.0.1, loaded with ``content`` (written to ``fixtures``);
    yields aimock-pytest's ``AIMockServer``."""
    aimock_pytest = pytest.importorskip("aimock_pytest", reason="pip install -e '.[dev]'")
    cli = install_aimock()
    fixtures.write_text(json.dumps(content))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIMOCK_CLI_PATH", str(cli))
        server = aimock_pytest.AIMockServer(
            aimock_pytest.NodeManager(version=AIMOCK_VERSION), port=0, fixtures_path=fixtures
        )
        with serving(server):
            yield server


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    """Start an aimock-pytest ``AIMockServer``; stop it after the block."""
    server.start()
    process = server._proc
    try:
        yield server
    finally:
        server.stop()
        if process is not None and process.stdout is not None:
            process.stdout.close()  # aimock-pytest leaves its output pipe open
