"""The package's import graph: no cycles, every module importable on its own, no test-named product module.

The graph is read from the source (every ``import`` statement, including those inside functions), so a
cycle hidden behind a function-local import is found as surely as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reasoner"


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    targets.add(full)
                elif base in known:
                    targets.add(base)
    targets.discard(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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


def test_the_graph_reader_finds_a_cycle_hidden_in_a_function(tmp_path):
    """The checker itself: a cycle closed by a function-local import is found."""
    graph = {"p.a": imported_modules("p.a", _write(tmp_path, "a.py", "from p.b import X\n"), {"p.a", "p.b"}),
             "p.b": imported_modules("p.b", _write(tmp_path, "b.py", "def f():\n    from p import a\n"),
                                     {"p", "p.a", "p.b"})}
    assert cycles(graph) == [["p.a", "p.b"]]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_no_module_is_part_of_an_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (each group imports itself through the others): " + "; ".join(
        " <-> ".join(group) for group in found)


def test_no_product_module_is_named_for_tests():
    names = [name for name in module_files() if name.rpartition(".")[2] in ("testing", "tests", "conftest", "mocks")]
    assert not names, f"test helpers inside the installed package: {names}"


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """One interpreter imports each module first, in its own child, so no module depends on another's import order."""
    script = ("import importlib, subprocess, sys\n"
              "failed = []\n"
              "for name in sys.argv[1:]:\n"
              "    done = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
              "    if done.returncode:\n"
              "        failed.append(name + ': ' + (done.stderr.strip().splitlines() or ['?'])[-1])\n"
              "print('\\n'.join(failed))\n"
              "sys.exit(1 if failed else 0)\n")
    names = [name for name in module_files() if not name.endswith("__main__")]
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"modules that fail to import alone:\n{done.stdout}{done.stderr[-2000:]}"


@pytest.mark.parametrize("pair", [("reasoner.hubclient.calls", "reasoner.publish.uploader"), ("reasoner.models.builtin", "reasoner.models.tiny")])
def test_formerly_cyclic_pairs_import_one_way_only(pair):
    graph = import_graph()
    first, second = pair
    assert not (second in graph[first] and first in graph[second]), f"{first} and {second} import each other"
