"""A plan as text: a readable table for people (``reasoner plan``) and ``KEY=value`` lines (``--format env``)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from reasoner.topology.layout import Plan


def plan_to_env(p: Plan) -> dict[str, str]:
    """The plan as variables (plain strings), what ``reasoner plan --format env`` prints."""
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
        "REASONER_GROUP_PORT": str(p.group_port),
        "REASONER_WEIGHT_SYNC_HOST": p.weight_sync_host or "",
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
    """`KEY=value` lines, shell-quoted, so a shell can read them back exactly."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in plan_to_env(p).items())


def format_plan(p: Plan) -> str:
    """A readable summary and a per-node table."""
    rows = _summary_rows(p)
    width = max(len(key) for key, _ in rows)
    lines = [f"{key.ljust(width)}  {value}" for key, value in rows]
    table = _node_rows(p)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines.append("")
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    return "\n".join(lines) + "\n"


def _summary_rows(p: Plan) -> list[tuple[str, str]]:
    rows = [
        ("nodes x GPUs", f"{p.nodes} x {p.gpus_per_node}" + ("  (SLURM)" if p.slurm else "")),
        ("generation", f"{p.backend}, placement {p.placement}"
         + (f", tensor parallel {p.tensor_parallel_size}" if p.backend == "vllm" else "")),
    ]
    if p.vllm_command:
        rows.append(("vLLM server", f"{p.generation_node} GPUs {gpu_list(p.generation_gpus)} -> "
                                    f"http://{p.vllm_host}:{p.vllm_port}"))
        rows.append(("vLLM command", shlex.join(p.vllm_command)))
        rows.append(("weight sync", f"VLLM_HOST_IP={p.weight_sync_host}, group port {p.group_port}"))
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
    return rows + [("note", note) for note in p.notes]


def _node_rows(p: Plan) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = [("node", "address", "role", "GPUs", "rank")]
    for name, addr in zip(p.node_names, p.node_addrs):
        if name == p.generation_node and p.placement == "dedicated-node":
            table.append((name, addr, "generation (vLLM)", gpu_list(p.generation_gpus), "-"))
            continue
        role = "training"
        gpus = gpu_list(p.training_gpus) if p.training_gpus else "cpu"
        if name == p.generation_node:
            role = "vLLM + training"
            gpus = f"{gpu_list(p.generation_gpus)} + {gpus}"
        elif p.placement == "colocate":
            role = "training + colocated vLLM"
        table.append((name, addr, role, gpus, str(p.machine_ranks.get(name, "-"))))
    return table


def gpu_list(indices: Sequence[int]) -> str:
    if not indices:
        return "-"
    if len(indices) > 2 and list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ",".join(str(i) for i in indices)
