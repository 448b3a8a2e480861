"""Where generation runs and which GPUs train: each decision a small pure function.

Rules (backend ``vllm``; ``transformers`` generates inside the training ranks: placement ``none``):

* one GPU: vLLM is colocated with the training process (``colocate``);
* one node of G GPUs: vLLM gets its own GPU(s) (as many as its tensor-parallel size), training runs on the
  other ones (``dedicated-gpu``);
* N nodes: the last node of the allocation serves generation, the other N-1 train (``dedicated-node``).
  ``dedicated-gpu`` on N nodes (the planner's candidate, or asked for) puts the server on the first GPUs of the
  first node and trains on every other GPU: the first node then runs fewer training processes than the others,
  which the launchers start node by node (reasoner.topology.ranks).

The tensor-parallel size of the generation engine is sized to the model: the smallest power of two whose bf16
weight shard fits a quarter of one GPU, unless the recipe or an override says otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.recipe.batch import whole_number
from reasoner.errors import UserError
from reasoner.topology.environment import split_list

PLACEMENTS = ("auto", "colocate", "dedicated-gpu", "dedicated-node", "none")
BACKENDS = ("vllm", "transformers")
DEFAULT_GPU_MEMORY_GB = 80.0
# Weights in bf16 may take this share of one GPU's memory; the rest is the KV cache and activations.
_WEIGHT_SHARE = 0.25
_SINGLE_GPU_CONFIG = "single_gpu.yaml"
_MULTI_GPU_CONFIG = "ddp.yaml"


def model_params_from_id(model_id: str) -> float | None:
    """Billions of parameters read from a model name (``Qwen2.5-14B-Instruct`` -> 14.0), or None."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    match = re.search(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", name)
    return float(match.group(1)) if match else None


def tensor_parallel_for(model_params_b: float | None, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB) -> int:
    """Smallest power-of-two TP size whose bf16 weight shard fits a quarter of one GPU.

    On 80 GB: 1 up to ~10B (7B, 8B), 2 for 14B, 4 for 32B, 8 for 72B. Unknown size: 1.
    """
    if not model_params_b:
        return 1
    budget = gpu_memory_gb * _WEIGHT_SHARE
    tp = 1
    while model_params_b * 2.0 / tp > budget and tp < 64:
        tp *= 2
    return tp


def generation_backend(recipe_generation: Mapping[str, Any]) -> str:
    backend = str(recipe_generation.get("backend") or "vllm")
    if backend not in BACKENDS:
        raise UserError(f"generation.backend {backend!r} is unknown; use one of: {', '.join(BACKENDS)}.")
    return backend


def wanted_placement(override: str | None, recipe_generation: Mapping[str, Any]) -> str:
    wanted = override or recipe_generation.get("placement") or "auto"
    if wanted not in PLACEMENTS:
        raise UserError(f"placement {wanted!r} is unknown; use one of: {', '.join(PLACEMENTS)}.")
    return wanted


def choose_tensor_parallel(*, recipe_tp: Any, tp_override: int | None, generation_gpus: int | None,
                           model_params_b: float | None, gpu_memory_gb: float) -> tuple[int, str | None]:
    """The generation engine's tensor-parallel size, and a note when it was sized from the model."""
    note = None
    if tp_override is not None:
        tp = whole_number("tensor_parallel_size", tp_override, 1)
    elif generation_gpus is not None:
        tp = whole_number("generation GPUs", generation_gpus, 1)
    elif recipe_tp not in (None, "auto"):
        tp = whole_number("generation.tensor_parallel_size", recipe_tp, 1)
    else:
        tp = tensor_parallel_for(model_params_b, gpu_memory_gb)
        note = f"tensor parallel {tp} sized for a {model_params_b or '?'}B model on {gpu_memory_gb:g} GB GPUs"
    if generation_gpus is not None and int(generation_gpus) != tp:
        raise UserError(
            f"generation GPUs {generation_gpus} differ from tensor_parallel_size {tp}: the server uses one GPU "
            "per tensor-parallel shard; set them equal (or set only one)."
        )
    return tp, note


def choose_placement(backend: str, wanted: str, nodes: int, gpus: int) -> str:
    """The placement for this backend and layout (``wanted`` may be ``auto``)."""
    if backend == "transformers":
        if wanted not in ("auto", "none"):
            raise UserError(
                f"placement {wanted} needs generation.backend vllm; the transformers backend generates inside "
                "the training ranks (placement none)."
            )
        return "none"
    if gpus == 0:
        raise UserError(
            "generation.backend vllm needs GPUs and none were found; set generation.backend transformers to run "
            "on CPU, or pass --gpus-per-node N."
        )
    if wanted == "none":
        raise UserError("placement none is for generation.backend transformers; pick colocate, dedicated-gpu or "
                        "dedicated-node.")
    if wanted != "auto":
        return wanted
    if nodes > 1:
        return "dedicated-node"
    return "dedicated-gpu" if gpus > 1 else "colocate"


@dataclasses.dataclass(frozen=True)
class DeviceSplit:
    """Which node and GPUs serve generation, which nodes and GPUs train."""

    generation_node: str | None
    generation_gpus: tuple[int, ...]
    training_nodes: tuple[str, ...]
    training_gpus: tuple[int, ...]  # the GPUs of a whole training node
    node_gpus: tuple[tuple[int, ...], ...] = ()  # each training node's own GPUs, when they differ per node

    def gpus_of(self, index: int) -> tuple[int, ...]:
        """The GPUs training node ``index`` (machine rank) trains on."""
        return self.node_gpus[index] if self.node_gpus else self.training_gpus


