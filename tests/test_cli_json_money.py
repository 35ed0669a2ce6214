"""Money in the command line's JSON is always a plain decimal string: ``"0.00000024"``, never
``"2.4E-7"`` (issue 16, item 13), in spend, estimate (one prompt and a workload), prices and
models; and the same in the library's own JSON (pydantic dumps, SpendSummary.as_dict) and the
gateway's answers."""

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


# --- the same rule outside the command line: the library's JSON and the gateway's -------------


def test_the_librarys_json_writes_tiny_amounts_plainly(tmp_path: Path) -> None:
    import llamaroute

    cost = llamaroute.Cost(total=Decimal("2.4E-7"), input=Decimal("1E-10"), source="provider")
    assert cost.total == Decimal("0.00000024")  # still the exact Decimal in Python
    _no_exponents(cost.model_dump_json())
    assert cost.model_dump(mode="json")["input"] == "0.0000000001"
    catalog_file = tmp_path / "tiny.toml"
    catalog_file.write_text(TINY)
    found = llamaroute.estimate(
        "llama-3.2-1b", "hi", catalog=llamaroute.load_catalog(catalog_file), max_tokens=1
    )
    dumped = json.dumps([item.model_dump(mode="json") for item in found])
    _no_exponents(dumped)
    ledger = SqliteLedger(str(tmp_path / "spend.db"))
    ledger.record(SpendEntry("openrouter", "llama-3.2-1b", "x", Decimal("2.4E-7"), "provider"))
    _no_exponents(json.dumps(ledger.summary().as_dict()))
    ledger.close()


def test_the_gateways_json_writes_tiny_amounts_plainly(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    from llamaroute.providers import OpenRouterProvider
    from llamaroute.testing import FakeOpenRouter, Step

    from ._gateway import MASTER, PLACEHOLDER_KEY, serve

    auth = {"Authorization": f"Bearer {MASTER}"}
    # One input token at $0.0509 per million: 5.09E-8 USD a request.
    with FakeOpenRouter(default=Step.reply("Hi", usage=(1, 0)), price=("0.0509", "0")) as fake:
        provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
        with serve([provider], tmp_path / "gw.sqlite3") as gateway:
            key = gateway.key("tiny", budget=Decimal("1"))
            hi = {"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]}
            answer = httpx.post(f"{gateway.base_url}/chat/completions", json=hi,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 200, answer.text
            bodies = {
                "spend": httpx.get(f"{gateway.base_url}/spend", headers=auth).text,
                "spend by day": httpx.get(
                    f"{gateway.base_url}/spend", params={"by": "day"}, headers=auth
                ).text,
                "estimate": httpx.post(
                    f"{gateway.base_url}/estimate", json={**hi, "max_tokens": 1}, headers=auth
                ).text,
                "dashboard": httpx.get(f"{gateway.url}/ui/data", headers=auth).text,
            }
    spend = json.loads(bodies["spend"])
    assert Decimal(spend["total"]) == Decimal("5.09E-8")
    for name, body in bodies.items():
        assert EXPONENT.findall(body) == [], name
    assert "0.0000000509" in bodies["spend"]
    assert "0.9999999491" in bodies["dashboard"]  # the key's remaining budget
