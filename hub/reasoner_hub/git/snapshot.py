"""A repo as git sees it, read once per request: its refs and commits by git id, which commits a
fetch needs, and the objects (commits, trees, blobs) that carry them.

Trees are rebuilt from the manifests (git/objects.py); a regular file's blob is its stored bytes,
an LFS or Xet file's blob is its LFS pointer, so git-lfs fetches the content through the LFS API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reasoner_hub.commits import DEFAULT_BRANCH, Commit, lfs_pointer
from reasoner_hub.git.objects import build_trees
from reasoner_hub.git.pack import PackObject
from reasoner_hub.paths import Repo
from reasoner_hub.repos import RepoStore


@dataclass
class Snapshot:
    """Refs (``HEAD`` first, its target in ``head``) and every commit they reach, by git id."""

    refs: list[tuple[str, str]] = field(default_factory=list)
    head: str | None = None
    commits: dict[str, Commit] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)


def snapshot(store: RepoStore, repo: Repo) -> Snapshot:
    """The repo's branches and tags, each walked down its history once."""
    view = Snapshot()
    branches, tags = store.refs(repo, "heads"), store.refs(repo, "tags")
    named = [(f"refs/heads/{n}", c) for n, c in branches.items()] + [(f"refs/tags/{n}", c) for n, c in tags.items()]
    for name, commit_id in named:
        commit = store.get_commit(repo, commit_id)
        if commit is not None:
            view.refs.append((name, _walk(store, repo, commit, view)))
    if DEFAULT_BRANCH in branches:
        view.head = f"refs/heads/{DEFAULT_BRANCH}"
        view.refs.insert(0, ("HEAD", dict(view.refs)[view.head]))
    return view


def _walk(store: RepoStore, repo: Repo, tip: Commit, view: Snapshot) -> str:
    """Add ``tip`` and its ancestors to ``view`` (stopping at known ones); the tip's git id."""
    tip_id = store.git_id(repo, tip)
    child: str | None = None
    for commit in store.history(repo, tip):
        git_id = tip_id if child is None else store.git_id(repo, commit)
        if child is not None:
            view.parents[child] = [git_id]
        if git_id in view.commits:
            break
        view.commits[git_id] = commit
        view.parents.setdefault(git_id, [])
        child = git_id
    return tip_id


def include(store: RepoStore, repo: Repo, view: Snapshot, git_id: str) -> bool:
    """Add a commit no ref reaches any more (a branch moved or was squashed since the client listed
    the refs), and its history, when it has a git object of its own; False when there is none."""
    commit = store.get_commit(repo, git_id)
    if commit is None or commit.git is None:
        return False
    _walk(store, repo, commit, view)
    return True


@dataclass
class Selection:
    """What a fetch sends: ``send`` (git ids), ``boundary`` (commits the client has, whose objects it
    need not get again), ``shallow`` (sent commits whose parents are not sent, for ``--depth``) and
    ``unshallow`` (commits the client had as shallow whose parents it now gets)."""

    send: list[str] = field(default_factory=list)
    boundary: set[str] = field(default_factory=set)
    shallow: list[str] = field(default_factory=list)
    unshallow: list[str] = field(default_factory=list)


def common_commits(view: Snapshot, haves: Iterable[str]) -> list[str]:
    """The haves this repo has, in order, once each."""
    return list(dict.fromkeys(h for h in haves if h in view.commits))


def _held(view: Snapshot, common: list[str], client_shallow: set[str]) -> set[str]:
    """Every commit the client has: the common ones and their ancestors, down to its shallow ones."""
    held: set[str] = set()
    pending = list(common)
    while pending:
        current = pending.pop()
        if current not in held:
            held.add(current)
            if current not in client_shallow:
                pending.extend(view.parents.get(current, []))
    return held


def select(view: Snapshot, wants: list[str], common: list[str], depth: int | None = None,
           client_shallow: set[str] = frozenset()) -> Selection:
    """The commits reachable from ``wants`` (all known) that the client lacks, at most ``depth`` deep
    per want. Without ``depth``, the client's shallow commits count as having no parents (they stay
    shallow); with it, a shallow commit of the client within the depth gets its parents."""
    held = _held(view, common, client_shallow)
    chosen = Selection()
    seen: set[str] = set()
    for want in wants:
        current: str | None = want
        level = 1
        while current is not None and current not in seen:
            seen.add(current)
            parents = view.parents.get(current, [])
            if current in held:
                chosen.boundary.add(current)
                if depth is None or current not in client_shallow or level >= depth or not parents:
                    break
                chosen.unshallow.append(current)
            else:
                chosen.send.append(current)
                if depth is not None and level >= depth:
                    if parents:
                        chosen.shallow.append(current)
                    break
                if depth is None and current in client_shallow:
                    break
            current, level = (parents[0] if parents else None), level + 1
    return chosen


def pack_objects(store: RepoStore, repo: Repo, view: Snapshot, chosen: Selection) -> list[PackObject]:
    """Commit, tree and blob objects of the chosen commits, none the boundary commits already hold."""
    held: set[str] = set()
    for git_id in chosen.boundary:
        files = view.commits[git_id].files
        held.update(build_trees({p: e.oid for p, e in files.items()})[1])
        held.update(e.oid for e in files.values())
    objects: list[PackObject] = []
    load = lambda commit_id: store.get_commit(repo, commit_id)  # noqa: E731
    for git_id in chosen.send:
        commit = view.commits[git_id]
        body = store.lineage.commit_object(repo, commit, load)
        objects.append(PackObject("commit", len(body), lambda body=body: [body]))
        _, trees = build_trees({path: entry.oid for path, entry in commit.files.items()})
        for tree_id, tree in trees.items():
            if tree_id not in held:
                held.add(tree_id)
                objects.append(PackObject("tree", len(tree), lambda tree=tree: [tree]))
        for entry in commit.files.values():
            if entry.oid in held:
                continue
            held.add(entry.oid)
            if entry.lfs:
                pointer = lfs_pointer(entry.sha256, entry.size)
                objects.append(PackObject("blob", len(pointer), lambda pointer=pointer: [pointer]))
            else:
                objects.append(PackObject("blob", entry.size, lambda sha=entry.sha256: store.open_blob(repo, sha)))
    return objects
