"""Launcher scripts and ``reasoner launch-env``: which variables a script reads, and what launch-env printed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def script_reads(script: Path) -> set[str]:
    """Upper-case variables a script's code uses but never assigns itself (comments do not count)."""
    code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{?#?([A-Z][A-Z0-9_]*)", code))
    assigned = set(re.findall(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=", code, re.M))
    assigned |= set(re.findall(r"\blocal\s+([A-Z_]+)", code))
    return used - assigned


def read_assignments(text: str) -> dict[str, list[str]]:
    """The variables shell assignments set, as bash reads them (a scalar is a one-item list)."""
    names = re.findall(r"^(?:export )?([A-Z][A-Z0-9_]*)=", text, re.M)
    values = {}
    for name in names:
        script = f"{text}\nprintf '%s\\0' \"${{{name}[@]}}\""
        values[name] = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                      check=True).stdout.split("\0")[:-1]
    return values
