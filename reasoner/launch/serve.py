"""``reasoner serve-generation``: the generation server on its own node and GPUs.

The plan describes the server as ``trl vllm-serve`` flags with the model's hub id and pinned commit. On the node
that serves, the model is loaded from that node's cache by its local path (the server runs offline, where a hub id
cannot be resolved), the server gets its GPUs (the plan's on a one-node split, else the node's first
tensor-parallel-size ones), and TRL's own builder turns the flags into the vLLM command, run with this interpreter.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from reasoner.hubclient import calls as hub
from reasoner.launch.nodes import node_name
from reasoner.launch.processes import flag_value, python
from reasoner.topology.environment import split_list
from reasoner.topology.server import vllm_command


def served_model_path(model: str, revision: str | None) -> str:
    """The folder the server loads: the pinned snapshot in this node's cache, a local folder, or a built-in model."""
    source = hub.pin(hub.classify_model(model, revision), "model")
    return str(hub.materialize(source, "model", download=False).path)


def with_local_model(trl_args: Sequence[str], path: str) -> list[str]:
    """The server flags loading ``path`` instead of the hub id (a folder has no revision)."""
    args, skip = [], False
    for i, arg in enumerate(trl_args):
        if skip:
            skip = False
            continue
        if arg == "--revision":
            skip = True
            continue
        args.append(path if i > 0 and trl_args[i - 1] == "--model" else arg)
    return args


def generation_devices(tensor_parallel_size: int, devices: str | None, env: Mapping[str, str]) -> str:
    """CUDA_VISIBLE_DEVICES for the server: the plan's devices, else this node's first tensor-parallel-size GPUs."""
    if devices:
        return devices
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    ids = split_list(visible) if visible.strip() not in ("", "NoDevFiles") else []
    if ids:
        return ",".join(ids[:tensor_parallel_size])
    return ",".join(str(i) for i in range(tensor_parallel_size))


def server_launch(trl_args: Sequence[str], devices: str | None, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start this node's generation server."""
    model = flag_value(trl_args, "--model")
    if not model:
        raise SystemExit("serve-generation: the server flags name no --model")
    path = served_model_path(model, flag_value(trl_args, "--revision"))
    command = list(vllm_command(with_local_model(trl_args, path), python()))
    tp = int(flag_value(trl_args, "--tensor-parallel-size") or 1)
    return command, {**env, "CUDA_VISIBLE_DEVICES": generation_devices(tp, devices, env)}


def serve(trl_args: Sequence[str], devices: str | None, *, dry_run: bool = False) -> int:
    """Start the server in place of this process (``dry_run``: print the command and its devices instead)."""
    command, env = server_launch(trl_args, devices, os.environ)
    line = f"[serve-generation {node_name(env)}] GPU(s) {env['CUDA_VISIBLE_DEVICES']}: {shlex.join(command)}"
    print(line, file=sys.stdout if dry_run else sys.stderr, flush=True)
    if dry_run:
        return 0
    os.execvpe(command[0], command, env)
    return 1  # not reached: execvpe replaces this process
