"""Plain views: the files of a branch head as ordinary objects, for people and S3 tools.

``main`` shows at the repo's root (``models/org/name/config.json``), other branches under
``.hub/branches/<branch>/``; ``.hub/views/<branch>.json`` says which commit the files show. The hub
never reads them to serve a request: they follow the branch head after every change.

A refresh copies changed blobs and removes paths the head no longer has, diffing against the
commit the view showed. That diff is only right when the view really shows that commit, so a
refresh that may have stopped half way (a crash, a storage error) is redone in full: every file
copied again. Start-up recovery does that for every branch whose ``view`` intent is still in the
journal (written before a branch moves, removed once its view matches); a refresh that fails in a
running hub drops the view's state, so the next one is full too.
"""

from __future__ import annotations

import errno
import json
import logging
from typing import ContextManager, Protocol
from urllib.parse import quote

from reasoner_hub.commits import DEFAULT_BRANCH, Commit
from reasoner_hub.journal import Intent, Journal
from reasoner_hub.locks import RepoGate
from reasoner_hub.paths import Repo
from reasoner_hub.storage import NotFound, Storage

log = logging.getLogger(__name__)


class RepoStore(Protocol):
    """What a view refresh needs of the repo store (``repos.RepoStore`` passes itself)."""

    storage: Storage
    journal: Journal

    def gate(self, repo: Repo) -> RepoGate: ...
    def lock(self, *key) -> ContextManager: ...
    def state(self, repo: Repo) -> str | None: ...
    def read_ref(self, repo: Repo, kind: str, name: str) -> tuple[str, str] | None: ...
    def get_commit(self, repo: Repo, commit_id: str) -> Commit | None: ...
    def blob_key(self, repo: Repo, sha256: str) -> str: ...


def ref_segment(name: str) -> str:
    # Branch names may hold '/', so 'a' and 'a/b' would clash as folder and file: quote them flat.
    return quote(name, safe="")


def view_prefix(repo: Repo, branch: str) -> str:
    if branch == DEFAULT_BRANCH:
        return repo.prefix
    return f"{repo.internal}branches/{ref_segment(branch)}/"


def view_state_key(repo: Repo, branch: str) -> str:
    return f"{repo.internal}views/{ref_segment(branch)}.json"


def sync_view(store: RepoStore, repo: Repo, branch: str, full: bool = False) -> None:
    """Make the plain files of ``branch`` match its head (``full``: rewrite every file), then end its intent."""
    with store.gate(repo).shared(), store.lock(repo, branch):
        if store.state(repo) not in ("ready", "creating"):
            return  # gone or being deleted: the delete removes every plain file
        ref = store.read_ref(repo, "heads", branch)
        if ref is None:
            if branch != DEFAULT_BRANCH:
                _drop(store, repo, branch)  # a deleted branch leaves no view behind
        else:
            target = store.get_commit(repo, ref[0])
            if target is None:
                log.error("branch %s of %s names a missing commit %s: its view is left as is", branch, repo.label, ref[0])
                return
            try:
                _refresh(store, repo, branch, target, full)
            except BaseException:
                # The view may be half refreshed: forget what it shows so that the next refresh is full.
                store.storage.delete(view_state_key(repo, branch))
                raise
        store.journal.end(Intent("view", repo, branch))


def _drop(store: RepoStore, repo: Repo, branch: str) -> None:
    store.storage.delete_prefix(view_prefix(repo, branch))
    store.storage.delete(view_state_key(repo, branch))


def _shown(store: RepoStore, repo: Repo, branch: str) -> str | None:
    try:
        return json.loads(store.storage.get(view_state_key(repo, branch)))["commit"]
    except (NotFound, ValueError, KeyError, TypeError):
        return None


def _present(store: RepoStore, repo: Repo, prefix: str) -> set[str]:
    keys = store.storage.list(prefix)
    if prefix == repo.prefix:  # main's view shares the repo's root with .hub/
        return {key[len(prefix) :] for key in keys if not key.startswith(repo.internal)}
    return {key[len(prefix) :] for key in keys}


def _refresh(store: RepoStore, repo: Repo, branch: str, target: Commit, full: bool) -> None:
    shown = None if full else _shown(store, repo, branch)
    if shown == target.id:
        return
    before = store.get_commit(repo, shown) if shown else None
    old_files = before.files if before else {}
    prefix = view_prefix(repo, branch)
    present = _present(store, repo, prefix)
    for path in sorted(present - set(target.files)):  # first, so a file may replace a folder
        store.storage.delete(prefix + path)
    for path, entry in target.files.items():
        old = old_files.get(path)
        if path not in present or old is None or old.sha256 != entry.sha256:
            try:
                store.storage.copy(store.blob_key(repo, entry.sha256), prefix + path)
            except (OSError, ValueError) as error:
                if isinstance(error, OSError) and error.errno != errno.ENAMETOOLONG:
                    raise
                # A name this store cannot hold (stored before such paths were refused): skip it, never block.
                log.warning("the plain view of %s@%s cannot show %r: %s", repo.label, branch, path, error)
    # Not durable: if a power cut loses it, the view intent (durable) makes recovery redo the view in full.
    store.storage.put(view_state_key(repo, branch), json.dumps({"commit": target.id}).encode(), durable=False)
