"""Where generation runs and which ranks train: a pure function of the environment.

GRPO alternates between generating completions (vLLM, memory- and latency-bound) and training on
them (accelerate, compute-bound). How the machines are split between the two decides throughput
and whether the run fits at all, so it is computed in one place, printed before anything starts
(`reasoner plan`), and unit-tested without a cluster. The launchers (`launch/grpo_local.sh`,
`slurm/grpo.sbatch`) only read the result, as `KEY=value` lines from :func:`plan_to_env`.

Rules (backend ``vllm``; ``transformers`` generates inside the training ranks: placement ``none``):

* one GPU: vLLM is colocated with the training process (``colocate``);
* one node of G GPUs: vLLM gets its own GPU(s) (as many as its tensor-parallel size), training
  runs on the other ones (``dedicated-gpu``);
* N nodes: the last node of the allocation serves generation, the other N-1 train
  (``dedicated-node``); the rendezvous address is the first training node's address.

Nothing here touches the machine: the environment (``SLURM_*`` and ``REASONER_*`` variables) and
the GPU count are arguments. Node names arrive already expanded (``REASONER_NODELIST``: the
scripts run ``scontrol show hostnames``) with their addresses (``REASONER_NODE_ADDRS``, from each
node's ``NodeAddr``), because node names need not resolve.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasoner.errors import UserError

PLACEMENTS = ("auto", "colocate", "dedicated-gpu", "dedicated-node", "none")
BACKENDS = ("vllm", "transformers")
DEFAULT_MAIN_PORT = 29500
DEFAULT_VLLM_PORT = 8000
DEFAULT_GPU_MEMORY_GB = 80.0
# Weights in bf16 may take this share of one GPU's memory; the rest is the KV cache and activations.
_WEIGHT_SHARE = 0.25
_SINGLE_GPU_CONFIG = "single_gpu.yaml"
_MULTI_GPU_CONFIG = "ddp.yaml"


@dataclass(frozen=True)
class Plan:
    """One run's layout. Node indices follow the allocation order (SLURM's node list)."""

    nodes: int
    gpus_per_node: int
    backend: str
    placement: str  # colocate | dedicated-gpu | dedicated-node | none
    node_names: tuple[str, ...]
    node_addrs: tuple[str, ...]
    tensor_parallel_size: int
    generation_node: str | None  # node running the vLLM server; None when no server runs
    generation_gpus: tuple[int, ...]  # GPU indices (on generation_node) given to the server
    vllm_host: str | None  # address the trainers use to reach the server
    vllm_port: int
    vllm_command: tuple[str, ...]  # `trl vllm-serve ...`; empty when no server runs
    training_nodes: tuple[str, ...]
    training_gpus: tuple[int, ...]  # GPU indices each training node trains on (empty on CPU)
    processes_per_node: int
    num_machines: int
    num_processes: int
    machine_rank: int | None  # this node's rank among the training nodes; None if unknown / not training
    machine_ranks: Mapping[str, int]
    main_process_ip: str
    main_process_port: int
    cuda_visible_devices: Mapping[str, str]  # role ("generation" | "training") -> CUDA_VISIBLE_DEVICES
    train_args: tuple[str, ...]  # reasoner.train overrides: the resolved placement, the server address
    accelerate_config: str | None
    generation_batch_size: int
    slurm: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def accelerate_args(self) -> tuple[str, ...]:
        """`accelerate launch` arguments; --machine_rank only when this node's rank is known.

        On SLURM the scripts pass ``--machine_rank "$SLURM_NODEID"`` expanded inside each node's
        own task instead (the training step runs on exactly the training nodes, so the step's
        node index is the machine rank).
        """
        args = [
            "--num_machines", str(self.num_machines),
            "--num_processes", str(self.num_processes),
        ]
        if self.machine_rank is not None:
            args += ["--machine_rank", str(self.machine_rank)]
        args += [
            "--main_process_ip", self.main_process_ip,
            "--main_process_port", str(self.main_process_port),
        ]
        return tuple(args)


# ---------------------------------------------------------------------------------------------
# Small parsers (pure)


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


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [item for item in re.split(r"[\s,]+", value.strip()) if item]


def _env_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    match = re.match(r"^(\d+)", raw)  # SLURM_JOB_NUM_NODES is plain; tolerate "2(x1)" shapes
    if not match:
        raise UserError(f"{key}={raw!r} is not a whole number; unset it or give a number.")
    return int(match.group(1))


def _as_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise UserError(f"{name}={value!r} is not a whole number; set it to one.")
    number = int(value)
    if number < minimum:
        raise UserError(f"{name}={number} must be at least {minimum}.")
    return number


def gpus_from_env(env: Mapping[str, str]) -> int | None:
    """GPUs the environment says this node has (SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES), or None."""
    on_node = _env_int(env, "SLURM_GPUS_ON_NODE")
    if on_node is not None:
        return on_node
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "NoDevFiles"):
        return len(_split_list(visible))
    return None


def _node_names(env: Mapping[str, str], nodes: int | None) -> tuple[list[str], bool]:
    """The expanded node list and whether it came from SLURM."""
    names = _split_list(env.get("REASONER_NODELIST"))
    slurm = bool(env.get("SLURM_JOB_ID") or env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_JOB_NODELIST"))
    if not names and env.get("SLURM_JOB_NODELIST"):
        compressed = env["SLURM_JOB_NODELIST"]
        if "[" in compressed:
            raise UserError(
                f"SLURM_JOB_NODELIST={compressed!r} is compressed; expand it with "
                '`scontrol show hostnames "$SLURM_JOB_NODELIST"` and pass the names in REASONER_NODELIST.'
            )
        names = _split_list(compressed)
    count = nodes
    if count is None:
        count = _env_int(env, "SLURM_JOB_NUM_NODES") or _env_int(env, "SLURM_NNODES")
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
    return names, slurm


def _node_addrs(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    addrs = _split_list(env.get("REASONER_NODE_ADDRS"))
    if not addrs:
        if len(names) == 1 and names[0] == "localhost":
            return ["127.0.0.1"]
        return list(names)  # real clusters resolve their node names; the scripts pass NodeAddr anyway
    if len(addrs) != len(names):
        raise UserError(
            f"REASONER_NODE_ADDRS has {len(addrs)} addresses for {len(names)} nodes; give one address per "
            "node, in REASONER_NODELIST order."
        )
    return addrs


def _map_gpus(indices: Sequence[int], visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for GPU *indices*, through an existing CUDA_VISIBLE_DEVICES if set."""
    ids = _split_list(visible) if visible and visible.strip() != "NoDevFiles" else []
    if ids and len(ids) > max(indices, default=-1):
        return ",".join(ids[i] for i in indices)
    return ",".join(str(i) for i in indices)


