"""One run's layout, composed from the small steps of reasoner.topology: :func:`plan` and its result, :class:`Plan`.

Nothing here touches the machine: the environment (``SLURM_*`` and ``REASONER_*`` variables) and the GPU count
are arguments, so every layout is unit-tested without a cluster.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from reasoner.recipe.batch import BatchShape, check_generation_batch, whole_number
from reasoner.errors import UserError
from reasoner.topology import environment, server
from reasoner.topology import placement as rules
from reasoner.topology.placement import DEFAULT_GPU_MEMORY_GB
from reasoner.topology.ranks import NodeRanks, is_even, node_ranks


@dataclasses.dataclass(frozen=True)
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
    vllm_command: tuple[str, ...]  # the server command (`env VLLM_SERVER_DEV_MODE=1 PYTHON -m vllm... serve`)
    training_nodes: tuple[str, ...]
    training_gpus: tuple[int, ...]  # GPU indices a whole training node trains on (empty on CPU)
    processes_per_node: int  # on the busiest training node (node_processes has each node's)
    num_machines: int
    num_processes: int
    machine_rank: int | None  # this node's rank among the training nodes; None if unknown / not training
    machine_ranks: Mapping[str, int]
    main_process_ip: str
    main_process_port: int
    cuda_visible_devices: Mapping[str, str]  # role ("generation" | "training") -> CUDA_VISIBLE_DEVICES
    train_args: tuple[str, ...]  # reasoner.train.run overrides: the resolved placement, the server address
    accelerate_config: str | None
    generation_batch_size: int
    slurm: bool
    group_port: int = environment.DEFAULT_GROUP_PORT  # TRL's weight-sync NCCL group (vllm_group_port)
    weight_sync_host: str | None = None  # VLLM_HOST_IP for the training ranks when a server runs
    server_args: tuple[str, ...] = ()  # the server as `trl vllm-serve` flags (what vllm_command is built from)
    notes: tuple[str, ...] = ()
    node_processes: tuple[int, ...] = ()  # training processes on each training node, in machine-rank order
    node_gpus: tuple[tuple[int, ...], ...] = ()  # each training node's GPU indices, where they differ per node

    @property
    def even(self) -> bool:
        """Whether every training node runs the same number of processes."""
        return is_even(self.node_processes)

    def node_ranks(self) -> tuple[NodeRanks, ...]:
        """Each training node's machine rank, process count, global ranks and GPUs (reasoner.topology.ranks)."""
        counts = self.node_processes or (self.processes_per_node,) * self.num_machines
        gpus = self.node_gpus or ((self.training_gpus,) * self.num_machines if self.training_gpus else ())
        return node_ranks(counts, self.training_nodes, gpus)

    @property
    def accelerate_args(self) -> tuple[str, ...]:
        """`accelerate launch` arguments; --machine_rank only when this node's rank is known.

        On SLURM each training node passes its own ``--machine_rank "$SLURM_NODEID"``, expanded inside its own
        task (the training step runs on exactly the training nodes, so the step's node index is the rank). Where
        nodes run different numbers of processes, a node's ``--num_processes`` is its own count x num_machines
        (reasoner.topology.ranks); with its rank unknown, the total is shown.
        """
        processes = self.num_processes
        if self.machine_rank is not None and not self.even:
            processes = self.node_ranks()[self.machine_rank].accelerate_processes
        args = ["--num_machines", str(self.num_machines), "--num_processes", str(processes)]
        if self.machine_rank is not None:
            args += ["--machine_rank", str(self.machine_rank)]
        args += ["--main_process_ip", self.main_process_ip, "--main_process_port", str(self.main_process_port)]
        return tuple(args)


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
    processes_per_node: int | tuple[int, ...] | None = None,
    main_ip: str | None = None,
    main_port: int | None = None,
    vllm_host: str | None = None,
    vllm_port: int | None = None,
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
) -> Plan:
    """Compute the layout of one run; raise UserError (with the fix) for layouts that cannot work.

    Precedence for each override: keyword argument, then its ``REASONER_*`` variable (see
    reasoner.topology.environment), then the recipe.
    """
    given = environment.read_overrides(env, dict(
        placement=placement, generation_gpus=generation_gpus, tensor_parallel_size=tensor_parallel_size,
        processes_per_node=processes_per_node, main_ip=main_ip, main_port=main_port, vllm_host=vllm_host,
        vllm_port=vllm_port, gpus_per_node=gpus_per_node))
    found = environment.read_nodes(env, nodes)
    gpus = whole_number("gpus_per_node", given.gpus_per_node if given.gpus_per_node is not None
                        else (environment.gpus_from_env(env) or 0))
    backend = rules.generation_backend(recipe_generation)
    wanted = rules.wanted_placement(given.placement, recipe_generation)
    shape = BatchShape.from_grpo({
        "per_device_train_batch_size": per_device_train_batch_size, "num_generations": num_generations,
        "gradient_accumulation_steps": gradient_accumulation_steps, "steps_per_generation": steps_per_generation,
        "generation_batch_size": generation_batch_size})
    if model_params_b is None and model:
        model_params_b = rules.model_params_from_id(model)
    tp, sized = rules.choose_tensor_parallel(
        recipe_tp=recipe_generation.get("tensor_parallel_size"), tp_override=given.tensor_parallel_size,
        generation_gpus=given.generation_gpus, model_params_b=model_params_b, gpu_memory_gb=gpu_memory_gb)
    notes = [sized] if sized else []
    where = rules.choose_placement(backend, wanted, len(found.names), gpus)
    split = rules.split_devices(where, found.names, gpus, tp)
    counts = rules.training_processes(split, gpus=gpus, override=given.processes_per_node, where=where, tp=tp)
    total = sum(counts)
    batch = check_generation_batch(shape, total)
    ports = environment.job_ports(env, given)
    ranks, here = rules.machine_ranks(split.training_nodes, found.names, environment.node_index(env, found))
    main = given.main_ip or found.address(split.training_nodes[0])
    reach = _generation_server(env, where, found, split, tp=tp, ports=ports, host=given.vllm_host,
                               model_path=given.model_path, model=model, revision=model_revision, dtype=model_dtype,
                               max_model_len=max_model_len, utilization=recipe_generation.get("gpu_memory_utilization"))
    config = rules.accelerate_config(given.accelerate_config or accelerate_config, total, notes)
    return Plan(
        nodes=len(found.names), gpus_per_node=gpus, backend=backend, placement=where, node_names=found.names,
        node_addrs=found.addrs, tensor_parallel_size=tp if backend == "vllm" else 0,
        generation_node=split.generation_node, generation_gpus=split.generation_gpus, vllm_host=reach.host,
        vllm_port=ports.vllm, vllm_command=reach.command, training_nodes=split.training_nodes,
        training_gpus=split.training_gpus if gpus else (), processes_per_node=max(counts),
        num_machines=len(split.training_nodes), num_processes=total, machine_rank=here, machine_ranks=ranks,
        main_process_ip=main, main_process_port=ports.main,
        cuda_visible_devices=rules.cuda_visible_devices(where, split, env.get("CUDA_VISIBLE_DEVICES")),
        train_args=server.training_args(where, host=reach.host, port=ports.vllm, group_port=ports.group, tp=tp),
        accelerate_config=config, generation_batch_size=batch, slurm=found.slurm, group_port=ports.group,
        weight_sync_host=main if reach.command else None, server_args=reach.args, notes=tuple(notes),
        node_processes=counts, node_gpus=split.node_gpus if gpus else (),
    )


