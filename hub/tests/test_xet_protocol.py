"""The Xet protocol at the HTTP level: token routes, CAS authorization, and what the CAS refuses.

The objects under test come from a real upload (hf_xet with Xet on, in a client process); the tests
replay them, tamper with them, and check every claim the server is supposed to verify.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import hf_xet
import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import save_file

from reasoner_hub.auth import TokenBook
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage
from reasoner_hub.xet.hashes import chunk_hash, file_hash, from_hex, to_hex
from reasoner_hub.xet.routes import _progress_stream
from reasoner_hub.xet.shard import HEADER_TAG
from reasoner_hub.xet.xorb import XorbIndex, decode_chunks

from .helpers import READ_TOKEN, TOKENS, WRITE_TOKEN, client_env, raw_request, run_client
from .served import Served

REPO = "org/proto"


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory):
    """A private repo filled by the real client through Xet; yields (hub, storage, local folder)."""
    root = tmp_path_factory.mktemp("xet-protocol")
    storage = LocalStorage(root / "bucket")
    folder = root / "upload"
    folder.mkdir()
    (folder / "random.bin").write_bytes(os.urandom(700_000))
    generator = torch.Generator().manual_seed(1)
    save_file({"w": torch.randn(256, 1024, generator=generator)}, str(folder / "model.safetensors"))
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo(REPO, private=True)
        env = {**client_env(hub.url, root / "home", xet=True), "HF_HUB_DISABLE_TELEMETRY": "1"}
        run_client("xet_client.py", ["upload-folder", REPO, str(folder)], env, timeout=600)
        yield hub, storage, folder


def _get(hub, path, token=None, headers=None, method="GET", body=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return raw_request(hub.url, method, path, body=body, headers=headers)


def _cas_token(hub, scope, repo=REPO, hub_token=WRITE_TOKEN):
    status, headers, body = _get(hub, f"/api/models/{repo}/xet-{scope}-token/main", hub_token)
    assert status == 200, body
    return json.loads(body)["accessToken"]


def _cas_path(path):
    return f"/_xet{path}"


def _file_id(folder, name):
    return hf_xet.hash_files([str(folder / name)])[0].hash


def test_hash_string_form_and_single_chunk_file_id(tmp_path):
    assert to_hex(bytes(range(32))) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert from_hex(to_hex(bytes(range(32)))) == bytes(range(32))
    data = os.urandom(5000)  # under the minimum chunk size: one chunk
    (tmp_path / "f").write_bytes(data)
    assert to_hex(file_hash([(chunk_hash(data), len(data))])) == hf_xet.hash_files([str(tmp_path / "f")])[0].hash


def test_token_routes_follow_the_hub_access_rules(uploaded):
    hub, _, _ = uploaded
    path = f"/api/models/{REPO}/xet-read-token/main"
    assert _get(hub, path)[0] == 404  # private: anonymous readers do not see it
    assert _get(hub, path, "hf_not_a_token_at_all")[0] == 401
    status, headers, body = _get(hub, path, READ_TOKEN)
    answer = json.loads(body)
    assert status == 200 and answer["casUrl"] == f"{hub.url}/_xet"
    assert headers["x-xet-cas-url"] == answer["casUrl"] and headers["x-xet-access-token"] == answer["accessToken"]
    assert time.time() < answer["exp"] == int(headers["x-xet-token-expiration"]) <= time.time() + 3700
    assert _get(hub, f"/api/models/{REPO}/xet-read-token/no-such-branch", READ_TOKEN)[0] == 404
    write = f"/api/models/{REPO}/xet-write-token/main"
    assert _get(hub, write)[0] == 401
    assert _get(hub, write, READ_TOKEN)[0] == 403
    assert _get(hub, write, WRITE_TOKEN)[0] == 200
    assert _get(hub, "/api/models/org/missing/xet-write-token/main", WRITE_TOKEN)[0] == 404


def test_cas_refuses_missing_forged_expired_and_narrow_tokens(uploaded, tmp_path):
    hub, storage, folder = uploaded
    assert _get(hub, _cas_path("/v1/shards"), method="POST", body=b"x")[0] == 401
    token = _cas_token(hub, "write")
    prefix, claim, sig = token.split(".")
    forged = f"{prefix}.{claim[:-2]}{'A' if claim[-2] != 'A' else 'B'}{claim[-1]}.{sig}"
    assert _get(hub, _cas_path("/v1/shards"), forged, method="POST", body=b"x")[0] == 401
    repo = hub.store_repo("model", REPO)
    expired, _ = hub.app.xet_signer.issue(repo, hub.store.meta(repo).generation, "write", lifetime_s=-5)
    assert _get(hub, _cas_path("/v1/shards"), expired, method="POST", body=b"x")[0] == 401
    read = _cas_token(hub, "read")
    xorb_key = next(iter(storage.list(".hub/xet/xorbs/")))
    xorb_path = _cas_path(f"/v1/xorbs/default/{xorb_key.rsplit('/', 1)[1]}")
    assert _get(hub, xorb_path, read, method="POST", body=storage.get(xorb_key)[:100])[0] == 403
    assert _get(hub, _cas_path("/v1/shards"), read, method="POST", body=b"x")[0] == 403
    # A token for another repo does not reach this repo's files, public or not.
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("org/other")
    other = _cas_token(hub, "read", repo="org/other")
    file_id = _file_id(folder, "random.bin")
    assert _get(hub, _cas_path(f"/v1/reconstructions/{file_id}"), other)[0] == 404
    assert _get(hub, _cas_path(f"/v1/reconstructions/{file_id}"), read)[0] == 200


def test_xorb_upload_checks_hash_and_structure(uploaded):
    hub, storage, _ = uploaded
    token = _cas_token(hub, "write")
    key = next(iter(storage.list(".hub/xet/xorbs/")))
    name, data = key.rsplit("/", 1)[1], storage.get(key)
    path = _cas_path(f"/v1/xorbs/default/{name}")
    status, _, body = _get(hub, path, token, method="POST", body=data)
    assert status == 200 and json.loads(body) == {"was_inserted": False}
    wrong = _cas_path(f"/v1/xorbs/default/{'0' * 64}")
    status, _, body = _get(hub, wrong, token, method="POST", body=data)
    assert status == 400 and b"do not hash to the xorb hash" in body
    # A new xorb made of the first chunk alone (a one-leaf tree: its hash is the chunk hash).
    index = XorbIndex.from_bytes(from_hex(name), storage.get(f".hub/xet/xorb-index/{name}"))
    single, single_name = data[: index.offsets[1]], to_hex(index.chunk_hashes[0])
    assert not storage.exists(f".hub/xet/xorbs/{single_name}")
    flipped = bytearray(single)
    flipped[-1] ^= 0xFF  # the last byte of the chunk's (compressed) data
    single_path = _cas_path(f"/v1/xorbs/default/{single_name}")
    assert _get(hub, single_path, token, method="POST", body=bytes(flipped))[0] == 400
    assert not storage.exists(f".hub/xet/xorbs/{single_name}")
    status, _, body = _get(hub, single_path, token, method="POST", body=single)
    assert status == 200 and json.loads(body) == {"was_inserted": True}
    assert storage.get(f".hub/xet/xorbs/{single_name}") == single
    status, _, body = _get(hub, _cas_path(f"/v1/xorbs/default/{'2' * 64}"), token, method="POST", body=data[:100])
    assert status == 400 and b"ends inside a chunk" in body
    assert _get(hub, _cas_path("/v1/xorbs/default/not-a-hash"), token, method="POST", body=data[:100])[0] == 400
    assert not storage.exists(f".hub/xet/xorbs/{'0' * 64}")


def _first_file(shard: bytes) -> dict[str, int]:
    """Byte offsets, in an uploaded shard, of the first file's hash, first term, first proof and sha256."""
    count = int.from_bytes(shard[48 + 36 : 48 + 40], "little")
    return {"file": 48, "term": 96, "proof": 96 + 48 * count, "sha256": 96 + 96 * count}


