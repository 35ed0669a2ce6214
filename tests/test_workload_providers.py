"""Which provider is cheapest for a workload, per month (issue 16, item 9): lines name their own
model, ``--requests`` scales the workload's mix, ``--rate`` projects it per day and month, and
the cheapest provider that can serve every line is named (a free local one is not crowned when
it cannot)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import llamaroute
from llamaroute import UnknownModelError
from llamaroute.money import estimate_workload

from .test_cli import run

LINES = [
    {"model": "llama-3.2-3b", "prompt": "Summarise: the parcel is late.", "max_tokens": 100},
    {"model": "llama-3.2-90b-vision", "prompt": "What does a bar chart show?", "max_tokens": 300},
    {"prompt": "Name three uses of a llama.", "max_tokens": 80, "expected_output_tokens": 40},
    {"model": "Llama-3.2-3B-Instruct", "prompt": "Hello there", "max_tokens": 50},
]  # fmt: skip


def _write(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def _single(item: dict[str, object], default: str) -> llamaroute.Estimates:
    return llamaroute.estimate(  # type: ignore[return-value]
        str(item.get("model", default)), str(item["prompt"]),
        max_tokens=item.get("max_tokens"),  # type: ignore[arg-type]
        expected_output_tokens=item.get("expected_output_tokens"),  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_line_may_name_its_own_model_and_totals_stay_exact() -> None:
    result = estimate_workload([json.dumps(item) for item in LINES], "llama-3.2-90b-vision")
    assert (result.requests, result.bad_lines) == (4, 0)
    assert result.models == {"llama-3.2-3b": 2, "llama-3.2-90b-vision": 2}
    singles = [_single(item, "llama-3.2-90b-vision") for item in LINES]
    labels = {option.label: option for option in result.options}
    assert set(labels) == {"ollama", "openrouter", "bedrock us.", "bedrock eu."}
    assert labels["bedrock eu."].reasons == (
        "2 request(s) for llama-3.2-90b-vision: bedrock eu. has no route for llama-3.2-90b-vision",
    )
    for label in ("ollama", "openrouter", "bedrock us."):
        option = labels[label]
        assert option.serves_all, option.reasons
        assert len(option.model_ids) == 2
        mine = [next(e for e in found if e.model_id in option.model_ids) for found in singles]
        assert option.costs is not None
        assert option.costs[1] == sum((e.expected for e in mine if e.expected), Decimal(0))
        assert option.costs[2] == sum((e.high for e in mine if e.high), Decimal(0))
    [three] = [t for t in result.routes if t.route.model_id == "meta-llama/llama-3.2-3b-instruct"]
    assert three.tokens.requests == 2  # the 3B lines only, whatever name they used


def test_a_line_with_an_unknown_model_or_no_model_is_a_bad_line() -> None:
    lines = [json.dumps(item) for item in (
        LINES[0], {"model": "llama-9", "prompt": "x"}, {"prompt": "no model here"},
        {"model": 3, "prompt": "x"},
    )]  # fmt: skip
    result = estimate_workload(lines)
    assert (result.requests, result.bad_lines) == (1, 3)
    errors = [bad.error for bad in result.first_bad]
    assert isinstance(errors[0], UnknownModelError)
    assert "Did you mean" in str(errors[0])
    assert "no model: give the line a 'model'" in str(errors[1])
    assert "'model' must be a model name" in str(errors[2])
    assert result.model == ""


def test_requests_scale_the_workloads_mix_and_rate_projects_per_day_and_month(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _write(tmp_path / "w.jsonl", list(LINES))
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--workload",
                       str(path), "--requests", "10000", "--rate", "3,000/day",
                       "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["requests"], data["scaled_to"]) == (4, 10000)
    bedrock = next(item for item in data["options"] if item["label"] == "bedrock us.")
    expected = Decimal(bedrock["expected"])
    assert Decimal(bedrock["scaled"]["expected"]) == expected * 10000 / 4
    assert Decimal(bedrock["per_day"]["expected"]) == expected * 3000 / 4
    assert Decimal(bedrock["per_month"]["expected"]) == expected * 3000 * 30 / 4
    # Bedrock US 0.72/M (90B) and 0.15/M (3B) beat OpenRouter's 0.9/M and 0.335/M output.
    assert data["cheapest"] == "bedrock us."
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--workload",
                       str(path), "--requests", "10000", "--rate", "3000/day")  # fmt: skip
    assert "expected x10,000" in out
    assert "10,000 requests drawn from this workload's mix" in out
    assert "expected a month" in out
    assert "cheapest for every line: bedrock us. (" in out
    assert "a month at 3,000 requests a day" in out


def test_a_local_route_that_cannot_serve_every_line_is_listed_but_not_crowned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A local model served with a small context window cannot take the long prompt.
    small = tmp_path / "small.toml"
    small.write_text('[[routes]]\nprovider = "ollama"\nmodel = "llama-3.2-3b"\n'
                     'model_id = "llama3.2:3b"\ncontext_window = 2048\n')  # fmt: skip
    long = {"prompt": "word " * 4000, "max_tokens": 100}
    path = _write(tmp_path / "w.jsonl", [long, LINES[3]])
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-3b", "--workload", str(path),
                       "--catalog", str(small))  # fmt: skip
    assert code == 0
    assert "ollama       llama3.2:3b" in out
    assert "1 of 2" in out
    assert "cheapest for every line: openrouter (" in out
    assert "not crowned: ollama costs $0 but cannot serve 1 of 2 requests" in out
    assert "ollama cannot serve 1 request(s) on llama3.2:3b: needs ~" in out
    assert "context window is 2,048" in out


def test_the_verdict_says_when_bad_lines_were_left_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps(LINES[3]) + "\n{not json\n", encoding="utf-8")
    code, out, err = run(capsys, "estimate", "--model", "llama-3.2-3b", "--workload",
                         str(path))  # fmt: skip
    assert code == 0
    assert "line 2:" in err
    assert "cheapest for every valid line (1 bad line skipped): " in out
    assert "cheapest for every line:" not in out


def test_no_local_route_for_a_pinned_line_says_so(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:  # fmt: skip
    pinned = {"model": "bedrock:us.meta.llama3-2-3b-instruct-v1:0", "prompt": "hi"}
    path = _write(tmp_path / "w.jsonl", [LINES[0], pinned])
    code, out, _ = run(capsys, "estimate", "--workload", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["cheapest"] == "bedrock us."
    ollama = next(item for item in data["options"] if item["provider"] == "ollama")
    assert not ollama["serves_all"]
    assert ollama["reasons"] == [
        "1 request(s) for llama-3.2-3b: ollama has no route for llama-3.2-3b"
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--prompt", "hi"], "required: --model"),
        (["--model", "llama-3.2-3b", "--prompt", "hi", "--rate", "lots"], "--rate: a rate is"),
        (["--model", "llama-3.2-3b", "--prompt", "hi", "--rate", "5/year"], "--rate"),
    ],
)
def test_usage_mistakes_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(capsys, "estimate", *argv)
    assert exited.value.code == 2
    assert expected in capsys.readouterr().err


def test_rate_on_a_single_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-3b", "--prompt", "hi",
                       "--provider", "bedrock", "--rate", "1000/month", "--json")  # fmt: skip
    assert code == 0
    [item] = [e for e in json.loads(out)["estimates"] if e["model_id"].startswith("us.")]
    assert Decimal(item["per_month"]["expected"]) == Decimal(item["expected"]) * 1000
