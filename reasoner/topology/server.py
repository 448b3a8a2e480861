"""The generation server: the command that starts it, and what the training ranks need to reach it.

TRL 1.16 deprecated ``trl vllm-serve``: it only parses its flags and runs vLLM's own server with what TRL's
client needs (an NCCL weight-transfer engine, processed log-probs, no log-prob cap) and with
``VLLM_SERVER_DEV_MODE=1`` (the weight-transfer endpoints live behind it). Here the same flags go through TRL's
own parser and command builder, so the server gets exactly what this TRL expects, and the command runs with the
launcher's interpreter (``REASONER_PYTHON``, the one that trains), never a ``trl`` or ``vllm`` found on PATH.

Weight sync: training rank zero opens the NCCL group that pushes new weights into the server, at vLLM's
``get_ip()`` (``VLLM_HOST_IP``, else the default-route interface) and TRL's ``vllm_group_port``. The plan sets
``VLLM_HOST_IP`` to the first training node's address, the one the generation node reaches, and gives each job
its own group port.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reasoner.errors import UserError
from reasoner.topology import environment

DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"
WEIGHT_SYNC_HOST_ENV = "VLLM_HOST_IP"
LOCAL_SERVER_HOST = "127.0.0.1"  # dedicated-gpu: the server runs on the first training node itself
SERVER_PLACEMENTS = ("dedicated-gpu", "dedicated-node")


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    """What the generation server serves and how, as ``trl vllm-serve`` would take it."""

    model: str
    revision: str | None
    tensor_parallel_size: int
    port: int
    gpu_memory_utilization: float
    dtype: str | None = None
    max_model_len: int | None = None
    host: str = "0.0.0.0"

    def trl_args(self) -> tuple[str, ...]:
        """The ``trl vllm-serve`` flags for this server (the input of :func:`vllm_command`)."""
        args = ["--model", self.model]
        if self.revision:
            args += ["--revision", self.revision]
        args += ["--tensor-parallel-size", str(self.tensor_parallel_size), "--host", self.host,
                 "--port", str(self.port), "--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        if self.dtype and self.dtype != "auto":
            args += ["--dtype", self.dtype]
        if self.max_model_len:
            args += ["--max-model-len", str(self.max_model_len)]
        return tuple(args)


def vllm_command(trl_args: tuple[str, ...] | list[str], python: str) -> tuple[str, ...]:
    """The server command for ``trl vllm-serve`` flags: TRL's parser reads them, TRL's builder writes the
    ``vllm serve`` command, ``python`` runs it, ``env`` sets vLLM's dev mode. UserError for a flag TRL refuses."""
    from trl.scripts.vllm_serve import build_command, make_parser

    parser = make_parser(prog="trl vllm-serve")
    try:
        (script_args, extra) = parser.parse_args_and_config(args=list(trl_args), return_remaining_strings=True)
    except SystemExit:
        raise UserError(f"trl vllm-serve refused the server flags {' '.join(trl_args)}") from None
    command = build_command(script_args, list(extra))
    return ("env", f"{DEV_MODE_ENV}=1", python, *command[1:])


def server_flag(trl_args: tuple[str, ...] | list[str], flag: str) -> str | None:
    """The value of one ``trl vllm-serve`` flag, or None."""
    args = list(trl_args)
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def training_args(where: str, *, host: str | None, port: int, group_port: int, tp: int) -> tuple[str, ...]:
    """``reasoner.train.run`` overrides that point the ranks at their generation engine."""
    if where in SERVER_PLACEMENTS:
        return ("--generation.placement", where, "--vllm_server_host", str(host), "--vllm_server_port", str(port),
                "--vllm_group_port", str(group_port))
    if where == "colocate":
        return ("--generation.placement", "colocate", "--generation.tensor_parallel_size", str(tp))
    return ()


def server_settings(where: str, env: Mapping[str, str], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TRL's ``vllm_server_host``, ``vllm_server_port`` and ``vllm_group_port`` for a training rank in server mode.

    A value in ``given`` (the recipe or the command line, where the launchers put the plan's) wins; the rest comes
    the way the plan chose the server's own: ``REASONER_VLLM_HOST``/``REASONER_VLLM_PORT``/``REASONER_GROUP_PORT``,
    else the ports a SLURM job derives from its id, else the defaults (reasoner.topology.environment.job_ports),
    and 127.0.0.1 for a server on a GPU of this node. A server on its own node has no default address: UserError.
    """
    chosen = dict(given or {})
    overrides = environment.read_overrides(env)
    ports = environment.job_ports(env, overrides)
    chosen.setdefault("vllm_server_port", ports.vllm)
    chosen.setdefault("vllm_group_port", ports.group)
    if "vllm_server_host" not in chosen:
        if overrides.vllm_host is None and where != "dedicated-gpu":
            raise UserError(f"generation.placement {where}: the training ranks need the generation server's address; "
                            "set REASONER_VLLM_HOST or --vllm_server_host, or start the run with slurm/grpo.sbatch")
        chosen["vllm_server_host"] = overrides.vllm_host or LOCAL_SERVER_HOST
    return {key: chosen[key] for key in ("vllm_server_host", "vllm_server_port", "vllm_group_port")}
