"""This machine's GPUs and memory, for plans made on the node a run will use.

The launchers plan on the node they launch from, so the memory estimate uses that node's real GPU size and host
memory instead of the recipe's assumption (a recipe sized for 80 GB GPUs must not be let through, or stopped, on
a 40 GB or 141 GB one). ``REASONER_GPU_MEMORY_GB`` and ``REASONER_HOST_MEMORY_GB`` override what is found.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from reasoner.errors import UserError

GPU_MEMORY_ENV = "REASONER_GPU_MEMORY_GB"
HOST_MEMORY_ENV = "REASONER_HOST_MEMORY_GB"
MIB_PER_GIB = 1024


def parse_gb(text: str, what: str = "--gpu-memory") -> float:
    """``80GB``, ``80G``, ``141`` or ``80GiB`` as a number of GB."""
    value = text.strip().upper().removesuffix("B").removesuffix("I").removesuffix("G")
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{what} '{text}' is not a size: write it in GB, e.g. 80GB or 141") from None
    if number <= 0:
        raise UserError(f"{what} '{text}' must be a positive size in GB")
    return number


@dataclasses.dataclass(frozen=True)
class Machine:
    """What was found on this machine (None: not found)."""

    gpus: int | None
    gpu_memory_gb: float | None
    host_memory_gb: float | None


def nvidia_smi_gpus(run=subprocess.run) -> list[float]:
    """Each visible GPU's total memory in GiB, from nvidia-smi (empty without nvidia-smi or GPUs)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        result = run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                     capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return [int(line) / MIB_PER_GIB for line in result.stdout.split() if line.strip().isdigit()]


def host_memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """This machine's total memory in GiB (Linux), or None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)  # kB -> GiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def this_machine(env: Mapping[str, str], gpu_sizes: list[float] | None = None) -> Machine:
    """GPUs and memory of this machine; the ``REASONER_*_MEMORY_GB`` variables win over what is found."""
    sizes = nvidia_smi_gpus() if gpu_sizes is None else gpu_sizes
    gpu_memory = parse_gb(env[GPU_MEMORY_ENV], GPU_MEMORY_ENV) if env.get(GPU_MEMORY_ENV) else (min(sizes) if sizes else None)
    host = parse_gb(env[HOST_MEMORY_ENV], HOST_MEMORY_ENV) if env.get(HOST_MEMORY_ENV) else host_memory_gib()
    return Machine(gpus=len(sizes) or None, gpu_memory_gb=gpu_memory, host_memory_gb=host)
