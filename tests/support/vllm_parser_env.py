"""Build the folder in which vLLM's own ``vllm serve`` parser runs on a machine without vLLM or a GPU.

vLLM's wheel is mostly compiled GPU code, but its command-line parser is plain Python on top of torch,
transformers and a few dozen pure-Python packages. What those packages are is not guessed here: the list is
read from the wheel's own metadata (its ``Requires-Dist``), less the compiled and GPU-only packages the parser
never imports (``NOT_IMPORTED``), and resolved by pip *with* their dependencies, so the folder is complete by
construction and owes nothing to whatever the surrounding environment happens to hold. The result:

    DIR/src    the wheel's Python files (its compiled parts are left out: parsing needs none of them)
    DIR/deps   every resolved distribution, installed with ``pip install --target``
    DIR/pins.txt   what was resolved (name==version), written last: a folder without it is not ready

``make vllm-parser`` runs this once per machine (``python tests/support/vllm_parser_env.py [DIR]``); the tests only use
the folder (tests/support/vllm_parser.py). A machine that cannot reach a package index fails at that set-up step, in
one line, and nothing half-built is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

VLLM_VERSION = "0.31.0"  # the newest vLLM in TRL 1.16's supported range (trl[vllm]: vllm>=0.22,<=0.31)
# vLLM's requirements that only serve its kernels, GPUs and media decoding: compiled or GPU-only, never imported
# on the way to ``vllm.entrypoints.cli.serve`` (tests/integration/test_generation_server.py imports it with nothing else on
# the path, so one wrongly listed here fails there). Everything else vLLM requires is resolved and installed.
NOT_IMPORTED = frozenset({
    "torchaudio", "torchvision", "torchcodec", "pynvvideocodec", "flashinfer-python", "tilelang",
    "nvidia-cudnn-frontend", "nvtx", "fastsafetensors", "instanttensor", "nvidia-cutlass-dsl", "quack-kernels",
    "tokenspeed-mla", "humming-kernels", "numba", "opencv-python-headless", "ninja", "triton",
})
NOT_IMPORTED_PREFIXES = ("nvidia-", "cuda-")  # CUDA runtime wheels, pulled in by GPU builds of torch and kernels


class SetupFailed(RuntimeError):
    """The index could not be reached or did not hold what the wheel requires."""


def default_dir() -> Path:
    """The cache folder; its name changes with the vLLM version and the exclusions, so a stale build is never used."""
    key = hashlib.sha256(json.dumps([VLLM_VERSION, sorted(NOT_IMPORTED), NOT_IMPORTED_PREFIXES]).encode()).hexdigest()
    default = Path.home() / ".cache" / "reasoner" / f"vllm-parser-{VLLM_VERSION}-{key[:10]}"
    return Path(os.environ.get("REASONER_VLLM_PARSER_DIR", default))


def is_ready(root: Path) -> bool:
    return (root / "pins.txt").is_file()


def excluded(name: str) -> bool:
    name = canonicalize_name(name)
    return name in NOT_IMPORTED or name.startswith(NOT_IMPORTED_PREFIXES)


def _pip(*args: str) -> str:
    try:
        result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise SetupFailed(f"pip {args[0]} ran past {exc.timeout:.0f} s: the package index is too slow") from exc
    if result.returncode != 0:
        last = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
        raise SetupFailed(f"pip {args[0]} failed: {last[-1] if last else 'exit ' + str(result.returncode)}")
    return result.stdout


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` that apply here (no extras), less what the parser never imports."""
    with zipfile.ZipFile(wheel) as archive:
        [meta] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return metadata_requirements(archive.read(meta).decode())


def metadata_requirements(metadata: str) -> list[Requirement]:
    """``Requires-Dist`` lines of a METADATA text that apply here (no extras), less what the parser never imports."""
    requirements = [Requirement(line.partition(":")[2].strip()) for line in metadata.splitlines()
                    if line.startswith("Requires-Dist:")]
    return [r for r in requirements if applies(r) and not excluded(r.name)]


def resolve(requirements: list[Requirement], work: Path) -> list[str]:
    """Every distribution the requirements need, with their dependencies (pip's resolver, nothing installed), as
    ``name==version``; a dependency reached only through an excluded package is left out with it."""
    report = work / "report.json"
    _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *map(str, requirements))
    found = {canonicalize_name(item["metadata"]["name"]): item for item in json.loads(report.read_text())["install"]}
    wanted: set[str] = set()
    queue = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen or excluded(name):
            continue
        seen.add((name, extras))
        wanted.add(name)
        for line in found[name]["metadata"].get("requires_dist", []):
            dep = Requirement(line)
            if applies(dep, extras):
                queue.append((canonicalize_name(dep.name), frozenset(dep.extras)))
    return sorted(f"{found[n]['metadata']['name']}=={found[n]['metadata']['version']}" for n in wanted)


def applies(requirement: Requirement, extras: frozenset = frozenset()) -> bool:
    """Whether a ``Requires-Dist`` line counts on this machine, for a distribution asked for with these extras."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**default_environment(), "extra": extra}) for extra in {"", *extras})


def unpack_python_files(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target, [n for n in archive.namelist()
                                    if not n.endswith((".so", ".cubin", ".fatbin")) and ".so." not in n])


def build(root: Path) -> list[str]:
    """Build the folder beside ``root`` and move it into place whole; returns the pins."""
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        _pip("download", f"vllm=={VLLM_VERSION}", "--no-deps", "--only-binary", ":all:", "-d", str(work / "wheel"), "-q")
        wheel = next((work / "wheel").glob("vllm-*.whl"))
        pins = resolve(wheel_requirements(wheel), work)
        unpack_python_files(wheel, work / "src")
        _pip("install", "--no-deps", "--only-binary", ":all:", "--target", str(work / "deps"), "-q", *pins)
        shutil.rmtree(work / "wheel")
        (work / "report.json").unlink()
        (work / "pins.txt").write_text("\n".join([f"vllm=={VLLM_VERSION}", *pins]) + "\n")
        if root.exists():
            shutil.rmtree(root)
        work.rename(root)
        return pins
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else default_dir()
    if is_ready(root):
        print(f"vLLM {VLLM_VERSION}'s parser: ready in {root}")
        return 0
    print(f"vLLM {VLLM_VERSION}'s parser: resolving its wheel's requirements into {root} (once per machine)", flush=True)
    try:
        pins = build(root)
    except SetupFailed as exc:
        print(f"make vllm-parser: {exc}. The generation-server tests need vLLM {VLLM_VERSION}'s wheel and its "
              "requirements from the package index once; check pip's index settings and run `make vllm-parser` "
              "again.", file=sys.stderr)
        return 2
    print(f"vLLM {VLLM_VERSION}'s parser: {len(pins)} distributions in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
