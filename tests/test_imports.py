"""Imports point one way: the project's import graph has no cycle, the core never imports the
Dagster wrappers or the API, and the domain packages do not import Dagster.

The graph is read from the source with `ast`, not by importing anything. Every runtime import
counts, including the ones inside functions (a lazy import is still a dependency that can close
a cycle when it runs); imports under `if TYPE_CHECKING:` are type-only (never executed) and are
left out. `from package import name` is an edge to `package.name` when that is a module of the
project, else to `package`. The implicit import of a module's parent packages is not an edge:
a package `__init__` that re-exports its submodules would otherwise make every sibling import a
cycle, which Python resolves without trouble.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coordinator_dagster", "assets", "sensors", "resources", "api", "crunch_node")
WRAPPERS = ("assets", "sensors", "resources", "api")
# The assembly (build_defs and the code locations) and the CLI, the outermost layer, may use the
# wrappers; every other module of coordinator_dagster is the core.
NOT_CORE = ("coordinator_dagster.definitions", "coordinator_dagster.code_location", "coordinator_dagster.code_location_celery", "coordinator_dagster.cli")
DOMAIN = tuple(f"coordinator_dagster.{name}" for name in ("scoring", "feeds", "models", "lake"))
DAGSTER = ("dagster",)  # dagster and its integrations (dagster_duckdb, ...) by top-level name
# Domain modules allowed to import Dagster, each with the reason. None today: the streaming
# writer reports its writes through a callback the CLI binds to the Dagster instance, and the
# partition key helpers the lake and the feeds need live in windows.py, not partitions.py. The rule
# is transitive: a domain module may not reach Dagster through any project module it imports.
DOMAIN_DAGSTER_EXCEPTIONS: dict[str, str] = {}
# Core clients that must load without Dagster at all (checked in a fresh interpreter).
PLAIN_CLIENTS = (
    "coordinator_dagster.feeds.sources",
    "coordinator_dagster.feeds.ccxt",
    "coordinator_dagster.feeds.pyth",
    "coordinator_dagster.feeds.streaming.sources",
    "coordinator_dagster.models.client",
    "coordinator_dagster.scoring.callables",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(source: str, name: str, is_package: bool, modules: Iterable[str] = ()) -> set[str]:
    """Every module `source` imports when it runs (absolute names, relative imports resolved);
    `from a.b import c` gives a.b.c when that is one of `modules`, else a.b."""
    known = set(modules)
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = ".".join(part for part in (package, node.module) if part)
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def import_graph(modules: Mapping[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between project modules, every imported name per module)."""
    edges: dict[str, set[str]] = {}
    imported: dict[str, set[str]] = {}
    for name, path in modules.items():
        names = runtime_imports(path.read_text(), name, path.name == "__init__.py", modules)
        imported[name] = names
        edges[name] = {n for n in names if n in modules and n != name}
    return edges, imported


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-loop), each
    sorted; Tarjan's algorithm, iterative so deep graphs cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    cycles.append(sorted(component))
    return sorted(cycles)


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_core(name: str) -> bool:
    return _within(name, ("coordinator_dagster",)) and not _within(name, NOT_CORE)


MODULES = project_modules()
EDGES, IMPORTED = import_graph(MODULES)


def test_the_walk_sees_the_whole_project():
    """Guards the checker itself: it reads every package, and the edges it finds are real ones."""
    assert {name.split(".")[0] for name in MODULES} == set(PACKAGES)
    assert "coordinator_dagster.models.rounds" in EDGES["assets.predictions"]
    assert "coordinator_dagster.feeds.ccxt" in EDGES["resources.feeds"]
    assert "dagster" in IMPORTED["assets.predictions"]


def test_no_import_cycles():
    cycles = find_cycles(EDGES)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_core_never_imports_the_wrappers_or_the_api():
    offences = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if is_core(name)
        for target in IMPORTED[name]
        if _within(target, WRAPPERS)
    )
    assert not offences, "\n".join(offences)


def _is_dagster(target: str) -> bool:
    top = target.split(".")[0]
    return top in DAGSTER or top.startswith("dagster_")


def reachable(edges: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """Every project module `start` imports, directly or through others (itself included)."""
    seen, todo = {start}, [start]
    while todo:
        for child in edges.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def dagster_paths(edges: Mapping[str, Iterable[str]], imported: Mapping[str, Iterable[str]], start: str) -> list[str]:
    """The project modules reachable from `start` that import Dagster themselves."""
    return sorted(m for m in reachable(edges, start) if any(_is_dagster(t) for t in imported.get(m, ())))


def test_domain_packages_do_not_import_dagster():
    offences = sorted(
        f"{name} reaches Dagster through {via}"
        for name in MODULES
        if _within(name, DOMAIN) and name not in DOMAIN_DAGSTER_EXCEPTIONS
        for via in dagster_paths(EDGES, IMPORTED, name)
    )
    assert not offences, "\n".join(offences)


def test_the_checker_follows_imports_through_other_modules():
    edges = {"lake.reads": {"top.partitions"}, "top.partitions": set(), "lake.ok": {"top.windows"}, "top.windows": set()}
    imported = {"top.partitions": {"dagster"}, "top.windows": {"datetime"}, "lake.reads": set(), "lake.ok": set()}
    assert dagster_paths(edges, imported, "lake.reads") == ["top.partitions"]
    assert dagster_paths(edges, imported, "lake.ok") == []


@pytest.mark.process
def test_the_feed_and_runner_clients_load_without_dagster():
    code = f"import sys\nfor m in {PLAIN_CLIENTS!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_type_only_imports_are_not_dependencies():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import assets\nelse:\n    import api\nimport typing\nif typing.TYPE_CHECKING:\n    import sensors\n"
    assert runtime_imports(source, "coordinator_dagster.x", False) == {"typing", "api"}


def test_relative_and_lazy_imports_are_resolved():
    source = "from . import sibling, VALUE\nfrom ..lake import store\ndef later():\n    import assets.feeds\n"
    modules = {"coordinator_dagster.feeds.sibling", "coordinator_dagster.lake.store"}
    assert runtime_imports(source, "coordinator_dagster.feeds.ccxt", False, modules) == {
        "coordinator_dagster.feeds",  # VALUE is not a module: the package is the target
        "coordinator_dagster.feeds.sibling",
        "coordinator_dagster.lake.store",
        "assets.feeds",
    }


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, [["a"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "e"}, "e": set()}, [["a", "b"], ["c", "d"]]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_checker_finds_cycles_in_a_synthetic_graph(edges, expected):
    assert find_cycles(edges) == expected


def test_the_checker_flags_a_core_module_that_imports_a_wrapper():
    names = runtime_imports("from resources import LakeResource\n", "coordinator_dagster.lake.store", False)
    assert is_core("coordinator_dagster.lake.store") and any(_within(t, WRAPPERS) for t in names)
    assert not is_core("coordinator_dagster.definitions") and not is_core("coordinator_dagster.cli.main")
