"""Start-up recovery: whatever a crash (``kill -9``, a power cut) left half done is finished or undone.

Run by ``HubServer`` before it serves its first request, in this order:

1. temporary files of dead hub processes are removed (partial LFS uploads, Xet xorbs and files
   being received or rebuilt: all of them live in the process's spool folder), and unfinished S3
   multipart uploads under the hub's prefix are aborted (``Storage.sweep_temp``);
2. move entries of earlier hub versions (``.hub-moves/``) become ``move`` intents of the one journal;
3. every ``create``, ``delete`` and ``move`` intent is settled: a create that never answered is
   undone (``lifecycle.settle``), a delete is finished, a move is finished when its copy was
   published and undone before (``moves.settle``), so a deleted repo's objects never survive and
   a repo is never left half created or under two names. Each intent is stamped with the
   generation of the repo record it is about, so the order in which they are settled does not
   matter; they are settled before any view, since a view refresh needs its repo settled;
4. every ``view`` intent is redone in full: the plain files of that branch are made equal to its
   head (extra files removed, every file rewritten), so a refresh cut half way is repaired.

Each step can be cut by another crash and run again: intents are removed only once settled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from reasoner_hub import lifecycle, moves
from reasoner_hub.journal import Intent
from reasoner_hub.repos import RepoStore

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    temp_removed: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # "create models/org/name: undid the create"
    views_repaired: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.temp_removed or self.settled or self.views_repaired)


def _label(intent: Intent) -> str:
    if intent.target is not None:
        return f"{intent.op} {intent.repo.label} -> {intent.target.label}"
    return f"{intent.op} {intent.repo.label}"


def recover(store: RepoStore) -> RecoveryReport:
    report = RecoveryReport(temp_removed=store.storage.sweep_temp())
    moves.adopt_legacy_moves(store)
    views = []
    for key, intent in store.journal.pending():
        if intent is None:
            store.storage.delete(key)
        elif intent.op == "view":
            views.append(intent)
        else:
            settle = moves.settle if intent.op == "move" else lifecycle.settle
            outcome = settle(store, intent)
            store.journal.end(intent)
            report.settled.append(f"{_label(intent)}: {outcome}")
    for intent in views:
        store.sync_view(intent.repo, intent.branch or "main", full=True)
        store.journal.end(intent)  # also when the repo is gone (sync_view then has nothing to do)
        report.views_repaired.append(f"{intent.repo.label}@{intent.branch}")
    if report.anything:
        log.warning(
            "recovered from an unclean stop: %d temporary file(s) removed, %d create/delete/move settled (%s), "
            "%d plain view(s) rebuilt",
            len(report.temp_removed), len(report.settled), "; ".join(report.settled) or "-", len(report.views_repaired),
        )
    return report
