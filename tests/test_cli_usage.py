"""Usage mistakes name the subcommand's usage, and ``chat -`` reads the prompt from stdin
(issue 16, item 11)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llamaroute.cli import main
from llamaroute.testing import FakeOpenRouter, Step

from .conftest import CANARY_KEY


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (["estimate", "--modle", "llama-3.2-3b", "--prompt", "hi"], "usage: llamaroute estimate",
         "unrecognized arguments: --modle llama-3.2-3b (did you mean --model?)"),
        (["chat", "--model", "llama-3.2-3b", "--strem", "hi"], "usage: llamaroute chat",
         "unrecognized arguments: --strem (did you mean --stream?)"),
        (["prices", "--jsn"], "usage: llamaroute prices",
         "unrecognized arguments: --jsn (did you mean --json?)"),
        (["spend", "--ledger", "x.db", "extra"], "usage: llamaroute spend",
         "unrecognized arguments: extra\n"),
    ],
)  # fmt: skip
def test_a_typod_flag_prints_the_subcommands_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, error: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert "usage: llamaroute [-h]" not in err
    assert f"llamaroute {argv[0]}: error: {error}" in err


@pytest.mark.parametrize(("typed", "meant"), [("estimat", "estimate"), ("modles", "models")])
def test_a_mistyped_command_names_the_closest_one(
    capsys: pytest.CaptureFixture[str], typed: str, meant: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([typed])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{typed}'" in err
    assert err.rstrip().endswith(f"(did you mean {meant}?)")


def test_a_command_like_no_other_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_a_real_process_shows_the_subcommands_usage() -> None:
    done = subprocess.run([sys.executable, "-m", "llamaroute", "doctor", "--jsn"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("usage: llamaroute doctor")
    assert "Traceback" not in done.stderr


@pytest.fixture
def openrouter(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenRouter]:
    for name in ("OLLAMA_HOST", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "LLAMAROUTE_LEDGER",
                 "LLAMAROUTE_CATALOG"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    with FakeOpenRouter() as fake:
        monkeypatch.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", fake.base_url)
        yield fake


def test_chat_dash_reads_the_prompt_from_stdin(
    openrouter: FakeOpenRouter, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    openrouter.script(Step.reply("Llamas hum."))
    monkeypatch.setattr(sys, "stdin", io.StringIO("What do llamas do?\nAnswer briefly.\n"))
    assert main(["chat", "--model", "llama-3.2-3b", "-"]) == 0
    assert capsys.readouterr().out == "Llamas hum.\n"
    [request] = openrouter.requests
    assert request.json["messages"][-1]["content"] == "What do llamas do?\nAnswer briefly."


def test_chat_dash_with_nothing_on_stdin_is_one_error_line(
    openrouter: FakeOpenRouter, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["chat", "--model", "llama-3.2-3b", "-"]) == 1
    err = capsys.readouterr().err
    assert err == "llamaroute: error: the prompt read from stdin (chat -) is empty\n"
    assert openrouter.hits == 0
