"""The `llamaroute` command: models table and JSON, version, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llamaroute import __version__
from llamaroute.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_json_lists_every_key_with_every_provider(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    data = json.loads(out)
    assert [m["key"] for m in data] == [
        "llama-3.2-1b", "llama-3.2-3b", "llama-3.2-11b-vision", "llama-3.2-90b-vision",
    ]  # fmt: skip
    for model in data:
        providers = {route["provider"] for route in model["routes"]}
        assert providers == {"openrouter", "bedrock", "ollama"}
    ids = {route["model_id"] for model in data for route in model["routes"]}
    assert {"us.meta.llama3-2-90b-instruct-v1:0", "eu.meta.llama3-2-1b-instruct-v1:0",
            "meta-llama/llama-3.2-3b-instruct", "meta-llama/llama-3.2-3b-instruct:free",
            "llama3.2-vision:90b", "llama3.2:1b"} <= ids  # fmt: skip


def test_models_table_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "llama-3.2-90b-vision" in out
    assert "us.meta.llama3-2-90b-instruct-v1:0" in out
    assert "opt-in (free)" in out
    assert "? = cautious value" in out


def test_models_one_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "Llama-3.2-11B-Vision-Instruct", "--json")
    assert code == 0
    assert [m["key"] for m in json.loads(out)] == ["llama-3.2-11b-vision"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["models", "llama-3.2-9b"], "Did you mean"),
        (["models", "bedrock:"], "provider:model_id"),
        (["models", "meta.llama3-2-3b-instruct-v1:0"], "inference profile"),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert err.startswith("llamaroute: error: ")
    assert err.count("\n") == 1
    assert expected in err


def test_broken_catalog_file_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[routes]\n")
    code, _, err = run(capsys, "models", "--catalog", str(path))
    assert code == 1
    assert err.count("\n") == 1
    assert "not valid TOML" in err
    assert str(path) in err


def test_catalog_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[[routes]]\nprovider = "ollama"\nmodel = "llama-3.2-1b"\n'
                    'model_id = "llama3.2:1b-q8"\n')  # fmt: skip
    monkeypatch.setenv("LLAMAROUTE_CATALOG", str(path))
    code, out, _ = run(capsys, "models", "llama-3.2-1b")
    assert code == 0
    assert "llama3.2:1b-q8" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"llamaroute {__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "models" in err


def test_real_process_prints_no_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llamaroute", "models", "nope:x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("llamaroute: error: unknown model 'nope:x'")
