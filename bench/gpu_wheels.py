"""The wheels an air-gapped GPU node needs: fetched here (``make gpu-wheels``), checked, installed there offline.

    python bench/gpu_wheels.py download     # here, with the registry: bench/gpu-wheels.txt -> bench/wheels/
    python bench/gpu_wheels.py check        # the folder holds exactly the pinned set; prints each and the total
    python bench/gpu_wheels.py install      # on the node: pip --no-index from bench/wheels, nothing else

Why a fixed, pinned set instead of ``pip download reasoner``: the node's image already holds torch (CUDA),
accelerate, peft and most small packages, and only 64 MiB may travel per run, so only what the image lacks or
has too old is brought (bench/gpu-wheels.txt says why each one is there). Installing runs pip's resolver over
reasoner's own requirements against the image plus these wheels (``--no-index``): pip never reaches for an
index, keeps what the image has when it satisfies reasoner, and names the one package that is missing when the
set falls short, which is the error to fix here, by adding its wheel to bench/gpu-wheels.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Mapping

REPO = Path(__file__).resolve().parents[1]
PINS = REPO / "bench" / "gpu-wheels.txt"
WHEELS = REPO / "bench" / "wheels"
MIB = 2**20
CARRY_LIMIT = 64 * MIB  # what one device run may bring: the working tree and the carried folders together
WHEELS_LIMIT = 40 * MIB  # "well under" that: the tree (a few MiB) and room to grow stay beside it
PYTHON_TAG = "3.12"
# pip matches manylinux tags exactly: list the ones wheels of these packages carry (none is newer than 2_28).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# reasoner-hub's requirements the node needs (its S3 client, boto3, is imported only for an S3 store).
HUB_PACKAGES = ("blake3", "lz4")


class SetupFailed(Exception):
    """The node cannot be made ready from the brought wheels; the message says which package and what to do."""


@dataclasses.dataclass(frozen=True)
class Pin:
    name: str  # normalized (PEP 503)
    version: str


def normalize(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` and ``typing-extensions`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> list[Pin]:
    """``name==version`` lines (comments and blanks skipped); anything else is refused, so a loose requirement
    cannot slip in and make the set depend on the day it was downloaded."""
    pins: list[Pin] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        if match is None:
            raise ValueError(f"line {number} of the pins is not 'name==version': {raw.strip()!r}")
        pins.append(Pin(normalize(match.group(1)), match.group(2)))
    names = [pin.name for pin in pins]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"pinned more than once: {', '.join(twice)} (keep one version of each)")
    return pins


def wheel_name_version(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) of a wheel file name; None for anything that is not a wheel."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        return None
    return normalize(parts[0]), parts[1]


@dataclasses.dataclass(frozen=True)
class WheelSet:
    """What a wheel folder holds against the pins: the problems (empty: exactly the set) and the sizes."""

    problems: tuple[str, ...]
    sizes: Mapping[str, int]  # file name -> bytes

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def check_wheel_set(pins: Iterable[Pin], sizes: Mapping[str, int], *, limit: int = WHEELS_LIMIT) -> WheelSet:
    """Exactly one wheel per pin, at its version, nothing else, and the total under ``limit``."""
    wanted = {pin.name: pin.version for pin in pins}
    problems: list[str] = []
    found: dict[str, list[str]] = {}
    for filename in sorted(sizes):
        parsed = wheel_name_version(filename)
        if parsed is None:
            problems.append(f"{filename}: not a wheel")
            continue
        name, version = parsed
        found.setdefault(name, []).append(version)
        if name not in wanted:
            problems.append(f"{filename}: not pinned in bench/gpu-wheels.txt (remove it, or pin it there)")
        elif version != wanted[name]:
            problems.append(f"{filename}: version {version}, pinned {wanted[name]}")
    for name, versions in sorted(found.items()):
        if len(versions) > 1:
            problems.append(f"{name}: {len(versions)} wheels ({', '.join(versions)}); pip needs exactly one")
    for name, version in sorted(wanted.items()):
        if name not in found:
            problems.append(f"{name}=={version}: no wheel (run make gpu-wheels)")
    total = sum(sizes.values())
    if total > limit:
        problems.append(f"the wheels total {total / MIB:.1f} MiB, over the {limit / MIB:.0f} MiB allowed "
                        f"(a device run carries {CARRY_LIMIT / MIB:.0f} MiB with the working tree)")
    return WheelSet(tuple(problems), dict(sizes))


def folder_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def report(wheels: WheelSet) -> str:
    """One line per wheel and the total, largest first."""
    lines = [f"{size / MIB:8.2f} MiB  {name}" for name, size in sorted(wheels.sizes.items(), key=lambda kv: -kv[1])]
    lines.append(f"{wheels.total / MIB:8.2f} MiB  total in {len(wheels.sizes)} wheels (limit {WHEELS_LIMIT / MIB:.0f} MiB; "
                 f"a device run carries {CARRY_LIMIT / MIB:.0f} MiB with the working tree)")
    return "\n".join(lines)


# -- here: download ------------------------------------------------------------------------------------------
def download_command(dest: Path, pins_file: Path = PINS) -> list[str]:
    """``pip download`` of exactly the pinned wheels for CPython 3.12 manylinux x86_64 (no dependencies: the
    pins are the whole set, checked by the install on the node)."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
            PYTHON_TAG, "--implementation", "cp", *platforms, "--dest", str(dest), "-r", str(pins_file)]


