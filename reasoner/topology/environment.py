"""What the environment says about a run: nodes and their addresses, GPUs, the job id, and the overrides.

Everything the layout reads from outside comes through here, as plain values, so the steps that decide the
layout stay pure functions of their arguments. Node names arrive already expanded (``REASONER_NODELIST``;
``reasoner launch-env`` runs ``scontrol show hostnames``) with their addresses (``REASONER_NODE_ADDRS``, each
node's ``NodeAddr``), because node names need not resolve.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.recipe.batch import whole_number
from reasoner.errors import UserError

DEFAULT_MAIN_PORT = 29500
DEFAULT_VLLM_PORT = 8000
DEFAULT_GROUP_PORT = 51216  # TRL's vllm_group_port default
# A SLURM job takes its ports from its id: port = base + id % JOB_PORT_SPAN, one block per kind of port, all
# below Linux's ephemeral range (32768+), so two jobs sharing a node do not meet on a port.
JOB_PORT_SPAN = 3000
JOB_PORT_BASES = {"main": 20000, "vllm": 23000, "group": 26000}


def split_list(value: str | None) -> list[str]:
    """Items of a list written with commas, spaces or newlines (as ``scontrol show hostnames`` prints them)."""
    if not value:
        return []
    return [item for item in re.split(r"[\s,]+", value.strip()) if item]


def env_int(env: Mapping[str, str], key: str) -> int | None:
    """A whole number from the environment, None when unset; ``2(x1)`` shapes read as 2."""
    raw = env.get(key, "").strip()
    if not raw:
        return None
    match = re.match(r"^(\d+)", raw)
    if not match:
        raise UserError(f"{key}={raw!r} is not a whole number; unset it or give a number.")
    return int(match.group(1))


def gpus_from_env(env: Mapping[str, str]) -> int | None:
    """GPUs the environment says this node has (SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES), or None."""
    on_node = env_int(env, "SLURM_GPUS_ON_NODE")
    if on_node is not None:
        return on_node
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "NoDevFiles"):
        return len(split_list(visible))
    return None


@dataclasses.dataclass(frozen=True)
class Nodes:
    """The allocation's nodes in order, their addresses, and whether SLURM gave them."""

    names: tuple[str, ...]
    addrs: tuple[str, ...]
    slurm: bool

    def address(self, name: str) -> str:
        return self.addrs[self.names.index(name)]


