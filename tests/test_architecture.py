"""README's "Architecture" tree matches the code and the import-layer contracts.

The tree lists every top-level module and package of ``src/llamaroute`` (one line a folder),
top to bottom in the order of the layers contract in ``pyproject.toml`` (each line imports only
from the lines under it), and every file or sub-package it names inside a package exists there.
A new module, a moved one, or a reordered layer fails here until the README says so.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "llamaroute"
BRANCH = re.compile(r"^[├└]── (?P<names>.*?)(?:\s{2,}(?P<text>.*))?$")
CONTINUED = re.compile(r"^│\s{3}(?P<names>\S.*?)(?:\s{2,}(?P<text>.*))?$")
DESCRIBED = re.compile(r"^│\s+(?P<text>\S.*)$")
FILE = re.compile(r"(?<![\w/.])(\w+\.(?:py|json))\b")
FOLDER = re.compile(r"(?<![\w/.])([a-z]\w*)/(?!\w)")


def architecture_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Architecture\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def tree_entries(section: str) -> list[tuple[list[str], str]]:
    """The tree's entries, top to bottom: the names on each (``cli/``, ``_request.py``...) and
    the text that describes them (its continuation lines included)."""
    block = section.split("```\n", 2)[1]
    entries: list[tuple[list[str], str]] = []
    open_names = False  # the last entry's names ended with a comma: the next line goes on
    for line in block.splitlines()[1:]:  # the first line is src/llamaroute/ itself
        branch = BRANCH.match(line)
        continued = CONTINUED.match(line) if open_names else None
        match = branch or continued
        if match:
            names = [name.strip() for name in match["names"].split(",") if name.strip()]
            if branch:
                entries.append((names, match["text"] or ""))
            else:
                entries[-1][0].extend(names)
                entries[-1] = (entries[-1][0], f"{entries[-1][1]} {match['text'] or ''}")
            open_names = match["names"].rstrip().endswith(",")
            continue
        described = DESCRIBED.match(line)
        assert described, f"a line the tree test cannot read: {line!r}"
        entries[-1] = (entries[-1][0], f"{entries[-1][1]} {described['text']}")
    return entries


def module(name: str) -> str:
    return name.removesuffix("/").removesuffix(".py")


def layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["type"] == "layers"]
    assert contract["containers"] == ["llamaroute"]
    return [[part.strip() for part in layer.split("|")] for layer in contract["layers"]]


def test_the_tree_lists_every_top_level_module_and_package() -> None:
    listed = [name for names, _ in tree_entries(architecture_section()) for name in names]
    present = {
        f"{path.name}/" if path.is_dir() else path.name
        for path in PACKAGE.iterdir()
        if path.name != "__pycache__" and (path.is_dir() or path.suffix == ".py")
    }
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert set(listed) - present == set(), "in the README tree, not in src/llamaroute"
    assert present - set(listed) == set(), "in src/llamaroute, not in the README tree"


def test_the_tree_runs_down_the_layers_in_the_contract_order() -> None:
    position = {
        module(name): index
        for index, (names, _) in enumerate(tree_entries(architecture_section()))
        for name in names
    }
    order = layers()
    placed = {name for layer in order for name in layer}
    # Everything but the package root and its data is in a layer (the contract is exhaustive).
    assert set(position) - placed == {"__init__", "_data"}
    for higher, layer in enumerate(order):
        for lower_layer in order[higher + 1 :]:
            for above in layer:
                for below in lower_layer:
                    assert position[above] < position[below], (
                        f"the contract puts {above} above {below}; the README tree does not"
                    )


def test_the_independent_layers_are_named_as_independent() -> None:
    section = architecture_section()
    prose = [p for p in section.split("\n\n") if "```" not in p]  # not the tree's own notes
    (paragraph,) = [p for p in prose if "independent of each other" in p]
    for layer in layers():
        if len(layer) > 1:
            for name in layer:
                assert f"`{name}`" in paragraph, f"{' | '.join(layer)}: {name} is not named"


@pytest.mark.parametrize(
    ("names", "text"),
    [entry for entry in tree_entries(architecture_section()) if entry[0][0].endswith("/")],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_every_file_a_package_line_names_is_in_that_package(names: list[str], text: str) -> None:
    (folder,) = names
    root = PACKAGE / folder
    files = {path.name for path in root.rglob("*") if path.is_file()}
    folders = {path.name for path in root.rglob("*") if path.is_dir()}
    missing = [name for name in FILE.findall(text) if name not in files]
    if (root / "__init__.py").exists():  # _data/ names the repository's folders it is built from
        missing += [f"{name}/" for name in FOLDER.findall(text) if name not in folders]
    assert missing == [], f"{folder}: the README names what is not there"


def test_the_tree_reader_finds_what_it_should() -> None:
    # Guard the reader itself: a tree it misread would pass the tests above for nothing.
    entries = tree_entries(architecture_section())
    by_name = {name: text for names, text in entries for name in names}
    assert "_lazy.py" in by_name
    assert "_driver.py" in by_name["client/"]
    assert FOLDER.findall(by_name["providers/"])[:3] == ["openrouter", "ollama", "bedrock"]


ROLE = re.compile(r":\w+:`~?(llamaroute(?:\.\w+)+)`")
DESIGN_FILES = re.compile(r"DESIGN\.md|\(see DESIGN\)|TESTPLAN|PROVIDERS\.md|\.\./shared/")


def test_docstrings_point_only_to_what_is_in_this_repository() -> None:
    # Sphinx-style references (:mod:`llamaroute.x`, :class:`~llamaroute.x.Y`) must resolve: a
    # module that moved leaves them pointing nowhere. Design notes outside the repository are
    # not where a reader can follow them.
    import importlib

    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(ROOT)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DESIGN_FILES.search(line):
                wrong.append(f"{where}:{number}: {line.strip()}")
            for dotted in ROLE.findall(line):
                parts = dotted.split(".")
                found: object = None
                for split in range(len(parts), 0, -1):
                    try:
                        found = importlib.import_module(".".join(parts[:split]))
                    except ImportError:
                        continue
                    break
                for attribute in parts[split:]:
                    found = getattr(found, attribute, None)
                if found is None:
                    wrong.append(f"{where}:{number}: {dotted}")
    assert wrong == []


def import_graph(source: Path) -> dict[str, set[str]]:
    """Every llamaroute module under ``source`` and the llamaroute modules it imports: read
    with ``ast`` (module level, inside functions, under ``TYPE_CHECKING``), relative imports
    resolved, ``from package import submodule`` taken to the submodule. Independent of grimp,
    which ``.ci/run`` uses for the same question."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in source.rglob("*.py"):
        parts = list(path.relative_to(source).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, package) in modules.items():
        here = name if package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in map(known, targets) if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(component) > 1:
                        found.append(sorted(component))
                continue
            if target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                work.append((target, iter(sorted(graph[target]))))
            elif target in stack:
                low[node] = min(low[node], index[target])
    return found


