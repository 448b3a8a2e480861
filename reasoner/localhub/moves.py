"""``move_repo`` (``POST /api/repos/move``) and ``super_squash_history``
(``POST /api/{t}/{org}/{name}/super-squash/{branch}``).

A move keeps the whole repo: every branch, tag, commit id and blob. It copies the source's ``.hub/``
objects to the new name, publishes the copy by writing its ``repo.json`` (the one write that makes a
repo exist), then deletes the source with the store's own delete. A journal object
(``.hub-moves/<id>.json``) is written before the first copy and removed after the source is gone;
at start-up ``recover_moves`` finishes every journalled move whose copy was published (the source is
deleted) and rolls back every other one (the unpublished copy is removed), so a server killed
midway leaves exactly one readable repo, whole, under one of the two names. In one hub process a
move holds the locks of both repos and of every source branch, so commits wait for it (and then
find the source gone); hub processes sharing a bucket should not move the same repos at once.

A squash replaces a branch's history with one root commit holding the same files: one conditional
write of the branch, so a commit racing it makes it fail with 412 instead of being lost.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import ExitStack

from reasoner.localhub import errors, permissions
from reasoner.localhub.commits import AddFile, Commit
from reasoner.localhub.paths import Repo, repo_from_id, repo_type
from reasoner.localhub.repos import RepoStore
from reasoner.localhub.storage import NotFound, PreconditionFailed
from reasoner.localhub.transport import Request, Response, json_response

log = logging.getLogger(__name__)

JOURNAL = ".hub-moves/"
REPO_RECORD = "repo.json"
NOT_COPIED = ("views/", "branches/")  # plain views are rebuilt from the copied refs; the record is rewritten


def move_repo(store: RepoStore, source: Repo, target: Repo) -> None:
    """Move ``source`` to ``target`` (same type), history included; 404 / 409 when impossible."""
    first, second = sorted((source, target), key=lambda repo: (repo.type, repo.id))
    with ExitStack() as held:
        held.enter_context(store.lock(first))
        held.enter_context(store.lock(second))
        if store.meta(source) is None:
            raise errors.repo_not_found(source.id)
        if store.meta(target) is not None:
            raise errors.conflict(f"A {target.type} repo named {target.id} already exists")
        branches = store.refs(source, "heads")
        for branch in sorted(branches):
            held.enter_context(store.lock(source, branch))
        refs_before = (branches, store.refs(source, "tags"))
        storage = store.storage
        storage.delete_prefix(target.prefix)  # objects of a name without a record are no repo's
        journal = f"{JOURNAL}{uuid.uuid4().hex}.json"
        record = {"from": [source.type, source.id], "to": [target.type, target.id]}
        storage.put(journal, json.dumps(record).encode())
        try:
            _copy_objects(store, source, target)
            if (store.refs(source, "heads"), store.refs(source, "tags")) != refs_before:
                raise errors.conflict(f"{source.id} changed during the move; nothing was moved, retry")
            _publish(store, source, target)
        except BaseException:
            storage.delete_prefix(target.prefix)
            storage.delete(journal)
            raise
        _finish(store, source, target)
        storage.delete(journal)


def _copy_objects(store: RepoStore, source: Repo, target: Repo) -> None:
    """Blobs, then commits, then refs (key order): a copied ref never names a commit not yet copied."""
    storage = store.storage
    for key in sorted(storage.list(source.internal)):
        rest = key[len(source.internal) :]
        if rest == REPO_RECORD or rest.startswith(NOT_COPIED):
            continue
        storage.copy(key, target.internal + rest)


def _publish(store: RepoStore, source: Repo, target: Repo) -> None:
    """The commit point of a move: the target's record, written only if the name is still free."""
    record = json.loads(store.storage.get(source.internal + REPO_RECORD))
    record["id"] = target.id
    try:
        store.storage.put_if(target.internal + REPO_RECORD, json.dumps(record).encode(), None)
    except PreconditionFailed:
        raise errors.conflict(f"A {target.type} repo named {target.id} was created meanwhile") from None


def _finish(store: RepoStore, source: Repo, target: Repo) -> None:
    """After the target is published: its plain views, then the source goes (idempotent)."""
    for branch in store.refs(target, "heads"):
        store.sync_view(target, branch)
    if store.meta(source) is not None:
        store.delete_repo(source)
    else:
        store.storage.delete_prefix(source.prefix)


def recover_moves(store: RepoStore) -> int:
    """Finish published moves and roll back unpublished ones left by a stopped server; returns how many."""
    storage = store.storage
    done = 0
    for key in sorted(storage.list(JOURNAL)):
        try:
            record = json.loads(storage.get(key))
            source = repo_from_id(record["from"][0], record["from"][1])
            target = repo_from_id(record["to"][0], record["to"][1])
        except (NotFound, ValueError, KeyError, TypeError, IndexError, errors.HubError):
            log.warning("ignoring unreadable move journal %s", key)
            storage.delete(key)
            continue
        if store.meta(target) is not None:
            log.info("finishing the move of %s to %s", source.label, target.label)
            _finish(store, source, target)
        else:
            log.info("rolling back the move of %s to %s", source.label, target.label)
            storage.delete_prefix(target.prefix)
        storage.delete(key)
        done += 1
    return done


def squash_branch(store: RepoStore, repo: Repo, branch: str, title: str, author: str) -> Commit:
    """One root commit with the files of ``branch``'s head; 412 if the branch moves meanwhile."""
    ref = store.read_ref(repo, "heads", branch)
    if ref is None:
        raise errors.revision_not_found(branch)
    head = store.resolve(repo, f"refs/heads/{branch}")
    keep = [AddFile(path, entry.sha256, entry.size, entry.lfs, entry.oid) for path, entry in head.files.items()]
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
