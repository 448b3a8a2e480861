"""``reasoner launch-env``: everything a launcher script needs for one run, as shell assignments.

``launch/grpo_local.sh`` and ``slurm/grpo.sbatch`` call it twice: with ``--check`` before the prefetch (the layout
is refused before anything downloads; the prefetch arguments and the pins file come back), then with ``--pins``
after it (the layout, memory estimate and checkpoint plan against the pinned commits go to stderr, and the
generation server's and the training's commands come back). The script ``eval``s the output; every variable it
prints is one a script reads (tests/integration/test_launch.py checks both directions).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.errors import UserError
from reasoner.launch import nodes
from reasoner.launch.noproxy import no_proxy_env
from reasoner.launch.ports import PORT_VARIABLES, local_ports
from reasoner.launch.processes import python
from reasoner.launch.signallead import requested_lead, short_lead_warning
from reasoner.plan.checkpoints import DEFAULT_SIGNAL_LEAD_S, EXIT_MARGIN_S
from reasoner.plan.hardware import this_machine
from reasoner.plan.run import RunPlan, describe, plan_run, refusal
from reasoner.recipe.load import load_recipe
from reasoner.topology import Plan
from reasoner.topology.environment import env_int, gpus_from_env
from reasoner.topology.ranks import format_gpus
from reasoner.train.run import parse_args as train_parse_args

LAUNCHERS = ("local", "slurm")
DEFAULT_HEALTH_TIMEOUT_S = 900
Value = str | list[str]


@dataclasses.dataclass(frozen=True)
class Request:
    """One ``reasoner launch-env`` call: which launcher, which pass, the recipe and the user's arguments."""

    launcher: str
    recipe: str
    args: tuple[str, ...]
    pins: Path | None = None
    check: bool = False


def parse_request(argv: Sequence[str]) -> Request:
    """``LAUNCHER [--check] [--pins FILE] RECIPE [--key value ...]``."""
    items = list(argv)
    usage = "usage: reasoner launch-env local|slurm [--check] [--pins FILE] RECIPE [--key value ...]"
    if not items or items[0] not in LAUNCHERS:
        raise UserError(usage)
    launcher, rest, check, pins = items[0], items[1:], False, None
    while rest and rest[0] in ("--check", "--pins"):
        if rest[0] == "--check":
            check, rest = True, rest[1:]
        elif len(rest) > 1:
            pins, rest = Path(rest[1]), rest[2:]
        else:
            raise UserError(usage)
    if not rest or rest[0].startswith("-"):
        raise UserError(usage)
    return Request(launcher, rest[0], tuple(rest[1:]), pins, check)


def recipe_overrides(recipe: str, args: Sequence[str]) -> list[str]:
    """The user's arguments minus ``reasoner train``'s own flags (which plan and prefetch do not take)."""
    _flags, overrides = train_parse_args(["--recipe", recipe, *args])
    return list(overrides)


