"""Commits are atomic and race-safe, and everything survives a restart of the server."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub import errors
from reasoner_hub.paths import Repo
from reasoner_hub.commits import AddFile
from reasoner_hub.repos import RepoStore
from reasoner_hub.server import HubServer

from .helpers import WRITE_TOKEN

N_FILES = 12


def _version_ops(version: int) -> list[CommitOperationAdd]:
    ops = [CommitOperationAdd(f"shard-{i:02d}.txt", f"v{version}:{i}".encode() * 200) for i in range(N_FILES)]
    ops.append(CommitOperationAdd(f"only-in-v{version}.txt", f"v{version}".encode()))
    return ops


def test_readers_never_see_half_a_commit(api, hub):
    api.create_repo("org/atomic")
    api.create_commit("org/atomic", _version_ops(1), commit_message="v1")
    expected_files = {v: {".gitattributes", *(f"shard-{i:02d}.txt" for i in range(N_FILES)), f"only-in-v{v}.txt"}
                      for v in range(1, 5)}
    # Later versions keep earlier only-in-* files (additions only): each version has its exact set.
    for v in range(2, 5):
        expected_files[v] |= expected_files[v - 1]
    stop = threading.Event()
    problems: list[str] = []
    seen: set[int] = set()
    reads = [0]
    reader = HfApi(endpoint=hub.url, token=False)

    def wait_reads(count: int) -> None:
        deadline = time.monotonic() + 30
        while reads[0] < count and not problems and time.monotonic() < deadline:
            time.sleep(0.01)

    def read_loop() -> None:
        while not stop.is_set():
            info = reader.model_info("org/atomic")
            names = {s.rfilename for s in info.siblings}
            versions = [v for v, files in expected_files.items() if files == names]
            if not versions:
                problems.append(f"file list of {info.sha} matches no version: {sorted(names)}")
                return
            version = versions[0]
            seen.add(version)
            for i in (0, N_FILES // 2, N_FILES - 1):
                url = f"{hub.url}/org/atomic/resolve/{info.sha}/shard-{i:02d}.txt"
                content = urllib.request.urlopen(url).read()
                if not content.startswith(f"v{version}:".encode()):
                    problems.append(f"{info.sha} (v{version}) served {content[:8]!r} for shard {i}")
                    return
            reads[0] += 1  # one complete, consistent read

    threads = [threading.Thread(target=read_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_reads(2)  # the readers are running before the first commit...
        for version in (2, 3, 4):
            api.create_commit("org/atomic", _version_ops(version), commit_message=f"v{version}")
            wait_reads(reads[0] + 4)  # ...between commits and after the last (2 reads may predate it)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not problems, problems
    assert {1, 4} <= seen  # the readers ran before, during and after the commits
    assert {s.rfilename for s in reader.model_info("org/atomic").siblings} == expected_files[4]


def test_racing_commits_with_the_same_parent_have_one_winner(api, hub):
    api.create_repo("org/race")
    for round_ in range(3):
        base = api.model_info("org/race").sha
        barrier = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def commit(name: str) -> None:
            ops = [CommitOperationAdd(f"{name}-{round_}.txt", name.encode())]
            barrier.wait()
            try:
                outcomes[name] = api.create_commit("org/race", ops, commit_message=name, parent_commit=base).oid
            except HfHubHTTPError as error:
                outcomes[name] = error

        threads = [threading.Thread(target=commit, args=(name,)) for name in ("left", "right")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [n for n, o in outcomes.items() if isinstance(o, str)]
        losers = [o for o in outcomes.values() if isinstance(o, HfHubHTTPError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert losers[0].response.status_code == 412
        assert "A commit has happened since" in str(losers[0])
        files = api.list_repo_files("org/race")
        loser = "right" if winners[0] == "left" else "left"
        assert f"{winners[0]}-{round_}.txt" in files and f"{loser}-{round_}.txt" not in files
        history = api.list_repo_commits("org/race")
        assert history[0].commit_id == outcomes[winners[0]] and history[1].commit_id == base


def test_commits_without_parent_serialize(folder_api):
    folder_api.create_repo("org/queue")
    errors_seen: list[BaseException] = []

    def commit(i: int) -> None:
        try:
            folder_api.upload_file(path_or_fileobj=f"{i}".encode(), path_in_repo=f"w{i}.txt", repo_id="org/queue")
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors_seen.append(error)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors_seen
    assert sorted(folder_api.list_repo_files("org/queue")) == sorted([".gitattributes"] + [f"w{i}.txt" for i in range(6)])
    assert len(folder_api.list_repo_commits("org/queue")) == 7  # linear: every commit kept


def test_two_stores_on_one_bucket_never_lose_a_commit(storage):
    """Two RepoStores stand for two hub processes: only the storage's conditional write serialises them."""
    first, second = RepoStore(storage), RepoStore(storage)
    repo = Repo("model", "org/shared")
    first.create_repo(repo, private=False, author="t")
    base = first.resolve(repo, "main").id
    results: list[object] = []

    def commit(store: RepoStore, i: int, parent: str | None) -> None:
        sha = store.put_blob(repo, f"{i}".encode())
        try:
            results.append(store.commit(repo, "main", [AddFile(f"p{i}.txt", sha, 1, False, "0" * 40)], f"c{i}", "",
                                        "t", parent=parent))
        except errors.HubError as error:
            results.append(error)

    threads = [threading.Thread(target=commit, args=(first if i % 2 else second, i, None)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    head = first.resolve(repo, "main")
    assert {f"p{i}.txt" for i in range(6)} <= set(head.files)
    assert len(list(first.history(repo, head))) == 7

    results.clear()
    head_id = head.id
    threads = [threading.Thread(target=commit, args=(store, 10 + i, head_id)) for i, store in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status if isinstance(r, errors.HubError) else 200 for r in results)
    assert statuses == [200, 412]
    assert base != head_id


def test_restart_keeps_everything(storage, tmp_path):
    with HubServer(storage) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/durable", private=True)
        api.create_repo("org/durable-data", repo_type="dataset")
        first = api.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id="org/durable").oid
        api.create_branch("org/durable", branch="dev")
        api.upload_file(path_or_fileobj=b"\x00\x01" * 3000, path_in_repo="w.bin", repo_id="org/durable", revision="dev")
        second = api.upload_file(path_or_fileobj=b"two", path_in_repo="a.txt", repo_id="org/durable").oid
        api.upload_file(path_or_fileobj=b"rows", path_in_repo="data/train.jsonl", repo_id="org/durable-data",
                        repo_type="dataset")
        port = hub.port
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/_health", timeout=2)

    with HubServer(storage, port=port) as hub:  # same storage, same port, fresh process state
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        assert api.model_info("org/durable").private is True
        assert api.model_info("org/durable").sha == second
        assert [c.commit_id for c in api.list_repo_commits("org/durable")][:2] == [second, first]
        assert {b.name for b in api.list_repo_refs("org/durable").branches} == {"main", "dev"}

        def read(repo: str, path: str, revision: str = "main", repo_type: str | None = None) -> bytes:
            local = hf_hub_download(repo, path, revision=revision, repo_type=repo_type, endpoint=hub.url,
                                    cache_dir=tmp_path / "cache", token=WRITE_TOKEN)
            return Path(local).read_bytes()

        assert read("org/durable", "a.txt") == b"two" and read("org/durable", "a.txt", first) == b"one"
        assert read("org/durable", "w.bin", "dev") == b"\x00\x01" * 3000
        assert read("org/durable-data", "data/train.jsonl", repo_type="dataset") == b"rows"
        third = api.upload_file(path_or_fileobj=b"three", path_in_repo="a.txt", repo_id="org/durable").oid
        assert api.list_repo_commits("org/durable")[1].commit_id == second and third != second
