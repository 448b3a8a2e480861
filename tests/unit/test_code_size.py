"""Every module in ``reasoner/`` stays small enough to read in one sitting: no module over 400 lines, no function
over 80. A newcomer changing one decision should find it in one short place; a file that outgrows this gets split
by job, not granted an exception."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def oversized(path: Path) -> list[str]:
    """One line per rule the file breaks: the module's length, then each function (nested ones too) too long."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    problems = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        problems.append(f"{where}: {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                problems.append(f"{where}:{node.lineno} {node.name}() is {length} lines (at most {MAX_FUNCTION_LINES})")
    return problems


def test_every_module_and_function_in_the_package_stays_small():
    files = sorted((ROOT / "reasoner").rglob("*.py"))
    assert len(files) > 50  # the walk really found the package
    problems = [problem for path in files for problem in oversized(path)]
    assert not problems, "\n".join(problems)


def test_the_size_check_catches_long_modules_and_functions(tmp_path):
    def function(name: str, body_lines: int) -> str:
        return f"def {name}():\n" + "    x = 1\n" * (body_lines - 1)

    fine = tmp_path / "fine.py"
    fine.write_text(function("exactly_at_the_limit", MAX_FUNCTION_LINES))
    assert oversized(fine) == []

    long_function = tmp_path / "long_function.py"
    long_function.write_text("class Holder:\n" + "".join(
        "    " + line + "\n" for line in function("method", MAX_FUNCTION_LINES + 1).splitlines()))
    assert oversized(long_function) == [f"{long_function}:2 method() is 81 lines (at most 80)"]

    long_module = tmp_path / "long_module.py"
    long_module.write_text("\n".join(f"VALUE_{i} = {i}" for i in range(MAX_MODULE_LINES + 1)) + "\n")
    assert oversized(long_module) == [f"{long_module}: 401 lines (at most 400)"]
