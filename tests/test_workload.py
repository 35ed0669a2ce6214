"""Workload estimates: streamed JSONL, exact totals, typed errors per bad line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llamaroute
from llamaroute import InvalidImageError, InvalidRequestError, UnknownModelError
from llamaroute.cli import main
from llamaroute.money import BadLine, estimate_workload, parse_line

from .conftest import make_png

GOOD = [
    {"prompt": "Summarise this ticket: the parcel is late.", "max_tokens": 200},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Translate 'bonjour' to English."}],
     "expected_output_tokens": 5},
    {"system": "You are a chart reader.", "prompt": "What does this chart show?",
     "image": "chart.png", "max_tokens": 300},
    {"id": 7, "prompt": "Escribe un haiku sobre el mar.", "max_tokens": 60,
     "expected_output_tokens": 20},
]  # fmt: skip


def _lines(items: list[object]) -> list[str]:
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def test_totals_equal_the_sum_of_single_estimates_exactly(tmp_path: Path) -> None:
    make_png(tmp_path / "chart.png", 800, 500)
    result = estimate_workload(_lines(GOOD), "llama-3.2-90b-vision", base_dir=tmp_path)
    assert (result.lines, result.requests, result.bad_lines) == (4, 4, 0)
    singles = [
        llamaroute.estimate(
            "llama-3.2-90b-vision", item.get("prompt"), messages=item.get("messages"),
            system=item.get("system"), max_tokens=item.get("max_tokens"),
            expected_output_tokens=item.get("expected_output_tokens"),
            image=tmp_path / item["image"] if "image" in item else None,
        )
        for item in GOOD
    ]  # fmt: skip
    for totals in result.routes:
        costs = totals.costs()
        assert costs is not None
        mine = [next(e for e in est if e.pinned == totals.route.pinned) for est in singles]
        assert costs == (
            sum((e.low for e in mine if e.low is not None), Decimal(0)),
            sum((e.expected for e in mine if e.expected is not None), Decimal(0)),
            sum((e.high for e in mine if e.high is not None), Decimal(0)),
        )
        assert totals.tokens.images == 1
        assert totals.tokens.requests == 4


def test_bad_lines_are_reported_with_numbers_and_typed_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    lines = _lines([
        GOOD[0],
        "{not json",
        {"prompt": "hi", "max_tokens": -3},
        {"prompt": "look", "image": "missing.png"},
        "",
        {"prompt": "look", "image": "notes.txt"},
        [1, 2],
        {"prompt": "x", "colour": "red"},
        {"messages": [{"role": "assistant", "content": "I speak last"}]},
        {"prompt": "x", "max_tokens": True},
        GOOD[3],
    ])  # fmt: skip
    seen: list[BadLine] = []
    result = estimate_workload(lines, "llama-3.2-11b-vision", base_dir=tmp_path,
                               on_bad_line=seen.append)  # fmt: skip
    assert (result.lines, result.requests, result.bad_lines) == (10, 2, 8)
    assert [bad.line for bad in seen] == [2, 3, 4, 6, 7, 8, 9, 10]
    assert seen == result.first_bad
    kinds = {bad.line: (type(bad.error), str(bad.error)) for bad in seen}
    assert kinds[2][0] is InvalidRequestError
    assert "not valid JSON" in kinds[2][1]
    assert "max_tokens must be a whole number >= 1, not -3" in kinds[3][1]
    assert kinds[4][0] is InvalidImageError
    assert "image file not found" in kinds[4][1]
    assert kinds[6][0] is InvalidImageError
    assert "not a PNG, JPEG, GIF or WebP image" in kinds[6][1]
    assert "expected a JSON object" in kinds[7][1]
    assert "unknown field(s) colour" in kinds[8][1]
    assert "must end with a user message" in kinds[9][1]
    assert "max_tokens" in kinds[10][1]
    assert str(seen[1]).startswith("line 3: max_tokens")


def test_an_image_on_a_text_model_is_a_bad_line(chart: Path) -> None:
    result = estimate_workload(
        _lines([{"prompt": "x", "image": str(chart)}, GOOD[0]]), "llama-3.2-1b"
    )
    assert (result.requests, result.bad_lines) == (1, 1)
    assert "text only" in str(result.first_bad[0].error)


def test_each_image_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one private module a test imports (tests/test_layers.py allows it): the read is
    # counted where the workload estimate calls it, which no public name reaches.
    import llamaroute.money._workload as workload

    make_png(tmp_path / "chart.png", 100, 100)
    reads: list[object] = []
    real = workload.image_tiles_for

    def counting(source: object) -> int:
        reads.append(source)
        return real(source)

    monkeypatch.setattr(workload, "image_tiles_for", counting)
    line = {"prompt": "x", "image": "chart.png"}
    result = estimate_workload(_lines([line] * 50), "llama-3.2-11b-vision", base_dir=tmp_path)
    assert result.requests == 50
    assert len(reads) == 1


def test_memory_stays_flat_on_a_long_stream() -> None:
    def lines() -> object:
        for number in range(30_000):
            yield json.dumps({"prompt": f"Question {number}: what is {number} + 1?"})
            if number % 1000 == 0:
                yield "broken"

    result = estimate_workload(lines(), "llama-3.2-3b")  # type: ignore[arg-type]
    assert (result.requests, result.bad_lines) == (30_000, 30)
    assert len(result.first_bad) == 20  # only the first few are kept, the rest counted


def test_routes_that_cannot_serve_a_line_count_it_as_skipped() -> None:
    long = {"prompt": "word " * 3_500, "max_tokens": 1000}
    result = estimate_workload(_lines([long, GOOD[0]]), "llama-3.2-90b-vision",
                               include_opt_in=True)  # fmt: skip
    free = next(t for t in result.routes if t.route.variant == "free")
    assert (free.skipped, free.tokens.requests) == (1, 1)
    assert "context window" in free.skip_reason
    expected = [costs[1] for t in result.ranked() if (costs := t.costs()) is not None]
    assert expected == sorted(expected)


def test_bytes_lines_and_unicode_errors() -> None:
    result = estimate_workload([b'{"prompt": "hi"}\n', b"\xff\xfe\n"], "llama-3.2-1b")
    assert (result.requests, result.bad_lines) == (1, 1)
    assert "UTF-8" in str(result.first_bad[0].error) or "JSON" in str(result.first_bad[0].error)


def test_unknown_model_fails_before_reading() -> None:
    def never() -> object:
        raise AssertionError("read a line")
        yield ""

    with pytest.raises(UnknownModelError):
        estimate_workload(never(), "llama-9")  # type: ignore[arg-type]


def test_parse_line_follows_the_chat_request_rules() -> None:
    count = len
    shape = parse_line('{"prompt": "abc", "system": "de"}', count)
    assert shape.input_tokens == 5 + 15
    turns = [{"role": "system", "content": "b"}, {"role": "user", "content": "c"}]
    with pytest.raises(InvalidRequestError, match="'system' or first message, not both"):
        parse_line(json.dumps({"system": "a", "messages": turns}), count)
    with pytest.raises(InvalidRequestError, match="only user messages can carry images"):
        parse_line(json.dumps({"messages": [
            {"role": "assistant", "content": [{"type": "image", "image": "x.png"}]},
            {"role": "user", "content": "c"}]}), count)  # fmt: skip
    with pytest.raises(InvalidRequestError, match="needs 'prompt' or 'messages'"):
        parse_line("{}", count)


# --- hostile lines: each one is one bad line, and the run goes on ----------------------------

DEEP = "[" * 1000 + "]" * 1000
HOSTILE = [
    DEEP,
    '{"prompt": ' + DEEP + "}",
    '{"messages": [{"role": "user", "content": ' + "[" * 5000 + "]" * 5000 + "}]}",
    '{"prompt": "x", "max_tokens": ' + "9" * 5000 + "}",
    '{"prompt": "x", "max_tokens": 1000000000}',
    '{"prompt": "x", "max_tokens": 1e400}',
    '{"prompt": "\\ud800 lone"}',
    '{"system": "\\udfff", "prompt": "x"}',
    '{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud83d"}]}]}',
    '{"prompt": "x", "image": "\\ud800.png"}',
]


def test_hostile_lines_are_bad_lines_and_the_run_goes_on() -> None:
    lines = [json.dumps(GOOD[0]), *HOSTILE, json.dumps(GOOD[3])]
    seen: list[BadLine] = []
    result = estimate_workload(lines, "llama-3.2-11b-vision", on_bad_line=seen.append)
    assert (result.lines, result.requests, result.bad_lines) == (12, 2, len(HOSTILE))
    assert [bad.line for bad in seen] == list(range(2, 2 + len(HOSTILE)))
    assert all(type(bad.error) is InvalidRequestError for bad in seen)
    messages = [str(bad.error) for bad in seen]
    assert (
        messages[0]
        == messages[1]
        == messages[2]
        == ("nested too deeply to read (arrays or objects)")
    )
    assert "not valid JSON" in messages[3]
    assert "max_tokens must be at most 131,072, not 1,000,000,000" in messages[4]
    assert "max_tokens must be a whole number" in messages[5]
    assert all("lone surrogate" in message for message in messages[6:])


def test_max_tokens_at_the_bound_is_fine() -> None:
    shape = parse_line('{"prompt": "x", "max_tokens": 131072}', len)
    assert shape.max_tokens == 131072


JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["prompt", "messages", "system", "image", "max_tokens", "role",
                         "content", "type", "text", "expected_output_tokens", "id"]),
        children, max_size=4),
    max_leaves=15,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    JSON_TEXT.map(json.dumps),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.binary(max_size=40),
    st.integers(1, 3000).map(lambda depth: '{"prompt": ' + "[" * depth + "]" * depth + "}"),
))  # fmt: skip
def test_fuzzed_lines_parse_or_are_invalid_requests(raw: str | bytes) -> None:
    try:
        shape = parse_line(raw, len)
    except InvalidRequestError:  # InvalidImageError is one too
        return
    assert shape.input_tokens >= 0
    assert shape.max_tokens is None or 1 <= shape.max_tokens <= 131072


def test_the_command_line_reports_a_deeply_nested_line_and_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join([json.dumps(GOOD[0]), DEEP, json.dumps(GOOD[3])]) + "\n")
    code = main(["estimate", "--model", "llama-3.2-3b", "--workload", str(path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "2 requests estimated, 1 bad lines" in out
    assert err.splitlines() == ["line 2: nested too deeply to read (arrays or objects)"]
    assert "Traceback" not in out + err
