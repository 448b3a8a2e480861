"""Nodes of a SLURM allocation and each node's own cache.

Node names need not resolve (the test cluster's ``n1``/``n2`` do not), so a node is reached at its ``NodeAddr``
as ``scontrol show node`` prints it. Each node prefetches into its own cache: ``REASONER_CACHE_DIR`` with a
literal ``{node}`` replaced by the node's name, for clusters whose nodes share the disk the cache is on.
"""

from __future__ import annotations

import getpass
import re
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from reasoner.errors import UserError

CACHE_ENV = "REASONER_CACHE_DIR"
Runner = Callable[..., subprocess.CompletedProcess]


def scontrol(args: list[str], run: Runner = subprocess.run) -> str:
    """stdout of ``scontrol ARGS``; UserError naming the command when it fails."""
    try:
        result = run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"scontrol {' '.join(args)} failed ({exc}); run inside a SLURM job with scontrol on PATH") from None
    if result.returncode != 0:
        raise UserError(f"scontrol {' '.join(args)} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout


def allocation(nodelist: str, run: Runner = subprocess.run) -> tuple[list[str], list[str]]:
    """The job's node names in order (``scontrol show hostnames``) and each one's ``NodeAddr``."""
    names = scontrol(["show", "hostnames", nodelist], run).split()
    if not names:
        raise UserError(f"scontrol show hostnames returned no nodes for {nodelist}")
    addrs = []
    for name in names:
        match = re.search(r"\bNodeAddr=(\S+)", scontrol(["show", "node", name], run))
        addrs.append(match.group(1) if match else name)
    return names, addrs


def requested_gpus_per_node(job_id: str, node_count: int, run: Runner = subprocess.run) -> int:
    """GPUs per node the job asked for (``--gpus-per-node``, ``--gres=gpu:N``, ``--gpus``): what its steps get.

    Not ``SLURM_GPUS_ON_NODE``: an ``--exclusive`` job sees every GPU of its nodes there, but its steps are given
    only the GPUs it requested (srun's default), so a plan for the others would start ranks with no GPU.
    """
    text = scontrol(["show", "job", job_id], run)
    per_node = re.search(r"\bTresPerNode=\S*?gres[:/]gpu(?::[^:,\s]+)?:(\d+)", text)
    if per_node:
        return int(per_node.group(1))
    per_job = re.search(r"\bTresPerJob=\S*?gres[:/]gpu(?::[^:,\s]+)?:(\d+)", text)
    if per_job:
        return int(per_job.group(1)) // max(1, node_count)
    return 0


def node_name(env: Mapping[str, str]) -> str:
    """This node's name as SLURM knows it (SLURMD_NODENAME), else the short host name."""
    return env.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def default_cache_dir(env: Mapping[str, str]) -> str:
    """``REASONER_CACHE_DIR``, else the job's ``SLURM_TMPDIR``, else ``/tmp/$USER/reasoner-cache``."""
    user = env.get("USER") or getpass.getuser()
    return env.get(CACHE_ENV) or env.get("SLURM_TMPDIR") or f"/tmp/{user}/reasoner-cache"


def node_cache_env(env: Mapping[str, str]) -> dict[str, str]:
    """The cache variables of this node: its ``REASONER_CACHE_DIR`` and the hub and datasets caches under it."""
    template = env.get(CACHE_ENV)
    if not template:
        return {}
    cache = Path(template.replace("{node}", node_name(env)))
    return {CACHE_ENV: str(cache), "HF_HUB_CACHE": str(cache / "hub"), "HF_DATASETS_CACHE": str(cache / "datasets")}
