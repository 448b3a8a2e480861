"""Whether a job requeues after its training step ended: only a preempted run that saved.

SLURM's warning (SIGUSR1, ``--signal=B:USR1@LEAD``) means "you will be stopped; come back later": the job requeues
and resumes from the checkpoint the ranks saved. SIGTERM means "stop" (``scancel``, a time limit): the ranks save
all the same, but the job does not come back. Without a marker (reasoner.train.preempted) nothing was saved on a signal
(the run finished or failed first), so requeueing would repeat a finished run or a failure.
"""

from __future__ import annotations

from pathlib import Path

from reasoner.train.preempted import read_marker


def requeue_decision(signal_name: str | None, marker: Path, *, started: bool = True) -> tuple[bool, str]:
    """(requeue?, one line saying why) for the signal the job script got (None: none), the run's marker, and
    whether training had started (a warning before it loses nothing: the job comes back and starts then)."""
    if signal_name == "USR1" and not started:
        return True, "preemption warning before training started; requeueing"
    record = read_marker(marker)
    saved = f"checkpoint {record.get('checkpoint')} (step {record.get('step')})" if record else None
    if signal_name == "USR1":
        if saved:
            return True, f"preemption warning: {saved} saved; requeueing"
        return False, "preemption warning, but the run saved no checkpoint on it (it had ended); not requeueing"
    if signal_name == "TERM":
        return False, (f"SIGTERM: {saved} saved; not requeueing (resubmit the same command to resume)" if saved
                       else "SIGTERM before the run saved a checkpoint on it; not requeueing")
    if saved:
        return False, f"the ranks stopped on a signal and {saved} saved; the job script got no signal: not requeueing"
    return False, "no preemption: nothing to requeue"
