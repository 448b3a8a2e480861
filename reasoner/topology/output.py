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
        "REASONER_PROCS_PER_NODE": str(p.processes_per_node) if p.even else ",".join(map(str, p.node_processes)),
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


def format_plan(p: Plan, recipe: str | None = None) -> str:
    """A readable summary, a per-node table, and each training node's launch line (``recipe``: its name there)."""
    rows = _summary_rows(p) + _launch_rows(p, recipe)
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
    training = f"{p.num_machines} node(s) x {p.processes_per_node} process(es) = {p.num_processes}"
    if not p.even:
        training = (f"{p.num_machines} node(s): {' + '.join(map(str, p.node_processes))} process(es) = "
                    f"{p.num_processes} (a different count per node; each node's accelerate launch gets its own "
                    f"count x {p.num_machines} as --num_processes)")
    rows += [
        ("training", training),
        ("rendezvous", f"{p.main_process_ip}:{p.main_process_port}"),
        ("generation batch", str(p.generation_batch_size)),
        ("accelerate config", p.accelerate_config or "(none given)"),
    ]
    if p.even:
        rows.append(("accelerate args", shlex.join(p.accelerate_args)))
    if p.train_args:
        rows.append(("train args", shlex.join(p.train_args)))
    for role, devices in p.cuda_visible_devices.items():
        rows.append((f"CUDA_VISIBLE_DEVICES ({role})", devices))
    return rows + [("note", note) for note in p.notes]


def _launch_rows(p: Plan, recipe: str | None) -> list[tuple[str, str]]:
    """``launch on NODE``: the exact command each training node runs (its GPUs, its own --num_processes)."""
    rows = []
    for node in p.node_ranks():
        args = ["accelerate", "launch", "--config_file", p.accelerate_config or "CONFIG", "--num_machines",
                str(p.num_machines), "--num_processes", str(node.accelerate_processes), "--machine_rank",
                str(node.machine_rank), "--main_process_ip", p.main_process_ip, "--main_process_port",
                str(p.main_process_port), "-m", "reasoner.train", "--recipe", recipe or "RECIPE", *p.train_args]
        # the devices the launchers set: a one-node split's, or each node's own where they differ per node
        devices = p.cuda_visible_devices.get("training") or (gpu_list(node.gpus, ",") if p.node_gpus else "")
        prefix = f"CUDA_VISIBLE_DEVICES={devices} " if devices else ""
        rows.append((f"launch on {node.node}", f"{node.describe().split(': ', 1)[1]}: {prefix}{shlex.join(args)}"))
    return rows


def _node_rows(p: Plan) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = [("node", "address", "role", "GPUs", "processes", "rank")]
    ranks = {node.node: node for node in p.node_ranks()}
    for name, addr in zip(p.node_names, p.node_addrs):
        if name == p.generation_node and p.placement == "dedicated-node":
            table.append((name, addr, "generation (vLLM)", gpu_list(p.generation_gpus), "-", "-"))
            continue
        role = "training"
        node = ranks[name]
        gpus = gpu_list(node.gpus) if node.gpus else "cpu"
        if name == p.generation_node:
            role = "vLLM + training"
            gpus = f"{gpu_list(p.generation_gpus)} + {gpus}"
        elif p.placement == "colocate":
            role = "training + colocated vLLM"
        block = f"ranks {node.ranks[0]}-{node.ranks[-1]}" if node.processes > 1 else f"rank {node.first_rank}"
        table.append((name, addr, role, gpus, f"{node.processes} ({block})", str(node.machine_rank)))
    return table


def gpu_list(indices: Sequence[int], dash: str = "-") -> str:
    """``2-7`` for a run of three or more GPUs, else ``0,1``; ``dash=","`` spells every index out."""
    if not indices:
        return "-"
    if dash == "-" and len(indices) > 2 and list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ",".join(str(i) for i in indices)
