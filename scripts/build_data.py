#!/usr/bin/env python3
"""Validate the catalog data in providers/ and pricing/ and compile it into the package.

    python scripts/build_data.py           # write src/llamaroute/_data/catalog.json
    python scripts/build_data.py --check   # exit 1 if the committed JSON is out of date

The TOML is validated with the same pydantic models the runtime uses (llamaroute.catalog),
and every entry must carry its own `source` and `checked` date: the date that source was read
(an entry reviewed without re-reading its source keeps its old date). Prices must
be exact (strings or integers, never floats), and a price that matches no route is an error. The
package ships the generated JSON because hatchling's force-include does not reach editable
installs.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # validate with this checkout's models, not an install

from llamaroute import ConfigurationError  # noqa: E402
from llamaroute.catalog import CatalogData, Source, dump_catalog, merge_sources, read_toml  # noqa: E402

OUTPUT = ROOT / "src" / "llamaroute" / "_data" / "catalog.json"
GENERATED_BY = "scripts/build_data.py from providers/*.toml and pricing/*.toml; do not edit by hand"


def source_files(root: Path = ROOT) -> list[Path]:
    """providers/models.toml first, then each provider's file in name order, then the price
    files in pricing/ (prices are matched to routes, so they come after every route)."""
    directory = root / "providers"
    models = directory / "models.toml"
    prices = sorted((root / "pricing").glob("*.toml"))
    return [models, *sorted(p for p in directory.glob("*.toml") if p != models), *prices]


def build(root: Path = ROOT) -> CatalogData:
    """The compiled catalog for the data under ``root``."""
    sources: list[Source] = [read_toml(path) for path in source_files(root)]
    for source in sources:
        # Report paths relative to the checkout, so messages read the same on every machine.
        source.path = source.path.relative_to(root)
    return merge_sources(None, sources, require_provenance=True, generated_by=GENERATED_BY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    try:
        text = dump_catalog(build())
    except ConfigurationError as error:
        print(f"build_data: {error}", file=sys.stderr)
        return 1
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), "committed", "from the TOML", lineterm=""
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            print(
                f"build_data: {OUTPUT.relative_to(ROOT)} is out of date; "
                "run `python scripts/build_data.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"build_data: {OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"build_data: wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
