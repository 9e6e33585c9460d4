"""No import cycles among the project's modules: a static read of every module's imports, those
inside functions and those under ``if TYPE_CHECKING:`` included (a type-only import still ties
two modules: the floors of the house count it too). And the house keeps its shape: its floors
(import-linter's contracts in pyproject.toml) hold, and the top of ``crnn/`` stays a short list."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("crnn", "flows")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), name, package, modules)


def imports_in(source: str, name: str, package: str, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from crnn import interrupt` imports crnn.interrupt
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["crnn.engine.train"] >= {
        "crnn.engine.ranks",
        "crnn.engine.checkpoint",
    }
    assert cycles(graph) == []


def test_the_cycle_finder_finds_function_level_and_type_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    modules = set(import_graph())
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from crnn.inference.evaluate import EvalReport\n"
        "def f():\n    from crnn.engine.train import train\n    from . import scoring\n"
    )
    found = imports_in(source, "crnn.inference.predictor", "crnn.inference", modules)
    # in a function: counted; under TYPE_CHECKING: counted; relative: resolved
    assert found == {"crnn.engine.train", "crnn.inference.scoring", "crnn.inference.evaluate"}


def test_the_floors_hold() -> None:
    """import-linter's contracts (pyproject.toml): each floor imports only from those below it;
    Prefect only in the CLI and flows, MLflow only in crnn.tracking, Dask only in crnn.cluster,
    Optuna only in crnn.sweep. Every contract the file declares is checked and kept."""
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(linter), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"{len(declared['contracts'])} kept, 0 broken" in proc.stdout


def test_the_top_of_crnn_is_a_short_list() -> None:
    """Packages for the floors; at the top only the leaves every floor may use (at most 15)."""
    modules = sorted(p.name for p in (REPO / "crnn").glob("*.py"))
    assert len(modules) <= 15, modules


def test_rooms_stay_small() -> None:
    """No module of crnn/ or flows/ over 450 lines, no function over 60: a room a reader takes in
    at once (the merge of two features once made a 63- and a 68-line function)."""
    long_modules, long_functions = [], []
    for path in sorted((REPO / "crnn").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(REPO)
        if len(source.splitlines()) > 450:
            long_modules.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules and not long_functions, long_modules + long_functions