def download(dest: Path = WHEELS, pins_file: Path = PINS) -> WheelSet:
    """Fetch the set into a fresh folder, then replace ``dest`` with it (no stale wheel of an older pin stays)."""
    pins = parse_pins(pins_file.read_text())
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as tmp:
        done = subprocess.run(download_command(Path(tmp), pins_file))
        if done.returncode != 0:
            raise SetupFailed(f"pip download exited {done.returncode}: a pin in {pins_file} has no CPython 3.12 "
                              "manylinux x86_64 wheel; fix that line")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp, dest)
    return check_wheel_set(pins, folder_sizes(dest))


# -- on the node: install offline ----------------------------------------------------------------------------
def project_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """reasoner's install requirements as pyproject.toml states them."""
    import tomllib

    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def unmet(requirements: Iterable[str], version_of: Callable[[str], str | None]) -> list[str]:
    """One line per requirement this environment does not satisfy (``version_of`` gives an installed version,
    None when the package is absent)."""
    from packaging.requirements import Requirement

    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        have = version_of(requirement.name)
        if have is None:
            problems.append(f"{requirement.name}: not installed (need {requirement.specifier or 'any'})")
        elif requirement.specifier and not requirement.specifier.contains(have, prereleases=True):
            problems.append(f"{requirement.name}: {have} installed, need {requirement.specifier}")
    return problems


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install_commands(python: str, wheels: Path) -> list[list[str]]:
    """reasoner (editable, its requirements resolved against the image plus ``wheels``), then reasoner-hub
    without its requirements (boto3 is for S3 only) and the two it needs. Never an index."""
    offline = ["--no-index", "--find-links", str(wheels), "--no-build-isolation", "--disable-pip-version-check"]
    return [[python, "-m", "pip", "install", *offline, "-e", str(REPO), *HUB_PACKAGES],
            [python, "-m", "pip", "install", *offline, "--no-deps", "-e", str(REPO / "hub")]]


def install(wheels: Path = WHEELS, python: str = sys.executable) -> float:
    """Install from ``wheels`` alone; the seconds it took. SetupFailed names what is missing."""
    if not any(wheels.glob("*.whl")):
        raise SetupFailed(f"no wheels in {wheels}: run `make gpu-wheels` where the registry is reachable and carry "
                          "bench/wheels to this machine")
    started = time.monotonic()
    for command in install_commands(python, wheels):
        print("bench/gpu_wheels.py: " + " ".join(command[1:]), flush=True)
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupFailed(install_failure(done.stdout + done.stderr, done.returncode))
    return time.monotonic() - started


def install_failure(output: str, code: int) -> str:
    """pip's reason in one line: the package it could not find among the wheels, else its last error line."""
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        return (f"the wheels lack {missing.group(1)} (pip exit code {code}): add it to bench/gpu-wheels.txt, "
                "run make gpu-wheels and carry bench/wheels again")
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    return f"pip install from the wheels failed (exit code {code}): {(errors or output.splitlines() or ['?'])[-1]}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("download", "check", "install"))
    parser.add_argument("--dest", type=Path, default=WHEELS, help="the wheel folder (default bench/wheels)")
    ns = parser.parse_args(argv)
    try:
        if ns.action == "install":
            print(f"installed from {ns.dest} in {install(ns.dest):.0f} s")
            return 0
        pins = parse_pins(PINS.read_text())
        wheels = download(ns.dest) if ns.action == "download" else check_wheel_set(pins, folder_sizes(ns.dest))
    except (SetupFailed, ValueError) as exc:
        print(f"bench/gpu_wheels.py: {exc}", file=sys.stderr)
        return 1
    print(report(wheels))
    for problem in wheels.problems:
        print(f"bench/gpu_wheels.py: {problem}", file=sys.stderr)
    return 1 if wheels.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
