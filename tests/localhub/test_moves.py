"""``move_repo`` and ``super_squash_history`` through the unchanged client, ``hf repos move``, and a
move interrupted by ``kill -9`` at many points: after a restart exactly one whole repo is readable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from reasoner.localhub.auth import Token, TokenBook
from reasoner.localhub.server import HubServer

from .helpers import client_env

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
