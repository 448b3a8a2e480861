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

from transformers import TrainerCallback

log = logging.getLogger("reasoner.train")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later", which is what a requeue does
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preempted(Exception):
    """Training stopped on a preemption signal after saving a checkpoint."""


class PreemptionCallback(TrainerCallback):
    def __init__(self) -> None:
        self.requested = False
        self.stopped = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.requested = True

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

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

    def on_train_end(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
