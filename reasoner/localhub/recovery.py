"""Start-up recovery: whatever a crash (``kill -9``, a power cut) left half done is finished or undone.

Run by ``HubServer`` before it serves its first request:

1. temporary files of dead hub processes (partial uploads) are removed, and unfinished S3
   multipart uploads under the hub's prefix are aborted (``Storage.sweep_temp``);
2. every ``create`` and ``delete`` intent in the journal is settled (``lifecycle.settle``): a create
   that never answered is undone, a delete is finished, so a deleted repo's objects never survive
   and a repo is never left half created;
3. every ``view`` intent is redone in full: the plain files of that branch are made equal to its
   head (extra files removed, every file rewritten), so a refresh cut half way is repaired.

Each step can be cut by another crash and run again: intents are removed only once settled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from reasoner.localhub import lifecycle
from reasoner.localhub.repos import RepoStore

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    temp_removed: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # "create models/org/name: undid the create"
    views_repaired: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.temp_removed or self.settled or self.views_repaired)


def recover(store: RepoStore) -> RecoveryReport:
    report = RecoveryReport(temp_removed=store.storage.sweep_temp())
    pending = store.journal.pending()
    views = []
    for key, intent in pending:
        if intent is None:
            store.storage.delete(key)
        elif intent.op == "view":
            views.append(intent)
        else:
            outcome = lifecycle.settle(store, intent)
            store.journal.end(intent)
            report.settled.append(f"{intent.op} {intent.repo.label}: {outcome}")
    for intent in views:
        store.sync_view(intent.repo, intent.branch or "main", full=True)
        store.journal.end(intent)  # also when the repo is gone (sync_view then has nothing to do)
        report.views_repaired.append(f"{intent.repo.label}@{intent.branch}")
    if report.anything:
        log.warning(
            "recovered from an unclean stop: %d temporary file(s) removed, %d create/delete settled (%s), "
            "%d plain view(s) rebuilt",
            len(report.temp_removed), len(report.settled), "; ".join(report.settled) or "-", len(report.views_repaired),
        )
    return report