def test_shard_upload_checks_every_claim(uploaded):
    hub, storage, _ = uploaded
    shard_key = next(iter(storage.list(f"models/{REPO}/.hub/xet/shards/")))
    shard = storage.get(shard_key)
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("org/replay")
    token = _cas_token(hub, "write", repo="org/replay")
    where = _first_file(shard)
    for field, message in [
        ("proof", b"verification hash does not match"),
        ("sha256", b"sha256"),
        ("file", b"do not hash to the file hash"),
        ("term", b"was not uploaded first"),
    ]:
        tampered = bytearray(shard)
        tampered[where[field] + 3] ^= 0x01
        status, _, body = _get(hub, _cas_path("/v1/shards"), token, method="POST", body=bytes(tampered))
        assert status == 400 and message in body, (field, body)
    assert _get(hub, _cas_path("/v1/shards"), token, method="POST", body=b"garbage" * 10)[0] == 400
    # /v2/shards answers 200 before it verifies (it streams progress): a refusal is a terminal error frame.
    tampered = bytearray(shard)
    tampered[where["proof"]] ^= 0x01
    status, _, body = _get(hub, _cas_path("/v2/shards"), token, method="POST", body=bytes(tampered))
    frame = json.loads(body.splitlines()[-1])
    assert status == 200 and frame["type"] == "error" and "verification hash" in frame["message"]
    assert not list(storage.list("models/org/replay/.hub/xet/"))  # nothing registered by a refused shard
    status, _, body = _get(hub, _cas_path("/v2/shards"), token, method="POST", body=shard)
    assert status == 200 and json.loads(body) == {"type": "result"}
    assert list(storage.list("models/org/replay/.hub/xet/files/"))