def _generation_batch(per_device: int, processes: int, steps: int, generation_batch_size: int | None) -> int:
    return generation_batch_size if generation_batch_size is not None else per_device * processes * steps


def _check_divisible(
    *, per_device: int, processes: int, steps: int, generation_batch_size: int | None, num_generations: int
) -> int:
    batch = _generation_batch(per_device, processes, steps, generation_batch_size)
    if generation_batch_size is not None:
        global_batch = per_device * processes
        if batch % global_batch:
            raise UserError(
                f"generation_batch_size {batch} is not a multiple of the global batch {global_batch} "
                f"(per_device_train_batch_size {per_device} x {processes} training processes); "
                f"set generation_batch_size to a multiple of {global_batch}."
            )
    if batch % num_generations == 0:
        return batch
    if generation_batch_size is not None:
        raise UserError(
            f"generation_batch_size {batch} is not divisible by num_generations {num_generations}; "
            f"set generation_batch_size to a multiple of {num_generations * per_device * processes // _gcd(num_generations, per_device * processes)}."
        )
    fix = per_device + 1
    while (fix * processes * steps) % num_generations:
        fix += 1
    raise UserError(
        f"the generation batch per_device_train_batch_size {per_device} x {processes} training processes x "
        f"steps_per_generation {steps} = {batch} is not divisible by num_generations {num_generations}; "
        f"set per_device_train_batch_size to {fix}, or num_generations to a divisor of {batch}, "
        "or change the number of training GPUs."
    )


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _accelerate_config(config: str | None, processes: int, notes: list[str]) -> str | None:
    """The recipe's accelerate config, promoted to ddp.yaml when it cannot start several processes."""
    if config and processes > 1 and config.rsplit("/", 1)[-1] == _SINGLE_GPU_CONFIG:
        promoted = config[: -len(_SINGLE_GPU_CONFIG)] + _MULTI_GPU_CONFIG
        notes.append(f"{config} runs one process; using {promoted} for {processes} training processes")
        return promoted
    return config


