"""``move_repo`` (``POST /api/repos/move``) and ``super_squash_history``
(``POST /api/{t}/{org}/{name}/super-squash/{branch}``).

A move keeps the whole repo: every branch, tag, commit id, blob and Xet registration. It goes
through the hub's intent journal (``journal.py``) like a create or a delete, and holds the gates of
both repos exclusively (taken in name order, so two moves never deadlock), so no commit, upload,
squash or delete of this process touches either repo meanwhile:

intent ``move`` (source, target, the repo's generation) -> the new name claimed by a hidden record
(``state: creating``, ``lifecycle.reserve``: 409 when a repo has it) -> the source's ``.hub/``
objects copied (blobs, commits, refs, Xet records; not its plain views) -> the source checked
unchanged -> the target's record without state (``lifecycle.publish``: the commit point, the repo
appears under the new name) -> the target's plain views -> the source removed, tombstone first
(``lifecycle.remove``) -> intent removed. The moved record keeps its generation: it is the same
repo under a new name, and the generation tells recovery whether the copy was published.

Start-up recovery (``recovery.py``) settles a ``move`` intent with ``settle``: when the target's
record is published with the move's generation, the views and the removal of the source are
redone; otherwise the hidden copy is removed, and the source, never touched before publication,
stays. A hub killed at any point therefore leaves exactly one readable repo, whole, under one of
the two names, and neither name ever shows half a repo (listings skip hidden records). Hubs of
earlier versions journaled moves under ``.hub-moves/``; such entries become ``move`` intents at
start-up (``adopt_legacy_moves``).

Across hub processes sharing a bucket, the name is claimed by a conditional write and the source
is checked unchanged (record and refs) before publication: a commit that another process lands on
the source meanwhile makes the move fail with 409 instead of being lost.

A squash replaces a branch's history with one root commit holding the same files. It runs under
the repo's gate and the branch lock like every commit (it waits for a move or delete, and a
commit of this process waits for it); across processes its conditional branch write makes a
racing commit turn it into a 412 instead of being lost.
"""

from __future__ import annotations

import json
import logging

from reasoner_hub import errors, lifecycle, permissions
from reasoner_hub.commits import AddFile, Commit
from reasoner_hub.journal import Intent
from reasoner_hub.paths import Repo, repo_from_id, repo_type
from reasoner_hub.repos import RepoStore
from reasoner_hub.storage import NotFound
from reasoner_hub.transport import Request, Response, json_response

log = logging.getLogger(__name__)

LEGACY_JOURNAL = ".hub-moves/"
REPO_RECORD = "repo.json"
NOT_COPIED = ("views/", "branches/")  # plain views are rebuilt from the copied refs; the record is rewritten


def move_repo(store: RepoStore, source: Repo, target: Repo) -> None:
    """Move ``source`` to ``target`` (same type), history included; 404 / 409 when impossible."""
    first, second = sorted((source, target), key=lambda repo: (repo.type, repo.id))
    with store.gate(first).exclusive(), store.gate(second).exclusive():
        found = store.record(source)
        if found is None or found[0].get("state"):
            raise errors.repo_not_found(source.id)
        record, version = found
        generation = lifecycle.generation_of(record)
        moved = {**record, "id": target.id, "generation": generation}
        intent = Intent("move", source, stamp=generation, target=target)
        taken = f"A {target.type} repo named {target.id} already exists"
        reserved = lifecycle.reserve(store, target, moved, intent, taken)
        try:
            refs = _refs(store, source)
            _copy_objects(store, source, target)
            now = store.record(source)
            if now is None or now[1] != version or _refs(store, source) != refs:
                raise errors.conflict(f"{source.id} changed during the move; nothing was moved, retry")
            lifecycle.publish(store, target, moved, reserved)
        except BaseException:
            lifecycle.remove(store, target)  # the hidden copy goes; the source was never touched
            store.journal.end(intent)
            raise
        _finish(store, source, target, generation)
        store.journal.end(intent)


def _refs(store: RepoStore, repo: Repo) -> tuple[dict[str, str], dict[str, str]]:
    return store.refs(repo, "heads"), store.refs(repo, "tags")


def _copy_objects(store: RepoStore, source: Repo, target: Repo) -> None:
    """Blobs, then commits, then refs (key order): a copied ref never names a commit not yet copied."""
    storage = store.storage
    for key in sorted(storage.list(source.internal)):
        rest = key[len(source.internal) :]
        if rest == REPO_RECORD or rest.startswith(NOT_COPIED):
            continue
        storage.copy(key, target.internal + rest)


