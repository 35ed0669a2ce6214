"""The workload's fast paths (many lines per ``json.loads``, the usual line shapes checked
inline) give exactly what the straightforward path gives: one ``json.loads`` per line and
every rule checked in turn."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamaroute import InvalidRequestError
from llamaroute.money import BadLine, estimate_workload
from llamaroute.money import _workload as workload
from llamaroute.money._jsonl import json_lines, load_line

from .conftest import make_png

WORDS = ["llama", "alpaca", "Andes", "vicuña", "fleece", "🦙", "наука", "日本語", "42", "x_y",
         "  ", "\t", "don't", "Straße", "café"]  # fmt: skip
# Lines that are not one JSON value alone but could merge with a neighbour in a batch.
MERGING = [
    '{"prompt": "a"}, {"prompt": "b"}',
    '{"prompt": "c", "system": "s", "messages": [{"role": "user", "content": "x"}',
    '{"role": "user", "content": "y"}]}',
    '{"prompt": "d"',
    '}',
    '"prompt": "e"}',
    '1, "prompt": "f"',
    '{"prompt": "g"}}',
    '{"prompt": "h"},',
    '2}',
    '"z", "max_tokens": 5}',
]  # fmt: skip


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))


def _line(rng: random.Random, number: int) -> str | bytes:
    kind = rng.randrange(14)
    text = _text(rng)
    item: dict[str, Any]
    if kind == 0:
        item = {"prompt": text, "max_tokens": rng.choice([1, 50, 131072, 131073, 0, None])}
    elif kind == 1:
        item = {"messages": [{"role": "user", "content": text},
                             {"role": "assistant", "content": _text(rng)},
                             {"role": rng.choice(["user", "system", "tool"]), "content": "more"}],
                "expected_output_tokens": rng.choice([0, 80, -1, 2.5, True])}  # fmt: skip
    elif kind == 2:
        item = {"prompt": text, "system": rng.choice(["Be brief.", 3, None]), "id": f"r{number}"}
    elif kind == 3:
        item = {"model": rng.choice(["llama-3.2-1b", "llama-3.2-90b-vision", " ", "llama-9"]),
                "prompt": text}  # fmt: skip
    elif kind == 4:
        item = {"messages": [{"role": "system", "content": "Rules."},
                             {"role": "user", "content": [{"type": "text", "text": text}]}],
                "system": rng.choice([None, "Again."])}  # fmt: skip
    elif kind == 5:
        item = {"model": "llama-3.2-11b-vision", "prompt": text, "image": "chart.png"}
    elif kind == 6:
        item = {"prompt": text, "extra": 1}
    elif kind == 7:
        item = {"messages": [], "prompt": text}
    elif kind == 8:
        item = {"messages": [{"role": "user", "content": text, "name": "x"}]}
    elif kind == 9:
        return rng.choice(MERGING)
    elif kind == 10:
        return rng.choice(['{"prompt": "\\ud800"}', "[1, 2]", "", "   ", "not json", "null",
                           '{"prompt": "x", "max_tokens": 1e400}', "{}"])  # fmt: skip
    elif kind == 11:
        encoded = json.dumps({"prompt": text}).encode()
        return rng.choice([b"\xef\xbb\xbf" + encoded, b"\xff" + encoded, encoded + b"\r\n"])
    elif kind == 12:
        item = {"messages": [{"role": "user", "content": text}], "prompt": "and?",
                "system": "sys"}  # fmt: skip
    else:
        item = {"prompt": text, "model": None, "max_tokens": None}
    return json.dumps(item, ensure_ascii=rng.random() < 0.5)


def _straightforward(lines: Iterable[str | bytes]) -> Iterator[tuple[int, object]]:
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                yield number, load_line(raw)
            except InvalidRequestError as error:
                yield number, error


def _run(lines: list[str | bytes], base: Path) -> tuple[dict[str, Any], list[str]]:
    bad: list[BadLine] = []
    result = estimate_workload(lines, "llama-3.2-3b", base_dir=base, on_bad_line=bad.append)
    summary = {
        "counts": (result.lines, result.requests, result.bad_lines, result.models),
        "routes": [(t.route.pinned, t.tokens, t.skipped, t.skip_reason, t.costs())
                   for t in result.ranked()],
        "options": [(o.label, o.tokens, o.costs, o.unserved, o.reasons)
                    for o in result.ranked_options()],
    }  # fmt: skip
    return summary, [f"{type(b.error).__name__}: {b}" for b in bad]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fast_paths_give_the_straightforward_totals_and_errors(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_png(tmp_path / "chart.png", 800, 500)
    rng = random.Random(seed)
    # More than one batch, so that good and bad batches both occur.
    lines = [_line(rng, number) for number in range(3_500)]
    lines = [raw.encode() if isinstance(raw, str) else raw for raw in lines]
    fast = _run(lines, tmp_path)
    assert fast[0]["counts"][1] > 1_500  # varied indeed: many good lines, many bad ones
    assert fast[0]["counts"][2] > 500

    monkeypatch.setattr(workload, "json_lines", _straightforward)
    monkeypatch.setattr(workload, "_plain_shape", lambda data, band: None)
    slow = _run(lines, tmp_path)
    assert fast == slow


LINE = st.one_of(
    st.sampled_from(MERGING),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["prompt", "system", "x"]),
                                          st.text(max_size=5), max_size=2)),
    st.text(max_size=12),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=12), st.integers(1, 5), st.booleans())
def test_batched_parsing_equals_parsing_each_line(
    lines: list[str], batch: int, as_bytes: bool
) -> None:
    raw: list[str | bytes] = [line.encode("utf-8", "surrogatepass") if as_bytes else line
                              for line in lines]  # fmt: skip

    def plain(items: Iterable[tuple[int, object]]) -> list[tuple[int, object]]:
        return [(n, str(v) if isinstance(v, InvalidRequestError) else v) for n, v in items]

    assert plain(json_lines(raw, batch)) == plain(_straightforward(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from(["model", "prompt", "messages", "system", "max_tokens",
                     "expected_output_tokens", "id"]),
    st.one_of(st.none(), st.integers(-2, 200_000), st.text(max_size=6), st.booleans(),
              st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system",
                                                                        "assistant", "x"]),
                                              "content": st.text(max_size=6)}), max_size=3)),
))  # fmt: skip
def test_the_inline_shape_check_agrees_with_the_general_one(data: dict[str, Any]) -> None:
    band = workload._checking(lambda text: (len(text), len(text), len(text)))
    fast = workload._plain_shape(data, band)
    if fast is None:
        return  # the general path reads it
    assert fast == workload._checked_shape(data, band, None)


def test_a_batch_whose_lines_merge_is_parsed_again_line_by_line() -> None:
    # Joined, these make an object with as many keys as lines: line 1 adds a key of its own,
    # line 2 leaves a brace open and swallows line 3's key. Each is a bad line alone.
    lines = ['1, "prompt": "f"', '{"prompt": "d"', "2}"]
    found = list(json_lines(lines, batch=3))
    assert [number for number, _ in found] == [1, 2, 3]
    assert all(isinstance(value, InvalidRequestError) for _, value in found)
