# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The package's import structure (docs/architecture.md): no import cycle between its parts.

A *part* is a top-level module (`processing_pixelrefer`, `describe`, ...), a subpackage (`demo`, `training`, ...) or
an integration (`integrations.lmms_eval`, `integrations.llava`). Every import statement counts, at module level or
inside a function: a lazy import hides a cycle from the interpreter, not from the reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import pixelrefer_plugin

PACKAGE = "pixelrefer_plugin"
PACKAGE_DIR = Path(pixelrefer_plugin.__file__).parent
ARCHITECTURE_DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    """`pixelrefer_plugin/a/b.py` -> `pixelrefer_plugin.a.b`; a package's `__init__.py` -> the package."""
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py")) if "__pycache__" not in path.parts}


def part_of(module: str) -> str:
    """The part a module belongs to: `pixelrefer_plugin.demo.trained` -> `demo`,
    `pixelrefer_plugin.integrations.lmms_eval.tasks.utils` -> `integrations.lmms_eval`, the package itself -> `.`."""
    parts = module.split(".")[1:]
    if not parts:
        return "."
    if parts[0] == "integrations" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The package modules `module` imports, with the line of each import statement (all of them, also those inside
    functions and `if TYPE_CHECKING:`)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from . import fixtures` imports the module `fixtures`; `from .x import name` imports `x`
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                yield target, node.lineno


def part_graph() -> dict[str, dict[str, list[str]]]:
    """`{part: {imported part: ["file:line", ...]}}` over the whole package, without a part's imports of itself."""
    modules = package_modules()
    graph: dict[str, dict[str, list[str]]] = {}
    for module, path in modules.items():
        source = part_of(module)
        graph.setdefault(source, {})
        for target, line in imported_modules(module, path, modules):
            if part_of(target) != source:
                where = f"{path.relative_to(PACKAGE_DIR.parent)}:{line}"
                graph[source].setdefault(part_of(target), []).append(where)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted: every one holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, list[str]]]:
    return part_graph()


def test_no_import_cycle_between_parts(graph):
    found = cycles(graph)
    report = []
    for component in found:
        for source in component:
            for target, sites in sorted(graph[source].items()):
                if target in component:
                    report.append(f"{source} -> {target} ({', '.join(sites)})")
    assert not found, "import cycles between parts of the package:\n" + "\n".join(report)


def documented_order(parts: set[str]) -> list[str]:
    """The parts in the order of the numbered list under "Dependency order" in docs/architecture.md (the package's
    `__init__` is `.`; remarks in parentheses are skipped)."""
    section = ARCHITECTURE_DOC.read_text().split("## Dependency order", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d+\. (.*(?:\n {3}.*)*)", section, flags=re.MULTILINE)
    # names in parentheses are remarks ("`demo` (trains with `training`)"), not list entries
    names = [name for item in items for name in re.findall(r"`([\w.]+)`", re.sub(r"\([^)]*\)", "", item))]
    return [part for part in ("." if name == "__init__" else name for name in names) if part in parts]


def test_imports_follow_the_documented_dependency_order(graph):
    connected = {part for part, targets in graph.items() if targets} | {
        t for targets in graph.values() for t in targets
    }
    order = documented_order(set(graph))
    assert sorted(connected - set(order)) == [], "parts missing from docs/architecture.md's dependency order"
    position = {part: index for index, part in enumerate(order)}
    upward = [
        f"{source} -> {target} ({', '.join(sites)})"
        for source, targets in sorted(graph.items())
        for target, sites in sorted(targets.items())
        if source in position and position[target] > position[source]
    ]
    assert upward == [], "imports of parts listed later in docs/architecture.md:\n" + "\n".join(upward)


def test_the_walk_sees_function_level_and_relative_imports(graph):
    # a module-level relative import of a subpackage: the demo draws on the synthetic scenes
    assert "synthetic" in graph["demo"]
    # a function-level import: the demo trains through `training` only inside `train_demo_model`
    assert "training" in graph["demo"]
    # `from . import fixtures` inside a subpackage stays inside its part; `from ... import __version__` is the package
    assert "." in graph["integrations.lmms_eval"]
    # an absolute import in a task hook file copied next to lmms-eval's tasks
    assert "region_masks" in graph["integrations.lmms_eval"]


def test_synthetic_data_depends_on_nothing_else_of_the_package(graph):
    # the demo, the training data and the eval fixtures all build on it: it must stay at the bottom
    assert graph["synthetic"] == {}


def package_files_imported_by(module: str) -> set[Path]:
    """The files of the package modules `module` imports directly (a package counts as all of its own files)."""
    modules = package_modules()
    files = set()
    for target, _ in imported_modules(module, modules[module], modules):
        path = modules[target]
        files |= set(path.parent.glob("*.py")) if path.name == "__init__.py" else {path}
    return {path.resolve() for path in files}


def test_the_fixture_folder_keys_on_the_code_its_documents_come_from():
    # a change to any module the fixture writers take scenes, prompts or questions from must make a new folder
    from pixelrefer_plugin.integrations.lmms_eval.task_dir import FIXTURE_GENERATORS

    hashed = {path.resolve() for path in FIXTURE_GENERATORS}
    assert package_files_imported_by(f"{PACKAGE}.integrations.lmms_eval.fixtures") <= hashed


def test_the_demo_keys_on_the_code_its_training_data_comes_from():
    # the demo's cache key hashes the synthetic package and the record writer: the writer must draw on nothing else
    from pixelrefer_plugin.synthetic import GENERATOR_SOURCES

    hashed = {path.resolve() for path in GENERATOR_SOURCES}
    assert package_files_imported_by(f"{PACKAGE}.training.synthetic") <= hashed


def test_the_cycle_finder_reports_each_cycle_once():
    graph = {
        "a": {"b": []},
        "b": {"c": []},
        "c": {"a": [], "d": []},
        "d": {},
        "e": {"f": []},
        "f": {"e": []},
        "g": {"g": []},  # a part importing itself is not a cycle between parts (part_graph drops such edges)
    }
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b": []}, "b": {}}) == []
