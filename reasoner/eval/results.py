"""Evaluation results on disk: ``results.json`` (what was evaluated, how, and the metrics) and
``completions.jsonl`` (one line per question), and how to tell whether two evaluations asked the same questions.

A hub model is pinned to a commit before loading, and the commit goes into ``results.json``: a number without
the exact weights behind it cannot be compared later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from reasoner.errors import UserError

__all__ = ["COMPLETIONS_FILE", "RESULTS_FILE", "EvalResult", "is_saved_result", "now", "questions_fingerprint",
           "same_questions", "write_result"]

RESULTS_FILE = "results.json"
COMPLETIONS_FILE = "completions.jsonl"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class EvalResult:
    """One evaluation: what was evaluated (model, revision, commit, split), how, and the metrics."""

    model: str
    revision: str | None
    commit: str | None
    split: str
    n: int
    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    wall_seconds: float = 0.0
    dropped: int = 0
    output_dir: Path | None = None
    # With K samples per question: pass@1, its standard error, pass@K and maj@K of each task (data set).
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short name for tables: the model, with the first characters of its commit when pinned."""
        return f"{self.model}@{self.commit[:8]}" if self.commit else self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "commit": self.commit,
            "split": self.split,
            "n": self.n,
            "dropped": self.dropped,
            "metrics": self.metrics,
            **({"per_task": self.per_task} if self.per_task else {}),
            "settings": self.settings,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_seconds": self.wall_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], output_dir: Path | None = None) -> "EvalResult":
        return cls(
            model=str(data["model"]),
            revision=data.get("revision"),
            commit=data.get("commit"),
            split=str(data.get("split", "test")),
            n=int(data["n"]),
            metrics={k: float(v) for k, v in dict(data["metrics"]).items()},
            settings=dict(data.get("settings") or {}),
            started_at=str(data.get("started_at", "")),
            finished_at=str(data.get("finished_at", "")),
            wall_seconds=float(data.get("wall_seconds", 0.0)),
            dropped=int(data.get("dropped", 0)),
            output_dir=output_dir,
            per_task={task: {k: float(v) for k, v in dict(values).items()}
                      for task, values in dict(data.get("per_task") or {}).items()},
        )

    @classmethod
    def load(cls, path: Path) -> "EvalResult":
        """A saved result: a ``results.json`` file or the folder that holds one."""
        path = Path(path)
        file = path / RESULTS_FILE if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            return cls.from_dict(data, output_dir=file.parent)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"cannot read evaluation results {file} ({error}): pass a results.json written by 'reasoner eval'") from None


def is_saved_result(path: str | Path) -> bool:
    """True for a results.json or a folder holding one (and no model): a baseline that needs no rerun."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.name.endswith(".json") and path.name != "config.json"
    return path.is_dir() and (path / RESULTS_FILE).is_file() and not (path / "config.json").is_file()


def questions_fingerprint(items: Sequence[Mapping[str, Any]]) -> str:
    """A hash of the questions and gold answers, in order: two evaluations with equal ones asked the same."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item["question"], item["gold"]], ensure_ascii=False).encode())
    return digest.hexdigest()


def same_questions(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two evaluations' settings describe the same questions: by their fingerprints when both have
    one, else by data source, a local path compared as the folder it names (``../data`` == ``/abs/data``)."""
    if a.get("questions_sha256") and b.get("questions_sha256"):
        return a["questions_sha256"] == b["questions_sha256"]

    def where(settings: Mapping[str, Any]) -> str:
        source = str(settings.get("data_source"))
        path = Path(source).expanduser()
        return str(path.resolve()) if path.exists() else source

    return where(a) == where(b)


def write_result(result: EvalResult, records: Sequence[Mapping[str, Any]], output_dir: Path) -> None:
    """``results.json`` (the summary) and ``completions.jsonl`` (one line per question) in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    with (output_dir / COMPLETIONS_FILE).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