@dataclasses.dataclass(frozen=True)
class _Reach:
    host: str | None = None
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()


def _generation_server(env: Mapping[str, str], where: str, found: environment.Nodes, split: rules.DeviceSplit, *,
                       tp: int, ports: environment.Ports, host: str | None, model_path: str | None, model: str | None,
                       revision: str | None, dtype: str | None, max_model_len: int | None, utilization: Any) -> _Reach:
    """The server's address, flags and command when the placement runs one."""
    if where not in server.SERVER_PLACEMENTS:
        return _Reach()
    assert split.generation_node is not None
    # A server beside the training on one node is reached on loopback; on the first of several nodes, at that
    # node's address (rank zero, its only client, runs there too, but the address holds wherever it runs).
    local = where == "dedicated-gpu" and len(found.names) == 1
    address = host or (server.LOCAL_SERVER_HOST if local else found.address(split.generation_node))
    served = model_path or model
    if not served:
        raise UserError("the generation server needs a model: give the recipe's model.id or REASONER_MODEL_PATH.")
    spec = server.ServerSpec(
        model=served, revision=None if model_path else revision, tensor_parallel_size=tp, port=ports.vllm,
        gpu_memory_utilization=float(utilization if utilization is not None else 0.9), dtype=dtype,
        max_model_len=max_model_len)
    python = env.get("REASONER_PYTHON") or sys.executable or "python3"
    return _Reach(address, spec.trl_args(), server.vllm_command(spec.trl_args(), python))


def max_model_len(recipe: Any) -> int | None:
    """Prompt plus completion tokens: the longest sequence the server must hold.

    The prompt limit counts tokens exactly as GRPOTrainer tokenizes prompts (the chat template with the
    generation prompt; tests/integration/test_generation_server.py checks it against TRL's own call), so no slack is needed.
    """
    prompt = recipe.dataset.max_prompt_tokens
    completion = recipe.grpo.get("max_completion_length")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt + completion
    return None


def plan_for_recipe(recipe: Any, *, env: Mapping[str, str], gpus_per_node: int | None, nodes: int | None = None,
                    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB, **overrides: Any) -> Plan:
    """:func:`plan` for a loaded Recipe (reasoner.recipe.sections)."""
    grpo, model = recipe.grpo, recipe.model
    missing = [key for key in ("per_device_train_batch_size", "num_generations") if key not in grpo]
    if missing:
        raise UserError(f"the recipe's grpo section lacks {', '.join(missing)}; add it (TRL GRPOConfig keys).")
    return plan(
        env=env, gpus_per_node=gpus_per_node, nodes=nodes,
        recipe_generation=dataclasses.asdict(recipe.generation),
        per_device_train_batch_size=grpo["per_device_train_batch_size"],
        gradient_accumulation_steps=grpo.get("gradient_accumulation_steps", 1),
        steps_per_generation=grpo.get("steps_per_generation"), generation_batch_size=grpo.get("generation_batch_size"),
        num_generations=grpo["num_generations"], model=model.id, model_revision=model.revision,
        model_dtype=model.dtype, max_model_len=max_model_len(recipe),
        accelerate_config=recipe.accelerate_config, gpu_memory_gb=gpu_memory_gb, **overrides,
    )
