"""Every script under ``examples/`` runs offline: no credentials in its environment, nothing
but 127.0.0.1 to talk to (the examples fall back to llamaroute's fake servers), exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))

#: What an example must print offline, beyond running.
SHOWS = {
    "chat_local.py": [
        "No Ollama with llama3.2:3b", "using the fake Ollama", "-> ollama llama3.2:3b",
        "finished: stop",
    ],
    "extract_from_image.py": [
        "using the fake providers", "openrouter: Llama Cafe, 2 items, total 7.5",
        "bedrock: Llama Cafe, 2 items, total 7.5", "ollama: Llama Cafe, 2 items, total 7.5",
        "2 attempt(s), cost 0",
    ],
    "fallback.py": [
        "the fake OpenRouter, Bedrock and Ollama", "error: RateLimitError", "retry-after 0.3 s",
        "-> bedrock answered", "openrouter:meta-llama/llama-3.2-3b-instruct          open",
        "error: ProviderTimeoutError", "-> ollama answered", "DeadlineExceededError after 1.0",
    ],
    "tools.py": [
        "bad tool call call_fake_0: invalid_json", "get_weather({'city': 'Oslo'}) [call_or_1]",
        "-> ollama: finish_reason stop",
    ],
    "tools_agent.py": [
        "round 1 -> openrouter: get_weather({'city': 'Trondheim'}) [call_1]",
        'result for call_1: {"error": "LookupError: no weather station in Trondheim"}',
        "round 3 -> ollama: compare({'a': 21, 'b': 14}) [call_4]", "round 4 -> ollama: final",
        "Oslo is warmer", "4 rounds, 6 attempts", "tool errors sent back to the model: 1",
    ],
}  # fmt: skip


def offline_env(example: str, refused_port: int) -> dict[str, str]:
    """This environment without any provider's credentials or settings (``AWS_*`` covers
    every AWS credential variable). ``OLLAMA_HOST`` points at a port where nothing listens,
    so that an Ollama on this machine is not used either; except for ``fallback.py``, where
    setting it means "use the real providers"."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPENROUTER_", "OLLAMA_", "AWS_"))
    }
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if example != "fallback.py":
        env["OLLAMA_HOST"] = f"127.0.0.1:{refused_port}"
    return env


def test_every_example_is_found() -> None:
    assert {path.name for path in EXAMPLES} >= {"chat_local.py", "chat_openrouter.py",
                                                 "estimate_costs.py", "fallback.py",
                                                 "vision_bedrock.py"}  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_the_example_runs_offline(example: Path, refused_port: int) -> None:
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                          env=offline_env(example.name, refused_port), timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
    missing = [text for text in SHOWS.get(example.name, []) if text not in done.stdout]
    assert missing == [], done.stdout
