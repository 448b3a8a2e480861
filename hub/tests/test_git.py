"""Read-only git over smart HTTP with the real ``git`` (2.39) and ``git-lfs`` against a real hub.

The working tree of a clone must hold exactly the hub's files (LFS and Xet files fetched by
git-lfs through the batch API), and ``git log`` must name the commits by the ids the Hub API gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFolder

from reasoner_hub.auth import TokenBook
from reasoner_hub.commits import AddFile, git_blob_oid
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .gitkit import Git, tree_files, with_password
from .helpers import READ_TOKEN, TOKENS, WRITE_TOKEN, client_env, raw_request, run_client


def _source(root: Path) -> Path:
    """Regular files (one of 300 KB), an LFS file in a folder, a README."""
    folder = root / "source"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 64}\n')
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# A model\n")
    (folder / "notes.txt").write_text("".join(f"line {i} of the notes\n" for i in range(15000)))
    (folder / "nested" / "weights.safetensors").write_bytes(os.urandom(120_000))
    (folder / "nested" / "deeper" / "vocab.txt").write_text("a\nb\nc\n")
    return folder


def _hub_files(hub: HubServer, repo_type: str, repo_id: str) -> dict[str, bytes]:
    """The files of the head of ``main``, as the hub stores them."""
    repo = hub.store_repo(repo_type, repo_id)
    head = hub.store.resolve(repo, "main")
    return {path: b"".join(hub.store.open_blob(repo, entry.sha256)) for path, entry in sorted(head.files.items())}


def _random_id() -> str:
    """A commit id as hubs made them before commits had git ids: 40 random hex digits."""
    return os.urandom(20).hex()


def _requests(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_clone_and_fetch_give_the_hub_files_and_commit_ids(storage, tmp_path):
    log = tmp_path / "requests.jsonl"
    git = Git(tmp_path / "home")
    with HubServer(storage, tokens=TokenBook(TOKENS), request_log=str(log)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        repo_id = "org/gitted"
        api.create_repo(repo_id)
        source = _source(tmp_path)
        api.upload_folder(folder_path=source, repo_id=repo_id, commit_message="add the model")
        xet_file = tmp_path / "model.bin"
        xet_file.write_bytes(os.urandom(200_000))
        run_client("xet_client.py", ["upload-file", repo_id, str(xet_file), "xet/model.bin"],
                   client_env(hub.url, tmp_path / "xet-home", xet=True), timeout=600)
        repo = hub.store_repo("model", repo_id)
        assert hub.store.resolve(repo, "main").files["xet/model.bin"].xet  # uploaded through Xet
        api.create_branch(repo_id, branch="dev")
        api.create_tag(repo_id, tag="v1")

        v2, v0 = tmp_path / "v2", tmp_path / "v0"
        git.run("clone", f"{hub.url}/{repo_id}", str(v2))  # anonymous: the repo is public
        git.run("-c", "protocol.version=0", "clone", f"{hub.url}/{repo_id}.git", str(v0))
        expected = _hub_files(hub, "model", repo_id)
        assert set(expected) >= {"config.json", "nested/weights.safetensors", "xet/model.bin", ".gitattributes"}
        assert tree_files(v2) == expected == tree_files(v0)
        assert expected["xet/model.bin"] == xet_file.read_bytes()
        assert expected["nested/weights.safetensors"] == (source / "nested" / "weights.safetensors").read_bytes()
        lfs_gets = [e for e in _requests(log) if e["method"] == "GET" and e["path"].startswith("/_lfs/")]
        assert len(lfs_gets) == 4 and all(e["status"] == 200 for e in lfs_gets)  # 2 LFS files, 2 clones

        # Commit ids, refs and folder ids are the Hub API's.
        api_log = [c.commit_id for c in api.list_repo_commits(repo_id)]
        assert git.log(v2) == api_log == git.log(v0) and len(api_log) == 3
        refs = api.list_repo_refs(repo_id)
        remote = dict(line.split("\t")[::-1] for line in git.run("ls-remote", f"{hub.url}/{repo_id}").stdout.split("\n")
                      if line)
        assert remote["refs/heads/dev"] == next(b.target_commit for b in refs.branches if b.name == "dev")
        assert remote["refs/tags/v1"] == refs.tags[0].target_commit == remote["HEAD"] == api_log[0]
        folder = next(f for f in api.list_repo_tree(repo_id, path_in_repo="nested") if isinstance(f, RepoFolder))
        assert git.run("rev-parse", "HEAD:nested/deeper", cwd=v2).stdout.strip() == folder.tree_id
        git.run("fsck", "--strict", cwd=v2)

        # A new commit reaches both clones by fetch, incrementally.
        api.upload_file(path_or_fileobj=b"more\n", path_in_repo="nested/more.txt", repo_id=repo_id)
        before = len(_requests(log))
        git.run("pull", "--ff-only", cwd=v2)
        git.run("-c", "protocol.version=0", "pull", "--ff-only", cwd=v0)
        packs = [e for e in _requests(log)[before:] if e["path"].endswith("/git-upload-pack")]
        assert packs and max(e["bytes_sent"] for e in packs) < 20_000  # not the 300 KB notes again
        assert tree_files(v2) == _hub_files(hub, "model", repo_id) == tree_files(v0)
        assert git.log(v2) == [c.commit_id for c in api.list_repo_commits(repo_id)] == git.log(v0)


def test_datasets_shallow_clone_and_unshallow(folder_storage, tmp_path):
    git = Git(tmp_path / "home")
    with HubServer(folder_storage) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        repo_id = "org/rows"
        api.create_repo(repo_id, repo_type="dataset")
        for number in range(3):
            api.upload_file(path_or_fileobj=f"id,text\n{number},row {number}\n".encode(),
                            path_in_repo=f"data/part-{number}.csv", repo_id=repo_id, repo_type="dataset")
        api.upload_file(path_or_fileobj=os.urandom(5000), path_in_repo="data/extra.parquet", repo_id=repo_id,
                        repo_type="dataset")
        history = [c.commit_id for c in api.list_repo_commits(repo_id, repo_type="dataset")]
        shallow = tmp_path / "shallow"
        git.run("clone", "--depth", "1", f"{hub.url}/datasets/{repo_id}", str(shallow))
        assert git.log(shallow) == history[:1]
        assert tree_files(shallow) == _hub_files(hub, "dataset", repo_id)
        git.run("fetch", "--unshallow", cwd=shallow)
        assert git.log(shallow) == history and len(history) == 5
        git.run("fsck", cwd=shallow)


def test_private_repos_need_the_token_as_password_and_push_is_refused(folder_storage, tmp_path):
    git = Git(tmp_path / "home")
    with HubServer(folder_storage, tokens=TokenBook(TOKENS)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/secret", private=True)
        api.upload_file(path_or_fileobj=os.urandom(4000), path_in_repo="weights.bin", repo_id="org/secret")

        anonymous = git.run("clone", f"{hub.url}/org/secret", str(tmp_path / "anon"), check=False)
        assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
        assert not (tmp_path / "anon").exists()
        status, headers, _ = raw_request(hub.url, "GET", "/org/secret/info/refs?service=git-upload-pack")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        # The same answer as for a repo that does not exist: the name is not confirmed.
        assert raw_request(hub.url, "GET", "/org/nothing/info/refs?service=git-upload-pack")[0] == 401
        wrong = git.run("clone", with_password(hub.url, "hf_not_a_token_000") + "/org/secret", str(tmp_path / "bad"),
                        check=False)
        assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr

        clone = tmp_path / "clone"
        git.run("clone", with_password(hub.url, READ_TOKEN) + "/org/secret", str(clone))  # LFS too, with the token
        assert tree_files(clone) == _hub_files(hub, "model", "org/secret")

        (clone / "new.txt").write_text("a change\n")
        git.run("add", "new.txt", cwd=clone)
        git.run("commit", "-m", "try to push", cwd=clone)
        for token in (READ_TOKEN, WRITE_TOKEN):
            pushed = git.run("push", with_password(hub.url, token) + "/org/secret", "main", cwd=clone, check=False)
            assert pushed.returncode != 0
            assert "remote error: This hub is read-only over git" in pushed.stderr
        assert raw_request(hub.url, "POST", "/org/secret/git-receive-pack", b"0000",
                           {"Authorization": f"Bearer {WRITE_TOKEN}"})[0] == 403
        assert [c.title for c in api.list_repo_commits("org/secret")][0] != "try to push"
        missing = git.run("ls-remote", with_password(hub.url, READ_TOKEN) + "/org/nothing", check=False)
        assert missing.returncode != 0 and "not found" in missing.stderr


def test_repos_stored_before_git_ids_clone_with_synthesised_ids(tmp_path):
    """Commits with random ids (stored by earlier hubs, or mirrored with another hub's ids) get git
    objects made from their manifests: the files are the same, the ids are not the API's, and they
    stay the same across restarts; new commits on top have git ids again."""
    git = Git(tmp_path / "home")
    root = tmp_path / "bucket"
    with HubServer(LocalStorage(root)) as hub:
        repo = hub.store_repo("model", "org/old")
        hub.store.create_repo(repo, False, "someone")
        data = b"written long ago\n"
        sha = hub.store.put_blob(repo, data)
        first = hub.store.commit(repo, "main", [AddFile("old.txt", sha, len(data), False, git_blob_oid(data))],
                                 "old root", "", "someone", commit_id=_random_id(), root=True)
        second = hub.store.commit(repo, "main", [AddFile("copy.txt", sha, len(data), False, git_blob_oid(data))],
                                  "old child", "", "someone", commit_id=_random_id())
        assert first.git is None and second.git is None
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.upload_file(path_or_fileobj=os.urandom(3000), path_in_repo="new.bin", repo_id="org/old")
        api_log = [c.commit_id for c in api.list_repo_commits("org/old")]
        clone = tmp_path / "clone"
        git.run("clone", f"{hub.url}/org/old", str(clone))
        assert tree_files(clone) == _hub_files(hub, "model", "org/old")
        synthesised = git.log(clone)
        assert synthesised[0] == api_log[0]  # the new commit: its git id is its id
        assert len(synthesised) == 3 and set(synthesised[1:]).isdisjoint(api_log)
        git.run("fsck", "--strict", cwd=clone)
    with HubServer(LocalStorage(root)) as hub:  # a restart computes the same ids
        again = tmp_path / "again"
        git.run("clone", f"{hub.url}/org/old", str(again))
        assert git.log(again) == synthesised
        git.run("remote", "set-url", "origin", f"{hub.url}/org/old", cwd=clone)  # a new port
        fetched = git.run("fetch", cwd=clone)
        assert "main" not in fetched.stderr  # nothing new: the same ids as before the restart
        assert git.log(clone, "origin/main") == synthesised


@pytest.mark.parametrize("body", [b"garbage", b"0014command=unknown\n0000", b"0011command=fetch0001000dwant xyz\n0000"])
def test_malformed_upload_pack_requests_get_one_error_line(folder_hub, folder_api, body):
    folder_api.create_repo("org/plain")
    status, headers, answer = raw_request(folder_hub.url, "POST", "/org/plain/git-upload-pack", body,
                                          {"Git-Protocol": "version=2",
                                           "Content-Type": "application/x-git-upload-pack-request"})
    assert status == 200 and headers["content-type"] == "application/x-git-upload-pack-result"
    assert answer[4:8] == b"ERR " and answer.count(b"\n") == 1


def test_a_commit_no_ref_reaches_any_more_is_fetched_by_id(folder_hub, folder_api, tmp_path):
    """A clone that listed the refs before a squash still gets the commit it asked for."""
    git = Git(tmp_path / "home")
    folder_api.create_repo("org/squashed")
    folder_api.upload_file(path_or_fileobj=b"one\n", path_in_repo="one.txt", repo_id="org/squashed")
    old_head = folder_api.list_repo_commits("org/squashed")[0].commit_id
    folder_api.super_squash_history("org/squashed")
    assert old_head not in [c.commit_id for c in folder_api.list_repo_commits("org/squashed")]
    empty = tmp_path / "empty"
    git.run("init", "-q", str(empty))
    git.run("fetch", f"{folder_hub.url}/org/squashed", old_head, cwd=empty)
    assert git.run("rev-parse", "FETCH_HEAD", cwd=empty).stdout.strip() == old_head
    assert git.run("show", "FETCH_HEAD:one.txt", cwd=empty).stdout == "one\n"
    missing = git.run("fetch", f"{folder_hub.url}/org/squashed", "f" * 40, cwd=empty, check=False)
    assert missing.returncode != 0 and "not our ref" in missing.stderr
