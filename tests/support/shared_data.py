"""Where the real data sets the tests read live: ``shared/data/`` beside the checkout or beside any folder above
it (a checkout in ``/work/main`` and a worktree in ``/work/wt/NAME`` both find ``/work/shared``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shared_data(name: str) -> Path:
    """``<ancestor>/shared/data/<name>`` for the nearest ancestor of the checkout that has it (else beside it)."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data" / name


GSM8K = shared_data("gsm8k")
