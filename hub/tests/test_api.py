"""The unchanged huggingface_hub client against the hub over HTTP: every call the project relies on."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from reasoner_hub.server import HubServer

from .helpers import WRITE_TOKEN, raw_request


def _make_folder(root: Path) -> dict[str, bytes]:
    files = {
        "config.json": json.dumps({"hidden_size": 32}).encode(),
        "model.safetensors": os.urandom(200_000),
        "nested/deeper/notes.txt": "héllo wörld\n".encode(),
        "tokenizer.json": b'{"model": "bpe"}',
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


def test_repo_lifecycle(folder_api):
    url = folder_api.create_repo("org/life")
    assert url.repo_id == "org/life" and url.endpoint == folder_api.endpoint
    with pytest.raises(HfHubHTTPError) as error:
        folder_api.create_repo("org/life")
    assert error.value.response.status_code == 409
    assert folder_api.create_repo("org/life", exist_ok=True).repo_id == "org/life"
    assert folder_api.repo_exists("org/life")
    assert not folder_api.repo_exists("org/life", repo_type="dataset")
    folder_api.create_repo("org/life", repo_type="dataset")
    assert folder_api.repo_exists("org/life", repo_type="dataset")
    assert folder_api.list_repo_files("org/life") == [".gitattributes"]  # like the Hub's initial commit
    folder_api.delete_repo("org/life")
    assert not folder_api.repo_exists("org/life")
    assert folder_api.repo_exists("org/life", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        folder_api.delete_repo("org/life")
    folder_api.delete_repo("org/life", missing_ok=True)


def test_upload_and_download(api, hub, storage, tmp_path):
    local = tmp_path / "local"
    files = _make_folder(local)
    api.create_repo("org/model")
    info = api.upload_folder(folder_path=local, repo_id="org/model", commit_message="first upload")
    assert len(info.oid) == 40
    assert sorted(api.list_repo_files("org/model")) == sorted([".gitattributes", *files])

    meta = api.model_info("org/model", files_metadata=True)
    siblings = {s.rfilename: s for s in meta.siblings}
    assert meta.sha == info.oid
    assert siblings["model.safetensors"].lfs is not None and siblings["model.safetensors"].lfs.size == 200_000
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == len(files["config.json"])

    cache = tmp_path / "cache"
    for path, data in files.items():
        local_path = hf_hub_download("org/model", path, endpoint=hub.url, cache_dir=cache, token=False)
        assert Path(local_path).read_bytes() == data
    snapshot = Path(snapshot_download("org/model", endpoint=hub.url, cache_dir=tmp_path / "snap", token=False))
    assert snapshot.name == info.oid
    for path, data in files.items():
        assert (snapshot / path).read_bytes() == data

    # The head of main is readable as plain files in the bucket, by any S3 tool.
    assert storage.get("models/org/model/config.json") == files["config.json"]
    assert storage.get("models/org/model/nested/deeper/notes.txt") == files["nested/deeper/notes.txt"]


def test_download_headers(folder_api, folder_hub):
    folder_api.create_repo("org/heads")
    folder_api.upload_file(path_or_fileobj=b"plain text", path_in_repo="a.txt", repo_id="org/heads")
    weights = os.urandom(5000)
    commit = folder_api.upload_file(path_or_fileobj=weights, path_in_repo="w.bin", repo_id="org/heads")
    status, headers, _ = raw_request(folder_hub.url, "HEAD", "/org/heads/resolve/main/a.txt")
    assert status == 200
    assert headers["x-repo-commit"] == commit.oid
    assert headers["etag"] == '"%s"' % hashlib.sha1(b"blob 10\0plain text").hexdigest()  # the git blob id
    assert headers["content-length"] == "10"
    assert "x-xet-hash" not in headers and "x-linked-etag" not in headers
    status, headers, _ = raw_request(folder_hub.url, "HEAD", "/org/heads/resolve/main/w.bin")
    assert headers["x-linked-etag"].strip('"') == hashlib.sha256(weights).hexdigest()
    assert headers["x-linked-size"] == "5000"
    assert "x-xet-hash" not in headers
    metadata = folder_api.get_hf_file_metadata(url=f"{folder_hub.url}/org/heads/resolve/main/w.bin")
    assert metadata.commit_hash == commit.oid and metadata.size == 5000
    assert metadata.etag == hashlib.sha256(weights).hexdigest()


def test_range_requests(folder_api, folder_hub):
    data = bytes(range(256)) * 40
    folder_api.create_repo("datasets-org/ranges", repo_type="dataset")
    folder_api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id="datasets-org/ranges", repo_type="dataset")
    path = "/datasets/datasets-org/ranges/resolve/main/blob.bin"
    status, headers, body = raw_request(folder_hub.url, "GET", path, headers={"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    status, _, body = raw_request(folder_hub.url, "GET", path, headers={"Range": "bytes=10000-"})
    assert status == 206 and body == data[10000:]
    status, _, body = raw_request(folder_hub.url, "GET", path, headers={"Range": "bytes=-16"})
    assert status == 206 and body == data[-16:]
    status, headers, _ = raw_request(folder_hub.url, "GET", path, headers={"Range": "bytes=999999-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    status, _, body = raw_request(folder_hub.url, "GET", path)
    assert status == 200 and body == data
    # HfFileSystem reads by ranges, as datasets does for parquet files.
    fs = HfFileSystem(endpoint=folder_hub.url, token=False)
    with fs.open("datasets/datasets-org/ranges/blob.bin", "rb", block_size=1024) as handle:
        handle.seek(5000)
        assert handle.read(300) == data[5000:5300]


def test_branches_tags_and_revisions(folder_api, folder_hub, folder_storage, tmp_path):
    api = folder_api
    api.create_repo("org/rev")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="file.txt", repo_id="org/rev").oid
    api.create_branch("org/rev", branch="dev")
    api.create_branch("org/rev", branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_branch("org/rev", branch="dev")
    assert error.value.response.status_code == 409
    dev = api.upload_file(path_or_fileobj=b"dev", path_in_repo="file.txt", repo_id="org/rev", revision="dev").oid
    second = api.upload_file(path_or_fileobj=b"v2", path_in_repo="file.txt", repo_id="org/rev").oid
    api.create_tag("org/rev", tag="v1.0", revision=first)

    def read(revision: str) -> bytes:
        path = hf_hub_download("org/rev", "file.txt", revision=revision, endpoint=folder_hub.url,
                               cache_dir=tmp_path / "c", token=False)
        return Path(path).read_bytes()

    assert read("main") == b"v2" and read("dev") == b"dev"
    # Each branch head is also there as plain files: main at the repo root, others under .hub/branches/.
    assert folder_storage.get("models/org/rev/file.txt") == b"v2"
    assert folder_storage.get("models/org/rev/.hub/branches/dev/file.txt") == b"dev"
    assert read(first) == b"v1" and read("v1.0") == b"v1" and read(dev) == b"dev"
    assert api.repo_info("org/rev", revision="dev").sha == dev
    refs = api.list_repo_refs("org/rev")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second, "dev": dev}
    assert [(t.name, t.target_commit, t.ref) for t in refs.tags] == [("v1.0", first, "refs/tags/v1.0")]
    commits = api.list_repo_commits("org/rev")
    assert [c.commit_id for c in commits][:2] == [second, first]
    assert commits[0].title == "Upload file.txt with huggingface_hub" and commits[0].authors
    assert [c.commit_id for c in api.list_repo_commits("org/rev", revision="dev")][0] == dev
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/rev", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="org/rev", revision="nope")
    api.delete_branch("org/rev", branch="dev")
    assert [b.name for b in api.list_repo_refs("org/rev").branches] == ["main"]
    assert not folder_storage.exists("models/org/rev/.hub/branches/dev/file.txt")
    with pytest.raises(HfHubHTTPError):
        api.delete_branch("org/rev", branch="main")
    api.delete_tag("org/rev", tag="v1.0")
    assert api.list_repo_refs("org/rev").tags == []


def test_tree_listing_paths_info_and_exists(folder_api):
    api = folder_api
    api.create_repo("org/tree", repo_type="dataset")
    ops = [CommitOperationAdd(f"data/split{i // 3}/part-{i}.txt", f"row {i}".encode()) for i in range(7)]
    ops.append(CommitOperationAdd("data/train.parquet", os.urandom(3000)))
    ops.append(CommitOperationAdd("README.md", b"# Tree\n"))
    api.create_commit("org/tree", ops, commit_message="many", repo_type="dataset")

    top = {(e.path, type(e).__name__) for e in api.list_repo_tree("org/tree", repo_type="dataset")}
    assert top == {(".gitattributes", "RepoFile"), ("README.md", "RepoFile"), ("data", "RepoFolder")}
    data = {e.path for e in api.list_repo_tree("org/tree", "data", repo_type="dataset")}
    assert data == {"data/split0", "data/split1", "data/split2", "data/train.parquet"}
    everything = list(api.list_repo_tree("org/tree", recursive=True, expand=True, repo_type="dataset"))
    files = [e for e in everything if type(e).__name__ == "RepoFile"]
    assert len(files) == 10 and all(e.last_commit and e.last_commit.title for e in files)
    parquet = next(e for e in files if e.path == "data/train.parquet")
    assert parquet.lfs is not None and parquet.size == 3000
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("org/tree", "missing", repo_type="dataset"))

    infos = api.get_paths_info("org/tree", ["README.md", "data/split1", "nope.txt"], repo_type="dataset")
    assert {(i.path, type(i).__name__) for i in infos} == {("README.md", "RepoFile"), ("data/split1", "RepoFolder")}
    assert api.file_exists("org/tree", "data/split0/part-0.txt", repo_type="dataset")
    assert not api.file_exists("org/tree", "data/split0/part-99.txt", repo_type="dataset")
    assert not api.file_exists("org/missing", "README.md", repo_type="dataset")


def test_tree_pagination(folder_storage):
    with HubServer(folder_storage, tree_page_size=4) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/pages")
        api.create_commit("org/pages", [CommitOperationAdd(f"f{i:02d}.txt", b"x") for i in range(11)],
                          commit_message="eleven")
        assert len(api.list_repo_files("org/pages")) == 12  # three pages, followed through Link headers
        status, headers, _ = raw_request(hub.url, "GET", "/api/models/org/pages/tree/main")
        assert status == 200 and 'rel="next"' in headers["link"]


def test_commit_operations(folder_api, folder_hub, tmp_path):
    api = folder_api
    api.create_repo("org/ops")
    api.create_commit(
        "org/ops",
        [
            CommitOperationAdd("keep.txt", b"keep"),
            CommitOperationAdd("dir/a.txt", b"a"),
            CommitOperationAdd("dir/b.bin", os.urandom(100)),
            CommitOperationAdd("weights.safetensors", os.urandom(4096)),
        ],
        commit_message="add",
    )
    api.create_commit(
        "org/ops",
        [
            CommitOperationCopy("weights.safetensors", "copy.safetensors"),
            CommitOperationCopy("keep.txt", "kept-copy.txt"),
            CommitOperationDelete("dir/"),
        ],
        commit_message="copy and delete a folder",
    )
    assert sorted(api.list_repo_files("org/ops")) == [
        ".gitattributes", "copy.safetensors", "keep.txt", "kept-copy.txt", "weights.safetensors",
    ]
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("never-there.txt", "org/ops")
    head = api.model_info("org/ops").sha
    # Same content again: the client sees the remote oids match and makes no new commit.
    again = api.upload_file(path_or_fileobj=b"keep", path_in_repo="keep.txt", repo_id="org/ops")
    assert again.oid == head
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit("org/ops", [CommitOperationAdd("keep.txt/inner", b"x")], commit_message="clash")
    assert error.value.response.status_code == 400


def test_preupload_modes(folder_api, folder_hub):
    folder_api.create_repo("org/modes")
    import base64

    payload = {
        "files": [
            {"path": "a.txt", "sample": base64.b64encode(b"text").decode(), "size": 4},
            {"path": "b.parquet", "sample": base64.b64encode(b"PAR1").decode(), "size": 4},
            {"path": "c.dat", "sample": base64.b64encode(b"\x00\x01\x02").decode(), "size": 3},
            {"path": "d.txt", "sample": base64.b64encode(b"x" * 512).decode(), "size": 50_000_000},
            {"path": ".gitattributes", "sample": "", "size": 10},
        ]
    }
    status, _, body = raw_request(
        folder_hub.url, "POST", "/api/models/org/modes/preupload/main", json.dumps(payload).encode(),
        {"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"},
    )
    assert status == 200
    modes = {f["path"]: (f["uploadMode"], f["oid"]) for f in json.loads(body)["files"]}
    assert modes["a.txt"] == ("regular", None)
    assert modes["b.parquet"][0] == modes["c.dat"][0] == modes["d.txt"][0] == "lfs"
    assert modes[".gitattributes"][0] == "regular" and modes[".gitattributes"][1] is not None


def test_model_card_and_whoami(folder_api):
    folder_api.create_repo("org/card")
    card = b"---\nlicense: apache-2.0\ntags:\n- grpo\n---\n# A model\n"
    folder_api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id="org/card")
    with pytest.raises(ValueError, match="Invalid metadata"):
        folder_api.upload_file(path_or_fileobj=b"---\nlicense: [oops\n---\n", path_in_repo="README.md",
                               repo_id="org/card")
    me = folder_api.whoami()
    assert me["name"] and me["auth"]["accessToken"]["role"] == "write"


def test_not_found_errors(folder_api, folder_hub, tmp_path):
    folder_api.create_repo("org/present")
    with pytest.raises(RepositoryNotFoundError):
        folder_api.model_info("org/absent")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/absent", "x.json", endpoint=folder_hub.url, cache_dir=tmp_path, token=False)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/present", ".gitattributes", revision="nope", endpoint=folder_hub.url,
                        cache_dir=tmp_path, token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/present", "x.json", endpoint=folder_hub.url, cache_dir=tmp_path, token=False)
    status, headers, _ = raw_request(folder_hub.url, "HEAD", "/org/present/resolve/main/x.json")
    assert status == 404 and headers["x-error-code"] == "EntryNotFound" and len(headers["x-repo-commit"]) == 40
    status, headers, _ = raw_request(folder_hub.url, "GET", "/api/models/org/absent")
    assert status == 404 and headers["x-error-code"] == "RepoNotFound"
    status, _, _ = raw_request(folder_hub.url, "GET", "/api/unknown/route")
    assert status == 404