def read_nodes(env: Mapping[str, str], nodes: int | None) -> Nodes:
    """The expanded node list and addresses; UserError when counts or names disagree."""
    names = split_list(env.get("REASONER_NODELIST"))
    slurm = bool(env.get("SLURM_JOB_ID") or env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_JOB_NODELIST"))
    if not names and env.get("SLURM_JOB_NODELIST"):
        compressed = env["SLURM_JOB_NODELIST"]
        if "[" in compressed:
            raise UserError(
                f"SLURM_JOB_NODELIST={compressed!r} is compressed; expand it with "
                '`scontrol show hostnames "$SLURM_JOB_NODELIST"` and pass the names in REASONER_NODELIST.'
            )
        names = split_list(compressed)
    count = nodes
    if count is None:
        count = env_int(env, "SLURM_JOB_NUM_NODES") or env_int(env, "SLURM_NNODES")
    if count is None:
        count = len(names) or 1
    if count < 1:
        raise UserError(f"nodes={count}: a run needs at least one node.")
    if names and len(names) != count:
        raise UserError(
            f"{len(names)} node names ({' '.join(names)}) for {count} nodes; pass --nodes {len(names)} "
            "or fix REASONER_NODELIST."
        )
    if not names:
        names = ["localhost"] if count == 1 else [f"node{i}" for i in range(count)]
    if len(set(names)) != len(names):
        raise UserError(f"node names repeat in {' '.join(names)}; give each node once in REASONER_NODELIST.")
    return Nodes(tuple(names), tuple(_node_addrs(env, names)), slurm)


def _node_addrs(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    addrs = split_list(env.get("REASONER_NODE_ADDRS"))
    if not addrs:
        if len(names) == 1 and names[0] == "localhost":
            return ["127.0.0.1"]
        return list(names)  # real clusters resolve their node names; the launchers pass NodeAddr anyway
    if len(addrs) != len(names):
        raise UserError(
            f"REASONER_NODE_ADDRS has {len(addrs)} addresses for {len(names)} nodes; give one address per "
            "node, in REASONER_NODELIST order."
        )
    return addrs


def node_index(env: Mapping[str, str], nodes: Nodes) -> int | None:
    """This process's node index in the allocation (SLURM_NODEID, else SLURM_PROCID), when SLURM says it."""
    index = env_int(env, "SLURM_NODEID")
    if index is None:
        index = env_int(env, "SLURM_PROCID")
    if index is None or not nodes.slurm:
        return None
    if index >= len(nodes.names):
        raise UserError(f"SLURM_NODEID={index} is outside the {len(nodes.names)} nodes of this job.")
    return index


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Layout choices made outside the recipe: keyword arguments first, then ``REASONER_*`` variables."""

    placement: str | None = None
    generation_gpus: int | None = None
    tensor_parallel_size: int | None = None
    processes_per_node: int | tuple[int, ...] | None = None  # one count for every node, or one per node
    gpus_per_node: int | None = None
    main_ip: str | None = None
    vllm_host: str | None = None
    main_port: int | None = None
    vllm_port: int | None = None
    group_port: int | None = None
    model_path: str | None = None
    accelerate_config: str | None = None


_OVERRIDE_VARIABLES = {
    "placement": "REASONER_PLACEMENT", "generation_gpus": "REASONER_GENERATION_GPUS",
    "tensor_parallel_size": "REASONER_TP_SIZE", "processes_per_node": "REASONER_PROCS_PER_NODE",
    "gpus_per_node": "REASONER_GPUS_PER_NODE", "main_ip": "REASONER_MAIN_IP", "vllm_host": "REASONER_VLLM_HOST",
    "main_port": "REASONER_MAIN_PORT", "vllm_port": "REASONER_VLLM_PORT", "group_port": "REASONER_GROUP_PORT",
    "model_path": "REASONER_MODEL_PATH", "accelerate_config": "REASONER_ACCELERATE_CONFIG",
}
_INT_OVERRIDES = {"generation_gpus", "tensor_parallel_size", "gpus_per_node", "main_port", "vllm_port", "group_port"}


def env_counts(env: Mapping[str, str], key: str) -> int | tuple[int, ...] | None:
    """One whole number, or a list of them (``1,2``: one per node), from the environment; None when unset."""
    raw = env.get(key, "").strip()
    if "," not in raw:
        return env_int(env, key)
    items = split_list(raw)
    if not all(item.isdigit() for item in items):
        raise UserError(f"{key}={raw!r} is not a list of whole numbers; give one count or one per node (1,2).")
    return tuple(int(item) for item in items)


def read_overrides(env: Mapping[str, str], given: Mapping[str, Any] | None = None) -> Overrides:
    """The overrides in effect: a value in ``given`` (not None) wins over its ``REASONER_*`` variable."""
    values: dict[str, Any] = {}
    for field, variable in _OVERRIDE_VARIABLES.items():
        value = (given or {}).get(field)
        if value is None and field == "processes_per_node":
            value = env_counts(env, variable)
        elif value is None:
            value = env_int(env, variable) if field in _INT_OVERRIDES else (env.get(variable) or None)
        values[field] = value
    return Overrides(**values)


@dataclasses.dataclass(frozen=True)
class Ports:
    """The rendezvous port, the generation server's port, and the weight-sync group's port."""

    main: int
    vllm: int
    group: int


def job_ports(env: Mapping[str, str], overrides: Overrides) -> Ports:
    """Ports for this run: an override wins; a SLURM job derives each from its id; otherwise the defaults."""
    job = env.get("SLURM_JOB_ID", "").strip()
    offset = int(job) % JOB_PORT_SPAN if job.isdigit() else None

    def pick(kind: str, given: int | None, default: int) -> int:
        if given is not None:
            return whole_number(f"{kind} port", given, 1)
        return default if offset is None else JOB_PORT_BASES[kind] + offset

    return Ports(
        main=pick("main", overrides.main_port, DEFAULT_MAIN_PORT),
        vllm=pick("vllm", overrides.vllm_port, DEFAULT_VLLM_PORT),
        group=pick("group", overrides.group_port, DEFAULT_GROUP_PORT),
    )
