"""Keeping mirrored repos current: revisions fetched on demand, ``main`` checked again when due.

A repo mirrored from the upstream (``upstream.py``) records what it shows in ``<repo>/.hub/mirror.json``
(repos mirrored by hubs older than the record count as mirrors when their ``main`` head was written
by the mirror). For such a repo:

* a revision it lacks (a branch, a tag, a full commit id) is fetched from the upstream when a
  request asks for it: the commit keeps the upstream id and holds the upstream's files (not its
  history: no parents), a branch or tag of that name is made to point at it, and files the repo
  already holds (same git id, or an LFS blob it stores) are not downloaded again. Fetched once, like
  the repo itself: those branches and tags are never checked again.
* ``main`` is checked again against the upstream when ``ttl_s`` has passed since the last check
  (``--upstream-ttl-minutes``; None: never, the repo stays as first fetched), and on
  ``reasoner-hub mirror refresh``. A moved upstream ``main`` becomes a new commit on ``main`` with
  the upstream id, the previous one as its parent; if ``main`` has local commits since the last
  mirrored one, it is left alone (logged; the command refuses) rather than overwritten.

An unreachable upstream makes a request for a missing revision answer 502; a check of ``main``
that fails is logged and the repo keeps serving what it has.
"""

from __future__ import annotations

import logging
import threading
import time

from reasoner_hub.commits import AddFile, Commit, DeleteFile, RepoMeta
from reasoner_hub.errors import HubError
from reasoner_hub.paths import Repo, is_commit_id
from reasoner_hub.upstream import Upstream, read_record, write_record

log = logging.getLogger(__name__)
MAIN_NAMES = (None, "", "main", "refs/heads/main")
MIRROR_AUTHOR = "upstream"


class NotCurrent(Exception):
    """``main`` cannot follow the upstream: the text says why (not a mirror, local commits, gone upstream)."""


class Mirror:
    """The upstream of a hub, and the rules for keeping the repos mirrored from it current."""

    def __init__(self, upstream: Upstream, ttl_s: float | None = None) -> None:
        self.upstream = upstream
        self.store = upstream.store
        self.ttl_s = ttl_s
        self._checked: dict[tuple[Repo, str], float] = {}  # (repo, generation) -> monotonic time of the last check
        self._guard = threading.Lock()
        self._locks: dict[Repo, threading.Lock] = {}

    def fetch(self, repo: Repo) -> bool:
        """A repo missing here: mirror it whole (``Upstream.fetch``)."""
        return self.upstream.fetch(repo)

    def _lock(self, repo: Repo) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo, threading.Lock())

    def record(self, repo: Repo) -> dict | None:
        """What ``repo`` mirrors; None for a repo made here."""
        record = read_record(self.store, repo)
        if record is None:
            try:
                head = self.store.resolve(repo, "main")
            except HubError:
                return None
            if head.authors == [MIRROR_AUTHOR]:  # mirrored before records existed
                record = {"upstream": self.upstream.url, "main": head.id}
        return record

    def keep_current(self, repo: Repo, meta: RepoMeta, revision: str | None) -> None:
        """Before a read of ``revision``: fetch it if the repo is a mirror that lacks it; check ``main`` if due."""
        if revision in MAIN_NAMES:
            self._refresh_if_due(repo, meta)
        elif not self._has(repo, revision):
            with self._lock(repo):
                if not self._has(repo, revision) and self.record(repo) is not None:
                    with self.upstream.answering(f"{repo.label}@{revision}"):
                        self._fetch_revision(repo, revision)

    def _has(self, repo: Repo, revision: str) -> bool:
        try:
            self.store.resolve(repo, revision)
        except HubError as error:
            if error.status == 404:
                return False
            raise
        return True

    def _fetch_revision(self, repo: Repo, revision: str) -> None:
        kind, name = None, revision
        for prefix, ref_kind in (("refs/heads/", "heads"), ("refs/tags/", "tags")):
            if revision.startswith(prefix):
                kind, name = ref_kind, revision[len(prefix):]
        sha = self.upstream.revision_id(repo, revision)
        if sha is None:
            return  # the upstream has no such revision either: the read answers 404
        commit = self.store.get_commit(repo, sha)
        if commit is None:
            files = self.upstream.files_at(repo, sha, self.store.resolve(repo, "main").files)
            commit = self.store.add_detached_commit(repo, list(files.values()), self._title(repo, sha),
                                                    MIRROR_AUTHOR, sha if is_commit_id(sha) else None)
        if kind is None and not is_commit_id(revision):
            kind = self.upstream.ref_kind(repo, name)
        if kind is not None:
            try:
                self.store.create_ref(repo, kind, name, commit.id)
            except HubError as error:
                if error.status != 409:  # made meanwhile by another process: fine
                    raise
        log.info("mirrored %s@%s from %s (commit %s)", repo.label, revision, self.upstream.url, commit.id)

    def _title(self, repo: Repo, sha: str) -> str:
        return f"Mirror of {self.upstream.url} {repo.label}@{sha}"

    def _refresh_if_due(self, repo: Repo, meta: RepoMeta) -> None:
        if self.ttl_s is None:
            return
        key = (repo, meta.generation)
        now = time.monotonic()
        with self._guard:
            last = self._checked.get(key)
            if last is not None and now - last < self.ttl_s:
                return
            self._checked[key] = now  # one check per period, even when it fails
        if self.record(repo) is None:
            return
        try:
            self.refresh(repo)
        except Exception as problem:  # the repo keeps serving what it has; the next period tries again
            log.warning("mirror of %s not refreshed: %s", repo.label, problem)

    def refresh(self, repo: Repo) -> str:
        """Check ``main`` against the upstream now; one line saying what changed. NotCurrent when it cannot."""
        with self._lock(repo), self.upstream.answering(f"{repo.label}@main"):
            record = self.record(repo)
            if record is None:
                raise NotCurrent(f"{repo.label} was not mirrored from an upstream")
            sha = self.upstream.revision_id(repo, "main")
            if sha is None:
                raise NotCurrent(f"{self.upstream.url} no longer serves {repo.label}@main; the mirror keeps its copy")
            if sha == record["main"]:
                return f"{repo.label}: main is current ({sha})"
            head = self.store.resolve(repo, "main")
            if head.id != record["main"]:
                raise NotCurrent(f"{repo.label}: main has commits made here since the mirrored {record['main']} "
                                 f"(head {head.id}); not replaced by the upstream's {sha}")
            self.store.commit(repo, "main", self._operations(repo, sha, head), self._title(repo, sha), "",
                              MIRROR_AUTHOR, parent=head.id, commit_id=sha if is_commit_id(sha) else None)
            write_record(self.store, repo, self.upstream.url, sha)
            log.info("mirror of %s moved main from %s to %s", repo.label, record["main"], sha)
            return f"{repo.label}: main moved from {record['main']} to {sha}"

    def _operations(self, repo: Repo, sha: str, head: Commit) -> list:
        """What turns ``head``'s files into those of the upstream commit ``sha`` (downloading only what is new)."""
        known = self.store.get_commit(repo, sha)
        if known is not None:  # fetched before as a revision: nothing to download
            target = {path: AddFile(path, e.sha256, e.size, e.lfs, e.oid, e.xet) for path, e in known.files.items()}
        else:
            target = self.upstream.files_at(repo, sha, head.files)
        gone = [DeleteFile(path) for path in head.files if path not in target]
        return [*target.values(), *gone]