def read_pins(path: Path | None) -> list[str]:
    """The pinning overrides ``reasoner prefetch --pins-out`` wrote (``--model.revision SHA ...``)."""
    if path is None:
        return []
    try:
        return shlex.split(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the pins file {path}: {exc.strerror}; run the prefetch step first") from None


def plan_environment(request: Request, env: Mapping[str, str]) -> dict[str, str]:
    """The environment to plan in: on SLURM with the allocation's node names and addresses; on one machine with
    free ports for those the user did not set (reasoner.launch.ports)."""
    planned = dict(env)
    if request.launcher == "local":
        planned.update(local_ports(env))
    if request.launcher == "slurm":
        if not env.get("SLURM_JOB_ID"):
            raise UserError("no SLURM_JOB_ID: submit with sbatch (on one machine use launch/grpo_local.sh)")
        names, addrs = nodes.allocation(env["SLURM_JOB_NODELIST"])
        planned.update(REASONER_NODELIST=" ".join(names), REASONER_NODE_ADDRS=" ".join(addrs))
        if not env.get("REASONER_GPUS_PER_NODE"):
            gpus = nodes.requested_gpus_per_node(env["SLURM_JOB_ID"], len(names))
            planned["REASONER_GPUS_PER_NODE"] = str(gpus)
    return planned


def plan_for_launch(request: Request, env: Mapping[str, str]) -> tuple[Any, RunPlan]:
    """The recipe (with the pins) and its run plan on this machine or allocation; UserError when it cannot run."""
    recipe = load_recipe(request.recipe, [*recipe_overrides(request.recipe, request.args), *read_pins(request.pins)], planned=True)
    machine = this_machine(env)
    gpus = env_int(env, "REASONER_GPUS_PER_NODE")
    if gpus is None:
        gpus = gpus_from_env(env)
    if gpus is None:
        gpus = machine.gpus or 0
    count = len(env["REASONER_NODELIST"].split()) if request.launcher == "slurm" else 1
    run = plan_run(recipe, env=env, nodes=count, gpus_per_node=gpus, machine=machine, memory=not request.check)
    check_launchable(run.layout)
    return recipe, run


def check_launchable(layout: Plan) -> None:
    """Refuse a layout without an accelerate config this launcher can read (one machine cannot have a generation
    node: reasoner.topology refuses that for a single node already)."""
    if not layout.accelerate_config:
        raise UserError("no accelerate config: add accelerate_config to the recipe or set REASONER_ACCELERATE_CONFIG")
    if not Path(layout.accelerate_config).is_file():
        raise UserError(f"accelerate config {layout.accelerate_config} not found (paths are relative to {Path.cwd()})")


@dataclasses.dataclass(frozen=True)
class Files:
    """Where this run's pins, server log and preemption marker go."""

    pins: Path
    server_log: Path
    marker: Path | None


def run_files(launcher: str, env: Mapping[str, str], pins: Path | None) -> Files:
    """Per-run file names: a SLURM job's are named by its id (a requeued job finds its pins again)."""
    log_dir = Path(env.get("REASONER_LOG_DIR") or Path.cwd() / "runs" / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    if launcher == "slurm":
        job, restart = env["SLURM_JOB_ID"], env.get("SLURM_RESTART_COUNT", "0")
        return Files(pins or log_dir / f"pins-{job}.txt", log_dir / f"vllm-{job}.log",
                     log_dir / f"preempted-{job}-{restart}.json")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Files(pins or log_dir / f"pins-{stamp}-{os.getpid()}.txt", log_dir / f"vllm-{stamp}.log", None)


def server_command(layout: Plan, py: str) -> list[str]:
    """``reasoner serve-generation`` for the plan's server (empty when the plan runs none)."""
    if not layout.server_args:
        return []
    devices = layout.cuda_visible_devices.get("generation")
    return [py, "-m", "reasoner.cli", "serve-generation", *(["--devices", devices] if devices else []), "--",
            *layout.server_args]


def train_node_args(request: Request, layout: Plan, pins: Sequence[str], marker: Path | None) -> list[str]:
    """``reasoner train-node`` options, then the ``accelerate launch`` arguments up to ``reasoner.train.run``'s."""
    options = ["--training-nodes", ",".join(layout.training_nodes)] if request.launcher == "slurm" else []
    if not layout.even:  # each node starts its own count (reasoner.topology.ranks)
        options += ["--node-processes", ",".join(map(str, layout.node_processes))]
    if layout.node_gpus:  # the server's node trains on its other GPUs, mapped inside that node's own task
        options += ["--node-gpus", format_gpus(layout.node_gpus)]
    if layout.cuda_visible_devices.get("training"):
        options += ["--cuda-visible-devices", layout.cuda_visible_devices["training"]]
    if layout.weight_sync_host:
        options += ["--weight-sync-host", layout.weight_sync_host]
    if marker is not None:
        options += ["--preempt-marker", str(marker)]
    launch = ["--config_file", str(layout.accelerate_config), "--num_machines", str(layout.num_machines),
              "--num_processes", str(layout.num_processes), "--main_process_ip", layout.main_process_ip,
              "--main_process_port", str(layout.main_process_port)]
    return [*options, "--", *launch, "-m", "reasoner.train", "--recipe", request.recipe, *layout.train_args,
            *request.args, *pins]


def preempt_grace(recipe: Any, env: Mapping[str, str]) -> int:
    """Seconds the job script waits for the ranks to save after a signal: ``REASONER_PREEMPT_GRACE``, else the
    recipe's signal lead minus the job script's own exit time."""
    given = env_int(env, "REASONER_PREEMPT_GRACE")
    if given is not None:
        return given
    lead = float(recipe.resources.signal_lead_s or DEFAULT_SIGNAL_LEAD_S)
    return max(1, int(lead - EXIT_MARGIN_S))


def check_signal_lead(run: RunPlan, env: Mapping[str, str]) -> str:
    """Say in one line when the lead this job asked for is shorter than its plan needs; the needed seconds ("" when
    not estimated), for the job script's grace when the warning comes (reasoner.launch.signallead)."""
    needed = run.checkpoints.lead_needed_s if run.checkpoints is not None else None
    script = env.get("REASONER_BATCH_SCRIPT")
    if script and needed is not None:
        warning = short_lead_warning(*requested_lead(env, Path(script)), needed)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    return "" if needed is None else str(math.ceil(needed))


def run_hosts(layout: Plan) -> list[str]:
    """Every address and name the run's processes reach each other at: the generation server, the rendezvous,
    the weight-sync host and the nodes."""
    return [host for host in (layout.vllm_host, layout.main_process_ip, layout.weight_sync_host,
                              layout.generation_node, *layout.node_addrs, *layout.node_names) if host]


def launch_values(request: Request, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Value]]:
    """(variables to export, variables to set) for this launcher and pass."""
    planned = plan_environment(request, env)
    recipe, run = plan_for_launch(request, planned)
    files = run_files(request.launcher, env, request.pins)
    exports: dict[str, str] = {key: planned[key] for key in PORT_VARIABLES.values()
                                  if request.launcher == "local"}
    exports.update(no_proxy_env(env, run_hosts(run.layout)))
    values: dict[str, Value] = {"PINS_FILE": str(files.pins),
                                "PREFETCH_ARGS": ["--recipe", request.recipe, *recipe_overrides(request.recipe, request.args)]}
    if request.launcher == "slurm":
        cache = nodes.default_cache_dir(env)
        exports.update({nodes.CACHE_ENV: cache, **{k: v for k, v in nodes.node_cache_env({**env, nodes.CACHE_ENV: cache}).items()
                                              if k != nodes.CACHE_ENV}})
        values.update(NODE_COUNT=str(run.layout.nodes), CPUS_PER_TASK=str(
            env_int(env, "REASONER_CPUS_PER_TASK") or env_int(env, "SLURM_CPUS_ON_NODE") or 1),
            PREEMPT_GRACE=str(preempt_grace(recipe, env)), PREEMPT_MARKER=str(files.marker))
    if request.check:
        return exports, values
    print(describe(run), file=sys.stderr, flush=True)
    reason = refusal(run)
    if reason:
        raise UserError(reason)
    if request.launcher == "slurm":
        values["LEAD_NEEDED"] = check_signal_lead(run, env)
    layout, py = run.layout, python()
    values.update(SERVER_COMMAND=server_command(layout, py), SERVER_LOG=str(files.server_log),
                  SERVER_URL=f"http://{layout.vllm_host}:{layout.vllm_port}/health" if layout.vllm_host else "",
                  HEALTH_TIMEOUT=str(env_int(env, "REASONER_VLLM_TIMEOUT") or DEFAULT_HEALTH_TIMEOUT_S))
    node_args = train_node_args(request, layout, read_pins(request.pins), files.marker)
    if request.launcher == "local":
        values["TRAIN_COMMAND"] = [py, "-m", "reasoner.cli", "train-node", "--machine_rank", "0", *node_args]
    else:
        values.update(SERVER_NODE=layout.generation_node or "", TRAIN_NODES=",".join(layout.training_nodes),
                      TRAIN_NODE_COUNT=str(layout.num_machines), TRAIN_NODE_ARGS=node_args)
    return exports, values


def shell_assignments(exports: Mapping[str, str], values: Mapping[str, Value]) -> str:
    """Lines a shell ``eval``s: ``export K=V`` for exports, ``K=V`` and ``K=(a b)`` arrays for the rest."""
    lines = [f"export {key}={shlex.quote(value)}" for key, value in exports.items()]
    for key, value in values.items():
        if isinstance(value, list):
            lines.append(f"{key}=(" + " ".join(shlex.quote(item) for item in value) + ")")
        else:
            lines.append(f"{key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    request = parse_request(argv)
    exports, values = launch_values(request, os.environ)
    sys.stdout.write(shell_assignments(exports, values))
    return 0
