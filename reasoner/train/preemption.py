"""Preemption: a signal before the kill becomes a checkpoint at the next step boundary and a clean exit.

SLURM sends its warning signal (``--signal=USR1@120`` in ``slurm/grpo.sbatch``) and SIGTERM before a kill.
The handler only sets a flag; the callback acts on it at the next step boundary, where a checkpoint is
consistent (weights, optimizer, scheduler, RNG and step all agree). Ranks agree through one all-reduce so that
a signal seen by some ranks stops all of them at the same step, and on which signal it was (SIGTERM, "stop",
wins over SIGUSR1, "come back later").

Whether the job comes back is the job script's decision (reasoner.launch.requeue), on the signal *it* got: the
launchers pass every stop on to the ranks as SIGUSR1, so a rank that got SIGUSR1 cannot tell a warning from a
stop, and says so as it exits (:func:`exit_line`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from transformers import TrainerCallback

from reasoner.train.preempted import write_marker
from reasoner.train.ranks import max_over_ranks

log = logging.getLogger("reasoner.train")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"; launchers report it as 1, see reasoner.train.preempted
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preempted(Exception):
    """Training stopped on a preemption signal after saving a checkpoint; the message is :func:`exit_line`'s."""


def exit_line(signal_name: str, checkpoint: str) -> str:
    """What a rank says as it exits after a preemption save: what it saved, on which signal, what happens next."""
    if signal_name == "SIGTERM":
        return (f"saved {checkpoint} after SIGTERM; exiting with {PREEMPTED_EXIT_CODE} (a stop: the job does not "
                "requeue; run the same command again to resume)")
    return (f"saved {checkpoint} after {signal_name} (SLURM's preemption warning, or a stop a launcher passed on); "
            f"exiting with {PREEMPTED_EXIT_CODE} (slurm/grpo.sbatch requeues the job only if it got the warning; "
            "otherwise run the same command again to resume)")


class PreemptionCallback(TrainerCallback):
    """Turns SIGUSR1/SIGTERM into "save at the next step boundary, then stop".

    The handlers go in when the callback is made (before the model loads, so a signal during start-up is
    not fatal either) and again at ``on_train_begin``, in case anything installed its own in between
    (transformers' opt-in ``enable_jit_checkpoint`` replaces the SIGTERM handler when the Trainer is made).
    """

    def __init__(self) -> None:
        self.received = 0  # the signal number this rank got (the larger, if both), 0 for none
        self.stopped_by: str | None = None  # the signal every rank agreed to stop on, e.g. "SIGUSR1"
        self._previous: dict[int, object] = {}
        self._install()

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.received = max(self.received, int(signum))

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        self._install()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        agreed = max_over_ranks(self.received)  # SIGTERM (15) > SIGUSR1 (10): a stop anywhere is a stop
        if agreed:
            self.stopped_by = signal.Signals(agreed).name
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