def test_v2_shard_progress_stream_keeps_a_slow_verification_alive():
    def slow() -> int:
        time.sleep(0.35)
        return 1

    frames = [json.loads(line) for line in _progress_stream(slow, heartbeat_s=0.1)]
    assert frames[-1] == {"type": "result"} and len(frames) >= 3
    assert all(frame["type"] == "validating" for frame in frames[:-1])


def test_reconstruction_v1_ranges_and_signed_fetch_urls(uploaded):
    hub, _, folder = uploaded
    token = _cas_token(hub, "read")
    data = (folder / "model.safetensors").read_bytes()
    path = _cas_path(f"/v1/reconstructions/{_file_id(folder, 'model.safetensors')}")
    first, last = 200_001, 700_000
    status, _, body = _get(hub, path, token, headers={"Range": f"bytes={first}-{last}"})
    assert status == 200
    answer = json.loads(body)
    pieces = []
    for term in answer["terms"]:
        fetch = next(f for f in answer["fetch_info"][term["hash"]]
                     if f["range"]["start"] <= term["range"]["start"] and term["range"]["end"] <= f["range"]["end"])
        span = f"bytes={fetch['url_range']['start']}-{fetch['url_range']['end']}"
        url = fetch["url"][len(hub.url):]
        status, _, raw = raw_request(hub.url, "GET", url, headers={"Range": span})
        assert status == 206
        chunks = list(decode_chunks([raw]))[term["range"]["start"] - fetch["range"]["start"]:]
        chunks = chunks[: term["range"]["end"] - term["range"]["start"]]
        assert sum(map(len, chunks)) == term["unpacked_length"]
        pieces.extend(chunks)
    rebuilt = b"".join(pieces)[answer["offset_into_first_range"]:][: last - first + 1]
    assert rebuilt == data[first : last + 1]
    url = fetch["url"][len(hub.url):]
    wider = f"bytes={fetch['url_range']['start']}-{fetch['url_range']['end'] + 1}"
    assert raw_request(hub.url, "GET", url, headers={"Range": wider})[0] == 403
    assert raw_request(hub.url, "GET", url.replace("sig=", "sig=x"), headers={"Range": span})[0] == 403
    assert _get(hub, path, token, headers={"Range": f"bytes={len(data)}-"})[0] == 416
    assert _get(hub, _cas_path(f"/v1/reconstructions/{'0' * 64}"), token)[0] == 404
    assert _get(hub, _cas_path("/v1/reconstructions/xyz"), token)[0] == 400


def test_global_dedupe_answers_keyed_chunk_hashes(uploaded):
    hub, storage, folder = uploaded
    token = _cas_token(hub, "read")
    repo = hub.store_repo("model", REPO)
    stored = hub.app.xet_store.file(repo, _file_id(folder, "random.bin"))
    term = stored.terms[0]
    index = XorbIndex.from_bytes(term.xorb, storage.get(f".hub/xet/xorb-index/{to_hex(term.xorb)}"))
    first_chunk = index.chunk_hashes[term.start]
    status, headers, body = _get(hub, _cas_path(f"/v1/chunks/default-merkledb/{to_hex(first_chunk)}"), token)
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert body.startswith(HEADER_TAG) and term.xorb in body
    assert not any(digest in body for digest in index.chunk_hashes)  # only keyed hashes leave the server
    assert _get(hub, _cas_path(f"/v1/chunks/default-merkledb/{'3' * 64}"), token)[0] == 404


