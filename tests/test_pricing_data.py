"""pricing/*.toml is compiled into catalog.json like providers/, with the same provenance rules."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from llamaroute._exceptions import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


def _load_build() -> object:
    spec = importlib.util.spec_from_file_location(
        "build_data_p", ROOT / "scripts" / "build_data.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_data_p"] = module
    spec.loader.exec_module(module)
    return module


build_data = _load_build()


def _copy(tmp_path: Path) -> Path:
    for folder in ("providers", "pricing"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_packaged_json_carries_every_price_with_provenance() -> None:
    data = json.loads((ROOT / "src" / "llamaroute" / "_data" / "catalog.json").read_text())
    prices = data["prices"]
    assert {p["provider"] for p in prices} == {"bedrock", "openrouter", "ollama"}
    for price in prices:
        assert price["source"].startswith("https://")
        assert price["checked"]
        # Exact decimal strings in the JSON, never floats.
        assert isinstance(price["input_per_mtok"], str)
        assert isinstance(price["output_per_mtok"], str)


def test_every_price_entry_must_state_source_and_checked(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "bedrock.toml"
    path.write_text(path.read_text().replace("checked = 2026-08-07\n", "", 1))
    with pytest.raises(ConfigurationError, match=r"pricing/bedrock\.toml.*needs checked"):
        build_data.build(root)  # type: ignore[attr-defined]


def test_a_float_price_fails_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "bedrock.toml"
    path.write_text(path.read_text().replace('input_per_mtok = "0.72"', "input_per_mtok = 0.72"))
    with pytest.raises(ConfigurationError, match=r"pricing/bedrock\.toml.*not floats"):
        build_data.build(root)  # type: ignore[attr-defined]


def test_a_price_for_no_route_fails_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "bedrock.toml"
    path.write_text(path.read_text().replace("us.meta.llama3-2-90b", "us.meta.llama9-90b"))
    with pytest.raises(ConfigurationError, match="matches no route"):
        build_data.build(root)  # type: ignore[attr-defined]


def test_the_same_routes_priced_twice_fail_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "pricing" / "ollama.toml"
    text = path.read_text()
    path.write_text(text + text[text.rindex("[[prices]]") :])
    with pytest.raises(ConfigurationError, match="already priced"):
        build_data.build(root)  # type: ignore[attr-defined]
