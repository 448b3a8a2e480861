"""Requests that try to leave a repo (``..``, absolute paths, backslashes, empty segments) get 400.

Sent raw (http.client), since huggingface_hub itself refuses such paths before sending them.
"""

from __future__ import annotations

import base64
import json

import pytest
from huggingface_hub import HfApi

from .helpers import WRITE_TOKEN, raw_request

AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}
BAD_PATHS = ["../escape.txt", "a/../../escape.txt", "/abs.txt", "a\\b.txt", "a//b.txt", "./a.txt", "a/./b",
             ".hub/refs/heads/main", "a/", "..", "nul\x00.txt"]


@pytest.fixture
def repo(folder_api):
    folder_api.create_repo("org/walls")
    folder_api.upload_file(path_or_fileobj=b"inside", path_in_repo="in.txt", repo_id="org/walls")
    return folder_api.model_info("org/walls").sha


def _commit_body(path: str) -> bytes:
    lines = [
        {"key": "header", "value": {"summary": "escape", "description": ""}},
        {"key": "file", "value": {"content": base64.b64encode(b"pwned").decode(), "path": path, "encoding": "base64"}},
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_commits_with_escaping_paths_are_refused(folder_hub, folder_storage, repo):
    for path in BAD_PATHS:
        status, _, body = raw_request(folder_hub.url, "POST", "/api/models/org/walls/commit/main",
                                      _commit_body(path), {**AUTH, "Content-Type": "application/x-ndjson"})
        assert status == 400, (path, body)
    assert HfApi(endpoint=folder_hub.url, token=False).model_info("org/walls").sha == repo
    everything = list(folder_storage.list(""))
    assert not any("escape" in key or key.endswith("abs.txt") for key in everything)
    assert not (folder_storage.root.parent / "escape.txt").exists()


ESCAPING_URLS = [
    "/org/walls/resolve/main/../../../etc/passwd",
    "/org/walls/resolve/main/%2E%2E/%2E%2E/etc/passwd",
    "/org/walls/resolve/main/a%5Cin.txt",
    "/org/walls/resolve/main/a//in.txt",
    "/org/walls/resolve/main//in.txt",
    "/org/walls/resolve/main/.hub/repo.json",
    "/api/models/org/walls/tree/main/..%2F..",
    "/api/models/../../tree/main",
    "/api/models/org/..%2F..%2Fdatasets/tree/main",
    "/org/walls/resolve/..%2F..%2Fetc/in.txt",
]


def test_downloads_and_listings_with_escaping_paths_are_refused(folder_hub, repo):
    for url in ESCAPING_URLS:
        status, _, _ = raw_request(folder_hub.url, "GET", url)
        # A revision that is no possible branch name is simply not found.
        assert status == (404 if "resolve/.." in url else 400), url


def test_preupload_and_delete_refuse_escaping_paths(folder_hub, repo):
    for path in ["../x.bin", "/x.bin", "a\\x.bin", "a//x.bin"]:
        _refused_in_preupload_and_delete(folder_hub, path)


def _refused_in_preupload_and_delete(folder_hub, path: str) -> None:
    payload = json.dumps({"files": [{"path": path, "sample": "", "size": 1}]}).encode()
    assert raw_request(folder_hub.url, "POST", "/api/models/org/walls/preupload/main", payload, AUTH)[0] == 400
    lines = [{"key": "header", "value": {"summary": "rm"}}, {"key": "deletedFile", "value": {"path": path}}]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    assert raw_request(folder_hub.url, "POST", "/api/models/org/walls/commit/main", body, AUTH)[0] == 400


def test_bad_branch_names_are_refused(folder_hub, repo):
    from urllib.parse import quote

    for name in ["../x", "a/../b", "refs/heads/../x", ".hidden", "a b", "x.lock", "a//b", ".."]:
        status, _, _ = raw_request(folder_hub.url, "POST", f"/api/models/org/walls/branch/{quote(name, safe='')}",
                                   b"{}", AUTH)
        assert status == 400, name


def test_bad_repo_ids_are_refused(folder_hub):
    for org, name in [("..", "x"), ("org", ".."), ("datasets", "x"), ("org", "a--b"), ("o", "x.git"), ("o", "a/b")]:
        payload = json.dumps({"name": name, "organization": org}).encode()
        assert raw_request(folder_hub.url, "POST", "/api/repos/create", payload, AUTH)[0] == 400, (org, name)