def _vllm_command(
    *, model: str, revision: str | None, tp: int, port: int, dtype: str | None, max_model_len: int | None
) -> tuple[str, ...]:
    cmd = ["trl", "vllm-serve", "--model", model]
    if revision:
        cmd += ["--revision", revision]
    cmd += ["--tensor-parallel-size", str(tp), "--host", "0.0.0.0", "--port", str(port)]
    if dtype and dtype != "auto":
        cmd += ["--dtype", dtype]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    return tuple(cmd)


# ---------------------------------------------------------------------------------------------
# The plan


def plan(
    *,
    env: Mapping[str, str],
    gpus_per_node: int | None,
    nodes: int | None = None,
    recipe_generation: Mapping[str, Any],
    per_device_train_batch_size: int,
    gradient_accumulation_steps: int,
    steps_per_generation: int | None = None,
    generation_batch_size: int | None = None,
    num_generations: int,
    model_params_b: float | None = None,
    model: str | None = None,
    model_revision: str | None = None,
    model_dtype: str | None = None,
    max_model_len: int | None = None,
    accelerate_config: str | None = None,
    placement: str | None = None,
    generation_gpus: int | None = None,
    tensor_parallel_size: int | None = None,
    processes_per_node: int | None = None,
    main_ip: str | None = None,
    main_port: int | None = None,
    vllm_host: str | None = None,
    vllm_port: int | None = None,
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
) -> Plan:
    """Compute the layout of one run; raise UserError (with the fix) for layouts that cannot work.

    Precedence for each override: keyword argument, then the environment variable
    (REASONER_PLACEMENT, REASONER_GENERATION_GPUS, REASONER_TP_SIZE, REASONER_PROCS_PER_NODE,
    REASONER_MAIN_IP, REASONER_MAIN_PORT, REASONER_VLLM_HOST, REASONER_VLLM_PORT,
    REASONER_MODEL_PATH, REASONER_ACCELERATE_CONFIG, REASONER_GPUS_PER_NODE), then the recipe.
    """
    notes: list[str] = []
    names, slurm = _node_names(env, nodes)
    addrs = _node_addrs(env, names)
    count = len(names)

    if gpus_per_node is None:
        gpus_per_node = _env_int(env, "REASONER_GPUS_PER_NODE")
    if gpus_per_node is None:
        gpus_per_node = gpus_from_env(env) or 0
    gpus = _as_int("gpus_per_node", gpus_per_node)

    backend = str(recipe_generation.get("backend") or "vllm")
    if backend not in BACKENDS:
        raise UserError(f"generation.backend {backend!r} is unknown; use one of: {', '.join(BACKENDS)}.")
    wanted = placement or env.get("REASONER_PLACEMENT") or recipe_generation.get("placement") or "auto"
    if wanted not in PLACEMENTS:
        raise UserError(f"placement {wanted!r} is unknown; use one of: {', '.join(PLACEMENTS)}.")

    per_device = _as_int("per_device_train_batch_size", per_device_train_batch_size, 1)
    steps = _as_int(
        "steps_per_generation",
        steps_per_generation if steps_per_generation is not None else gradient_accumulation_steps,
        1,
    )
    n_gen = _as_int("num_generations", num_generations, 1)
    gbs = None if generation_batch_size is None else _as_int("generation_batch_size", generation_batch_size, 1)
    if gbs is not None and steps_per_generation is not None:
        raise UserError("set either generation_batch_size or steps_per_generation, not both.")

    # --- tensor-parallel size of the generation engine -----------------------------------------
    tp_override = tensor_parallel_size if tensor_parallel_size is not None else _env_int(env, "REASONER_TP_SIZE")
    gen_gpus_override = generation_gpus if generation_gpus is not None else _env_int(env, "REASONER_GENERATION_GPUS")
    recipe_tp = recipe_generation.get("tensor_parallel_size")
    if tp_override is not None:
        tp = _as_int("tensor_parallel_size", tp_override, 1)
    elif gen_gpus_override is not None:
        tp = _as_int("generation GPUs", gen_gpus_override, 1)
    elif recipe_tp not in (None, "auto"):
        tp = _as_int("generation.tensor_parallel_size", recipe_tp, 1)
    else:
        if model_params_b is None and model:
            model_params_b = model_params_from_id(model)
        tp = tensor_parallel_for(model_params_b, gpu_memory_gb)
        notes.append(f"tensor parallel {tp} sized for a {model_params_b or '?'}B model on {gpu_memory_gb:g} GB GPUs")
    if gen_gpus_override is not None and int(gen_gpus_override) != tp:
        raise UserError(
            f"generation GPUs {gen_gpus_override} differ from tensor_parallel_size {tp}: the server uses one GPU "
            "per tensor-parallel shard; set them equal (or set only one)."
        )

    # --- placement -----------------------------------------------------------------------------
    if backend == "transformers":
        if wanted not in ("auto", "none"):
            raise UserError(
                f"placement {wanted} needs generation.backend vllm; the transformers backend generates inside "
                "the training ranks (placement none)."
            )
        where = "none"
    elif gpus == 0:
        raise UserError(
            "generation.backend vllm needs GPUs and none were found; set generation.backend transformers to run "
            "on CPU, or pass --gpus-per-node N."
        )
    elif wanted == "none":
        raise UserError("placement none is for generation.backend transformers; pick colocate, dedicated-gpu or dedicated-node.")
    elif wanted != "auto":
        where = wanted
    elif count > 1:
        where = "dedicated-node"
    elif gpus > 1:
        where = "dedicated-gpu"
    else:
        where = "colocate"

    visible = env.get("CUDA_VISIBLE_DEVICES")
    gen_node: str | None = None
    gen_gpu_idx: tuple[int, ...] = ()
    train_names = list(names)
    train_gpu_idx: tuple[int, ...] = tuple(range(gpus))
    if where == "dedicated-gpu":
        if count > 1:
            raise UserError(
                f"placement dedicated-gpu works on one node, and this run has {count}: use dedicated-node "
                "(a generation node) or colocate."
            )
        if tp >= gpus:
            raise UserError(
                f"no GPU left to train: the generation server takes {tp} of this node's {gpus} GPUs; lower "
                "generation.tensor_parallel_size, use placement colocate, or add GPUs/nodes."
            )
        gen_node = names[0]
        gen_gpu_idx = tuple(range(tp))
        train_gpu_idx = tuple(range(tp, gpus))
    elif where == "dedicated-node":
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
        gen_node = names[-1]
        gen_gpu_idx = tuple(range(tp))
        train_names = names[:-1]
    elif where == "colocate":
        if tp > gpus:
            raise UserError(
                f"tensor_parallel_size {tp} is larger than the {gpus} GPUs per node that colocated vLLM can use; "
                f"set generation.tensor_parallel_size to at most {gpus}."
            )

    # --- training processes --------------------------------------------------------------------
    ppn_override = processes_per_node if processes_per_node is not None else _env_int(env, "REASONER_PROCS_PER_NODE")
    if gpus == 0:
        ppn = _as_int("processes per node", ppn_override if ppn_override is not None else 1, 1)
        train_gpu_idx = ()
    else:
        ppn = len(train_gpu_idx)
        if ppn_override is not None and int(ppn_override) != ppn:
            raise UserError(
                f"{ppn_override} processes per node asked, but the plan trains on {ppn} GPUs per node; unset "
                "REASONER_PROCS_PER_NODE (it is for CPU nodes) or change the placement."
            )
    if ppn < 1:
        raise UserError("no GPU left to train; add GPUs or nodes, or use placement colocate.")
    machines = len(train_names)
    total = ppn * machines
    if where == "colocate" and total % tp:
        raise UserError(
            f"colocated vLLM with tensor_parallel_size {tp} needs a number of training processes divisible by it "
            f"({total} here); set generation.tensor_parallel_size to a divisor of {total}."
        )
    gen_batch = _check_divisible(
        per_device=per_device, processes=total, steps=steps, generation_batch_size=gbs, num_generations=n_gen
    )

    # --- addresses, ranks ----------------------------------------------------------------------
    addr_of = dict(zip(names, addrs))
    main_ip = main_ip or env.get("REASONER_MAIN_IP") or addr_of[train_names[0]]
    main_port = _as_int("main port", main_port if main_port is not None else (_env_int(env, "REASONER_MAIN_PORT") or DEFAULT_MAIN_PORT), 1)
    port = _as_int("vLLM port", vllm_port if vllm_port is not None else (_env_int(env, "REASONER_VLLM_PORT") or DEFAULT_VLLM_PORT), 1)
    ranks = {name: i for i, name in enumerate(train_names)}
    here: int | None = None
    node_id = _env_int(env, "SLURM_NODEID")
    if node_id is None:
        node_id = _env_int(env, "SLURM_PROCID")
    if node_id is not None and slurm:
        if node_id >= count:
            raise UserError(f"SLURM_NODEID={node_id} is outside the {count} nodes of this job.")
        here = ranks.get(names[node_id])
    elif count == 1:
        here = 0

    # --- generation server and what training needs to reach it ----------------------------------
    host: str | None = None
    command: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()
    if where in ("dedicated-gpu", "dedicated-node"):
        assert gen_node is not None
        host = vllm_host or env.get("REASONER_VLLM_HOST") or (
            "127.0.0.1" if where == "dedicated-gpu" else addr_of[gen_node]
        )
        model_path = env.get("REASONER_MODEL_PATH") or model
        if not model_path:
            raise UserError("the generation server needs a model: give the recipe's model.id or REASONER_MODEL_PATH.")
        command = _vllm_command(
            model=model_path,
            revision=None if env.get("REASONER_MODEL_PATH") else model_revision,
            tp=tp,
            port=port,
            dtype=model_dtype,
            max_model_len=max_model_len,
        )
        train_args = (
            "--generation.placement", where,
            "--vllm_server_host", host, "--vllm_server_port", str(port),
        )
    elif where == "colocate":
        train_args = ("--generation.placement", "colocate", "--generation.tensor_parallel_size", str(tp))

    # Only a one-node split names devices: there the plan runs on the node it describes. A dedicated
    # generation node picks its first tensor_parallel_size GPUs itself (REASONER_VLLM_GPUS).
    cuda: dict[str, str] = {}
    if where == "dedicated-gpu":
        cuda["generation"] = _map_gpus(gen_gpu_idx, visible)
        cuda["training"] = _map_gpus(train_gpu_idx, visible)

    config = _accelerate_config(env.get("REASONER_ACCELERATE_CONFIG") or accelerate_config, total, notes)

    return Plan(
        nodes=count,
        gpus_per_node=gpus,
        backend=backend,
        placement=where,
        node_names=tuple(names),
        node_addrs=tuple(addrs),
        tensor_parallel_size=tp if backend == "vllm" else 0,
        generation_node=gen_node,
        generation_gpus=gen_gpu_idx,
        vllm_host=host,
        vllm_port=port,
        vllm_command=command,
        training_nodes=tuple(train_names),
        training_gpus=train_gpu_idx,
        processes_per_node=ppn,
        num_machines=machines,
        num_processes=total,
        machine_rank=here,
        machine_ranks=ranks,
        main_process_ip=main_ip,
        main_process_port=main_port,
        cuda_visible_devices=cuda,
        train_args=train_args,
        accelerate_config=config,
        generation_batch_size=gen_batch,
        slurm=slurm,
        notes=tuple(notes),
    )


