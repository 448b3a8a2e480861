"""Moves, deletes, commits, squashes and listings of one hub process while a move or a delete is
half way: the store is stopped at a chosen write (a real folder store that waits there), and the
other requests go over HTTP through the real client meanwhile.

* a repo being moved shows under neither name's listing twice: the old name until the copy is
  published, the new name from then on, never a half-copied or half-removed repo;
* a commit, a squash or a delete of the source sent during a move waits for the move (the repo
  gate), then finds the source gone (404): nothing of it lands under the old name, and the moved
  repo has exactly the history it had;
* a squash sent during a delete waits, then gets 404, and writes nothing under the deleted name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .helpers import WRITE_TOKEN


class PausingStorage(LocalStorage):
    """A real folder store that stops at the first write matching ``pause_at`` until ``go`` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pause_at: Callable[[str, str], bool] | None = None  # (operation, key) -> stop here?
        self.paused = threading.Event()
        self.go = threading.Event()

    def _gate(self, operation: str, key: str) -> None:
        test = self.pause_at
        if test is not None and test(operation, key):
            self.pause_at = None
            go = self.go
            self.paused.set()
            assert go.wait(60), "the test never let the paused write go on"

    def release(self) -> None:
        """Let the paused write go on; a later ``pause_at`` stops the store again."""
        self.paused.clear()
        go, self.go = self.go, threading.Event()
        go.set()

    def put(self, key: str, data: bytes, durable: bool = True) -> None:
        self._gate("put", key)
        super().put(key, data, durable)

    def copy(self, src: str, dst: str) -> None:
        self._gate("copy", dst)
        super().copy(src, dst)

    def delete(self, key: str) -> None:
        self._gate("delete", key)
        super().delete(key)


@pytest.fixture
def paused_hub(tmp_path):
    storage = PausingStorage(tmp_path / "bucket")
    with HubServer(storage) as hub:
        yield hub, storage, HfApi(endpoint=hub.url, token=WRITE_TOKEN)


def _filled(api: HfApi, repo_id: str) -> list[str]:
    api.create_repo(repo_id, private=True)
    for i in range(3):
        api.upload_file(path_or_fileobj=f"v{i}".encode() * 100, path_in_repo=f"f{i}.txt", repo_id=repo_id)
    return [c.commit_id for c in api.list_repo_commits(repo_id)]


def _in_background(call: Callable[[], object]) -> tuple[threading.Thread, list]:
    """Run ``call`` in a thread; the list gets its result, or the HTTP status of its error."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except HfHubHTTPError as error:
            outcome.append(error.response.status_code)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _listed(api: HfApi) -> list[str]:
    return sorted(m.id for m in api.list_models(author="team"))


def test_listings_show_a_moving_repo_under_one_name_only(paused_hub):
    hub, storage, api = paused_hub
    _filled(api, "team/src")
    api.create_repo("team/other")
    storage.pause_at = lambda op, key: op == "copy" and key.startswith("models/team/dst/.hub/commits/")
    mover, outcome = _in_background(lambda: api.move_repo("team/src", "team/dst"))
    assert storage.paused.wait(30)
    assert storage.exists("models/team/dst/.hub/repo.json")  # the new name is claimed, hidden
    assert _listed(api) == ["team/other", "team/src"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("team/dst")
    storage.pause_at = lambda op, key: op == "delete" and key.startswith("models/team/src/.hub/commits/")
    storage.release()
    assert storage.paused.wait(30)  # published, the old name is being removed
    assert _listed(api) == ["team/dst", "team/other"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("team/src")
    storage.release()
    mover.join(30)
    assert outcome == [None] and _listed(api) == ["team/dst", "team/other"]


@pytest.mark.parametrize("racer", ["commit", "squash", "delete"])
def test_writes_to_the_source_wait_for_a_move_then_find_it_gone(paused_hub, racer):
    hub, storage, api = paused_hub
    history = _filled(api, "team/src")
    storage.pause_at = lambda op, key: op == "copy" and key.startswith("models/team/dst/.hub/refs/")
    mover, moved = _in_background(lambda: api.move_repo("team/src", "team/dst"))
    assert storage.paused.wait(30)
    calls = {
        "commit": lambda: api.upload_file(path_or_fileobj=b"late", path_in_repo="late.txt", repo_id="team/src"),
        "squash": lambda: api.super_squash_history("team/src"),
        "delete": lambda: api.delete_repo("team/src"),
    }
    racing, raced = _in_background(calls[racer])
    racing.join(1.0)
    assert racing.is_alive(), f"the {racer} did not wait for the move"
    storage.release()
    mover.join(30)
    racing.join(30)
    assert moved == [None] and raced == [404], (moved, raced)
    assert [c.commit_id for c in api.list_repo_commits("team/dst")] == history
    assert "late.txt" not in api.list_repo_files("team/dst")
    assert list(storage.list("models/team/src/")) == []


def test_a_squash_during_a_delete_waits_and_writes_nothing(paused_hub):
    hub, storage, api = paused_hub
    _filled(api, "team/doomed")
    # The delete holds the repo's gate from its first write (its journal entry) on, before it hides the repo.
    storage.pause_at = lambda op, key: op == "put" and key.startswith(".hub-journal/")
    deleter, deleted = _in_background(lambda: api.delete_repo("team/doomed"))
    assert storage.paused.wait(30)
    squasher, squashed = _in_background(lambda: api.super_squash_history("team/doomed"))
    squasher.join(1.0)
    assert squasher.is_alive(), "the squash did not wait for the delete"
    storage.release()
    deleter.join(30)
    squasher.join(30)
    assert deleted == [None] and squashed == [404], (deleted, squashed)
    assert list(storage.list("models/team/doomed/")) == []
