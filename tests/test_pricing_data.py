"""pricing/*.toml is compiled into catalog.json like providers/, with the same provenance rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamaroute import ConfigurationError

from .test_catalog_data import build_data

ROOT = Path(__file__).resolve().parent.parent


def _copy(tmp_path: Path) -> Path:
    for folder in ("providers", "pricing"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_packaged_json_carries_every_price_with_provenance() -> None:
    data = json.loads((ROOT / "src" / "llamaroute" / "_data" / "catalog.json").read_text())
    prices = data["prices"]
    assert {p["provider"] for p in prices} == {"bedrock", "openrouter", "ollama"}
    for price in prices:
        # A web page or a named, versioned dataset file (tests/test_price_data.py has the rule).
        assert "https://" in price["source"] or "litellm model_prices" in price["source"]
        assert price["checked"]
        # Exact decimal strings in the JSON, never floats.
        assert isinstance(price["input_per_mtok"], str)
        assert isinstance(price["output_per_mtok"], str)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("\nchecked = 2026-12-07\n", "\n", r"pricing/bedrock\.toml.*needs checked"),
        ('input_per_mtok = "0.72"', "input_per_mtok = 0.72", r"pricing/bedrock\.toml.*not floats"),
        ("us.meta.llama3-2-90b", "us.meta.llama9-90b", "matches no route"),
    ],
)
def test_bad_price_data_fails_the_build(tmp_path: Path, old: str, new: str, problem: str) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "bedrock.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=problem):
        build_data.build(root)


def test_the_same_routes_priced_twice_fail_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "ollama.toml"
    text = path.read_text()
    path.write_text(text + text[text.rindex("[[prices]]") :])
    with pytest.raises(ConfigurationError, match="already priced"):
        build_data.build(root)