def _max_model_len(recipe: Any) -> int | None:
    prompt = (getattr(recipe, "dataset", None) or {}).get("max_prompt_tokens")
    completion = (getattr(recipe, "grpo", None) or {}).get("max_completion_length")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt + completion
    return None


def plan_for_recipe(
    recipe: Any, *, env: Mapping[str, str], gpus_per_node: int | None, nodes: int | None = None
) -> Plan:
    """:func:`plan` for a loaded Recipe (attributes .generation, .grpo, .model, .dataset as dicts)."""
    grpo = dict(getattr(recipe, "grpo", None) or {})
    model = dict(getattr(recipe, "model", None) or {})
    generation = dict(getattr(recipe, "generation", None) or {})
    missing = [key for key in ("per_device_train_batch_size", "num_generations") if key not in grpo]
    if missing:
        raise UserError(f"the recipe's grpo section lacks {', '.join(missing)}; add it (TRL GRPOConfig keys).")
    return plan(
        env=env,
        gpus_per_node=gpus_per_node,
        nodes=nodes,
        recipe_generation=generation,
        per_device_train_batch_size=grpo["per_device_train_batch_size"],
        gradient_accumulation_steps=grpo.get("gradient_accumulation_steps", 1),
        steps_per_generation=grpo.get("steps_per_generation"),
        generation_batch_size=grpo.get("generation_batch_size"),
        num_generations=grpo["num_generations"],
        model=model.get("id"),
        model_revision=model.get("revision"),
        model_dtype=model.get("dtype"),
        max_model_len=_max_model_len(recipe),
        accelerate_config=getattr(recipe, "accelerate_config", None),
    )


