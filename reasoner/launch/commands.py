"""The launcher commands' command lines (see reasoner.launch); each parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Sequence

from reasoner.errors import UserError
from reasoner.launch import nodes
from reasoner.launch.health import wait_health
from reasoner.launch.processes import flag_value, python, run_launcher, stop_process
from reasoner.launch.requeue import requeue_decision
from reasoner.launch.serve import serve
from reasoner.launch.signallead import grace_after_warning, seconds_left, short_lead_warning
from reasoner.train.preempted import MARKER_ENV
from reasoner.topology import ranks
from reasoner.topology.server import WEIGHT_SYNC_HOST_ENV


def node_env_main(argv: Sequence[str]) -> int:
    """Print ``export`` lines for this node's caches (``REASONER_CACHE_DIR`` with ``{node}`` expanded)."""
    argparse.ArgumentParser(prog="reasoner node-env", description=node_env_main.__doc__).parse_args(list(argv))
    for key, value in nodes.node_cache_env(os.environ).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def wait_health_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner wait-health",
                                     description="Wait until URL answers 2xx; stop early if process PID dies.")
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, required=True, help="seconds")
    parser.add_argument("--pid", type=int, default=None, help="the server's process: its death ends the wait")
    parser.add_argument("--log", type=Path, default=None, help="the server's log: its last lines are shown on failure")
    parser.add_argument("--interval", type=float, default=2.0)
    ns = parser.parse_args(list(argv))
    wait_health(ns.url, timeout=ns.timeout, pid=ns.pid, log=ns.log, interval=ns.interval)
    print(f"[wait-health] {ns.url} answers", file=sys.stderr)
    return 0


def stop_process_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner stop-process",
                                     description="Signal PID, wait up to --grace seconds, then SIGKILL it if --kill.")
    parser.add_argument("pid", type=int)
    parser.add_argument("--signal", default="TERM", help="signal name without SIG (default TERM)")
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--group", action="store_true", help="signal the process group PID leads")
    parser.add_argument("--kill", action="store_true", help="SIGKILL what is left after the grace period")
    ns = parser.parse_args(list(argv))
    try:
        sig = signal.Signals[f"SIG{ns.signal.upper().removeprefix('SIG')}"]
    except KeyError:
        raise UserError(f"--signal {ns.signal} is not a signal name (TERM, USR1, INT, KILL ...)") from None
    return 0 if stop_process(ns.pid, sig=sig, grace=ns.grace, group=ns.group, kill=ns.kill) else 1


def should_requeue_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner should-requeue",
                                     description="Exit 0 when the job should requeue: a preemption warning and a saved "
                                                 "checkpoint; 1 otherwise. One line says why.")
    parser.add_argument("--signal", default="none", help="the signal the job script got: USR1, TERM or none")
    parser.add_argument("--marker", type=Path, required=True, help="the run's preemption marker file")
    parser.add_argument("--started", choices=("yes", "no"), default="yes", help="whether training had started")
    ns = parser.parse_args(list(argv))
    name = None if ns.signal == "none" else ns.signal.upper().removeprefix("SIG")
    requeue, why = requeue_decision(name, ns.marker, started=ns.started == "yes")
    print(f"[should-requeue] {why}", file=sys.stderr)
    return 0 if requeue else 1


def signal_grace_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="reasoner signal-grace",
        description="Print the seconds the ranks get after SLURM's warning signal: the time left to the job's end "
                    "(scontrol) less the job script's exit; REASONER_PREEMPT_GRACE when set. One line on stderr says "
                    "so when the lead actually given is shorter than the plan needs.")
    parser.add_argument("--job", required=True, help="the SLURM job id")
    parser.add_argument("--fallback", type=int, required=True, help="seconds when the job's end time is unknown")
    parser.add_argument("--needed", type=float, default=None, help="seconds the plan needs from the signal to the exit")
    ns = parser.parse_args(list(argv))
    explicit = os.environ.get("REASONER_PREEMPT_GRACE", "").strip()
    if explicit.isdigit():
        print(int(explicit))
        return 0
    left = seconds_left(ns.job)
    grace = grace_after_warning(left, ns.fallback)
    if left is not None:
        print(f"[signal-grace] {left:.0f} s left before the job ends: the ranks get {grace} s", file=sys.stderr)
        warning = short_lead_warning(round(left), "the time left when the signal came", ns.needed or None)
        if warning:
            print(f"[signal-grace] {warning}", file=sys.stderr)
    print(grace)
    return 0


