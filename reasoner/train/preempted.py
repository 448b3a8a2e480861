"""The preemption marker: how a training run tells its job script that it stopped on a signal after saving.

The training ranks exit with code 75 (EX_TEMPFAIL) after a preemption save, but that code does not survive the
launchers: torchrun and accelerate report any failed worker as 1. So the job script does not read exit codes; rank
zero writes this marker (a small JSON file at ``REASONER_PREEMPTED_MARKER``, a path the job script chooses per run)
once the checkpoint is saved, and the script requeues only when the marker is there and the signal was SLURM's
preemption warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MARKER_ENV = "REASONER_PREEMPTED_MARKER"


def write_marker(step: int, checkpoint: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Record that this run saved ``checkpoint`` at ``step`` and stopped; no-op when no marker path is set."""
    target = (os.environ if env is None else env).get(MARKER_ENV)
    if not target:
        return None
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"step": step, "checkpoint": checkpoint}) + "\n")
    partial.replace(path)  # a reader never sees half a marker
    return path


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker's record, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
