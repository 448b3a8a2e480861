"""The lead SLURM's warning signal gives a job, against the lead its plan needs.

``sbatch --signal=B:USR1@LEAD`` asks SLURM to warn the batch shell LEAD seconds before the job ends (a time
limit, or a preemption's grace time). The ranks then finish their step, save, wait for queued pushes and exit,
which takes the plan's ``lead_needed_s``. Two places check it:

* at the start, the lead the job asked for: SLURM does not report ``--signal`` to the job, so it is read from
  ``REASONER_SIGNAL_LEAD_S`` when set, else from the batch script's own ``#SBATCH --signal`` line; one shorter
  than the plan needs is said in one line with the ``sbatch`` option that fixes it.
* when the warning arrives, the lead actually given: the seconds left to the job's ``EndTime`` (``scontrol``),
  which SLURM sets to the kill time for a time limit and for a preemption alike. The ranks' grace is that, less
  the job script's own exit time, so a shorter lead than the recipe states does not let them be killed mid-save.
"""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Mapping

from reasoner.plan.checkpoints import EXIT_MARGIN_S

SIGNAL_LINE = re.compile(r"^#SBATCH\s+--signal[= ](?:[BR]:)?(?:SIG)?(?:USR1|10)@(\d+)\s*$", re.MULTILINE)
LEAD_ENV = "REASONER_SIGNAL_LEAD_S"


def header_lead(script: Path) -> int | None:
    """The ``@LEAD`` of the script's ``#SBATCH --signal=...USR1@LEAD`` line, or None."""
    try:
        match = SIGNAL_LINE.search(script.read_text(encoding="utf-8"))
    except OSError:
        return None
    return int(match[1]) if match else None


def requested_lead(env: Mapping[str, str], script: Path) -> tuple[int | None, str]:
    """(seconds, where that came from) for the lead this job asked for."""
    value = env.get(LEAD_ENV, "").strip()
    if value.isdigit():
        return int(value), LEAD_ENV
    return header_lead(script), f"{script.name}'s #SBATCH --signal line"


def short_lead_warning(lead: float | None, source: str, needed_s: float | None) -> str | None:
    """One line when ``lead`` is shorter than ``needed_s``, naming the sbatch option that fixes it."""
    if lead is None or needed_s is None or lead >= needed_s:
        return None
    fix = int(-(-needed_s // 60) * 60)
    return (f"warning: the signal lead is {lead:g} s ({source}) but this plan needs ~{needed_s:.0f} s to finish a step, "
            f"save and exit: a preempted run may be killed mid-save; submit with sbatch --signal=B:USR1@{fix} "
            f"(and {LEAD_ENV}={fix} when you pass --signal on the command line)")


def parse_end_time(scontrol_text: str) -> datetime | None:
    """The ``EndTime=`` of ``scontrol show job`` output (local time, as scontrol prints it), or None."""
    match = re.search(r"\bEndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", scontrol_text)
    return datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S") if match else None


def seconds_left(job_id: str, now: datetime | None = None) -> float | None:
    """Seconds from now to the job's EndTime, or None when scontrol cannot say (no limit, not a SLURM job)."""
    try:
        result = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    end = parse_end_time(result.stdout) if result.returncode == 0 else None
    if end is None:
        return None
    return (end - (now or datetime.now())).total_seconds()


def grace_after_warning(left_s: float | None, fallback: int) -> int:
    """Seconds the ranks get after the warning: the time left less the script's exit, else ``fallback``."""
    if left_s is None:
        return fallback
    return max(1, int(left_s - EXIT_MARGIN_S))
