"""Creating and deleting repos so that no client ever sees half of either, even across a crash.

A repo exists for clients when its ``.hub/repo.json`` record exists with no ``state``. The record
carries a random ``generation`` so that a journal intent names one incarnation of a repo, never a
later repo of the same name.

* create: intent ``create`` -> record with ``state: creating`` (hidden; a conditional write, so a
  second creator gets 409) -> remove any remains of an earlier repo of that name -> initial commit,
  ``main``, its plain view -> record without state (one conditional write: the repo appears) ->
  intent removed. A crash before the last write leaves a hidden repo that recovery removes.
* delete: intent ``delete`` -> record with ``state: deleting`` (a tombstone: the repo is hidden
  from every route from here on) -> every other object of the repo -> the record -> intent removed.
  A crash anywhere leaves the tombstone or the intent, and recovery finishes the delete.

A move (``moves.py``) claims its new name and publishes it with the same two steps as a create
(``reserve``, ``publish``) and removes its old name as a delete does (``remove``).

All of them hold the repo's gate exclusively, so no commit of this process writes into a repo while
it is created, moved or deleted (see ``locks.py``).
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Protocol

from reasoner_hub import errors
from reasoner_hub.commits import DEFAULT_BRANCH, GITATTRIBUTES, PENDING, Commit, FileEntry, RepoMeta
from reasoner_hub.commits import git_blob_oid, now_iso, seal
from reasoner_hub.journal import Intent, Journal
from reasoner_hub.locks import RepoGate
from reasoner_hub.paths import Repo
from reasoner_hub.storage import PreconditionFailed, Storage

log = logging.getLogger(__name__)

CREATING, DELETING = "creating", "deleting"


class RepoStore(Protocol):
    """What creating and deleting need of the repo store (``repos.RepoStore`` passes itself)."""

    storage: Storage
    journal: Journal

    def gate(self, repo: Repo) -> RepoGate: ...
    def record(self, repo: Repo) -> tuple[dict, str] | None: ...
    def put_blob(self, repo: Repo, data: bytes) -> str: ...
    def _store_commit(self, repo: Repo, commit: Commit) -> None: ...
    def _write_ref(self, repo: Repo, kind: str, name: str, commit_id: str, expected: str | None) -> None: ...
    def sync_view(self, repo: Repo, branch: str, full: bool = False) -> None: ...
    def forget_repo(self, repo: Repo) -> None: ...


def record_key(repo: Repo) -> str:
    return repo.internal + "repo.json"


def generation_of(record: dict) -> str:
    return str(record.get("generation") or record.get("createdAt") or "")


def create_repo(store: RepoStore, repo: Repo, private: bool, author: str) -> RepoMeta:
    """Create the repo with an initial commit holding ``.gitattributes``, like the Hub does."""
    with store.gate(repo).exclusive():
        created = now_iso()
        record = {"type": repo.type, "id": repo.id, "private": private, "createdAt": created,
                  "generation": uuid.uuid4().hex}
        intent = Intent("create", repo, stamp=record["generation"])
        taken = f"You already created this {repo.type} repo: {repo.id}"
        version = reserve(store, repo, record, intent, taken)
        _initial_commit(store, repo, author, created)
        publish(store, repo, record, version)
        store.journal.end(intent)
        return RepoMeta(repo, private, created, record["generation"])


def reserve(store: RepoStore, repo: Repo, record: dict, intent: Intent, taken: str) -> str:
    """Claim ``repo``'s name for a create or a move (the caller holds its gate exclusively).

    409 (``taken``) when a repo has the name; hidden remains of an earlier create or delete are
    removed first. Then ``intent`` is journaled and ``record`` written with ``state: creating``
    (hidden; a conditional write, so a second claimer gets 409); returns that record's version.
    """
    found = store.record(repo)
    if found is not None and not found[0].get("state") and not _is_stub(store, repo):
        raise errors.conflict(taken)
    if found is not None:  # hidden remains of a create, delete or move that stopped half way
        remove(store, repo)
    store.journal.begin(intent)
    try:
        version = store.storage.put_if(record_key(repo), json.dumps({**record, "state": CREATING}).encode(), None)
    except PreconditionFailed:
        store.journal.end(intent)
        raise errors.conflict(taken) from None
    remove_objects(store, repo, keep=record_key(repo))
    return version


def publish(store: RepoStore, repo: Repo, record: dict, version: str) -> None:
    """The commit point of a create or a move: the record without state, one conditional write."""
    try:
        store.storage.put_if(record_key(repo), json.dumps(record).encode(), version)
    except PreconditionFailed:  # another hub process rolled this create back meanwhile
        raise errors.conflict(f"The creation of {repo.id} was interrupted; retry") from None


def _initial_commit(store: RepoStore, repo: Repo, author: str, date: str) -> None:
    sha = store.put_blob(repo, GITATTRIBUTES)
    files = {".gitattributes": FileEntry(len(GITATTRIBUTES), sha, git_blob_oid(GITATTRIBUTES), False, PENDING)}
    commit = seal([], [], "initial commit", "", author, date, files)
    store._store_commit(repo, commit)
    store.journal.begin(Intent("view", repo, DEFAULT_BRANCH))
    store._write_ref(repo, "heads", DEFAULT_BRANCH, commit.id, None)
    store.sync_view(repo, DEFAULT_BRANCH)


def _is_stub(store: RepoStore, repo: Repo) -> bool:
    """A record with no branch at all: what a crash during a create left before creates were journaled."""
    return next(iter(store.storage.list(repo.internal + "refs/heads/")), None) is None


def delete_repo(store: RepoStore, repo: Repo) -> bool:
    """Hide the repo at once, then remove all of it; False when there was no such repo."""
    with store.gate(repo).exclusive():
        found = store.record(repo)
        if found is None:
            return False
        intent = Intent("delete", repo, stamp=generation_of(found[0]))
        store.journal.begin(intent)
        remove(store, repo)
        store.journal.end(intent)
    return True


def remove(store: RepoStore, repo: Repo) -> None:
    """Tombstone, every object, then the record: finishes a delete or undoes a create (re-runnable)."""
    with store.gate(repo).exclusive():
        found = store.record(repo)
        if found is not None and found[0].get("state") != DELETING:
            store.storage.put(record_key(repo), json.dumps({**found[0], "state": DELETING}).encode())
        remove_objects(store, repo, keep=record_key(repo))
        store.storage.delete(record_key(repo))
        store.storage.prune(repo.prefix)
        store.forget_repo(repo)


def remove_objects(store: RepoStore, repo: Repo, keep: str) -> None:
    """Every object under the repo's prefix but ``keep`` (its record)."""
    doomed = [key for key in store.storage.list(repo.prefix) if key != keep]
    for key in doomed:
        store.storage.delete(key)
    if doomed:
        log.info("removed %d object(s) of %s", len(doomed), repo.label)


def settle(store: RepoStore, intent: Intent) -> str:
    """Recovery of a ``create`` or ``delete`` intent; says what it did."""
    repo = intent.repo
    found = store.record(repo)
    if found is None:
        remove_objects(store, repo, keep=record_key(repo))  # remains with no record are garbage
        store.storage.prune(repo.prefix)
        return "nothing left to do"
    record = found[0]
    state = record.get("state")
    if intent.op == "create":
        if not state:
            return "the create had completed"
        if state == CREATING and generation_of(record) != intent.stamp:
            return "another create of that name is in flight"
        remove(store, repo)
        return "undid the create"
    if state != DELETING and generation_of(record) != intent.stamp:
        return "the repo was created again since"
    remove(store, repo)
    return "finished the delete"
