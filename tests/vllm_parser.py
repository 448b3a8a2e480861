"""vLLM's own ``vllm serve`` argument parser, on a machine without vLLM or a GPU.

vLLM's wheel is mostly compiled code, but its command-line parser is plain Python. So the wheel of the newest
vLLM that TRL supports is downloaded once (``pip download vllm==VERSION --no-deps``), only its Python files are
unpacked, and the pure-Python packages the parser imports go beside them (``pip install --no-deps --target``),
in a cache folder outside the test environment. The parser then runs in a subprocess (``VLLM_TARGET_DEVICE=cpu``:
it needs no GPU to parse), built exactly as ``vllm.entrypoints.cli.main`` builds it for ``vllm serve``. Where vLLM
is installed, the installed one is used instead. A machine that can reach no package index fails here, loudly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

VLLM_VERSION = "0.31.0"  # the newest vLLM in TRL 1.16's supported range (trl[vllm]: vllm>=0.22,<=0.31)
# What the parser imports beyond this test environment, at versions seen working with it.
PARSER_DEPS = [
    "aiohappyeyeballs==2.7.1", "aiohttp==3.14.5", "aiosignal==1.4.0", "apache-tvm-ffi==0.1.15.post2",
    "cachetools==8.0.2", "cbor2==6.3.0", "fastapi==0.165.0", "frozenlist==1.8.0", "llguidance==1.9.1",
    "msgspec==0.23.0", "multidict==7.2.1", "openai==3.57.0", "openai-harmony==0.0.8",
    "partial-json-parser==0.2.1.1.post7", "prometheus-client==0.26.0", "propcache==0.5.4", "pybase64==1.5.1",
    "pyzmq==27.3.0", "starlette==1.10.0", "uvicorn==0.55.0", "uvloop==0.23.0", "watchfiles==1.3.0",
    "xgrammar==0.2.9", "yarl==1.25.1",
]
CHILD = Path(__file__).with_name("vllm_parse_child.py")


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "reasoner" / f"vllm-parser-{VLLM_VERSION}"
    return Path(os.environ.get("REASONER_VLLM_PARSER_DIR", default))


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"pip {' '.join(args[:3])} ... failed; vLLM's parser needs the package index once:\n"
                    f"{result.stderr[-2000:]}")


def _build(root: Path) -> None:
    wheels = root / "wheel"
    _pip("download", f"vllm=={VLLM_VERSION}", "--no-deps", "--only-binary", ":all:", "-d", str(wheels), "-q")
    wheel = next(wheels.glob("vllm-*.whl"))
    with zipfile.ZipFile(wheel) as archive:  # the Python files only: the compiled parts are not needed to parse
        archive.extractall(root / "src", [n for n in archive.namelist() if not n.endswith((".so", ".cubin", ".fatbin"))
                                          and ".so." not in n])
    wheel.unlink()
    _pip("install", "--no-deps", "--target", str(root / "deps"), "-q", *PARSER_DEPS)
    (root / "ready").write_text(VLLM_VERSION + "\n")


def parser_env() -> dict[str, str]:
    """The environment in which ``vllm_parse_child.py`` imports vLLM's parser."""
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_LOGGING_LEVEL": "ERROR"}
    installed = subprocess.run([sys.executable, "-c", "import vllm.entrypoints.cli.serve"], env=env,
                               capture_output=True, timeout=300)
    if installed.returncode == 0:
        return env
    root = _cache_dir()
    if not (root / "ready").is_file():
        root.mkdir(parents=True, exist_ok=True)
        _build(root)
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
