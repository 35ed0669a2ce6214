"""The packaged catalog.json is exactly what scripts/build_data.py makes of providers/."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llamaroute import Catalog, ConfigurationError
from llamaroute.catalog import CatalogData, dump_catalog

ROOT = Path(__file__).resolve().parent.parent


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_data", ROOT / "scripts" / "build_data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_data"] = module
    spec.loader.exec_module(module)
    return module


build_data = _build_script()


def test_packaged_json_equals_the_toml_source() -> None:
    packaged = (ROOT / "src" / "llamaroute" / "_data" / "catalog.json").read_text("utf-8")
    assert packaged == dump_catalog(build_data.build()), "run: python scripts/build_data.py"


def test_check_mode_passes_on_the_committed_data() -> None:
    assert build_data.main(["--check"]) == 0


def test_runtime_loads_the_same_data_as_the_build() -> None:
    assert Catalog.builtin().data == build_data.build()


def test_dump_is_stable_and_round_trips() -> None:
    data = build_data.build()
    text = dump_catalog(data)
    assert dump_catalog(CatalogData.model_validate_json(text)) == text


def _copy_providers(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "providers", tmp_path / "providers")
    return tmp_path


def test_every_entry_must_state_source_and_checked(tmp_path: Path) -> None:
    root = _copy_providers(tmp_path)
    path = root / "providers" / "ollama.toml"
    text = path.read_text()
    # The route's own `checked` (not the `lifecycle_checked` in [defaults]).
    path.write_text(text.replace("\nchecked = 2026-08-21\n", "\n", 1))
    with pytest.raises(ConfigurationError, match="every entry needs checked"):
        build_data.build(root)


def test_a_data_error_names_the_file(tmp_path: Path) -> None:
    root = _copy_providers(tmp_path)
    path = root / "providers" / "bedrock.toml"
    path.write_text(path.read_text().replace("max_images = 0", "max_images = many", 1))
    with pytest.raises(ConfigurationError, match=r"providers/bedrock\.toml"):
        build_data.build(root)


def test_check_mode_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    stale = tmp_path / "catalog.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(build_data, "OUTPUT", stale)
    monkeypatch.setattr(build_data, "ROOT", tmp_path)
    monkeypatch.setattr(build_data, "build", lambda root=ROOT: _real_build(ROOT))
    assert build_data.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


_real_build = build_data.build
