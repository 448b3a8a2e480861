"""Xet end to end: the real huggingface_hub + hf_xet, with Xet on (no HF_HUB_DISABLE_XET), on both storages.

Each client runs in its own process with a clean environment, as a user runs it: huggingface_hub
reads ``HF_HUB_DISABLE_XET`` when imported, and these processes never set it. The request log of
the hub says which protocol carried the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import hf_xet
import pytest
import torch
from safetensors.torch import save_file

from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile

from reasoner_hub.auth import TokenBook
from reasoner_hub.server import HubServer
from reasoner_hub.xet.hashes import from_hex
from reasoner_hub.xet.xorb import XorbIndex

from .helpers import TOKENS, client_env, raw_request, run_client

BIG = 64 * 1024 * 1024 + 4097  # over one xorb: two xorbs, several terms


@pytest.fixture
def xet_hub(storage, tmp_path):
    with HubServer(storage, tokens=TokenBook(TOKENS), request_log=str(tmp_path / "requests.jsonl")) as hub:
        yield hub


class RequestLog:
    """The hub's JSONL request log, read from a mark on.

    The hub writes a request's line after its response is sent, so the line can land after the client already
    has its answer. A mark is therefore a moment (a request that started before it is left out, whenever its line
    was written), and reading waits until the log stops growing."""

    def __init__(self, path: Path) -> None:
        self.path, self.since = path, None

    def mark(self) -> None:
        self.since = datetime.now(timezone.utc)

    def since_mark(self) -> list[dict]:
        entries = [json.loads(line) for line in self._settled_lines()]
        if self.since is None:
            return entries
        return [e for e in entries
                if datetime.fromisoformat(e["time"]) - timedelta(milliseconds=e["duration_ms"]) >= self.since]

    def _settled_lines(self) -> list[str]:
        previous, deadline = None, time.monotonic() + 10
        while True:
            lines = self.path.read_text().splitlines()
            if lines == previous or time.monotonic() > deadline:
                return lines
            previous = lines
            time.sleep(0.2)


def _folder(root: Path) -> Path:
    """Files from 0 B to over 64 MiB: random bytes, a float safetensors (compressible), text."""
    folder = root / "upload"
    (folder / "nested").mkdir(parents=True)
    (folder / "empty.bin").write_bytes(b"")
    (folder / "one.bin").write_bytes(os.urandom(1))
    (folder / "small.bin").write_bytes(os.urandom(8000))
    (folder / "nested" / "part.bin").write_bytes(os.urandom(300_001))
    (folder / "big.bin").write_bytes(os.urandom(BIG))
    (folder / "notes.bin").write_bytes(b"".join(b"line %d of repetitive text\n" % (i % 50) for i in range(20000)))
    (folder / "config.json").write_text('{"hidden_size": 64}\n')
    generator = torch.Generator().manual_seed(0)
    save_file({"weight": torch.randn(512, 1024, generator=generator) * 0.02}, str(folder / "model.safetensors"))
    return folder


def _stored_schemes(storage) -> set[int]:
    """The compression schemes of every chunk the hub stores (0 none, 1 LZ4, 2 byte-grouped LZ4)."""
    schemes = set()
    for key in storage.list(".hub/xet/xorb-index/"):
        name = key.rsplit("/", 1)[1]
        index = XorbIndex.from_bytes(from_hex(name), storage.get(key))
        data = storage.get(f".hub/xet/xorbs/{name}")
        schemes |= {data[offset + 4] for offset in index.offsets[:-1]}
    return schemes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _xet_upload_requests(entries: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    xorbs = [e for e in entries if e["method"] == "POST" and e["path"].startswith("/_xet/v1/xorbs/")]
    shards = [e for e in entries if e["method"] == "POST" and e["path"] in ("/_xet/v1/shards", "/_xet/v2/shards")]
    lfs = [e for e in entries if e["path"].startswith("/_lfs/") or e["path"].endswith("/info/lfs/objects/batch")]
    return xorbs, shards, lfs


def test_xet_upload_download_snapshot_http_and_dedupe(xet_hub, storage, tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl")
    folder = _folder(tmp_path)
    repo = xet_hub.store_repo("model", "org/xet-model")

    # Upload: every LFS file travels as xorbs + a shard, none through the LFS batch API.
    result = run_client("xet_client.py", ["upload-folder", repo.id, str(folder)],
                        client_env(xet_hub.url, tmp_path / "home-up", xet=True), timeout=600)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"big.bin", "model.safetensors", "nested/part.bin", "empty.bin", "config.json"} <= set(seen["files"])
    xorbs, shards, lfs = _xet_upload_requests(log.since_mark())
    assert len(xorbs) >= 2 and all(e["status"] == 200 for e in xorbs)  # >64 MiB needs two xorbs
    assert shards and all(e["status"] == 200 for e in shards)
    assert lfs == []
    head = xet_hub.store.resolve(repo, "main")
    assert all(head.files[name].lfs for name in ("big.bin", "model.safetensors", "one.bin", "nested/part.bin"))
    assert not head.files["empty.bin"].lfs  # an empty file is a regular upload
    assert _stored_schemes(storage) == {0, 1, 2}  # random bytes, text and float weights: every decoder is used

    # HEAD names the Xet file id: the same one hf_xet computes from the bytes.
    status, headers, _ = raw_request(xet_hub.url, "HEAD", f"/{repo.id}/resolve/main/big.bin")
    assert status == 200
    expected_id = hf_xet.hash_files([str(folder / "big.bin")])[0].hash
    assert headers["x-xet-hash"] == expected_id
    assert headers["x-xet-refresh-route"].endswith(f"/api/models/{repo.id}/xet-read-token/{head.id}")

    # A plain HTTP GET (no Xet) returns the exact bytes, whole and by Range.
    big = (folder / "big.bin").read_bytes()
    status, _, body = raw_request(xet_hub.url, "GET", f"/{repo.id}/resolve/main/big.bin")
    assert status == 200 and _sha256(body) == _sha256(big)
    first, last = 64 * 1024 * 1024 - 10, 64 * 1024 * 1024 + 99
    status, _, body = raw_request(xet_hub.url, "GET", f"/{repo.id}/resolve/main/big.bin",
                                  headers={"Range": f"bytes={first}-{last}"})
    assert status == 206 and body == big[first : last + 1]
    assert storage.get(f"models/{repo.id}/nested/part.bin") == (folder / "nested" / "part.bin").read_bytes()

    # Download with Xet: hf_hub_download and snapshot_download rebuild every file byte for byte.
    log.mark()
    result = run_client("xet_client.py", ["download", repo.id, str(folder), str(tmp_path / "down")],
                        client_env(xet_hub.url, tmp_path / "home-down", xet=True), timeout=600)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(seen["single"].values()) and all(seen["snapshot"].values()), seen
    assert len(seen["single"]) == 8
    entries = log.since_mark()
    assert any(e["path"].startswith("/_xet/v2/reconstructions/") and e["status"] == 200 for e in entries)
    fetched = sum(e["bytes_sent"] for e in entries if e["path"].startswith("/_xet/fetch/"))
    assert fetched >= BIG  # the big file came as xorb ranges ...
    assert not [e for e in entries if e["method"] == "GET" and e["path"].endswith("/resolve/main/big.bin")]

    # Dedupe: the same bytes pushed to another repo from a fresh client cache send no xorb at all.
    log.mark()
    run_client("xet_client.py", ["upload-file", "org/xet-copy", str(folder / "big.bin"), "copy/big.bin"],
               client_env(xet_hub.url, tmp_path / "home-copy", xet=True), timeout=600)
    xorbs, shards, lfs = _xet_upload_requests(log.since_mark())
    assert xorbs == [] and lfs == [] and shards
    assert sum(e["bytes_received"] for e in log.since_mark()) < 1024 * 1024
    status, headers, body = raw_request(xet_hub.url, "GET", "/org/xet-copy/resolve/main/copy/big.bin")
    assert status == 200 and headers["x-xet-hash"] == expected_id and _sha256(body) == _sha256(big)


def test_tree_listings_name_xet_hashes_and_snapshots_skip_their_heads(xet_hub, storage, tmp_path):
    """Files uploaded through Xet carry ``xetHash`` in tree listings and paths-info, as on the public
    hub; snapshot_download then fetches them through Xet without a HEAD per file."""
    log = RequestLog(tmp_path / "requests.jsonl")
    folder = tmp_path / "upload"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.bin").write_bytes(os.urandom(50_000))
    (folder / "nested" / "b.safetensors").write_bytes(os.urandom(20_000))
    (folder / "config.json").write_text('{"x": 1}\n')
    repo = xet_hub.store_repo("model", "org/xet-tree")
    run_client("xet_client.py", ["upload-folder", repo.id, str(folder)],
               client_env(xet_hub.url, tmp_path / "home-up", xet=True), timeout=600)
    api = HfApi(endpoint=xet_hub.url, token=TOKENS[0].secret)
    expected = {name: hf_xet.hash_files([str(folder / name)])[0].hash for name in ("a.bin", "nested/b.safetensors")}
    tree = {f.path: f for f in api.list_repo_tree(repo.id, recursive=True) if isinstance(f, RepoFile)}
    assert {path: f.xet_hash for path, f in tree.items()} == {**expected, "config.json": None, ".gitattributes": None}
    infos = api.get_paths_info(repo.id, ["a.bin", "nested/b.safetensors", "config.json"])
    assert {i.path: i.xet_hash for i in infos} == {**expected, "config.json": None}

    log.mark()
    result = run_client("xet_client.py", ["snapshot", repo.id, str(folder)],
                        client_env(xet_hub.url, tmp_path / "home-down", xet=True), timeout=600)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["snapshot"] == {"a.bin": True, "nested/b.safetensors": True, "config.json": True}
    entries = log.since_mark()
    heads = {e["path"].split("/resolve/", 1)[1].split("/", 1)[1] for e in entries
             if e["method"] == "HEAD" and "/resolve/" in e["path"]}
    assert heads == {"config.json", ".gitattributes"}  # regular files still HEAD; the Xet files do not
    assert sum(e["path"].startswith("/_xet/v2/reconstructions/") for e in entries) == 2

    with HubServer(storage, tokens=TokenBook(TOKENS), xet=False) as lfs_only:  # no Xet: no hash to follow
        listed = HfApi(endpoint=lfs_only.url, token=TOKENS[0].secret).list_repo_tree(repo.id, recursive=True)
        assert [f.path for f in listed if getattr(f, "xet_hash", None)] == []


def test_xet_datasets_push_to_hub_and_load_dataset(xet_hub, tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl")
    env = client_env(xet_hub.url, tmp_path / "home", xet=True, HF_HUB_USER_AGENT_ORIGIN="datasets-xet")
    result = run_client("datasets_roundtrip.py", ["org/gsm-xet"], env, timeout=600)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "rows": 40,
        "latest_rows": 1,
        "pinned_rows": 40,
        "files": [".gitattributes", "README.md", "data/train-00000-of-00001.parquet"],
    }
    xorbs, shards, lfs = _xet_upload_requests(log.since_mark())
    assert xorbs and shards and lfs == []  # the parquet files went through Xet
    repo = xet_hub.store_repo("dataset", "org/gsm-xet")
    parquet = xet_hub.store.resolve(repo, "main").files["data/train-00000-of-00001.parquet"]
    assert parquet.lfs and xet_hub.app.xet_store.file_hash_of(repo, parquet.sha256)


def test_xet_hf_cli_upload_of_safetensors(xet_hub, tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl")
    weights = tmp_path / "model.safetensors"
    save_file({"w": torch.randn(256, 512)}, str(weights))
    env = client_env(xet_hub.url, tmp_path / "home", xet=True)
    result = subprocess.run([shutil.which("hf") or "hf", "upload", "org/cli-model", str(weights), "model.safetensors"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    xorbs, shards, lfs = _xet_upload_requests(log.since_mark())
    assert xorbs and shards and lfs == []
    status, headers, body = raw_request(xet_hub.url, "GET", "/org/cli-model/resolve/main/model.safetensors")
    assert status == 200 and body == weights.read_bytes() and "x-xet-hash" in headers
