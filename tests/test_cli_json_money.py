"""Money in the command line's JSON is always a plain decimal string: ``"0.00000024"``, never
``"2.4E-7"`` (issue 16, item 13), in spend, estimate (one prompt and a workload), prices and
models."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute.money import SpendEntry, SqliteLedger

from .test_cli import run

PLAIN = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
# Any JSON string that is a number in exponent form: "2.4E-7", "1E+1", "5e-08".
EXPONENT = re.compile(r'"-?[0-9.]+[eE][-+]?[0-9]+"')

# Prices so small that str(Decimal) of a request's cost is in exponent form.
TINY = """
[[prices]]
provider = "openrouter"
model_id = "meta-llama/llama-3.2-1b-instruct"
input_per_mtok = "0.00000010"
output_per_mtok = "0.0000003"
source = "https://example.com/tiny"
checked = 2026-11-01
"""


def _no_exponents(out: str) -> None:
    assert EXPONENT.findall(out) == []


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def test_spend_json_writes_tiny_amounts_plainly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = str(tmp_path / "spend.db")
    ledger = SqliteLedger(path)
    for provider, model_id, cost in (
        ("openrouter", "meta-llama/llama-3.2-1b-instruct", "2.4E-7"),
        ("bedrock", "us.meta.llama3-2-1b-instruct-v1:0", "0.00000105"),
        ("ollama", "llama3.2:1b", "1E-10"),
    ):
        ledger.record(SpendEntry(provider, "llama-3.2-1b", model_id, Decimal(cost), "provider"))
    ledger.close()
    code, out, _ = run(capsys, "spend", "--ledger", path, "--json")
    assert code == 0
    _no_exponents(out)
    data = json.loads(out)
    assert data["total"] == "0.0000012901"
    assert data["by_provider"] == {
        "openrouter": "0.00000024",
        "bedrock": "0.00000105",
        "ollama": "0.0000000001",
    }
    assert all(PLAIN.match(amount) for amount in data["by_day"].values())
    code, out, _ = run(capsys, "spend", "--ledger", path)
    assert "0.0000012901 USD over 3 billed attempt(s)" in out


def test_estimate_json_writes_tiny_amounts_plainly(
    capsys: pytest.CaptureFixture[str], tiny: str
) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-1b", "--prompt", "hi",
                       "--provider", "openrouter", "--catalog", tiny, "--expected-output-tokens",
                       "1", "--requests", "3", "--rate", "7/day", "--json")  # fmt: skip
    assert code == 0
    _no_exponents(out)
    [item] = json.loads(out)["estimates"]
    assert item["price"]["input_per_mtok"] == "0.00000010"
    for amount in (item["low"], item["expected"], item["high"], *item["totals"].values(),
                   *item["per_day"].values(), *item["per_month"].values()):  # fmt: skip
        assert PLAIN.match(amount), amount
    assert Decimal(item["low"]) < Decimal("1e-10")


def test_workload_json_writes_tiny_amounts_plainly(
    capsys: pytest.CaptureFixture[str], tiny: str, tmp_path: Path
) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "hi", "expected_output_tokens": 1}\n')
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-1b", "--workload", str(path),
                       "--provider", "openrouter", "--catalog", tiny, "--requests", "3",
                       "--json")  # fmt: skip
    assert code == 0
    _no_exponents(out)
    [option] = json.loads(out)["options"]
    assert PLAIN.match(option["low"])
    assert PLAIN.match(option["scaled"]["expected"])


def test_prices_and_models_json_write_amounts_plainly(
    capsys: pytest.CaptureFixture[str], tiny: str
) -> None:
    code, out, _ = run(capsys, "prices", "llama-3.2-1b", "--json", "--catalog", tiny)
    assert code == 0
    _no_exponents(out)
    rows = {row["model_id"]: row for row in json.loads(out)}
    assert rows["meta-llama/llama-3.2-1b-instruct"]["price"]["output_per_mtok"] == "0.0000003"
    code, out, _ = run(capsys, "prices", "llama-3.2-1b", "--catalog", tiny)
    assert "0.00000010" in out
    code, out, _ = run(capsys, "models", "--json", "--catalog", tiny)
    assert code == 0
    _no_exponents(out)
