"""A move cut by ``kill -9`` at its Nth storage write, for N from the first write of the move to
its last, and some rounds killed again during the start-up recovery that settles it.

Each round starts ``reasoner-hub serve`` through ``hub_testkit.crashserve --kill-at-write N``, asks it to move
the repo to a new name, and restarts on the same folder. After every restart exactly one of the two
names serves the whole repo (history, branches, tags, bytes, privacy, plain view), the other has no
object left, the listing shows that repo alone, and the journal is empty. The rounds go on until a
move completes with no kill: so every part of the move, from the journal entry to the removal of
the old name, is cut at least once, however many writes a move takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError

from reasoner_hub.commits import GITATTRIBUTES
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .crashkit import ServerGone, StoreLook, WireClient, head_files
from .served import Served

FILES = {f"data/{i}.txt": f"row {i}\n".encode() * 30 for i in range(6)}
WEIGHTS = bytes(range(256)) * 80  # LFS
DEV_FILE = b"only on dev\n"


def _fill(root: Path) -> list[str]:
    """A private repo with regular and LFS files, a branch and a tag; returns its history (newest first)."""
    with HubServer(LocalStorage(root)) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        api.create_repo("team/moved-0", private=True)
        api.create_commit("team/moved-0", [CommitOperationAdd(p, c) for p, c in FILES.items()], commit_message="rows")
        api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.safetensors", repo_id="team/moved-0")
        api.create_branch("team/moved-0", branch="dev")
        api.upload_file(path_or_fileobj=DEV_FILE, path_in_repo="dev.txt", repo_id="team/moved-0", revision="dev")
        api.create_tag("team/moved-0", tag="v1")
        return [c.commit_id for c in api.list_repo_commits("team/moved-0")]


def _move(url: str, source: str, target: str) -> str:
    """'ok', 'refused <status>', or 'unknown' when the server died before answering."""
    body = json.dumps({"fromRepo": source, "toRepo": target, "type": "model"}).encode()
    try:
        status, _ = WireClient(url, "unused").request("POST", "/api/repos/move", body,
                                                      {"Content-Type": "application/json"}, token=False)
    except ServerGone:
        return "unknown"
    return "ok" if status == 200 else f"refused {status}"


def _check(root: Path, source: str, target: str, outcome: str, history: list[str], cache: Path) -> str:
    """Restart (recovery runs), check the invariants of the module docstring; returns the name that holds the repo."""
    look = StoreLook(folder=root)
    with HubServer(LocalStorage(root)) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        present = [name for name in (source, target) if api.repo_exists(name)]
        assert len(present) == 1, f"after the restart {present} exist"
        (kept,) = present
        other = target if kept == source else source
        if outcome == "ok":
            assert kept == target, "the move was answered but the repo is under its old name"
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(other)
        assert look.keys(f"models/{other}/") == [] and not (root / "models" / other).exists(), f"{other} left remains"
        assert look.keys(".hub-journal/") == [], "the journal is not empty after recovery"
        assert [m.id for m in api.list_models(author="team")] == [kept]
        assert api.model_info(kept).private is True
        assert [c.commit_id for c in api.list_repo_commits(kept)] == history
        assert api.model_info(kept, revision="v1").sha == history[0]
        assert {b.name for b in api.list_repo_refs(kept).branches} == {"main", "dev"}
        assert sorted(head_files(api, kept, "dev")) == sorted([".gitattributes", "dev.txt", "w.safetensors", *FILES])
        local = hf_hub_download(kept, "w.safetensors", endpoint=hub.url, token=False, cache_dir=cache)
        assert Path(local).read_bytes() == WEIGHTS
        plain = look.plain_view(kept)
        assert plain == {".gitattributes": GITATTRIBUTES, "w.safetensors": WEIGHTS, **FILES}
    return kept


def test_a_move_killed_at_every_stage_leaves_exactly_one_whole_repo(tmp_path):
    root = tmp_path / "hub"
    history = _fill(root)
    current, kill_at, kept_sides, rounds = "team/moved-0", 1, set(), 0
    while True:
        rounds += 1
        target = f"team/moved-{rounds}"
        served = Served(["--storage", str(root)], kill_at=kill_at)
        try:
            outcome = _move(served.url, current, target)
        finally:
            served.kill()
        if rounds % 4 == 2:  # the restart dies too, in the middle of settling the move
            dying = Served(["--storage", str(root)], wait=False, kill_in_recovery=2)
            assert dying.wait_for(r"^http://", timeout=60) is None, "recovery never reached its second write"
            dying.kill()
        kept = _check(root, current, target, outcome, history, tmp_path / f"cache-{rounds}")
        kept_sides.add(kept == target)
        current = kept
        if outcome == "ok":
            break  # the kill point lies past the last write of a move: every stage has been cut
        assert outcome == "unknown", f"the move was refused: {outcome}"
        kill_at += max(2, kill_at // 3)
    assert rounds >= 8, f"a move took only {kill_at} writes?"
    assert kept_sides == {True, False}, "every kill landed on the same side of the move's commit point"


@pytest.mark.parametrize("published", [False, True])
def test_a_move_journaled_by_an_earlier_hub_version_is_settled(tmp_path, published):
    """Earlier hubs journaled moves under ``.hub-moves/`` and published a move by writing the new
    record: a hub killed in such a move is settled at the next start like a journaled move."""
    root = tmp_path / "hub"
    history = _fill(root)
    storage = LocalStorage(root)
    source, target = "models/team/moved-0/.hub/", "models/team/moved-1/.hub/"
    for key in sorted(storage.list(source)):  # the copy that version made before publishing
        rest = key[len(source) :]
        if rest != "repo.json" and not rest.startswith(("views/", "branches/")):
            storage.copy(key, target + rest)
    if published:
        record = json.loads(storage.get(source + "repo.json"))
        storage.put(target + "repo.json", json.dumps({**record, "id": "team/moved-1"}).encode())
    entry = {"from": ["model", "team/moved-0"], "to": ["model", "team/moved-1"]}
    storage.put(".hub-moves/5f0c2b.json", json.dumps(entry).encode())
    kept = _check(root, "team/moved-0", "team/moved-1", "unknown", history, tmp_path / "cache")
    assert kept == ("team/moved-1" if published else "team/moved-0")
    assert list(storage.list(".hub-moves/")) == []
