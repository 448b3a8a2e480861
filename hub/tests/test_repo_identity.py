"""Signed credentials belong to one repo, not to its name: Xet CAS tokens, xorb fetch URLs and LFS
upload URLs of a repo that was deleted (or moved away) are refused, also once a new repo has the
same name.

The flow is the real one: a client gets its credentials from the hub while the repo lives, the repo
is deleted and created again (by HfApi), and the client keeps using what it holds.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from huggingface_hub import HfApi

from reasoner_hub.auth import TokenBook
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .helpers import TOKENS, WRITE_TOKEN, client_env, raw_request, run_client

SOURCE = "org/source"


@pytest.fixture(scope="module")
def xet_hub(tmp_path_factory):
    """A hub with tokens and one repo filled by the real hf_xet client; yields (hub, storage, folder)."""
    root = tmp_path_factory.mktemp("identity")
    storage = LocalStorage(root / "bucket")
    folder = root / "upload"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(300_000))
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        env = client_env(hub.url, root / "home", xet=True)
        run_client("xet_client.py", ["upload-folder", SOURCE, str(folder)], env, timeout=600)
        yield hub, storage, folder


def _get(hub, path, token=None, method="GET", body=None, headers=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return raw_request(hub.url, method, path, body=body, headers=headers)


def _cas_token(hub, repo_id, scope):
    status, _, body = _get(hub, f"/api/models/{repo_id}/xet-{scope}-token/main", WRITE_TOKEN)
    assert status == 200, body
    return json.loads(body)["accessToken"]


def _file_hash(hub, repo_id, path):
    status, headers, _ = _get(hub, f"/{repo_id}/resolve/main/{path}", WRITE_TOKEN, method="HEAD")
    assert status == 200
    return headers["x-xet-hash"]


def _fetch_url(hub, read_token, file_hash):
    """The first signed xorb fetch URL of a reconstruction, as a path, with its byte range."""
    status, _, body = _get(hub, f"/_xet/v1/reconstructions/{file_hash}", read_token)
    assert status == 200, body
    fetch = next(iter(json.loads(body)["fetch_info"].values()))[0]
    span = f"bytes={fetch['url_range']['start']}-{fetch['url_range']['end']}"
    return fetch["url"][len(hub.url):], span


def test_xet_tokens_and_fetch_urls_die_with_their_repo(xet_hub):
    hub, storage, _ = xet_hub
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    shard = storage.get(next(iter(storage.list(f"models/{SOURCE}/.hub/xet/shards/"))))
    xorb_key = next(iter(storage.list(".hub/xet/xorbs/")))
    file_hash = _file_hash(hub, SOURCE, "weights.bin")

    api.create_repo("org/reused", private=True)
    write, read = _cas_token(hub, "org/reused", "write"), _cas_token(hub, "org/reused", "read")
    assert _get(hub, "/_xet/v1/shards", write, method="POST", body=shard)[0] == 200
    fetch_path, span = _fetch_url(hub, read, file_hash)
    assert _get(hub, fetch_path, headers={"Range": span})[0] == 206

    api.delete_repo("org/reused")
    api.create_repo("org/reused", private=False)  # a new repo, same name, open to everyone

    # Everything the old repo's client holds is refused by the new repo.
    assert _get(hub, "/_xet/v1/shards", write, method="POST", body=shard)[0] == 401
    assert _get(hub, f"/_xet/v1/xorbs/default/{xorb_key.rsplit('/', 1)[1]}", write, method="POST",
                body=storage.get(xorb_key))[0] == 401
    assert _get(hub, f"/_xet/v1/reconstructions/{file_hash}", read)[0] == 401
    assert _get(hub, fetch_path, headers={"Range": span})[0] == 403
    assert list(storage.list("models/org/reused/.hub/xet/")) == []  # the shard registered nothing
    assert not hub.app.xet_store.file(hub.store_repo("model", "org/reused"), file_hash)

    # The new repo's own credentials work; the old fetch URL stays dead.
    fresh_write, fresh_read = _cas_token(hub, "org/reused", "write"), _cas_token(hub, "org/reused", "read")
    assert _get(hub, "/_xet/v1/shards", fresh_write, method="POST", body=shard)[0] == 200
    new_path, new_span = _fetch_url(hub, fresh_read, file_hash)
    assert _get(hub, new_path, headers={"Range": new_span})[0] == 206
    assert _get(hub, fetch_path, headers={"Range": span})[0] == 403


def test_xet_tokens_of_a_moved_repo_do_not_reach_a_new_repo_of_the_old_name(xet_hub):
    hub, storage, _ = xet_hub
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    shard = storage.get(next(iter(storage.list(f"models/{SOURCE}/.hub/xet/shards/"))))
    api.create_repo("org/before")
    write = _cas_token(hub, "org/before", "write")
    api.move_repo("org/before", "org/after")
    api.create_repo("org/before")
    assert _get(hub, "/_xet/v1/shards", write, method="POST", body=shard)[0] == 401
    assert list(storage.list("models/org/before/.hub/xet/")) == []


def test_lfs_upload_urls_die_with_their_repo(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    content = os.urandom(5000)
    oid = hashlib.sha256(content).hexdigest()
    body = json.dumps({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(content)}]})
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)

        def href() -> str:
            status, _, answer = _get(hub, "/org/lfs.git/info/lfs/objects/batch", WRITE_TOKEN, "POST", body.encode())
            assert status == 200, answer
            return json.loads(answer)["objects"][0]["actions"]["upload"]["href"][len(hub.url):]

        api.create_repo("org/lfs")
        stale = href()
        api.delete_repo("org/lfs")
        api.create_repo("org/lfs")
        assert _get(hub, stale, method="PUT", body=content)[0] == 403
        repo = hub.store_repo("model", "org/lfs")
        assert not hub.store.has_blob(repo, oid)
        assert _get(hub, href(), method="PUT", body=content)[0] == 200
        assert hub.store.has_blob(repo, oid)
        api.delete_repo("org/lfs")
        assert _get(hub, stale, method="PUT", body=content)[0] == 403  # no repo at all: refused the same way


def test_lfs_download_urls_die_with_their_repo(tmp_path):
    content = os.urandom(3000)
    oid = hashlib.sha256(content).hexdigest()
    body = json.dumps({"operation": "download", "transfers": ["basic"],
                       "objects": [{"oid": oid, "size": len(content)}]}).encode()
    with HubServer(LocalStorage(tmp_path / "bucket"), tokens=TokenBook(TOKENS)) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)

        def href() -> str:
            status, _, answer = _get(hub, "/org/gone.git/info/lfs/objects/batch", WRITE_TOKEN, "POST", body)
            assert status == 200, answer
            return json.loads(answer)["objects"][0]["actions"]["download"]["href"][len(hub.url):]

        api.create_repo("org/gone", private=True)
        api.upload_file(path_or_fileobj=content, path_in_repo="w.bin", repo_id="org/gone")
        stale = href()
        assert _get(hub, stale) == (200, _get(hub, stale)[1], content)
        api.delete_repo("org/gone")
        assert _get(hub, stale)[0] == 403
        api.create_repo("org/gone", private=False)  # the same bytes in a new public repo of that name
        api.upload_file(path_or_fileobj=content, path_in_repo="w.bin", repo_id="org/gone")
        assert _get(hub, stale)[0] == 403
        assert _get(hub, href())[0] == 200
