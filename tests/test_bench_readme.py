"""``python bench/run.py --readme`` rewrites the README's Performance table between its two
markers and leaves every other byte of the README as it was (stubbed figures: no bench)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    saved = dict(os.environ)  # the bench sets its children's environment on import
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    os.environ.clear()
    os.environ.update(saved)
    return module


def test_the_rewrite_keeps_the_rest_of_the_readme(bench: ModuleType) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    report = "| figure | baseline |\n|---|---|\n| stub | 1 µs |\n\nStub run."
    rewritten = bench.rewrite_readme(text, report)
    head, old = text.split(bench.START)
    old_table, tail = old.split(bench.END)
    assert rewritten == f"{head}{bench.START}\n{report}\n{bench.END}{tail}"
    assert rewritten.startswith(head)
    assert rewritten.endswith(bench.END + tail)
    assert "| stub | 1 µs |" not in old_table
    assert bench.rewrite_readme(rewritten, report) == rewritten  # the same report: no change
    # Another report: only the part between the markers changes.
    again = bench.rewrite_readme(rewritten, "other")
    assert again.replace(f"{bench.START}\nother\n", f"{bench.START}\n{report}\n") == rewritten
    assert "python bench/run.py --readme" in head  # the README says which command


@pytest.mark.parametrize(
    "text",
    [
        "no markers",
        "<!-- bench/run.py --readme: to here --> x <!-- bench/run.py --readme: from here -->",
        "<!-- bench/run.py --readme: from here --> <!-- bench/run.py --readme: from here -->"
        " <!-- bench/run.py --readme: to here -->",
    ],
)
def test_markers_missing_twice_or_out_of_order_are_refused(bench: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="markers"):
        bench.rewrite_readme(text, "report")


def test_the_one_command_writes_the_run_s_report_into_the_readme(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    readme.write_text(original, encoding="utf-8")
    seen: list[Any] = []

    def fake_run(settings: Any, smoke: bool) -> tuple[list[Any], dict[str, Any]]:
        seen.append(settings)
        return [], {"rss_flat": True}

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(bench, "render", lambda *args: "| stubbed | table |")
    monkeypatch.setattr(sys, "argv", ["run.py", "--smoke", "--sync-calls", "3", "--readme",
                                      str(readme), "--out", str(tmp_path / "out")])  # fmt: skip
    assert bench.main() == 0
    assert seen[0].calls == 3
    written = readme.read_text(encoding="utf-8")
    assert written == bench.rewrite_readme(original, "| stubbed | table |")
    assert (tmp_path / "out" / "latest.md").read_text() == "| stubbed | table |\n"
