"""Repositories, refs, commits and blobs over a Storage: the hub's data model in action.

A commit is an immutable JSON manifest (commits.py) stored under its id; a branch is a tiny ref
object that names its head commit. A commit becomes visible in one
step, the conditional write of its branch ref, after its blobs and manifest are stored: a reader
resolves a revision to one manifest and never sees half a commit. See the package docstring for
the layout in the bucket.

Creating and deleting repos (``lifecycle.py``) and the plain views (``views.py``) are crash-safe
through the intent journal (``journal.py``); every content write here happens under the repo's
shared gate and only while the repo exists (``locks.py``), so a write that races a delete is
refused rather than left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

from reasoner_hub import errors, lifecycle, views
from reasoner_hub.commits import DEFAULT_BRANCH, PENDING, Commit, Operation, RepoMeta, apply_operations
from reasoner_hub.commits import now_iso, seal
from reasoner_hub.git.lineage import Lineage
from reasoner_hub.journal import Intent, Journal
from reasoner_hub.locks import LockTable, RepoGate
from reasoner_hub.paths import Repo, branch_name, is_commit_id
from reasoner_hub.storage import NotFound, PreconditionFailed, Storage

log = logging.getLogger(__name__)
_ref_segment = views.ref_segment


class RepoStore:
    """Repos, refs, commits, blobs and the plain per-branch views, over one Storage."""

    def __init__(self, storage: Storage, commit_cache: int = 512) -> None:
        self.storage = storage
        self.journal = Journal(storage)
        self._cache: OrderedDict[tuple[Repo, str], Commit] = OrderedDict()
        self._cache_size = commit_cache
        self._cache_lock = threading.Lock()
        self._locks = LockTable()
        self.lineage = Lineage()

    def lock(self, *key) -> threading.RLock:
        """One in-process lock per (repo, branch) or per repo: serialises writers in this process."""
        return self._locks.lock(*key)

    def gate(self, repo: Repo) -> RepoGate:
        """The repo's readers-writer gate: content writes share it, create and delete hold it alone."""
        return self._locks.gate(repo)

    # -- repos -----------------------------------------------------------------------------------
    def record(self, repo: Repo) -> tuple[dict, str] | None:
        """The repo's record (``.hub/repo.json``) and its version, whatever its state; None if absent."""
        found = self.storage.read_versioned(lifecycle.record_key(repo))
        if found is None:
            return None
        try:
            data = json.loads(found[0])
        except ValueError:
            data = {"state": lifecycle.DELETING}  # a record that cannot be read never shows a repo
        return (data if isinstance(data, dict) else {"state": lifecycle.DELETING}), found[1]

    def state(self, repo: Repo) -> str | None:
        """``ready``, ``creating``, ``deleting``, or None when there is no such repo."""
        found = self.record(repo)
        return None if found is None else found[0].get("state") or "ready"

    def meta(self, repo: Repo) -> RepoMeta | None:
        """The repo as clients see it: None while it is being created or deleted."""
        found = self.record(repo)
        if found is None or found[0].get("state"):
            return None
        data = found[0]
        return RepoMeta(repo, bool(data.get("private")), data.get("createdAt", ""), lifecycle.generation_of(data))

    def create_repo(self, repo: Repo, private: bool, author: str) -> RepoMeta:
        """Create the repo with an initial commit holding ``.gitattributes``, like the Hub does (atomic)."""
        return lifecycle.create_repo(self, repo, private, author)

    def delete_repo(self, repo: Repo) -> bool:
        """Hide the repo at once, then remove every object of it; survives a crash at any point.

        False when there was no such repo (it may have been moved or deleted while this waited).
        """
        return lifecycle.delete_repo(self, repo)

    def forget_repo(self, repo: Repo) -> None:
        with self._cache_lock:
            for key in [k for k in self._cache if k[0] == repo]:
                del self._cache[key]

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.gate(repo).shared(), self.lock(repo):
            found = self.record(repo)
            if found is None or found[0].get("state"):
                raise errors.repo_not_found(repo.id)
            data, version = found
            data["private"] = private
            try:
                self.storage.put_if(lifecycle.record_key(repo), json.dumps(data).encode(), version)
            except PreconditionFailed:
                raise errors.conflict(f"{repo.id} changed meanwhile; retry") from None

    def is_generation(self, repo: Repo, generation: str) -> bool:
        """Whether ``repo`` exists and is still the incarnation ``generation`` names."""
        meta = self.meta(repo)
        return meta is not None and bool(generation) and meta.generation == generation

    def _require(self, repo: Repo, *states: str) -> None:
        if self.state(repo) not in (states or ("ready",)):
            raise errors.repo_not_found(repo.id)

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
        with self.gate(repo).shared():
            self._require(repo)
            commit = self.resolve(repo, start or DEFAULT_BRANCH)
            if kind == "heads":
                self.journal.begin(Intent("view", repo, name))
            try:
                self._write_ref(repo, kind, name, commit.id, None)
            except PreconditionFailed:
                what = "branch" if kind == "heads" else "tag"
                raise errors.conflict(f"Reference already exists: {what} {name}") from None
            finally:
                if kind == "heads":
                    self.sync_view(repo, name)  # shows the new branch, or ends the intent of a refused one
            return commit

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        if kind == "heads" and name == DEFAULT_BRANCH:
            raise errors.forbidden(f"Cannot delete the default branch {DEFAULT_BRANCH}")
        with self.gate(repo).shared(), self.lock(repo, name):
            self._require(repo)
            if self.read_ref(repo, kind, name) is None:
                raise errors.revision_not_found(name)
            if kind == "heads":
                self.journal.begin(Intent("view", repo, name))
            self.storage.delete(self._ref_key(repo, kind, name))
            if kind == "heads":
                self.sync_view(repo, name)  # the branch is gone: its view goes, then its intent

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

    def git_id(self, repo: Repo, commit: Commit) -> str:
        """The id ``git`` knows ``commit`` by: its id, unless it was stored before commits had git ids."""
        return self.lineage.git_id(repo, commit, lambda commit_id: self.get_commit(repo, commit_id))

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
        view = Intent("view", repo, branch)
        with self.gate(repo).shared(), self.lock(repo, branch):
            self._require(repo)
            self.journal.begin(view)  # before the branch moves: a crash after it leaves the view to fix
            try:
                commit = self._land(repo, branch, operations, title, message, author, parent, commit_id, root)
            except BaseException:
                self.journal.end(view)
                raise
            try:
                self.sync_view(repo, branch)
            except Exception:  # the view is a convenience; the commit itself has landed
                log.exception("could not refresh the plain view of %s@%s", repo.label, branch)
            return commit

    def _land(self, repo: Repo, branch: str, operations: list[Operation], title: str, message: str,
              author: str, parent: str | None, commit_id: str | None, root: bool = False) -> Commit:
        """Store the manifest, then move the branch by one conditional write (retried on a lost race)."""
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
            files = apply_operations(head.files, operations, PENDING)
            parents, git_parents = ([], []) if root else ([head_id], [self.git_id(repo, head)])
            commit = seal(parents, git_parents, title, message, author, now_iso(), files, commit_id)
            existed = self.get_commit(repo, commit.id) is not None  # the same git commit made before
            if not existed:
                self._store_commit(repo, commit)
            try:
                self._write_ref(repo, "heads", branch, commit.id, version)
            except PreconditionFailed:
                if not existed:
                    self._forget(repo, commit.id)  # never landed: leave no readable trace
                if parent is not None:
                    raise errors.precondition_failed() from None
                continue  # another process moved the branch: rebase on its head and retry
            return commit
        raise errors.conflict("Cannot commit: the branch keeps moving; retry later")

    def add_detached_commit(self, repo: Repo, operations: list[Operation], title: str, author: str,
                            commit_id: str | None) -> Commit:
        """Store a commit of exactly the files ``operations`` add, with no parents and no ref moved: a revision
        copied from another hub (``mirror.py``) under its own id, named by a ref afterwards or by that id alone."""
        with self.gate(repo).shared():
            self._require(repo)
            known = self.get_commit(repo, commit_id) if commit_id else None
            if known is not None:
                return known
            files = apply_operations({}, operations, PENDING)
            commit = seal([], [], title, "", author, now_iso(), files, commit_id)
            self._store_commit(repo, commit)
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
            with self.gate(repo).shared():
                self._require(repo, "ready", lifecycle.CREATING)  # never into a repo being deleted
                self.storage.put(self.blob_key(repo, sha), data)
        return sha

    def put_blob_file(self, repo: Repo, sha256: str, path: str, generation: str | None = None) -> None:
        """Store the file at ``path`` as a blob; with ``generation``, only into that incarnation of the repo."""
        if not self.has_blob(repo, sha256):
            with self.gate(repo).shared():
                self._require(repo)
                if generation is not None and not self.is_generation(repo, generation):
                    raise errors.repo_not_found(repo.id)
                self.storage.put_file(self.blob_key(repo, sha256), path, move=True)

    def open_blob(self, repo: Repo, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self.storage.open(self.blob_key(repo, sha256), start, end)

    # -- plain views (views.py) ------------------------------------------------------------------
    def view_prefix(self, repo: Repo, branch: str) -> str:
        return views.view_prefix(repo, branch)

    def _view_state_key(self, repo: Repo, branch: str) -> str:
        return views.view_state_key(repo, branch)

    def sync_view(self, repo: Repo, branch: str, full: bool = False) -> None:
        """Make the plain files of ``branch`` match its head (see views.py)."""
        views.sync_view(self, repo, branch, full)
