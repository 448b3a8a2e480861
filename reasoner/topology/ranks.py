"""Each training node's ranks when nodes run different numbers of training processes, and its launch arguments.

A vLLM server on k GPUs of the first node, with training on every other GPU of the allocation, leaves that node
k training processes short of the others (2 nodes x 8 GPUs, tensor parallel 2: 6 + 8 = 14 ranks). torch elastic
starts such a world: each node's agent publishes its own process count, and global ranks follow machine rank
order, each node's ranks one contiguous block (torch.distributed.elastic.agent.server.api, _assign_worker_ranks);
WORLD_SIZE is the sum. ``accelerate launch`` hands torch elastic ``num_processes // num_machines`` processes per
node (accelerate.utils.launch.prepare_multi_gpu_env, and prepare_deepspeed_cmd_env for the "standard" DeepSpeed
launcher), so each node is launched with ``--num_processes`` = its own count x ``num_machines``: accelerate still
reads the config file (DeepSpeed, precision) and writes the ranks' environment, and its per-node division comes
out at that node's count. On an even layout that is the usual total. Pure functions: unit-tested without a
cluster, used by ``reasoner plan`` (the printed launch lines) and ``reasoner train-node`` (what it runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from reasoner.errors import UserError
from reasoner.topology.placement import map_gpus


@dataclasses.dataclass(frozen=True)
class NodeRanks:
    """One training node: its machine rank, how many processes it runs, their global ranks, its GPUs."""

    node: str
    machine_rank: int
    processes: int
    first_rank: int
    world_size: int
    machines: int
    gpus: tuple[int, ...] = ()  # GPU indices on the node (empty on CPU)

    @property
    def ranks(self) -> range:
        return range(self.first_rank, self.first_rank + self.processes)

    @property
    def accelerate_processes(self) -> int:
        """``--num_processes`` for this node's ``accelerate launch``: accelerate divides it by ``num_machines``."""
        return self.processes * self.machines

    def describe(self) -> str:
        """``n1: machine rank 0, 6 ranks (0-5) of 14``."""
        last = self.first_rank + self.processes - 1
        block = str(self.first_rank) if last == self.first_rank else f"{self.first_rank}-{last}"
        return (f"{self.node}: machine rank {self.machine_rank}, {self.processes} rank(s) ({block}) of "
                f"{self.world_size}")


def node_ranks(counts: Sequence[int], names: Sequence[str],
               gpus: Sequence[Sequence[int]] = ()) -> tuple[NodeRanks, ...]:
    """Every training node's ranks, in machine-rank order; ``gpus`` per node (empty on CPU nodes)."""
    if len(counts) != len(names) or (gpus and len(gpus) != len(names)):
        raise UserError(f"{len(counts)} process counts and {len(gpus)} GPU lists for {len(names)} training nodes; "
                        "give one of each per training node")
    if not counts or min(counts) < 1:
        raise UserError(f"processes per training node {list(counts)}: every training node needs at least one")
    world, first, found = sum(counts), 0, []
    for rank, (name, count) in enumerate(zip(names, counts)):
        found.append(NodeRanks(name, rank, count, first, world, len(counts), tuple(gpus[rank]) if gpus else ()))
        first += count
    return tuple(found)


def is_even(counts: Sequence[int]) -> bool:
    return len(set(counts)) <= 1


def parse_counts(text: str) -> tuple[int, ...]:
    """``6,8`` -> (6, 8): the ``--node-processes`` of ``reasoner train-node``."""
    items = [item for item in text.split(",") if item.strip()]
    if not items or not all(item.strip().isdigit() for item in items):
        raise UserError(f"--node-processes {text!r} is not a list of whole numbers (6,8)")
    return tuple(int(item) for item in items)


def format_gpus(per_node: Sequence[Sequence[int]]) -> str:
    """``2,3;0,1,2,3``: each node's GPU indices, nodes separated by ``;`` (``--node-gpus``)."""
    return ";".join(",".join(str(i) for i in gpus) for gpus in per_node)


def parse_gpus(text: str) -> tuple[tuple[int, ...], ...]:
    """The inverse of :func:`format_gpus`."""
    try:
        return tuple(tuple(int(i) for i in part.split(",") if i.strip()) for part in text.split(";"))
    except ValueError:
        raise UserError(f"--node-gpus {text!r} is not GPU indices per node (2,3;0,1,2,3)") from None


def with_node_processes(launch_args: Sequence[str], node: NodeRanks) -> list[str]:
    """``accelerate launch`` arguments for one node: ``--num_processes`` set to that node's count x machines."""
    args = list(launch_args)
    if "--num_processes" in args[:-1]:
        args[args.index("--num_processes") + 1] = str(node.accelerate_processes)
    else:
        args[:0] = ["--num_processes", str(node.accelerate_processes)]
    return args


def node_devices(node: NodeRanks, visible: str | None) -> str | None:
    """CUDA_VISIBLE_DEVICES for the node's training ranks, through the node's own CUDA_VISIBLE_DEVICES (what SLURM
    gave its task); None on CPU nodes."""
    return map_gpus(node.gpus, visible) if node.gpus else None