def split_devices(where: str, names: Sequence[str], gpus: int, tp: int) -> DeviceSplit:
    """Give the generation server its GPUs or node; refuse a split that leaves nothing to train."""
    count = len(names)
    if where == "dedicated-gpu":
        if tp >= gpus:
            raise UserError(
                f"no GPU left to train: the generation server takes {tp} of this node's {gpus} GPUs; lower "
                "generation.tensor_parallel_size, use placement colocate, or add GPUs/nodes."
            )
        rest, whole = tuple(range(tp, gpus)), tuple(range(gpus))
        if count == 1:
            return DeviceSplit(names[0], tuple(range(tp)), tuple(names), rest)
        return DeviceSplit(names[0], tuple(range(tp)), tuple(names), whole, (rest,) + (whole,) * (count - 1))
    if where == "dedicated-node":
        if count < 2:
            raise UserError(
                "no node left to train: placement dedicated-node gives the only node to generation; use "
                "dedicated-gpu or colocate on one node, or ask for more nodes (sbatch --nodes N)."
            )
        if tp > gpus:
            raise UserError(
                f"tensor_parallel_size {tp} is larger than the generation node's {gpus} GPUs; set "
                f"generation.tensor_parallel_size to at most {gpus}."
            )
        return DeviceSplit(names[-1], tuple(range(tp)), tuple(names[:-1]), tuple(range(gpus)))
    if where == "colocate" and tp > gpus:
        raise UserError(
            f"tensor_parallel_size {tp} is larger than the {gpus} GPUs per node that colocated vLLM can use; "
            f"set generation.tensor_parallel_size to at most {gpus}."
        )
    return DeviceSplit(None, (), tuple(names), tuple(range(gpus)))


def training_processes(split: DeviceSplit, *, gpus: int, override: int | Sequence[int] | None, where: str,
                       tp: int) -> tuple[int, ...]:
    """Processes on each training node, in machine-rank order: one per training GPU, or on CPU nodes the override
    (one count for every node, or one per node: ``REASONER_PROCS_PER_NODE=1,2``), else one."""
    nodes = len(split.training_nodes)
    given = None if override is None else (tuple(override) if isinstance(override, Sequence) else (override,))
    if given is not None and len(given) not in (1, nodes):
        raise UserError(f"REASONER_PROCS_PER_NODE gives {len(given)} counts for {nodes} training nodes; give one "
                        "count, or one per training node in node order.")
    if gpus == 0:
        counts = tuple(whole_number("processes per node", n, 1) for n in (given or (1,)))
        counts = counts * nodes if len(counts) == 1 else counts
    else:
        counts = tuple(len(split.gpus_of(i)) for i in range(nodes))
        if given is not None and (given * nodes if len(given) == 1 else given) != counts:
            raise UserError(
                f"{','.join(map(str, given))} processes per node asked, but the plan trains on "
                f"{','.join(map(str, counts))} GPU(s) per node; unset REASONER_PROCS_PER_NODE (it is for CPU nodes) "
                "or change the placement."
            )
    if min(counts) < 1:
        raise UserError("no GPU left to train; add GPUs or nodes, or use placement colocate.")
    total = sum(counts)
    if where == "colocate" and total % tp:
        raise UserError(
            f"colocated vLLM with tensor_parallel_size {tp} needs a number of training processes divisible by it "
            f"({total} here); set generation.tensor_parallel_size to a divisor of {total}."
        )
    return counts


def map_gpus(indices: Sequence[int], visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for GPU *indices*, through an existing CUDA_VISIBLE_DEVICES if set."""
    ids = split_list(visible) if visible and visible.strip() != "NoDevFiles" else []
    if ids and len(ids) > max(indices, default=-1):
        return ",".join(ids[i] for i in indices)
    return ",".join(str(i) for i in indices)


def cuda_visible_devices(where: str, split: DeviceSplit, visible: str | None) -> dict[str, str]:
    """Devices per role, only for a one-node split (there the plan runs on the node it describes).

    A dedicated generation node picks its first tensor-parallel-size GPUs itself, in its own task; so does a server
    on the first node of several, whose training ranks take that node's other GPUs in their own task.
    """
    if where != "dedicated-gpu" or split.node_gpus:
        return {}
    return {"generation": map_gpus(split.generation_gpus, visible), "training": map_gpus(split.training_gpus, visible)}


def accelerate_config(config: str | None, processes: int, notes: list[str]) -> str | None:
    """The recipe's accelerate config, promoted to ddp.yaml when it cannot start several processes."""
    if config and processes > 1 and config.rsplit("/", 1)[-1] == _SINGLE_GPU_CONFIG:
        promoted = config[: -len(_SINGLE_GPU_CONFIG)] + _MULTI_GPU_CONFIG
        notes.append(f"{config} runs one process; using {promoted} for {processes} training processes")
        return promoted
    return config


def machine_ranks(training_nodes: Sequence[str], names: Sequence[str], index: int | None) -> tuple[dict[str, int], int | None]:
    """Each training node's machine rank, and this node's (None on the generation node or when unknown)."""
    ranks = {name: i for i, name in enumerate(training_nodes)}
    if index is not None:
        return ranks, ranks.get(names[index])
    return ranks, (0 if len(names) == 1 else None)
