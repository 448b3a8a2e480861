"""The git id and git commit object of every commit a repo holds.

A commit made by this hub since commits have git ids carries its git object (``Commit.git``) and
its id is that object's id, so ``git log`` and the Hub API agree. A commit stored before (random
id) or copied from another hub with its id (a mirror) has none: its git object is synthesised from
the manifest in the same format, with its parents' git ids, so its git id differs from its API id.
Synthesised ids are deterministic (same manifests, same ids, after any restart) and cached here.
A commit of this hub has at most one parent (histories are linear).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from reasoner_hub.commits import Commit
from reasoner_hub.git.objects import build_trees, commit_object, object_id
from reasoner_hub.paths import Repo

Loader = Callable[[str], "Commit | None"]


def synthesise(commit: Commit, git_parents: list[str]) -> bytes:
    """The git commit object of a commit that has none, given its parents' git ids."""
    tree, _ = build_trees({path: entry.oid for path, entry in commit.files.items()})
    author = commit.authors[0] if commit.authors else "unknown"
    return commit_object(tree, git_parents, author, commit.date, commit.title, commit.message)


class Lineage:
    """Git ids of commits, with the synthesised ones remembered (per repo and API id)."""

    def __init__(self, size: int = 4096) -> None:
        self._ids: OrderedDict[tuple[Repo, str], str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _cached(self, repo: Repo, commit_id: str) -> str | None:
        with self._lock:
            return self._ids.get((repo, commit_id))

    def _remember(self, repo: Repo, commit_id: str, git_id: str) -> None:
        with self._lock:
            self._ids[(repo, commit_id)] = git_id
            self._ids.move_to_end((repo, commit_id))
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)

    def git_id(self, repo: Repo, commit: Commit, load: Loader) -> str:
        """The git id of ``commit``; ``load`` reads a commit of the repo by API id (None if missing)."""
        if commit.git is not None:
            return commit.id
        known: dict[str, str] = {}
        chain: list[Commit] = []
        current: Commit | None = commit
        while current is not None and current.git is None and current.id not in known:
            cached = self._cached(repo, current.id)
            if cached is not None:
                known[current.id] = cached
                break
            chain.append(current)
            parent = current.parents[0] if current.parents else None
            current = load(parent) if parent else None
            if current is not None and current.git is not None:
                known[current.id] = current.id
        for item in reversed(chain):  # oldest first: each parent's id is known when its child needs it
            parents = [known[p] for p in item.parents[:1] if p in known]
            known[item.id] = object_id("commit", synthesise(item, parents))
            self._remember(repo, item.id, known[item.id])
        return known[commit.id]

    def commit_object(self, repo: Repo, commit: Commit, load: Loader) -> bytes:
        """The body of ``commit``'s git commit object."""
        if commit.git is not None:
            return commit.git.encode()
        parents = []
        for parent_id in commit.parents[:1]:
            parent = load(parent_id)
            if parent is not None:
                parents.append(self.git_id(repo, parent, load))
        return synthesise(commit, parents)