# ---------------------------------------------------------------------------------------------
# Output


def plan_to_env(p: Plan) -> dict[str, str]:
    """The plan as variables the launch scripts read (values are plain strings)."""
    return {
        "REASONER_NODES": str(p.nodes),
        "REASONER_GPUS_PER_NODE": str(p.gpus_per_node),
        "REASONER_BACKEND": p.backend,
        "REASONER_PLACEMENT": p.placement,
        "REASONER_TP_SIZE": str(p.tensor_parallel_size) if p.backend == "vllm" else "",
        "REASONER_VLLM_NODE": p.generation_node or "",
        "REASONER_VLLM_HOST": p.vllm_host or "",
        "REASONER_VLLM_PORT": str(p.vllm_port),
        "REASONER_VLLM_URL": f"http://{p.vllm_host}:{p.vllm_port}" if p.vllm_host else "",
        "REASONER_VLLM_COMMAND": shlex.join(p.vllm_command) if p.vllm_command else "",
        "REASONER_VLLM_GPUS": str(len(p.generation_gpus)),
        "REASONER_VLLM_CUDA_VISIBLE_DEVICES": p.cuda_visible_devices.get("generation", ""),
        "REASONER_TRAIN_NODES": ",".join(p.training_nodes),
        "REASONER_TRAIN_CUDA_VISIBLE_DEVICES": p.cuda_visible_devices.get("training", ""),
        "REASONER_NUM_MACHINES": str(p.num_machines),
        "REASONER_PROCS_PER_NODE": str(p.processes_per_node),
        "REASONER_NUM_PROCESSES": str(p.num_processes),
        "REASONER_MACHINE_RANK": "" if p.machine_rank is None else str(p.machine_rank),
        "REASONER_MAIN_IP": p.main_process_ip,
        "REASONER_MAIN_PORT": str(p.main_process_port),
        "REASONER_TRAIN_ARGS": shlex.join(p.train_args),
        "REASONER_ACCELERATE_CONFIG": p.accelerate_config or "",
        "REASONER_GENERATION_BATCH_SIZE": str(p.generation_batch_size),
    }


