"""The intent journal: what a crash may have left half done, so start-up can finish or undo it.

Before an operation that takes several storage writes and must not be seen half done, the hub
writes an intent object under ``.hub-journal/`` (durably), and removes it when the operation is
complete. Start-up recovery (``recovery.py``) reads the few intents left by a crash instead of
scanning the whole store. Intents:

* ``create`` of a repo: undone (the client never got its answer);
* ``delete`` of a repo: finished (the repo was hidden first; its remains must go);
* ``move`` of a repo to a new name (``target``): finished once the copy under the new name was
  published, undone before (see ``moves.py``);
* ``view`` of a branch: the plain files of the branch are brought to its head.

An intent is named by a hash of what it is about, so writing it twice is harmless and every
recovery step can run again after a crash during recovery.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from reasoner_hub.errors import HubError
from reasoner_hub.paths import Repo, repo_from_id, repo_type
from reasoner_hub.storage import NotFound, Storage

log = logging.getLogger(__name__)

JOURNAL = ".hub-journal/"
OPERATIONS = ("create", "delete", "move", "view")


@dataclass(frozen=True)
class Intent:
    op: str
    repo: Repo
    branch: str | None = None
    stamp: str | None = None  # the generation of the repo record a create, delete or move is about
    target: Repo | None = None  # the new name of a moved repo (same type)

    @property
    def key(self) -> str:
        name = f"{self.op}\n{self.repo.type}\n{self.repo.id}\n{self.branch or ''}\n{self.stamp or ''}"
        if self.target is not None:
            name += f"\n{self.target.id}"
        return f"{JOURNAL}{hashlib.sha1(name.encode()).hexdigest()}.json"

    def to_json(self) -> bytes:
        data = {"op": self.op, "type": self.repo.type, "id": self.repo.id, "branch": self.branch, "stamp": self.stamp,
                "target": self.target.id if self.target else None}
        return json.dumps(data).encode()

    @staticmethod
    def from_json(raw: bytes) -> Intent:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("op") not in OPERATIONS:
            raise ValueError(f"not an intent: {data!r}")
        try:
            repo = repo_from_id(repo_type(str(data.get("type"))), str(data.get("id")))
            target = repo_from_id(repo.type, str(data["target"])) if data.get("target") else None
        except HubError:
            raise ValueError(f"not an intent: {data!r}") from None
        if (data["op"] == "move") != (target is not None):
            raise ValueError(f"not an intent: {data!r}")
        branch, stamp = data.get("branch"), data.get("stamp")
        return Intent(data["op"], repo, str(branch) if branch else None, str(stamp) if stamp else None, target)


class Journal:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def begin(self, intent: Intent) -> None:
        self.storage.put(intent.key, intent.to_json())

    def end(self, intent: Intent) -> None:
        self.storage.delete(intent.key)

    def pending(self) -> list[tuple[str, Intent | None]]:
        """Every intent left in the journal, as (key, intent); None for an unreadable one."""
        out: list[tuple[str, Intent | None]] = []
        for key in list(self.storage.list(JOURNAL)):
            try:
                out.append((key, Intent.from_json(self.storage.get(key))))
            except NotFound:
                continue  # ended meanwhile
            except (ValueError, KeyError, TypeError):
                log.warning("journal entry %s is unreadable; dropping it", key)
                out.append((key, None))
        return out
