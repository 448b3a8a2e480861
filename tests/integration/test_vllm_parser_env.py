"""The folder ``make vllm-parser`` prepares holds everything vLLM's ``vllm serve`` parser imports.

The parser folder (tests/support/vllm_parser_env.py) once held a hand list of packages installed without their
dependencies; it worked only where the test environment happened to hold the rest. Here vLLM's serve command is
imported by an interpreter that sees the folder and the standard library only (``-I -S``: no site-packages, no
environment variables, no user site), so a module missing from the folder fails, whatever this environment holds.
The negative case proves the check can fail: the same folder with one distribution taken out does not import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from vllm_parser_env import NOT_IMPORTED, default_dir, excluded, is_ready, metadata_requirements

IMPORT = "import vllm.entrypoints.cli.serve, vllm.engine.arg_utils"


def isolated_import(src: Path, deps: Path) -> subprocess.CompletedProcess:
    """Import the serve command with nothing on the path but the standard library and these two folders."""
    code = (f"import sys, site; sys.path[:0] = [{str(src)!r}]; site.addsitedir({str(deps)!r}); "
            f"assert not any('site-packages' in p for p in sys.path), sys.path; {IMPORT}")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "VLLM_TARGET_DEVICE": "cpu", "VLLM_LOGGING_LEVEL": "ERROR", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def prepared() -> Path:
    root = default_dir()
    if not is_ready(root):
        pytest.fail(f"vLLM's parser is not prepared in {root}: run `make vllm-parser` (make test does it first)")
    return root


def test_the_serve_command_imports_from_the_folder_alone(prepared):
    result = isolated_import(prepared / "src", prepared / "deps")
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_folder_missing_one_distribution_does_not_import(prepared, tmp_path):
    """The folder less ``attrs`` (aiohttp imports it): the import must fail on exactly that module."""
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in (prepared / "deps").iterdir():
        if entry.name == "attr" or entry.name.startswith("attrs"):
            continue
        (deps / entry.name).symlink_to(entry)
    result = isolated_import(prepared / "src", deps)
    assert result.returncode != 0
    assert "No module named 'attr'" in result.stderr, result.stderr[-3000:]


def test_the_pins_come_from_the_wheels_own_requirements(prepared):
    """Every requirement vLLM's wheel states for this machine is pinned in the folder, or deliberately left out as
    never imported; nothing the wheel asks for is silently dropped, and nothing excluded slipped in."""
    pinned = {canonicalize_name(line.partition("==")[0]) for line in (prepared / "pins.txt").read_text().split()}
    [metadata] = (prepared / "src").glob("vllm-*.dist-info/METADATA")
    stated = {canonicalize_name(r.name) for r in metadata_requirements(metadata.read_text())}
    assert stated and stated <= pinned, sorted(stated - pinned)
    assert not [name for name in pinned if excluded(name)] and not NOT_IMPORTED & pinned
    assert {"torch", "transformers", "attrs", "cloudpickle"} <= pinned  # two came only through dependencies
