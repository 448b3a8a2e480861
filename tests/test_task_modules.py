"""The task, data, rewards and eval packages: each module imports alone, none takes part in an import cycle
(function-local imports included), none pulls torch or datasets in at import time, and each stays small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reasoner"
OWNED = ("tasks", "data", "rewards", "eval")
HEAVY = ("torch", "datasets", "transformers", "trl", "math_verify", "huggingface_hub")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owned_files() -> list[Path]:
    return sorted(p for package in OWNED for p in (PACKAGE / package).rglob("*.py"))


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The reasoner modules a file imports anywhere in it (the top, or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in known)
    return found


def test_each_module_imports_alone_without_heavy_libraries():
    names = [module_name(path) for path in owned_files()]
    check = (
        "import importlib, sys\n"
        f"importlib.import_module(sys.argv[1])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    for name in names:
        result = subprocess.run([sys.executable, "-c", check, name], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, (name, result.stderr[-2000:])


def test_no_import_cycle_through_these_packages():
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}
    # A package's __init__ importing its own submodules is how it re-exports them, not a cycle.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not (name + ".").startswith(dep + ".") or dep == "reasoner"}
    owned = {module_name(path) for path in owned_files()}

    def reaches(start: str, target: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for dep in graph.get(node, ()):
                if dep == target:
                    return trail + [dep]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, trail + [dep]))
        return None

    cycles = [cycle for name in sorted(owned) if (cycle := reaches(name, name))]
    assert not cycles, cycles


@pytest.mark.parametrize("path", owned_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= 80, node.name
