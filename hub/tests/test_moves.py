"""``move_repo`` and ``super_squash_history`` through the unchanged client, ``hf repos move``, and a
move interrupted by ``kill -9`` at many points: after a restart exactly one whole repo is readable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from reasoner_hub.auth import Token, TokenBook
from reasoner_hub.server import HubServer

from .helpers import REPO_ROOT, TOKENS, WRITE_TOKEN, client_env, raw_request, run_client

MEMBER = Token("mia-write", "hf_move_member_0001", "write", "mia", (("team", "write"),))
WEIGHTS = os.urandom(150_000)


def _filled(api: HfApi, repo_id: str, private: bool = False) -> list[str]:
    """A repo with an LFS file, three commits, a branch and a tag; returns its commit ids (newest first)."""
    api.create_repo(repo_id, private=private)
    api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="config.json", repo_id=repo_id)
    api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="model.safetensors", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=repo_id, revision="dev")
    api.create_tag(repo_id, tag="v1")
    return [c.commit_id for c in api.list_repo_commits(repo_id)]


@pytest.fixture
def team_hub(storage):
    with HubServer(storage, tokens=TokenBook([MEMBER])) as hub:
        yield hub


def test_move_keeps_history_branches_tags_and_bytes(team_hub, storage, tmp_path):
    api = HfApi(endpoint=team_hub.url, token=MEMBER.secret)
    commits = _filled(api, "team/old-name", private=True)
    api.move_repo("team/old-name", "mia/new-name")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("team/old-name")
    info = api.model_info("mia/new-name")
    assert info.private is True and info.sha == commits[0]
    assert [c.commit_id for c in api.list_repo_commits("mia/new-name")] == commits
    refs = api.list_repo_refs("mia/new-name")
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    path = hf_hub_download("mia/new-name", "model.safetensors", endpoint=team_hub.url, token=MEMBER.secret,
                           cache_dir=tmp_path)
    assert open(path, "rb").read() == WEIGHTS
    assert api.list_repo_files("mia/new-name", revision="dev") == [".gitattributes", "config.json", "dev.txt",
                                                                   "model.safetensors"]
    # The plain view moved too; nothing of the old name is left, and the old name is free again.
    assert storage.get("models/mia/new-name/config.json") == b'{"a": 1}'
    assert list(storage.list("models/team/old-name/")) == []
    api.create_repo("team/old-name")
    assert api.list_repo_files("team/old-name") == [".gitattributes"]


def test_files_uploaded_through_xet_move_along(folder_storage, tmp_path):
    folder = tmp_path / "upload"
    (folder / "nested").mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(os.urandom(400_000))
    (folder / "nested" / "part.bin").write_bytes(os.urandom(70_000))
    with HubServer(folder_storage, tokens=TokenBook(TOKENS)) as hub:
        env = client_env(hub.url, tmp_path / "home", xet=True)
        run_client("xet_client.py", ["upload-folder", "org/xet-files", str(folder)], env)
        HfApi(endpoint=hub.url, token=WRITE_TOKEN).move_repo("org/xet-files", "org/xet-moved")
        result = run_client("xet_client.py", ["download", "org/xet-moved", str(folder), str(tmp_path / "out")], env)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # The repo's Xet registrations moved too, so Xet clients still reconstruct from xorbs.
    assert list(folder_storage.list("models/org/xet-moved/.hub/xet/files/"))
    assert not list(folder_storage.list("models/org/xet-files/"))
    assert seen == {"single": {"nested/part.bin": True, "weights.safetensors": True},
                    "snapshot": {"nested/part.bin": True, "weights.safetensors": True}}


def test_move_checks_source_and_destination(team_hub, tmp_path):
    api = HfApi(endpoint=team_hub.url, token=MEMBER.secret)
    api.create_repo("team/a")
    api.create_repo("team/b")
    for target, status in (("elsewhere/a", 403), ("team/b", 409)):
        with pytest.raises(HfHubHTTPError) as error:
            api.move_repo("team/a", target)
        assert error.value.response.status_code == status
    with pytest.raises(HfHubHTTPError) as error:
        api.move_repo("team/missing", "team/c")
    assert error.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=team_hub.url, token=False).move_repo("team/a", "team/c")
    assert error.value.response.status_code == 401
    assert api.repo_exists("team/a") and not api.repo_exists("team/c")
    # hf repos move, as a user types it.
    env = client_env(team_hub.url, tmp_path / "home", token=MEMBER.secret)
    command = [sys.executable, "-m", "huggingface_hub.cli.hf", "repos", "move", "team/a", "mia/a"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert api.repo_exists("mia/a") and not api.repo_exists("team/a")


def test_super_squash_history(team_hub, tmp_path):
    api = HfApi(endpoint=team_hub.url, token=MEMBER.secret)
    commits = _filled(api, "team/squashed")
    files = api.list_repo_files("team/squashed")
    api.super_squash_history("team/squashed", commit_message="one commit")
    history = api.list_repo_commits("team/squashed")
    assert len(history) == 1 and history[0].title == "one commit" and history[0].commit_id not in commits
    assert api.list_repo_files("team/squashed") == files
    path = hf_hub_download("team/squashed", "model.safetensors", endpoint=team_hub.url, token=MEMBER.secret,
                           cache_dir=tmp_path)
    assert open(path, "rb").read() == WEIGHTS
    # Tags and other branches keep their own history.
    assert api.model_info("team/squashed", revision="v1").sha == commits[0]
    assert len(api.list_repo_commits("team/squashed", revision="dev")) == 4
    api.super_squash_history("team/squashed", branch="dev")
    assert len(api.list_repo_commits("team/squashed", revision="dev")) == 1
    assert "dev.txt" in api.list_repo_files("team/squashed", revision="dev")
    with pytest.raises(RevisionNotFoundError):
        api.super_squash_history("team/squashed", branch="nope")
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=team_hub.url, token=False).super_squash_history("team/squashed")
    assert error.value.response.status_code == 401


class _Served:
    """``reasoner_hub serve`` in its own process (open hub), to be killed with SIGKILL."""

    def __init__(self, folder) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reasoner_hub", "serve", "--storage", str(folder), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for line in self.process.stdout:
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                break
        else:
            raise RuntimeError("the hub process exited before serving")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


def _move_in_background(url: str, source: str, target: str) -> threading.Thread:
    def send() -> None:
        body = json.dumps({"fromRepo": source, "toRepo": target, "type": "model"}).encode()
        try:
            raw_request(url, "POST", "/api/repos/move", body, {"Content-Type": "application/json"})
        except OSError:
            pass  # the server was killed mid-request

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _wait_then_kill(served: _Served, reached, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not reached() and time.monotonic() < deadline and served.process.poll() is None:
        pass
    served.kill()


def _count(path: Path) -> int:
    return len(os.listdir(path)) if path.is_dir() else 0


def _state(internal: Path) -> str | None:
    """The state of a repo record as stored (``ready`` without one); None when there is no readable record."""
    try:
        return json.loads((internal / "repo.json").read_bytes()).get("state") or "ready"
    except (OSError, ValueError):
        return None


def test_a_move_killed_at_any_point_leaves_one_whole_repo(tmp_path):
    """kill -9 once the new name is claimed, in the copy, after the copy is published, while its views
    are written and while the source is deleted: after a restart (which settles the move from the
    journal) exactly one name serves the whole repo and the other has nothing."""
    bucket = tmp_path / "bucket"
    files = {f"shard/{i:03d}.txt": f"line {i}\n".encode() * 20 for i in range(240)}
    with HubServer(bucket) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        api.create_repo("team/big", private=True)
        api.create_commit("team/big", [CommitOperationAdd(path, data) for path, data in files.items()],
                          commit_message="many files")
        api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="model.safetensors", repo_id="team/big")
        api.create_tag("team/big", tag="v1")
        history = [c.commit_id for c in api.list_repo_commits("team/big")]
    files["model.safetensors"] = WEIGHTS

    def internal(repo_id: str) -> Path:
        return bucket / "models" / repo_id / ".hub"

    kill_points = {
        "new name claimed": lambda target: _state(internal(target)) == "creating",
        "first blob copied": lambda target: _count(internal(target) / "blobs") >= 1,
        "half the blobs copied": lambda target: _count(internal(target) / "blobs") >= 120,
        "refs being copied": lambda target: (internal(target) / "refs").exists(),
        "copy published": lambda target: _state(internal(target)) == "ready",
        "views being written": lambda target: _count(bucket / "models" / target / "shard") >= 60,
        "source tombstoned": lambda target: _state(internal(current)) == "deleting",
        "source being deleted": lambda target: _count(internal(current) / "blobs") < 120,
        "source record gone": lambda target: _state(internal(current)) is None,
    }
    current, outcomes = "team/big", []
    for index, (point, reached) in enumerate(kill_points.items()):
        target = f"team/big-{index}"
        served = _Served(bucket)
        _move_in_background(served.url, current, target)
        _wait_then_kill(served, lambda target=target: reached(target))
        with HubServer(bucket) as hub:  # the restart recovers the interrupted move
            current, other = _one_whole_repo(hub, current, target, files, history, tmp_path / f"c{index}")
        assert not (bucket / "models" / other).exists(), f"{point}: remains of {other} are left"
        assert _count(bucket / ".hub-journal") == 0, f"{point}: journal entries are left"
        assert _count(bucket / ".hub-moves") == 0
        outcomes.append(current == target)
    assert True in outcomes and False in outcomes, f"every kill landed on the same side: {outcomes}"


def _one_whole_repo(hub: HubServer, source: str, target: str, files: dict, history: list, cache) -> tuple[str, str]:
    api = HfApi(endpoint=hub.url, token=False)
    present = [name for name in (source, target) if api.repo_exists(name)]
    assert len(present) == 1, f"after the restart {present} exist"
    (kept,) = present
    other = target if kept == source else source
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(other)
    assert api.model_info(kept).private is True
    assert [c.commit_id for c in api.list_repo_commits(kept)] == history
    assert api.model_info(kept, revision="v1").sha == history[0]
    assert sorted(api.list_repo_files(kept)) == sorted([".gitattributes", *files])
    for path in ("model.safetensors", "shard/000.txt", "shard/239.txt"):
        local = hf_hub_download(kept, path, endpoint=hub.url, token=False, cache_dir=cache)
        assert open(local, "rb").read() == files[path]
    return kept, other
