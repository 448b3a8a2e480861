"""Preemption: a signal before the kill becomes a checkpoint at the next step boundary and a clean exit.

SLURM sends its warning signal (``--signal=USR1@120`` in ``slurm/grpo.sbatch``) and SIGTERM before a kill.
The handler only sets a flag; the callback acts on it at the next step boundary, where a checkpoint is
consistent (weights, optimizer, scheduler, RNG and step all agree). Ranks agree through one all-reduce so that
a signal seen by some ranks stops all of them at the same step.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from transformers import TrainerCallback

from reasoner.preempted import write_marker

log = logging.getLogger("reasoner.train")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"; launchers report it as 1, see reasoner.preempted
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preempted(Exception):
    """Training stopped on a preemption signal after saving a checkpoint."""


class PreemptionCallback(TrainerCallback):
    """Turns SIGUSR1/SIGTERM into "save at the next step boundary, then stop".

    The handlers go in when the callback is made (before the model loads, so a signal during start-up is
    not fatal either) and again at ``on_train_begin``, in case anything installed its own in between
    (transformers' opt-in ``enable_jit_checkpoint`` replaces the SIGTERM handler when the Trainer is made).
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopped = False
        self._previous: dict[int, object] = {}
        self._install()

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.requested = True

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        self._install()

    def _agreed(self) -> bool:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        import torch

        flag = torch.tensor([1 if self.requested else 0], dtype=torch.int32)
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        if self._agreed():
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                log.warning("preemption signal: saving a checkpoint at step %d and stopping", state.global_step)
        return control

    def on_save(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        if self.stopped and state.is_world_process_zero:
            # The job script decides on this marker, not on the exit code (launchers turn 75 into 1).
            write_marker(state.global_step, str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))
        return control

    def on_train_end(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
