"""The vLLM that training accepts is the range TRL's own ``vllm`` extra declares; anything else fails in one line.

vLLM itself cannot be installed here (it pulls a CUDA torch). The refusal of an unsupported version is shown
with a distribution record of the shape pip writes (``vllm-X.dist-info/METADATA``) on the child's path, which
is exactly what ``importlib.metadata`` reads for an installed vLLM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from reasoner.errors import UserError
from reasoner.train.vllm_support import check_vllm, supported_vllm

ROOT = Path(__file__).resolve().parents[2]


def trl_vllm_requirement() -> Requirement:
    """TRL's declared vLLM requirement, read straight from its metadata lines."""
    lines = [line for line in metadata.requires("trl") or [] if line.startswith("vllm") and 'extra == "vllm"' in line]
    assert len(lines) == 1, lines
    return Requirement(lines[0])


def test_the_supported_range_is_trls_own():
    assert supported_vllm() == trl_vllm_requirement().specifier
    assert str(supported_vllm()), "TRL declares no vLLM range: the check would accept anything"


def test_the_vllm_extra_installs_trls_vllm_extra_and_nothing_unpinned():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    requirements = [Requirement(r) for r in extras["vllm"]]
    assert any(r.name == "trl" and "vllm" in r.extras for r in requirements), extras["vllm"]
    assert not any(r.name == "vllm" for r in requirements), "a bare vllm requirement could pick a version TRL does not support"
    everything = [Requirement(r).name for reqs in extras.values() for r in reqs]
    assert "flash-attn" not in everything and "gpu" not in extras


def test_versions_inside_the_range_pass_and_outside_are_refused():
    supported = SpecifierSet(">=0.22.0,<=0.31.0")
    for ok in ("0.22.0", "0.31.0", "0.30.1+cu128", "0.31.0rc1"):
        check_vllm(ok, supported)
    for bad in ("0.21.9", "0.33.0", "1.0.0"):
        with pytest.raises(UserError, match=rf"vLLM {bad} is installed but TRL .* supports vLLM <=0.31.0,>=0.22.0"):
            check_vllm(bad, supported)


def test_missing_vllm_names_the_install_command(monkeypatch):
    from reasoner.train import vllm_support

    monkeypatch.setattr(vllm_support, "installed_vllm", lambda: None)
    with pytest.raises(UserError, match=r"vLLM is not installed: pip install 'reasoner\[vllm\]'"):
        check_vllm()


def fake_vllm(folder: Path, version: str) -> Path:
    info = folder / f"vllm-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    return folder


def train(recipe_args: list[str], extra_path: Path | None) -> subprocess.CompletedProcess:
    paths = [str(ROOT), *([str(extra_path)] if extra_path else []), os.environ.get("PYTHONPATH", "")]
    # A hub nobody listens on: the refusal must come before any hub request or model load.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "HF_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "reasoner.train", *recipe_args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_training_with_an_unsupported_vllm_stops_in_one_line_before_anything_loads(tmp_path):
    result = train(["--recipe", "qwen2.5-0.5b-gsm8k", "--output_dir", str(tmp_path / "out")], fake_vllm(tmp_path, "0.33.0"))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: vLLM 0.33.0 is installed but TRL "), result.stderr
    assert "pip install 'reasoner[vllm]'" in lines[0] and "--generation.backend transformers" in lines[0]
    assert not (tmp_path / "out").exists()


def test_training_without_vllm_says_how_to_install_it(tmp_path):
    if any(True for _ in metadata.distributions(name="vllm")):
        pytest.skip("vLLM is installed here")
    result = train(["--recipe", "qwen2.5-0.5b-gsm8k", "--output_dir", str(tmp_path / "out")], None)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: generation.backend is vllm but vLLM is not installed: pip install 'reasoner[vllm]' (it installs "
        "trl[vllm], the vLLM range TRL supports), or set --generation.backend transformers"]


def test_the_transformers_backend_does_not_check_vllm(tmp_path):
    """A recipe that does not generate with vLLM runs even with an unsupported vLLM installed."""
    result = train(["--recipe", "tiny-cpu", "--max_steps", "1", "--output_dir", str(tmp_path / "out")],
                   fake_vllm(tmp_path, "0.33.0"))
    assert result.returncode == 0, result.stderr[-3000:]