def test_no_import_cycles_by_a_reading_independent_of_grimp() -> None:
    graph = import_graph(PACKAGE.parent)
    assert len(graph) > 100
    assert cycles(graph) == []


def test_the_cycle_reader_finds_a_cycle(tmp_path: Path) -> None:
    # The shape of the knot issue 14 removed: a function-level import back, and a
    # TYPE_CHECKING one, each closing a loop.
    package = tmp_path / "llamaroute"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_a.py").write_text("from ._b import x\n")
    (package / "_b.py").write_text("def x():\n    from llamaroute._a import y\n")
    (package / "_c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import _d\n"
    )
    (package / "_d.py").write_text("from llamaroute import _c\n")
    assert sorted(cycles(import_graph(tmp_path))) == [
        ["llamaroute._a", "llamaroute._b"],
        ["llamaroute._c", "llamaroute._d"],
    ]


# A module reaching into another package's private module, and why its __init__ cannot serve.
INTO_PRIVATE = {
    ("llamaroute.fleet._breakers", "llamaroute.routing._breakers"): (
        "the Redis breakers are routing's breaker states and rules, shared state aside: they "
        "subclass and reuse what routing keeps private"
    ),
    ("llamaroute.fleet._budget", "llamaroute.money._ledger"): (
        "the fleet's reservations use the ledger's own hold arithmetic (ZERO, holds, the TTL)"
    ),
}


def test_packages_are_reached_through_their_init_inside_the_package_too() -> None:
    # README: "Each package's __init__.py is its interface to the layers above". The package
    # root (llamaroute/__init__.py) re-exports the public names and may reach anywhere.
    graph = import_graph(PACKAGE.parent)
    into = {
        (module, target)
        for module, targets in graph.items()
        if module != "llamaroute"
        for target in targets
        if len(target.split(".")) > 2
        and target.split(".")[2].startswith("_")
        and target.split(".")[:2] != module.split(".")[:2]
    }
    assert into - set(INTO_PRIVATE) == set()
    assert set(INTO_PRIVATE) - into == set(), "allow-list entries no longer needed"
