"""The task, data, rewards and eval packages: each module imports alone without pulling torch, datasets or
math-verify in (the CLI imports them for every command). Sizes are checked for the whole package in
test_code_size.py, the import graph in test_import_graph.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reasoner"
OWNED = ("tasks", "data", "rewards", "eval")
HEAVY = ("torch", "datasets", "transformers", "trl", "math_verify", "huggingface_hub")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owned_files() -> list[Path]:
    return sorted(p for package in OWNED for p in (PACKAGE / package).rglob("*.py"))


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
