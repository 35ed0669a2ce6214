"""Tests, benchmarks, examples and scripts reach llamaroute through its public names
(``llamaroute``, ``llamaroute.events``, ``llamaroute.testing``, ``llamaroute.providers``) and each
layer's package (``llamaroute.money``, ``llamaroute.catalog``, ...), not its private modules.

A private path has a part that starts with one underscore: ``llamaroute._records``,
``llamaroute.money._ledger``, ``from llamaroute.money import _tokens``. It counts when imported,
imported from, or handed as a string to a call (``monkeypatch.setattr("llamaroute.x._y.z", ...)``).
The import layers inside the package are checked by ``lint-imports`` (pyproject.toml, .ci/run).
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("tests", "bench", "examples", "scripts")
# (files, private path prefix): why. Keep it short: a new entry needs a reason no public or
# layer-package name can serve.
ALLOWED: dict[tuple[tuple[str, ...], str], str] = {
    (("tests/test_workload.py",), "llamaroute.money._workload"): (
        "counts image reads where the workload estimate makes them; no public name reaches that"
    ),
    (("tests/test_workload_fast.py",), "llamaroute.money._workload"): (
        "turns the workload's fast paths off, to check they give the straightforward path's totals"
    ),
    (("tests/test_workload_fast.py",), "llamaroute.money._jsonl"): (
        "the batched JSONL reader is checked against json.loads per line; it has no public name"
    ),
    (("tests/test_fleet_round_trips.py",), "llamaroute.fleet._connection"): (
        "shortens how long a queued Redis write waits (LATER_S), to test that it is sent"
    ),
    (("tests/test_request_inputs.py",), "llamaroute._request"): (
        "the request layer is one module, so it is its own interface: the tests check the input "
        "limits it declares (MAX_OUTPUT_TOKENS, SEED_MAX, ...)"
    ),
    (("tests/test_request_writes.py",), "llamaroute.providers._reading"): (
        "drives httpcore's HTTP/1.1 connection over the providers' socket wrapper with a socket "
        "that records each write; no public name reaches the wrapper"
    ),
    (("bench/token_accuracy.py",), "llamaroute.money._token_rates"): (
        "the calibration rewrites this generated module and reloads it to measure the new rates"
    ),
    (("bench/token_accuracy.py",), "llamaroute.money._token_heuristic"): (
        "reloaded after the rates it imports are rewritten (the calibration loop)"
    ),
    (("bench/mock_server.py",), "llamaroute.testing._eventstream"): (
        "the benchmark mock borrows the AWS event-stream encoder behind FakeBedrock, which is "
        "not public API, rather than copy it"
    ),
}


def is_private(path: str) -> bool:
    return any(part.startswith("_") and not part.endswith("__") for part in path.split("."))


def llamaroute_paths(source: str) -> list[tuple[int, str]]:
    """Every llamaroute module path (or imported name) a file names, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if is_private(node.module):
                found.append((node.lineno, node.module))
            else:  # `from llamaroute.money import _tokens` names a private module too
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return [(line, path) for line, path in found if path.split(".")[0] == "llamaroute"]


def allowed_by(file: str, path: str) -> tuple[tuple[str, ...], str] | None:
    for key in ALLOWED:
        patterns, prefix = key
        if any(fnmatch(file, pattern) for pattern in patterns) and (
            path == prefix or path.startswith(prefix.rstrip(".") + ".")
        ):
            return key
    return None


def checked_files() -> list[Path]:
    return sorted(path for folder in CHECKED for path in (ROOT / folder).rglob("*.py"))


def test_no_private_llamaroute_paths_outside_the_allow_list() -> None:
    used: set[tuple[tuple[str, ...], str]] = set()
    offenders = []
    for file in checked_files():
        name = file.relative_to(ROOT).as_posix()
        for line, path in llamaroute_paths(file.read_text(encoding="utf-8")):
            if not is_private(path):
                continue
            key = allowed_by(name, path)
            if key is None:
                offenders.append(f"{name}:{line}: {path}")
            else:
                used.add(key)
    assert not offenders, (
        "import these from llamaroute, llamaroute.events, llamaroute.testing, "
        "llamaroute.providers or the layer's package (export them in its __init__.py):\n"
        + "\n".join(offenders)
    )
    assert not set(ALLOWED) - used, f"allow-list entries no longer needed: {set(ALLOWED) - used}"


@pytest.mark.parametrize(
    ("source", "private"),
    [
        ("import llamaroute._records", ["llamaroute._records"]),
        ("from llamaroute.money._ledger import Ledger", ["llamaroute.money._ledger"]),
        ("from llamaroute.money import _tokens", ["llamaroute.money._tokens"]),
        ("patch('llamaroute.money._ledger.time.time')", ["llamaroute.money._ledger.time.time"]),
        ("from llamaroute.money import Ledger, estimate", []),
        ("from llamaroute import __version__\nimport llamaroute.__main__", []),
        ("from ._chaos import run\nimport _thread", []),
    ],
)  # fmt: skip
def test_the_check_sees_private_paths(source: str, private: list[str]) -> None:
    assert [path for _, path in llamaroute_paths(source) if is_private(path)] == private