def test_deleted_repo_loses_its_xet_access(uploaded):
    hub, _, folder = uploaded
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("org/doomed")
    token = _cas_token(hub, "write", repo="org/doomed")
    api.delete_repo("org/doomed")
    status, _, _ = _get(hub, _cas_path(f"/v1/reconstructions/{_file_id(folder, 'random.bin')}"), token)
    assert status == 401  # the token's repo is gone: the token is no longer valid
    assert _get(hub, "/api/models/org/doomed/xet-read-token/main", WRITE_TOKEN)[0] == 404


def _shard_of(storage) -> bytes:
    return storage.get(next(iter(storage.list(f"models/{REPO}/.hub/xet/shards/"))))


def test_xet_records_of_a_deleted_private_repo_stay_unreadable(uploaded):
    """The files a private repo registered through Xet are unreadable once it is deleted, also
    through a new public repo of the same name."""
    hub, storage, folder = uploaded
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("org/reborn", private=True)
    token = _cas_token(hub, "write", repo="org/reborn")
    assert _get(hub, _cas_path("/v1/shards"), token, method="POST", body=_shard_of(storage))[0] == 200
    reconstruction = _cas_path(f"/v1/reconstructions/{_file_id(folder, 'random.bin')}")
    assert _get(hub, reconstruction, token)[0] == 200
    api.delete_repo("org/reborn")
    assert list(storage.list("models/org/reborn/")) == []
    api.create_repo("org/reborn", private=False)
    fresh = _cas_token(hub, "read", repo="org/reborn", hub_token=READ_TOKEN)
    assert _get(hub, reconstruction, fresh)[0] == 404
    assert _get(hub, reconstruction, token)[0] == 401  # the old write token is for the old repo, not the name


def test_a_shard_racing_a_delete_registers_nothing(uploaded):
    """A shard registration waits for a delete of its repo (the repo gate), then is refused: no Xet
    record or blob is left under the deleted name."""
    hub, storage, _ = uploaded
    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("org/racing")
    token = _cas_token(hub, "write", repo="org/racing")
    repo = hub.store_repo("model", "org/racing")
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(_get(hub, _cas_path("/v1/shards"), token, method="POST",
                                           body=_shard_of(storage))[0]), daemon=True)
    with hub.store.gate(repo).exclusive():  # what a delete of the repo holds while it runs
        sender.start()
        sender.join(1.5)
        assert sender.is_alive(), "the registration did not wait for the repo's gate"
        assert not list(storage.list("models/org/racing/.hub/xet/"))
        assert hub.store.delete_repo(repo)
    sender.join(60)
    assert answers == [404]
    assert list(storage.list("models/org/racing/")) == []


def test_a_xorb_cut_by_a_crash_leaves_no_temp_file(uploaded, tmp_path):
    """kill -9 while a xorb is received: the restart's recovery removes its spooled part, nothing is stored."""
    _, storage, _ = uploaded
    key = next(iter(storage.list(".hub/xet/xorbs/")))
    name, data = key.rsplit("/", 1)[1], storage.get(key)
    root = tmp_path / "hub"
    served = Served(["--storage", str(root)])
    try:
        HfApi(endpoint=served.url, token=WRITE_TOKEN).create_repo("org/cut")
        status, _, body = raw_request(served.url, "GET", "/api/models/org/cut/xet-write-token/main",
                                      headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200, body
        parts = urlsplit(served.url)
        sock = socket.create_connection((parts.hostname, parts.port))
        head = (f"POST /_xet/v1/xorbs/default/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
                f"Authorization: Bearer {json.loads(body)['accessToken']}\r\n\r\n")
        sock.sendall(head.encode() + data[: len(data) // 2])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(root.glob(".tmp/spool-*/xorb-*")):
            time.sleep(0.02)
        assert list(root.glob(".tmp/spool-*/xorb-*")), "the xorb never reached the spool"
    finally:
        served.kill()
    sock.close()
    with HubServer(LocalStorage(root)) as hub:
        assert [Path(p).name[:5] for p in hub.recovery.temp_removed] == ["xorb-"]
    assert not [p for p in (root / ".tmp").rglob("*") if p.is_file()]
    assert not (root / ".hub" / "xet" / "xorbs").exists()
