"""`llamaroute prices` and `llamaroute estimate`: tables, JSON, workloads, one-line errors."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute.cli import main, money

from .test_cli import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def test_prices_table_lists_sources_dates_and_ages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "prices")
    assert code == 0
    assert "https://aws.amazon.com/bedrock/pricing/" in out
    assert "genai-prices 0.2.5" in out
    assert "2026-12-07" in out  # the date the sources were read
    assert "eu.meta.llama3-2-1b-instruct-v1:0" in out
    assert "read" in out.splitlines()[0]
    assert "age" in out.splitlines()[0]
    # The 90B :free entry was read on 2026-08-22, past OpenRouter's 30 days: flagged and warned.
    assert " !" in out
    assert "warning:" in err
    # A route with no price at all is listed as unknown.
    mine = tmp_path / "nitro.toml"
    mine.write_text(
        '[[routes]]\nprovider = "openrouter"\nmodel = "llama-3.2-1b"\n'
        'model_id = "meta-llama/llama-3.2-1b-instruct:nitro"\n'
    )
    code, out, _ = run(capsys, "prices", "llama-3.2-1b", "--catalog", str(mine))
    assert code == 0
    assert "unknown" in next(line for line in out.splitlines() if ":nitro" in line)


def test_prices_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "llama-3.2-90b-vision", "--json")
    assert code == 0
    rows = {row["model_id"]: row for row in json.loads(out)}
    bedrock = rows["us.meta.llama3-2-90b-instruct-v1:0"]
    assert bedrock["price"]["input_per_mtok"] == "0.72"
    assert bedrock["price"]["checked"] == "2026-12-07"
    assert bedrock["price"]["stale_after_days"] == 90
    assert bedrock["price"]["batch_input_per_mtok"] is None
    assert bedrock["age_days"] == (date.today() - date(2026, 12, 7)).days
    assert rows["llama3.2-vision:90b"]["price"]["output_per_mtok"] == "0"
    assert rows["llama3.2-vision:90b"]["stale"] is False


def test_prices_json_lists_each_regional_price(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "llama-3.2-3b", "--json")
    assert code == 0
    eu = [row for row in json.loads(out) if row["model_id"].startswith("eu.")]
    assert [(row["regions"], row["price"]["input_per_mtok"]) for row in eu] == [
        (["eu-central-1"], "0.19"), (["eu-west-1"], "0.17"), (["eu-west-3"], "0.20"),
    ]  # fmt: skip


def test_estimate_table_covers_every_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--prompt",
                       "What does this chart show?", "--image", str(EXAMPLES / "chart.png"),
                       "--max-tokens", "500", "--requests", "1000")  # fmt: skip
    assert code == 0
    for native in ("llama3.2-vision:90b", "meta-llama/llama-3.2-90b-vision-instruct",
                   "us.meta.llama3-2-90b-instruct-v1:0"):  # fmt: skip
        assert native in out
    assert "expected x1,000" in out
    assert "+ 1 image" in out
    assert "input (low/exp/high)" in out
    # Bedrock bills about 0 tokens for the image, and the high end the padded 4 tiles.
    bedrock = next(line for line in out.splitlines() if line.startswith("bedrock"))
    assert "/ 6,4" in bedrock


def test_estimate_can_force_the_heuristic(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-1b", "--prompt", "Hello there",
                       "--counter", "heuristic")  # fmt: skip
    assert code == 0
    assert "(counted by: heuristic)" in out


def test_estimate_json_per_request_and_per_n_are_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-3b", "--prompt", "Hello",
                       "--requests", "250", "--json", "--provider", "bedrock")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["requests"] == 250
    for item in data["estimates"]:
        if item["expected"] is not None:
            assert Decimal(item["totals"]["expected"]) == Decimal(item["expected"]) * 250
            assert Decimal(item["totals"]["high"]) == Decimal(item["high"]) * 250
        else:
            assert item["totals"]["expected"] is None


def test_prompt_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Explain the chart in two sentences.", encoding="utf-8")
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-1b", "--prompt-file", str(prompt))
    assert code == 0
    assert "prompt tokens in Meta's chat format" in out


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--prompt", "x", "--max-tokens", "-5"], "max_tokens"),
        (["--prompt", "x", "--max-tokens", "0"], "max_tokens"),
        (["--prompt", "x", "--image", "missing.png"], "image file not found"),
        (["--prompt", "x", "--image", str(ROOT / "README.md")], "not a PNG, JPEG, GIF or WebP"),
        (["--prompt-file", "absent.txt"], "prompt file not found"),
        (["--workload", "absent.jsonl"], "workload file not found"),
        (["--prompt", "x", "--requests", "0"], "--requests"),
        (["--prompt", "x", "--provider", "azure"], "unknown provider"),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code, out, err = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", *extra)
    assert code == 1
    assert out == ""
    assert err.startswith("llamaroute: error: ")
    assert err.count("\n") == 1
    assert expected in err


def test_unknown_model_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "estimate", "--model", "llama-3.2-9b", "--prompt", "x")
    assert code == 1
    assert err.count("\n") == 1
    assert "Did you mean" in err


def test_workload_flags_that_belong_on_lines_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["estimate", "--model", "llama-3.2-3b", "--workload", "w.jsonl", "--image", "a.png"])
    assert exited.value.code == 2
    assert "give these on each line" in capsys.readouterr().err


def test_workload_totals_and_bad_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join([
        json.dumps({"prompt": "Hello", "max_tokens": 100}),
        "oops",
        json.dumps({"prompt": "x", "max_tokens": -1}),
        json.dumps({"prompt": "x", "image": "gone.png"}),
        json.dumps({"prompt": "x", "image": "notes.txt"}),
        json.dumps({"prompt": "Bye", "max_tokens": 100}),
    ]) + "\n")  # fmt: skip
    code, out, err = run(capsys, "estimate", "--model", "llama-3.2-11b-vision", "--workload",
                         str(path))  # fmt: skip
    assert code == 0
    assert "6 lines" in out
    assert "2 requests estimated, 4 bad lines" in out
    assert "us.meta.llama3-2-11b-instruct-v1:0" in out
    errors = err.splitlines()
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1].startswith("line 3: max_tokens must be a whole number >= 1")
    assert errors[2].startswith("line 4: image file not found")
    assert errors[3].startswith("line 5: the data from file")
    assert len(errors) == 4  # no progress bar: stderr is not a terminal


def test_workload_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--workload",
                       str(EXAMPLES / "workload.jsonl"), "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["lines"], data["requests"], data["bad_lines"]) == (12, 12, 0)
    assert data["models"] == {"llama-3.2-90b-vision": 8, "llama-3.2-3b": 4}
    bedrock = next(r for r in data["routes"] if r["model_id"].startswith("us.meta.llama3-2-90b"))
    assert bedrock["images"] == 1
    rate = Decimal("0.72") / 10**6
    assert (
        Decimal(bedrock["high"])
        == (bedrock["input_tokens_high"] + bedrock["output_tokens_max"]) * rate
    )


def test_a_workload_with_no_good_line_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n")
    code, _, err = run(capsys, "estimate", "--model", "llama-3.2-3b", "--workload", str(path))
    assert code == 1
    assert err.splitlines()[-1].startswith("llamaroute: error: no request")


@pytest.mark.parametrize(
    ("amount", "text"),
    [(None, "unknown"), (Decimal(0), "$0"), (Decimal("1.44"), "$1.44"),
     (Decimal("0.0000123456"), "$0.000012"), (Decimal("2.349750"), "$2.3498"),
     (Decimal("12345.678"), "$12,345.68"), (Decimal("0.0000001"), "<$0.000001")],
)  # fmt: skip
def test_money_is_rounded_for_display_only(amount: Decimal | None, text: str) -> None:
    assert money(amount) == text


def test_the_readme_main_command_works_from_the_checkout() -> None:
    readme = (ROOT / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    command = first.split(" && ", 3)[3]  # after venv, activate and install: what a user runs
    assert command.startswith("llamaroute estimate --model llama-3.2-90b-vision")
    argv = shlex.split(command)
    env = {**os.environ, "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "llamaroute", *argv[1:]], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for provider in ("ollama", "openrouter", "bedrock"):
        assert f"\n{provider} " in out.stdout


def test_the_example_script_runs() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "estimate_costs.py")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "$1.44 per million input + million output tokens" in out.stdout
    assert "local cost" in out.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{n}"}) + "\n" for n in range(5000)))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["estimate", "--model", "llama-3.2-1b", "--workload", str(path)]) == 0
    shown = terminal.getvalue()
    assert "% 2,000 lines" in shown
    assert "80% 4,000 lines" in shown
    assert shown.endswith("\r\033[K")  # the bar is cleared before the table is printed
