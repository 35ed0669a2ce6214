"""``llamaroute serve`` as a process: providers from the environment as ``Client()`` finds
them, or from a TOML file; a graceful shutdown lets an in-flight stream finish."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests._gateway import MASTER, PLACEHOLDER_KEY, serve

pytest.importorskip("uvicorn")

from llamaroute import ConfigurationError
from llamaroute.providers import OpenRouterProvider
from llamaroute.server import load_config
from llamaroute.testing import FakeOpenRouter, Step

SRC = str(Path(__file__).parent.parent / "src")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENROUTER", "OLLAMA", "AWS", "LLAMAROUTE"))
    }
    clean["PYTHONPATH"] = SRC + os.pathsep + clean.get("PYTHONPATH", "")
    # The child keeps its own copies of the descriptors.
    with log.open("wb") as errors, log.with_suffix(".out").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llamaroute", "serve", "--port", str(port), *args],
            env={**clean, **env},
            stdout=out,
            stderr=errors,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(log.read_text())


def test_serve_finds_providers_in_the_environment_and_drains_on_sigterm(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    with FakeOpenRouter(default=Step.reply(words, chunk_delay=0.05)) as fake:
        env = {
            "OPENROUTER_API_KEY": PLACEHOLDER_KEY,
            "OPENROUTER_BASE_URL": fake.base_url,
            "LLAMAROUTE_MASTER_KEY": MASTER,
        }
        process, url = _start(["--db", str(tmp_path / "gw.sqlite3")], env, tmp_path / "log")
        try:
            auth = {"Authorization": f"Bearer {MASTER}"}
            body = {
                "model": "llama-3.2-3b",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
            }
            with httpx.stream(
                "POST", f"{url}/v1/chat/completions", json=body, headers=auth, timeout=30
            ) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                next(lines)
                process.send_signal(signal.SIGTERM)  # mid-stream: it must still finish
                rest = [line for line in lines if line]
            assert rest[-1] == "data: [DONE]"
            assert "w29" in "".join(rest)
            # uvicorn re-raises the signal it caught once it has shut down.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
            # One JSON access line per call: no secrets, no prompt text.
            logged = (tmp_path / "log.out").read_text()
            line = json.loads(logged.strip().splitlines()[-1])
            assert (line["key"], line["model"], line["outcome"]) == ("master", "llama-3.2-3b", "ok")
            assert MASTER not in logged
            assert "Hi" not in logged
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_config_file_sets_providers_and_limits(tmp_path: Path) -> None:
    variable = "MY_KEY"  # the variable that holds the provider key
    with FakeOpenRouter(default=Step.reply("from the file")) as fake:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[gateway]\ndb = "gw.sqlite3"\nmax_body_bytes = 2048\n'
            f'[routing]\nstrategy = "cheapest"\n'
            f'[providers.openrouter]\napi_key_env = "{variable}"\nbase_url = "{fake.base_url}"\n'
        )
        process, url = _start(
            ["--config", str(config)],
            {"MY_KEY": PLACEHOLDER_KEY, "LLAMAROUTE_MASTER_KEY": MASTER},
            tmp_path / "log",
        )
        try:
            auth = {"Authorization": f"Bearer {MASTER}"}
            body = {"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]}
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth)
            assert answer.json()["choices"][0]["message"]["content"] == "from the file"
            body["messages"][0]["content"] = "x" * 4096
            assert (
                httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth).status_code == 413
            )
            assert (tmp_path / "gw.sqlite3").exists()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_bad_config_files_say_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[gateway]\nmax_body = 10\n")
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_config(config)
    config.write_text("[providers.azure]\n")
    with pytest.raises(ConfigurationError, match="azure"):
        load_config(config)
    config.write_text("[gateway\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(config)


def test_the_openrouter_pool_size_comes_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    section = '[providers.openrouter]\napi_key_env = "{}"\n'.format("MY_KEY")
    config.write_text(section + "max_connections = 7\nmax_keepalive_connections = 50\n")
    (provider,) = load_config(config).build_providers({"MY_KEY": PLACEHOLDER_KEY})
    assert isinstance(provider, OpenRouterProvider)
    pool = provider._build_async()._transport._pool  # type: ignore[attr-defined]
    # More kept alive than may be open makes no sense: the smaller of the two is kept.
    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 7)
    default = OpenRouterProvider(PLACEHOLDER_KEY)._build_async()._transport._pool  # type: ignore[attr-defined]
    assert (default._max_connections, default._max_keepalive_connections) == (100, 20)
    config.write_text(section + "max_connections = 0\n")
    with pytest.raises(ConfigurationError, match="pool sizes"):
        load_config(config).build_providers({"MY_KEY": PLACEHOLDER_KEY})


def test_the_example_config_file_loads() -> None:
    example = Path(__file__).parent.parent / "examples" / "gateway" / "gateway.toml"
    config = load_config(example)
    assert config.providers is not None
    assert list(config.providers) == ["ollama", "openrouter", "bedrock"]
    assert config.db == str(example.parent / "gateway.sqlite3")
    assert (config.strategy, config.retries, config.grace_period) == ("ordered", 2, 10.0)


def test_keys_in_the_config_file_take_their_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[keys]]\nname = "team-a"\nkey_env = "TEAM_A_KEY"\nbudget = "0.5"\nrpm = 60\n'
        'models = ["llama-3.2-3b"]\ntags = ["team-a"]\n'
    )
    given = "team-a-" + "placeholder" * 2  # not a key: any 16+ characters will do
    monkeypatch.setenv("TEAM_A_KEY", given)
    loaded = load_config(config)
    with FakeOpenRouter(default=Step.reply("hello")) as fake:
        provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
        with serve([provider], tmp_path / "gw.sqlite3", config=loaded) as gateway:
            body = {"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]}
            answer = httpx.post(f"{gateway.base_url}/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {given}"})  # fmt: skip
            assert answer.status_code == 200
            store = gateway.store()
            record = store.key("team-a")
            store.close()
    assert (record.budget, record.rpm, record.models, record.tags) == (
        Decimal("0.5"),
        60,
        ("llama-3.2-3b",),
        ("team-a",),
    )
    monkeypatch.delenv("TEAM_A_KEY")
    with pytest.raises(ConfigurationError, match="TEAM_A_KEY"):
        loaded.provision_keys(None)


def test_a_config_file_sets_deployments_a_fleet_state_and_a_shared_ledger(
    tmp_path: Path,
) -> None:
    # Two OpenRouter keys, each at 2 requests a minute, breakers on Redis and every billed
    # attempt written to a shared ledger (a SQLite file here; a PostgreSQL URL in a fleet).
    import uuid

    from llamaroute.money import SqliteLedger

    shared = tmp_path / "fleet.sqlite3"
    prefix = f"gw-{uuid.uuid4().hex[:8]}"
    variables = ("KEY_A", "KEY_B")  # the variables that hold the two provider keys
    with (
        FakeOpenRouter(default=Step.reply("a")) as first,
        FakeOpenRouter(default=Step.reply("b")) as second,
    ):
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[routing]\nstate = "redis://127.0.0.1:6379/0?prefix={prefix}"\n'
            f'ledger = "{shared}"\n'
            f'[[providers.openrouter]]\ndeployment = "or-a"\napi_key_env = "{variables[0]}"\n'
            f'base_url = "{first.base_url}"\nrpm = 2\n'
            f'[[providers.openrouter]]\ndeployment = "or-b"\napi_key_env = "{variables[1]}"\n'
            f'base_url = "{second.base_url}"\nrpm = 2\n'
        )
        loaded = load_config(config)
        assert loaded.state is not None
        assert loaded.ledger == str(shared)
        providers = loaded.build_providers(dict.fromkeys(variables, PLACEHOLDER_KEY))
        assert [p.deployment for p in providers] == ["or-a", "or-b"]
        with serve(providers, tmp_path / "gw.sqlite3", config=loaded) as gateway:
            auth = {"Authorization": f"Bearer {MASTER}"}
            body = {"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]}
            texts = [
                httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth).json()[
                    "choices"
                ][0]["message"]["content"]
                for _ in range(4)
            ]
        assert texts == ["a", "a", "b", "b"]  # or-a's limit reached: or-b serves, no 429
        assert (first.hits, second.hits) == (2, 2)
    ledger = SqliteLedger(shared)
    try:
        assert ledger.summary().calls == 4
    finally:
        ledger.close()
    import redis

    server = redis.Redis(host="127.0.0.1", port=6379)
    try:
        # The breakers the calls went through live on Redis, under the config's prefix.
        assert server.keys(f"llamaroute:{prefix}:*")
    finally:
        server.close()
