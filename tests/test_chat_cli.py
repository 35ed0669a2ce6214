"""llamaroute chat, doctor and spend, configured through the environment as a user would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamaroute.cli import main
from llamaroute.testing import FakeOllama, FakeOpenRouter, Step

from .conftest import CANARY_KEY


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOpenRouter, FakeOllama]]:
    for name in ("OLLAMA_HOST", "OPENROUTER_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_PROFILE",
                 "LLAMAROUTE_LEDGER", "LLAMAROUTE_CATALOG"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    with FakeOpenRouter() as openrouter, FakeOllama() as ollama:
        monkeypatch.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", openrouter.base_url)
        monkeypatch.setenv("OLLAMA_HOST", ollama.url)
        yield openrouter, ollama


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_chat_prints_the_answer_and_the_details_apart(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str]
) -> None:
    openrouter, ollama = env
    ollama.script(Step.error(503), Step.error(503), Step.error(503))
    openrouter.script(Step.reply("Llamas hum.", cost="0.0001"))
    code, out, err = run(capsys, "chat", "--model", "llama-3.2-3b", "Tell me about llamas")
    assert code == 0
    assert out == "Llamas hum.\n"
    assert "openrouter meta-llama/llama-3.2-3b-instruct" in err
    assert "0.0001 USD (provider)" in err
    assert err.count("ServerError HTTP 503") == 3
    assert CANARY_KEY not in out + err


def test_chat_streams_with_a_strategy_and_a_provider_filter(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str]
) -> None:
    env[1].script(Step(chunks=("Hel", "lo")))
    code, out, err = run(capsys, "chat", "--model", "llama-3.2-1b", "--stream",
                         "--strategy", "cheapest", "--provider", "ollama", "hi")  # fmt: skip
    assert (code, out) == (0, "Hello\n")
    assert "ollama llama3.2:1b" in err
    assert env[0].hits == 0


def test_chat_records_into_a_ledger_and_spend_reads_it(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ledger = str(tmp_path / "spend.db")
    env[0].default = Step.reply("ok", cost="0.25")
    for _ in range(2):
        assert run(capsys, "chat", "--model", "llama-3.2-3b", "--provider", "openrouter",
                   "--ledger", ledger, "hi")[0] == 0  # fmt: skip
    code, out, _ = run(capsys, "spend", "--ledger", ledger, "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["total"], data["calls"]) == ("0.50", 2)
    assert data["by_provider"] == {"openrouter": "0.50"}
    code, out, _ = run(capsys, "spend", "--ledger", ledger)
    assert "0.50 USD over 2 billed attempt(s)" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["chat", "--model", "llama-3.2-9b", "hi"], "unknown model"),
        (["chat", "--model", "llama-3.2-3b", "--image", "/no/such.png", "hi"], "text-only"),
        (["chat", "--model", "llama-3.2-3b", "--max-cost", "lots", "hi"], "--max-cost"),
        (["chat", "--model", "llama-3.2-90b-vision", "--max-cost", "0.0000000001",
          "--provider", "openrouter", "--max-tokens", "100", "hi"], "no route fits"),
        (["spend"], "no ledger"),
        (["spend", "--ledger", "/no/such/ledger.db"], "no ledger file"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str],
    argv: list[str], expected: str,
) -> None:  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("llamaroute: error: ")
    assert err.count("\n") == 1
    assert expected in err
    assert env[0].hits == 0


def test_doctor_reports_each_provider(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "doctor", "--json")
    assert code == 0
    report = {entry["provider"]: entry for entry in json.loads(out)["providers"]}
    assert set(report) == {"ollama", "openrouter"}
    assert "server up" in report["ollama"]["status"]
    assert "llama3.2:3b" in report["ollama"]["status"]
    assert "reachable" in report["openrouter"]["status"]
    assert "llama-3.2-90b-vision" in report["openrouter"]["models"]


def test_doctor_says_what_is_wrong(
    env: tuple[FakeOpenRouter, FakeOllama], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, refused_port: int,
) -> None:  # fmt: skip
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{refused_port}")
    code, out, _ = run(capsys, "doctor")
    assert code == 1  # a configured provider that cannot be used
    assert "nothing is listening at" in out  # the reason, in plain words
    assert "ollama serve" in out
    assert "not usable: ollama" in out
    for name in ("OLLAMA_HOST", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(name)
    code, out, _ = run(capsys, "doctor")
    assert code == 1
    assert "No provider is configured" in out
