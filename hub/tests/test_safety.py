"""Data safety without a crash: deletes racing commits, names a file system cannot hold, malformed requests,
durable writes, temp files of dead processes, repos left half created by older versions, the start-up line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub.commits import DEFAULT_BRANCH
from reasoner_hub.paths import Repo
from reasoner_hub.repos import RepoStore
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .crashkit import StoreLook, WireClient
from .helpers import REPO_ROOT, WRITE_TOKEN, raw_request
from .served import Served

INTERNAL_NAMES = ("Traceback", "AttributeError", "TypeError", "KeyError", "ValueError", "object has no attribute",
                  "not subscriptable", "Internal error")


def _look(storage, tmp_path: Path) -> StoreLook:
    if isinstance(storage, LocalStorage):
        return StoreLook(folder=Path(storage.root))
    return _S3Look(storage)


class _S3Look(StoreLook):
    def __init__(self, storage) -> None:
        super().__init__()
        self.storage = storage

    def keys(self, prefix: str) -> list[str]:
        return sorted(self.storage.list(prefix))


def test_a_delete_racing_commits_leaves_nothing(hub, storage, tmp_path):
    """Writers keep committing while the repo is deleted: afterwards not one object of it is left."""
    look = _look(storage, tmp_path)
    for attempt in range(3):
        name = f"org/racy-{attempt}"
        client = WireClient(hub.url, WRITE_TOKEN)
        assert client.create(name, private=True) == 200
        stop = threading.Event()
        answers: list[int] = []

        def commit_loop(worker: int) -> None:
            n = 0
            while not stop.is_set():
                status, _ = client.commit(name, {f"w{worker}/f{n}.txt": os.urandom(64)},
                                          lfs={f"w{worker}/l{n}.bin": os.urandom(300)} if n % 2 else {})
                answers.append(status)
                n += 1
                if status == 404:
                    return

        workers = [threading.Thread(target=commit_loop, args=(w,)) for w in range(3)]
        for worker in workers:
            worker.start()
        while len(answers) < 4 + attempt * 3:
            time.sleep(0.01)
        assert client.delete(name) == 200
        stop.set()
        for worker in workers:
            worker.join(30)
        assert 200 in answers
        assert look.keys(f"models/{name}/") == [], f"the deleted {name} left {look.keys(f'models/{name}/')[:5]}"
        assert raw_request(hub.url, "GET", f"/api/models/{name}")[0] == 404


def test_a_name_over_255_bytes_is_refused_and_the_repo_keeps_working(api, hub, storage, tmp_path):
    api.create_repo("org/names")
    long_name = "é" * 128 + ".txt"  # 260 bytes in UTF-8: no ext4/xfs/btrfs file can be called that
    with pytest.raises(HfHubHTTPError) as error:
        api.upload_file(path_or_fileobj=b"x", path_in_repo=f"dir/{long_name}", repo_id="org/names")
    assert error.value.response.status_code == 400
    message = error.value.response.headers["x-error-message"]
    assert "longer than 255 bytes" in message and "\n" not in message
    api.upload_file(path_or_fileobj=b"fine", path_in_repo="dir/" + "é" * 120 + ".txt", repo_id="org/names")
    api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id="org/names")
    plain = _look(storage, tmp_path).keys("models/org/names/")
    assert "models/org/names/later.txt" in plain and f"models/org/names/dir/{'é' * 120}.txt" in plain
    status, headers, _ = raw_request(hub.url, "POST", "/api/models/org/names/branch/" + quote("é" * 50), b"{}",
                                     {"Content-Type": "application/json"})
    assert status == 400 and "too long" in headers["x-error-message"]


def _commit(url: str, lines: list[object]) -> tuple[int, dict, bytes]:
    body = b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)
    return raw_request(url, "POST", "/api/models/org/fields/commit/main", body,
                       {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {WRITE_TOKEN}"})


HEADER = {"key": "header", "value": {"summary": "s"}}
SHA = "a" * 64
BAD_COMMITS = [
    [HEADER, {"key": "file", "value": [1]}],
    [HEADER, {"key": "file", "value": {"path": "a.txt", "content": 5}}],
    [HEADER, {"key": "file", "value": {"path": ["a"], "content": ""}}],
    [HEADER, {"key": "file", "value": {"path": "a.txt", "encoding": ["base64"], "content": ""}}],
    [HEADER, {"key": "file", "value": {"path": "a.txt", "content": "!!notbase64"}}],
    [HEADER, {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": SHA, "size": "abc"}}],
    [HEADER, {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": SHA, "size": [1]}}],
    [HEADER, {"key": "lfsFile", "value": "x"}],
    [HEADER, {"key": "deletedFile", "value": None}],
    [HEADER, {"key": "deletedFolder", "value": {"path": {}}}],
    [{"key": "header", "value": {"summary": {"a": 1}}}],
    [{"key": "header", "value": {"parentCommit": 123}}],
    [{"key": "header", "value": []}],
    [[1, 2]],
    [{"key": 5, "value": 1}],
    [{"value": 1}],
    [b"not json at all"],
    [HEADER, {"key": "copyFile", "value": {}}],
]


@pytest.mark.parametrize("lines", BAD_COMMITS, ids=range(len(BAD_COMMITS)))
def test_malformed_commit_fields_are_one_line_400s(folder_api, folder_hub, lines):
    folder_api.create_repo("org/fields", exist_ok=True)
    status, headers, body = _commit(folder_hub.url, lines)
    _assert_one_line_client_error(status, headers, body)
    assert folder_api.list_repo_files("org/fields") == [".gitattributes"]


BAD_JSON = [
    ("POST", "/api/repos/create", {"name": "x", "type": ["model"]}),
    ("POST", "/api/repos/create", {"name": {"a": 1}}),
    ("POST", "/api/repos/create", []),
    ("POST", "/api/repos/create", "name"),
    ("DELETE", "/api/repos/delete", {"name": 1, "organization": []}),
    ("POST", "/api/models/org/fields/branch/dev", {"startingPoint": 5}),
    ("POST", "/api/models/org/fields/tag/main", {"tag": {"x": 1}}),
    ("POST", "/api/models/org/fields/preupload/main", {"files": [{"path": "a", "size": "x", "sample": 5}]}),
    ("POST", "/api/models/org/fields/preupload/main", {"files": [5]}),
    ("POST", "/api/models/org/fields/paths-info/main", {"paths": 5}),
    ("POST", "/api/models/org/fields/paths-info/main", {"paths": {"a": 1}}),
    ("POST", "/api/models/org/fields/paths-info/main", {"paths": [1, 2]}),
    ("POST", "/api/models/org/fields/paths-info/main", [1]),
    ("POST", "/api/validate-yaml", {"content": 5}),
    ("POST", "/api/validate-yaml", []),
    ("POST", "/org/fields.git/info/lfs/objects/batch", {"operation": "upload", "objects": 5}),
]


@pytest.mark.parametrize("method,path,data", BAD_JSON, ids=range(len(BAD_JSON)))
def test_malformed_json_fields_are_one_line_400s(folder_api, folder_hub, method, path, data):
    folder_api.create_repo("org/fields", exist_ok=True)
    status, headers, body = raw_request(folder_hub.url, method, path, json.dumps(data).encode(),
                                        {"Content-Type": "application/json", "Authorization": f"Bearer {WRITE_TOKEN}"})
    _assert_one_line_client_error(status, headers, body)


def _assert_one_line_client_error(status: int, headers: dict, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:300])
    message = headers.get("x-error-message") or json.loads(body)["error"]
    assert message and "\n" not in message
    assert not any(name in message for name in INTERNAL_NAMES), message


def test_an_internal_error_shows_no_internals(folder_api, folder_hub, folder_storage):
    folder_api.create_repo("org/broken")
    head = folder_api.model_info("org/broken").sha
    # A manifest damaged behind the hub's back (the process cache is cleared, as after a restart).
    folder_storage.put(f"models/org/broken/.hub/commits/{head}.json", b"{not json")
    folder_hub.store.forget_repo(Repo("model", "org/broken"))
    status, headers, body = raw_request(folder_hub.url, "GET", "/api/models/org/broken")
    assert status == 500
    message = json.loads(body)["error"]
    assert message.startswith("Internal error (reference ") and "\n" not in message
    assert "JSON" not in message and "Expecting" not in message and "json" not in headers["x-error-message"].lower()


def test_refs_and_manifests_are_fsynced_before_they_count(folder_storage, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = RepoStore(folder_storage)
    repo = Repo("model", "org/durable")
    store.create_repo(repo, private=False, author="t")
    root = str(folder_storage.root)
    spooled = [Path(p).name for p in synced if "/.tmp/" in p]
    head = store.resolve(repo, DEFAULT_BRANCH).id
    # Each durable object is fsynced as a spool file, then renamed into place and its folder fsynced.
    assert f"{root}/models/org/durable/.hub/refs/heads" in synced
    assert f"{root}/models/org/durable/.hub/commits" in synced
    assert f"{root}/models/org/durable/.hub" in synced  # repo.json's folder
    assert f"{root}/.hub-journal" in synced
    assert len(spooled) >= 4  # journal, record, blob, manifest, ref, ...
    assert head


def test_temp_files_of_dead_processes_are_swept_but_a_live_ones_kept(tmp_path):
    root = tmp_path / "hub"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from reasoner_hub.storage import LocalStorage; "
         "s = LocalStorage(sys.argv[1]); open(s.temp_dir() + '/in-flight', 'wb').write(b'x'); "
         "print(s.temp_dir(), flush=True); time.sleep(60)", str(root)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        live = Path(holder.stdout.readline().strip())
        dead = root / ".tmp" / f"spool-{uuid.uuid4().hex}"
        dead.mkdir()
        (dead / "partial-upload").write_bytes(b"y" * 1000)
        (root / ".tmp" / "loose-from-an-old-version").write_bytes(b"z")
        with HubServer(root) as hub:
            assert sorted(Path(p).name for p in hub.recovery.temp_removed) == ["loose-from-an-old-version",
                                                                              "partial-upload"]
        assert not dead.exists() and (live / "in-flight").exists()
    finally:
        holder.kill()
        holder.wait(10)
    with HubServer(root) as hub:
        assert [Path(p).name for p in hub.recovery.temp_removed] == ["in-flight"]


def test_a_repo_left_without_main_by_an_older_hub_can_be_created_again(folder_storage):
    """Before creates were journaled, a crash could leave repo.json and nothing else: 409 for ever."""
    folder_storage.put("models/org/stub/.hub/repo.json",
                       json.dumps({"type": "model", "id": "org/stub", "private": False, "createdAt": "x"}).encode())
    folder_storage.put("models/org/stub/.hub/blobs/" + "b" * 64, b"old")
    with HubServer(folder_storage) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo("org/stub")
        assert api.list_repo_files("org/stub") == [".gitattributes"]
        api.upload_file(path_or_fileobj=b"new", path_in_repo="a.txt", repo_id="org/stub")
    assert not folder_storage.exists("models/org/stub/.hub/blobs/" + "b" * 64)


@pytest.mark.s3
def test_the_s3_start_up_prints_the_hub_url_alone(seaweedfs, tmp_path):
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    served = Served(["--storage", f"s3://{seaweedfs.bucket}/{prefix}", "--s3-endpoint", seaweedfs.endpoint],
                    {**os.environ, **seaweedfs.env()})
    try:
        HfApi(endpoint=served.url, token=WRITE_TOKEN).create_repo("org/where")
    finally:
        code, out, _ = served.stop()
    lines = out.splitlines()
    url_lines = [line for line in lines if line.strip().startswith("http://")]
    assert url_lines == [served.url], lines  # the one line that is only a URL is the hub's
    assert served.url != seaweedfs.endpoint
    assert all(seaweedfs.endpoint not in line or "S3 endpoint" in line for line in lines), lines
    assert code == 0