def _finish(store: RepoStore, source: Repo, target: Repo, generation: str, full: bool = False) -> None:
    """After the target is published: its plain views, then the source goes (re-runnable)."""
    for branch in store.refs(target, "heads"):
        store.journal.begin(Intent("view", target, branch))  # ended by a refresh that completes
        try:
            store.sync_view(target, branch, full=full)
        except Exception:  # a convenience: the old name must go all the same; start-up rebuilds the view
            log.exception("could not write the plain view of %s@%s", target.label, branch)
    found = store.record(source)
    if found is not None and found[0].get("state") != lifecycle.DELETING:
        if lifecycle.generation_of(found[0]) != generation:
            log.warning("%s is another repo than the one moved to %s: left in place", source.label, target.label)
            return
    lifecycle.remove(store, source)


def settle(store: RepoStore, intent: Intent) -> str:
    """Recovery of a ``move`` intent: finish a published move, undo any other; says what it did."""
    source, target, generation = intent.repo, intent.target, intent.stamp or ""
    if target is None:
        return "no target: nothing to do"
    first, second = sorted((source, target), key=lambda repo: (repo.type, repo.id))
    with store.gate(first).exclusive(), store.gate(second).exclusive():
        found = store.record(target)
        if found is not None and lifecycle.generation_of(found[0]) != generation:
            return "another repo has the new name"
        if found is not None and not found[0].get("state"):
            _finish(store, source, target, generation, full=True)
            return "finished the move"
        lifecycle.remove(store, target)  # the unpublished copy, or remains without a record
        return "undid the move"


def adopt_legacy_moves(store: RepoStore) -> list[Intent]:
    """``.hub-moves/`` entries of earlier hub versions, rewritten as ``move`` intents of the journal.

    Those versions published a move by writing the target's record (a copy of the source's, so
    with its generation) and had no hidden states: the stamp is the generation of the target's
    record when there is one (``settle`` then finishes the move), else of the source's (undone).
    """
    adopted = []
    for key in sorted(store.storage.list(LEGACY_JOURNAL)):
        try:
            data = json.loads(store.storage.get(key))
            source = repo_from_id(data["from"][0], data["from"][1])
            target = repo_from_id(data["to"][0], data["to"][1])
        except (NotFound, ValueError, KeyError, TypeError, IndexError, errors.HubError):
            log.warning("dropping the unreadable move journal entry %s", key)
            store.storage.delete(key)
            continue
        found = store.record(target) or store.record(source)
        intent = Intent("move", source, stamp=lifecycle.generation_of(found[0]) if found else None, target=target)
        store.journal.begin(intent)
        store.storage.delete(key)
        adopted.append(intent)
    return adopted


def squash_branch(store: RepoStore, repo: Repo, branch: str, title: str, author: str) -> Commit:
    """One root commit with the files of ``branch``'s head; 412 if another process moves the branch meanwhile."""
    with store.gate(repo).shared(), store.lock(repo, branch):  # the order every commit takes them in
        if store.meta(repo) is None:
            raise errors.repo_not_found(repo.id)
        if store.read_ref(repo, "heads", branch) is None:
            raise errors.revision_not_found(branch)
        head = store.resolve(repo, f"refs/heads/{branch}")
        keep = [AddFile(path, e.sha256, e.size, e.lfs, e.oid, e.xet) for path, e in head.files.items()]
        return store.commit(repo, branch, keep, title=title, message="", author=author, parent=head.id, root=True)


class MoveRoutes:
    """A mixin of HubApp (routes.py), which provides ``store`` and the access checks."""

    store: RepoStore

    def _writable(self, req: Request, repo: Repo): ...  # provided by HubApp
    def _branch_for_write(self, revision: str | None) -> str: ...

    def move(self, req: Request) -> Response:
        data = req.body.json()
        if not isinstance(data, dict) or not data.get("fromRepo") or not data.get("toRepo"):
            raise errors.bad_request("move needs a JSON body with fromRepo, toRepo (and type)")
        kind = repo_type(data.get("type"))
        source = repo_from_id(kind, str(data["fromRepo"]))
        target = repo_from_id(kind, str(data["toRepo"]))
        req.repo = source.label
        if source == target:
            raise errors.bad_request(f"{source.id} is already at that name")
        self._writable(req, source)
        permissions.check_create(req.principal, target)
        move_repo(self.store, source, target)
        return json_response({"url": target.url(req.base_url)})

    def super_squash(self, req: Request, repo: Repo, branch: str) -> Response:
        principal, _ = self._writable(req, repo)
        branch = self._branch_for_write(branch)
        data = req.body.json()
        message = data.get("message") if isinstance(data, dict) else None
        title = str(message or f"Super-squash branch '{branch}'")
        commit = squash_branch(self.store, repo, branch, title, principal.name)
        req.revision = branch
        return json_response({"commitId": commit.id, "commitOid": commit.id})
