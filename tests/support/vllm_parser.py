"""vLLM's own ``vllm serve`` argument parser, on a machine without vLLM or a GPU.

vLLM's wheel is mostly compiled code, but its command-line parser is plain Python. ``make vllm-parser``
(tests/support/vllm_parser_env.py) unpacks the Python files of the newest vLLM that TRL supports into a cache folder,
with every distribution its wheel's metadata requires (less the compiled and GPU-only ones the parser never
imports), resolved with their dependencies. The parser then runs in a subprocess (``VLLM_TARGET_DEVICE=cpu``: it
needs no GPU to parse) that sees that folder first, built exactly as ``vllm.entrypoints.cli.main`` builds it for
``vllm serve``. Where vLLM is installed, the installed one is used instead. The tests never build the folder:
one that is missing fails in one line naming ``make vllm-parser``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_parser_env import default_dir, is_ready

CHILD = Path(__file__).with_name("vllm_parse_child.py")


def parser_env() -> dict[str, str]:
    """The environment in which ``vllm_parse_child.py`` imports vLLM's parser."""
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_LOGGING_LEVEL": "ERROR"}
    installed = subprocess.run([sys.executable, "-c", "import vllm.entrypoints.cli.serve"], env=env,
                               capture_output=True, timeout=300)
    if installed.returncode == 0:
        return env
    root = default_dir()
    if not is_ready(root):
        pytest.fail(f"vLLM's parser is not prepared in {root}: run `make vllm-parser` (make test does it first)")
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root / "deps"), env.get("PYTHONPATH", "")])
    return env


def parse_serve(commands: list[list[str]]) -> list[dict]:
    """Each ``vllm serve`` argument list (what follows ``serve``) through vLLM's parser: the values it parsed, or
    ``{"error": message}`` where it refused them."""
    result = subprocess.run([sys.executable, str(CHILD)], input=json.dumps(commands), env=parser_env(),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"vLLM's parser did not run:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
