"""Repositories, refs, commits and blobs over a Storage: the hub's data model in action.

A commit is an immutable JSON manifest (commits.py) stored under its id; a branch is a tiny ref
object that names its head commit. A commit becomes visible in one
step, the conditional write of its branch ref, after its blobs and manifest are stored: a reader
resolves a revision to one manifest and never sees half a commit. See the package docstring for
the layout in the bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from urllib.parse import quote, unquote

from reasoner.localhub import errors
from reasoner.localhub.commits import (
    DEFAULT_BRANCH,
    GITATTRIBUTES,
    Commit,
    FileEntry,
    Operation,
    RepoMeta,
    apply_operations,
    git_blob_oid,
    new_commit_id,
    now_iso,
)
from reasoner.localhub.paths import Repo, branch_name, is_commit_id
from reasoner.localhub.storage import NotFound, PreconditionFailed, Storage

log = logging.getLogger(__name__)


def _ref_segment(name: str) -> str:
    # Branch names may hold '/', so 'a' and 'a/b' would clash as folder and file: quote them flat.
    return quote(name, safe="")


class RepoStore:
    """Repos, refs, commits, blobs and the plain per-branch views, over one Storage."""

    def __init__(self, storage: Storage, commit_cache: int = 512) -> None:
        self.storage = storage
        self._cache: OrderedDict[tuple[Repo, str], Commit] = OrderedDict()
        self._cache_size = commit_cache
        self._cache_lock = threading.Lock()
        self._locks: dict[tuple, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, *key) -> threading.RLock:
        """One in-process lock per (repo, branch) or per repo: serialises writers in this process."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.RLock())

    # -- repos -----------------------------------------------------------------------------------
    def meta(self, repo: Repo) -> RepoMeta | None:
        try:
            data = json.loads(self.storage.get(repo.internal + "repo.json"))
        except NotFound:
            return None
        return RepoMeta(repo, bool(data.get("private")), data.get("createdAt", ""))

    def create_repo(self, repo: Repo, private: bool, author: str) -> RepoMeta:
        """Create the repo with an initial commit holding ``.gitattributes``, like the Hub does."""
        with self.lock(repo):
            created = now_iso()
            record = {"type": repo.type, "id": repo.id, "private": private, "createdAt": created}
            try:
                self.storage.put_if(repo.internal + "repo.json", json.dumps(record).encode(), None)
            except PreconditionFailed:
                raise errors.conflict(f"You already created this {repo.type} repo: {repo.id}") from None
            sha = self.put_blob(repo, GITATTRIBUTES)
            entry_commit = new_commit_id()
            files = {
                ".gitattributes": FileEntry(len(GITATTRIBUTES), sha, git_blob_oid(GITATTRIBUTES), False, entry_commit)
            }
            commit = Commit(entry_commit, [], "initial commit", "", [author], created, files)
            self._store_commit(repo, commit)
            self._write_ref(repo, "heads", DEFAULT_BRANCH, commit.id, None)
            self.sync_view(repo, DEFAULT_BRANCH)
            return RepoMeta(repo, private, created)

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.lock(repo):
            key = repo.internal + "repo.json"
            data = json.loads(self.storage.get(key))
            data["private"] = private
            self.storage.put(key, json.dumps(data).encode())

    def delete_repo(self, repo: Repo) -> None:
        """The repo vanishes when its repo.json goes (first); the rest of its objects follow."""
        with self.lock(repo):
            self.storage.delete(repo.internal + "repo.json")
            self.storage.delete_prefix(repo.prefix)
        with self._cache_lock:
            for key in [k for k in self._cache if k[0] == repo]:
                del self._cache[key]

    # -- refs ------------------------------------------------------------------------------------
    def _ref_key(self, repo: Repo, kind: str, name: str) -> str:
        return f"{repo.internal}refs/{kind}/{_ref_segment(name)}"

    def read_ref(self, repo: Repo, kind: str, name: str) -> tuple[str, str] | None:
        found = self.storage.read_versioned(self._ref_key(repo, kind, name))
        if found is None:
            return None
        return json.loads(found[0])["commit"], found[1]

    def _write_ref(self, repo: Repo, kind: str, name: str, commit_id: str, expected: str | None) -> None:
        # The nonce makes every write a new version, so a conditional write can never be fooled by
        # a ref that moved away and back (ABA).
        body = json.dumps({"commit": commit_id, "updated": now_iso(), "nonce": uuid.uuid4().hex}).encode()
        self.storage.put_if(self._ref_key(repo, kind, name), body, expected)

    def refs(self, repo: Repo, kind: str) -> dict[str, str]:
        prefix = f"{repo.internal}refs/{kind}/"
        out = {}
        for key in self.storage.list(prefix):
            name = unquote(key[len(prefix) :])
            ref = self.read_ref(repo, kind, name)
            if ref is not None:
                out[name] = ref[0]
        return dict(sorted(out.items()))

    def create_ref(self, repo: Repo, kind: str, name: str, start: str | None) -> Commit:
        name = branch_name(name)
        commit = self.resolve(repo, start or DEFAULT_BRANCH)
        try:
            self._write_ref(repo, kind, name, commit.id, None)
        except PreconditionFailed:
            what = "branch" if kind == "heads" else "tag"
            raise errors.conflict(f"Reference already exists: {what} {name}") from None
        if kind == "heads":
            self.sync_view(repo, name)
        return commit

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        if kind == "heads" and name == DEFAULT_BRANCH:
            raise errors.forbidden(f"Cannot delete the default branch {DEFAULT_BRANCH}")
        if self.read_ref(repo, kind, name) is None:
            raise errors.revision_not_found(name)
        with self.lock(repo, name):
            self.storage.delete(self._ref_key(repo, kind, name))
            if kind == "heads":
                self.storage.delete_prefix(self.view_prefix(repo, name))
                self.storage.delete(self._view_state_key(repo, name))

    # -- commits ---------------------------------------------------------------------------------
    def _commit_key(self, repo: Repo, commit_id: str) -> str:
        return f"{repo.internal}commits/{commit_id}.json"

    def _store_commit(self, repo: Repo, commit: Commit) -> None:
        self.storage.put(self._commit_key(repo, commit.id), commit.to_json())
        self._remember(repo, commit)

    def _forget(self, repo: Repo, commit_id: str) -> None:
        self.storage.delete(self._commit_key(repo, commit_id))
        with self._cache_lock:
            self._cache.pop((repo, commit_id), None)

    def _remember(self, repo: Repo, commit: Commit) -> None:
        with self._cache_lock:
            self._cache[(repo, commit.id)] = commit
            self._cache.move_to_end((repo, commit.id))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def get_commit(self, repo: Repo, commit_id: str) -> Commit | None:
        with self._cache_lock:
            cached = self._cache.get((repo, commit_id))
        if cached is not None:
            return cached
        try:
            commit = Commit.from_json(self.storage.get(self._commit_key(repo, commit_id)))
        except NotFound:
            return None
        self._remember(repo, commit)
        return commit

    def resolve(self, repo: Repo, revision: str | None) -> Commit:
        """A branch, a tag (``refs/heads/x``, ``refs/tags/x`` too) or a full commit id -> its commit."""
        revision = revision or DEFAULT_BRANCH
        candidates: list[tuple[str, str]] = []
        if revision.startswith("refs/heads/"):
            candidates = [("heads", revision[len("refs/heads/") :])]
        elif revision.startswith("refs/tags/"):
            candidates = [("tags", revision[len("refs/tags/") :])]
        else:
            if is_commit_id(revision):
                commit = self.get_commit(repo, revision)
                if commit is not None:
                    return commit
            candidates = [("heads", revision), ("tags", revision)]
        for kind, name in candidates:
            try:
                branch_name(name)
            except errors.HubError:
                continue  # not a possible ref name: no storage lookup at all
            ref = self.read_ref(repo, kind, name)
            if ref is not None:
                commit = self.get_commit(repo, ref[0])
                if commit is None:
                    raise errors.HubError(500, f"ref {kind}/{name} names a missing commit {ref[0]}")
                return commit
        raise errors.revision_not_found(revision)

    def history(self, repo: Repo, start: Commit) -> Iterator[Commit]:
        seen: set[str] = set()
        current: Commit | None = start
        while current is not None and current.id not in seen:
            seen.add(current.id)
            yield current
            current = self.get_commit(repo, current.parents[0]) if current.parents else None

    def commit(
        self,
        repo: Repo,
        branch: str,
        operations: Iterable[Operation],
        title: str,
        message: str,
        author: str,
        parent: str | None = None,
        commit_id: str | None = None,
        root: bool = False,
    ) -> Commit:
        """Apply ``operations`` on top of ``branch`` and move the branch, atomically.

        With ``parent``, the branch head must still be that commit (a prefix of its id is enough,
        like on the Hub), else 412. Without it, concurrent commits are serialised: in-process by the
        branch lock, across processes by retrying after a lost conditional write. ``root`` makes a
        commit without parents (a squashed history).
        """
        operations = list(operations)
        with self.lock(repo, branch):
            for _ in range(50):
                ref = self.read_ref(repo, "heads", branch)
                if ref is None:
                    raise errors.revision_not_found(branch)
                head_id, version = ref
                if parent is not None and not head_id.startswith(parent.lower()):
                    raise errors.precondition_failed()
                head = self.get_commit(repo, head_id)
                if head is None:
                    raise errors.HubError(500, f"branch {branch} names a missing commit {head_id}")
                new_id = commit_id or new_commit_id()
                files = apply_operations(head.files, operations, new_id)
                commit = Commit(new_id, [] if root else [head_id], title, message, [author], now_iso(), files)
                self._store_commit(repo, commit)
                try:
                    self._write_ref(repo, "heads", branch, commit.id, version)
                except PreconditionFailed:
                    self._forget(repo, commit.id)  # never landed: leave no readable trace
                    if parent is not None:
                        raise errors.precondition_failed() from None
                    continue  # another process moved the branch: rebase on its head and retry
                break
            else:
                raise errors.conflict("Cannot commit: the branch keeps moving; retry later")
            try:
                self.sync_view(repo, branch)
            except Exception:  # the view is a convenience; the commit itself has landed
                log.exception("could not refresh the plain view of %s@%s", repo.label, branch)
            return commit

    # -- blobs -----------------------------------------------------------------------------------
    def blob_key(self, repo: Repo, sha256: str) -> str:
        return f"{repo.internal}blobs/{sha256}"

    def has_blob(self, repo: Repo, sha256: str) -> bool:
        return self.storage.exists(self.blob_key(repo, sha256))

    def blob_size(self, repo: Repo, sha256: str) -> int | None:
        try:
            return self.storage.size(self.blob_key(repo, sha256))
        except NotFound:
            return None

    def put_blob(self, repo: Repo, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(repo, sha):
            self.storage.put(self.blob_key(repo, sha), data)
        return sha

    def put_blob_file(self, repo: Repo, sha256: str, path: str) -> None:
        if not self.has_blob(repo, sha256):
            self.storage.put_file(self.blob_key(repo, sha256), path, move=True)

    def open_blob(self, repo: Repo, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self.storage.open(self.blob_key(repo, sha256), start, end)

    # -- plain views -----------------------------------------------------------------------------
    def view_prefix(self, repo: Repo, branch: str) -> str:
        if branch == DEFAULT_BRANCH:
            return repo.prefix
        return f"{repo.internal}branches/{_ref_segment(branch)}/"

    def _view_state_key(self, repo: Repo, branch: str) -> str:
        return f"{repo.internal}views/{_ref_segment(branch)}.json"

    def sync_view(self, repo: Repo, branch: str) -> None:
        """Make the plain files of ``branch`` match its head: copy changed blobs, drop removed paths."""
        with self.lock(repo, branch):
            ref = self.read_ref(repo, "heads", branch)
            if ref is None:
                return
            target = self.get_commit(repo, ref[0])
            if target is None:
                return
            state_key = self._view_state_key(repo, branch)
            try:
                shown = json.loads(self.storage.get(state_key))["commit"]
            except NotFound:
                shown = None
            if shown == target.id:
                return
            before = self.get_commit(repo, shown) if shown else None
            old_files = before.files if before else {}
            prefix = self.view_prefix(repo, branch)
            internal = repo.internal
            present = {key[len(prefix) :] for key in self.storage.list(prefix) if not key.startswith(internal)}
            for path in sorted(present - set(target.files)):  # first, so a file may replace a folder
                self.storage.delete(prefix + path)
            for path, entry in target.files.items():
                old = old_files.get(path)
                if path not in present or old is None or old.sha256 != entry.sha256:
                    self.storage.copy(self.blob_key(repo, entry.sha256), prefix + path)
            self.storage.put(state_key, json.dumps({"commit": target.id}).encode())
