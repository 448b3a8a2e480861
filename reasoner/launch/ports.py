"""Free ports for a run on one machine, so that two runs side by side do not meet on a port.

A SLURM job derives its ports from its id (reasoner.topology.environment.job_ports). One machine has no such id:
``launch/grpo_local.sh`` used fixed ports (29500, 8000, 51216), and a second run on the same machine then failed to
bind its rendezvous or reached the first run's vLLM server. ``reasoner launch-env local`` picks each port the user
did not set (``REASONER_MAIN_PORT``, ``REASONER_VLLM_PORT``, ``REASONER_GROUP_PORT``) at random in a range below
Linux's ephemeral ports (so no outgoing connection holds it a moment later), checks that it is free by binding it,
and exports it, so the pinned pass, the server and the ranks all see the same ports.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping

from reasoner.errors import UserError

PORT_VARIABLES = {"main": "REASONER_MAIN_PORT", "vllm": "REASONER_VLLM_PORT", "group": "REASONER_GROUP_PORT"}
PORT_RANGE = (20000, 32767)  # below /proc/sys/net/ipv4/ip_local_port_range's usual 32768
TRIES = 200


def is_free(port: int) -> bool:
    """Whether nothing is bound to ``port`` on any address (TCP), now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, avoid: set[int] | None = None, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct free ports from :data:`PORT_RANGE`, none of them in ``avoid``."""
    pick = rng or random.SystemRandom()
    taken = set(avoid or ())
    chosen: list[int] = []
    for _ in range(TRIES):
        if len(chosen) == count:
            break
        port = pick.randint(*PORT_RANGE)
        if port not in taken and is_free(port):
            chosen.append(port)
            taken.add(port)
    if len(chosen) < count:
        raise UserError(f"found no {count} free ports in {PORT_RANGE[0]}-{PORT_RANGE[1]}; set "
                        + ", ".join(PORT_VARIABLES.values()))
    return chosen


def local_ports(env: Mapping[str, str]) -> dict[str, str]:
    """The port variables of a run on this machine: the user's where set, a free port for each of the others."""
    given = {name: env[name].strip() for name in PORT_VARIABLES.values() if env.get(name, "").strip()}
    missing = [name for name in PORT_VARIABLES.values() if name not in given]
    avoid = {int(value) for value in given.values() if value.isdigit()}
    return {**given, **{name: str(port) for name, port in zip(missing, free_ports(len(missing), avoid=avoid))}}