def serve_generation_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner serve-generation",
                                     description="Start the generation server on this node: reasoner serve-generation "
                                                 "[--devices LIST] -- TRL_VLLM_SERVE_FLAGS...")
    parser.add_argument("--devices", default=None, help="CUDA_VISIBLE_DEVICES for the server (default: the node's "
                                                        "first tensor-parallel-size GPUs)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of starting it")
    ours, server_flags = _split_at_dashes(argv)
    ns = parser.parse_args(ours)
    return serve(server_flags, ns.devices, dry_run=ns.dry_run)


def train_node_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner train-node",
                                     description="accelerate launch on this training node: reasoner train-node "
                                                 "--machine_rank N [options] -- ACCELERATE_LAUNCH_ARGS...")
    parser.add_argument("--machine_rank", type=int, required=True)
    parser.add_argument("--training-nodes", default="", help="the plan's training nodes, in rank order")
    parser.add_argument("--node-processes", default=None,
                        help="training processes per node in rank order (6,8) where they differ per node")
    parser.add_argument("--node-gpus", default=None,
                        help="each training node's GPU indices (2,3;0,1,2,3), mapped through this node's "
                             "CUDA_VISIBLE_DEVICES")
    parser.add_argument("--cuda-visible-devices", default=None)
    parser.add_argument("--weight-sync-host", default=None, help=f"{WEIGHT_SYNC_HOST_ENV} for the ranks")
    parser.add_argument("--preempt-marker", default=None, help="where rank zero records a preemption save")
    ours, launch_args = _split_at_dashes(argv)
    ns = parser.parse_args(ours)
    env = dict(os.environ)
    node = nodes.node_name(env)
    planned = [name for name in ns.training_nodes.split(",") if name]
    if planned and (ns.machine_rank >= len(planned) or planned[ns.machine_rank] != node):
        expected = planned[ns.machine_rank] if ns.machine_rank < len(planned) else "none"
        raise UserError(f"step node {ns.machine_rank} is {node} but the plan's training node {ns.machine_rank} is "
                        f"{expected}")
    here = this_node(ns, planned, launch_args)
    devices = ns.cuda_visible_devices or ranks.node_devices(here, env.get("CUDA_VISIBLE_DEVICES"))
    env.update({key: value for key, value in (("CUDA_VISIBLE_DEVICES", devices),
                                              (WEIGHT_SYNC_HOST_ENV, ns.weight_sync_host),
                                              (MARKER_ENV, ns.preempt_marker)) if value})
    rendezvous = f"{flag_value(launch_args, '--main_process_ip')}:{flag_value(launch_args, '--main_process_port')}"

    def say(message: str) -> None:
        print(f"[task train {node}] {message}", file=sys.stderr, flush=True)

    on_gpus = f" on GPU(s) {devices}" if devices else ""
    say(f"machine rank {ns.machine_rank} of {here.machines}, rendezvous {rendezvous}; {here.processes} rank(s) "
        f"{here.ranks[0]}-{here.ranks[-1]} of world size {here.world_size}{on_gpus}")
    command = [python(), "-m", "accelerate.commands.accelerate_cli", "launch", "--machine_rank", str(ns.machine_rank),
               *ranks.with_node_processes(launch_args, here)]
    code = run_launcher(command, env, log=say)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128+N


def this_node(ns: argparse.Namespace, planned: list[str], launch_args: Sequence[str]) -> ranks.NodeRanks:
    """This node's processes, global ranks and GPUs: from ``--node-processes``/``--node-gpus`` where nodes differ,
    else ``num_processes / num_machines`` of the accelerate arguments, as accelerate would start them."""
    machines = int(flag_value(launch_args, "--num_machines") or 1)
    if ns.node_processes:
        counts = ranks.parse_counts(ns.node_processes)
    else:
        total = int(flag_value(launch_args, "--num_processes") or machines)
        counts = (max(1, total // machines),) * machines
    gpus = ranks.parse_gpus(ns.node_gpus) if ns.node_gpus else ()
    names = planned or [f"node{i}" for i in range(len(counts))]
    if ns.machine_rank >= len(counts):
        raise UserError(f"machine rank {ns.machine_rank} is outside the plan's {len(counts)} training nodes")
    return ranks.node_ranks(counts, names, gpus)[ns.machine_rank]


def _split_at_dashes(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    items = list(argv)
    if "--" not in items:
        return items, []
    cut = items.index("--")
    return items[:cut], items[cut + 1:]