def format_env(p: Plan) -> str:
    """`KEY=value` lines, shell-quoted: `eval "$(reasoner plan --format env ...)"` reads them."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in plan_to_env(p).items())


def format_plan(p: Plan) -> str:
    """A readable summary and a per-node table."""
    rows = [
        ("nodes x GPUs", f"{p.nodes} x {p.gpus_per_node}" + ("  (SLURM)" if p.slurm else "")),
        ("generation", f"{p.backend}, placement {p.placement}"
         + (f", tensor parallel {p.tensor_parallel_size}" if p.backend == "vllm" else "")),
    ]
    if p.vllm_command:
        rows.append(("vLLM server", f"{p.generation_node} GPUs {_gpu_list(p.generation_gpus)} -> http://{p.vllm_host}:{p.vllm_port}"))
        rows.append(("vLLM command", shlex.join(p.vllm_command)))
    rows += [
        ("training", f"{p.num_machines} node(s) x {p.processes_per_node} process(es) = {p.num_processes}"),
        ("rendezvous", f"{p.main_process_ip}:{p.main_process_port}"),
        ("generation batch", str(p.generation_batch_size)),
        ("accelerate config", p.accelerate_config or "(none given)"),
        ("accelerate args", shlex.join(p.accelerate_args)),
    ]
    if p.train_args:
        rows.append(("train args", shlex.join(p.train_args)))
    for role, devices in p.cuda_visible_devices.items():
        rows.append((f"CUDA_VISIBLE_DEVICES ({role})", devices))
    rows += [("note", note) for note in p.notes]
    width = max(len(key) for key, _ in rows)
    lines = [f"{key.ljust(width)}  {value}" for key, value in rows]

    table = [("node", "address", "role", "GPUs", "rank")]
    for name, addr in zip(p.node_names, p.node_addrs):
        if name == p.generation_node and p.placement == "dedicated-node":
            table.append((name, addr, "generation (vLLM)", _gpu_list(p.generation_gpus), "-"))
            continue
        role = "training"
        gpus = _gpu_list(p.training_gpus) if p.training_gpus else "cpu"
        if name == p.generation_node:
            role = "vLLM + training"
            gpus = f"{_gpu_list(p.generation_gpus)} + {gpus}"
        elif p.placement == "colocate":
            role = "training + colocated vLLM"
        table.append((name, addr, role, gpus, str(p.machine_ranks.get(name, "-"))))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines.append("")
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    return "\n".join(lines) + "\n"


def _gpu_list(indices: Sequence[int]) -> str:
    if not indices:
        return "-"
    if len(indices) > 2 and list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ",".join(str(i) for i in indices)
