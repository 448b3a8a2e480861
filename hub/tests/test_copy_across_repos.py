"""``CommitOperationCopy`` from another repo (huggingface_hub's cross-repo copy): LFS files through
``lfs-files/duplicate`` on the source repo, regular files downloaded and sent again by the client.

The source's LFS file goes up through the real huggingface_hub + hf_xet in a client process (a file needs a
Xet hash for huggingface_hub to copy it across repos); the copy is an ordinary ``create_commit``.
"""

from __future__ import annotations

import hashlib
import json
import os

import hf_xet
import pytest
from huggingface_hub import CommitOperationCopy, HfApi
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub.auth import Token, TokenBook
from reasoner_hub.server import HubServer
from reasoner_hub.xet.gc import XORBS, collect

from .helpers import WRITE_TOKEN, client_env, raw_request, run_client

ALICE = Token("alice", "hf_copy_alice_000001", "write", "alice")  # owns alice/*, reads public repos only
CI = Token("ci", WRITE_TOKEN, "write")  # unscoped writer


def _copy(api: HfApi, source: str, target: str, *pairs: tuple[str, str]) -> str:
    ops = [CommitOperationCopy(src, dst, src_repo_id=source, src_repo_type="model") for src, dst in pairs]
    return api.create_commit(target, ops, commit_message=f"copy from {source}").oid


def test_lfs_and_regular_files_copy_from_another_repo(storage, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(700_000))
    xet_hash = hf_xet.hash_files([str(weights)])[0].hash
    with HubServer(storage, tokens=TokenBook([CI, ALICE])) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        run_client("xet_client.py", ["upload-file", "org/source", str(weights), "weights.bin"],
                   client_env(hub.url, tmp_path / "home", xet=True))
        api.upload_file(path_or_fileobj=b"config v1\n", path_in_repo="config.json", repo_id="org/source")
        api.create_repo("org/target")
        _copy(api, "org/source", "org/target", ("weights.bin", "copied/weights.bin"), ("config.json", "config.json"))
        api.delete_repo("org/source")  # the copy stands on its own

        status, headers, body = raw_request(hub.url, "GET", "/org/target/resolve/main/copied/weights.bin",
                                            headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200 and body == weights.read_bytes() and headers["x-xet-hash"] == xet_hash
        status, _, body = raw_request(hub.url, "GET", "/org/target/resolve/main/config.json",
                                      headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200 and body == b"config v1\n"
        [info] = api.get_paths_info("org/target", ["copied/weights.bin"])
        assert info.lfs.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest() and info.xet_hash == xet_hash

        # Through Xet too: a fresh client downloads the copy by its Xet hash from the shared xorbs.
        seen = run_client("xet_client.py", ["download-at", "org/target", "main", "copied/weights.bin", str(weights)],
                          client_env(hub.url, tmp_path / "home-down", xet=True))
        assert json.loads(seen.stdout.strip().splitlines()[-1])["same"]
    xorbs = set(storage.list(XORBS))
    assert collect(storage, grace_minutes=0).xorbs_deleted == 0 and set(storage.list(XORBS)) == xorbs  # target needs them


def test_a_copy_needs_read_on_the_source_and_write_on_the_target(folder_storage, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(300_000))
    with HubServer(folder_storage, tokens=TokenBook([CI, ALICE])) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        alice = HfApi(endpoint=hub.url, token=ALICE.secret)
        env = client_env(hub.url, tmp_path / "home", xet=True)
        run_client("xet_client.py", ["upload-file", "org/public", str(weights), "w.bin"], env)
        run_client("xet_client.py", ["upload-file", "org/secret", str(weights), "w.bin"], env)
        api.update_repo_settings("org/secret", private=True)
        api.create_repo("org/theirs")
        alice.create_repo("alice/mine")

        with pytest.raises(HfHubHTTPError) as refused:  # alice cannot write org/theirs
            _copy(alice, "org/public", "org/theirs", ("w.bin", "w.bin"))
        assert refused.value.response.status_code == 403
        with pytest.raises(HfHubHTTPError) as refused:  # nor read a private repo of org
            _copy(alice, "org/secret", "alice/mine", ("w.bin", "w.bin"))
        assert refused.value.response.status_code in (401, 404)
        sha = hashlib.sha256(weights.read_bytes()).hexdigest()
        assert not folder_storage.exists(f"models/org/theirs/.hub/blobs/{sha}")
        assert not folder_storage.exists(f"models/alice/mine/.hub/blobs/{sha}")
        _copy(alice, "org/public", "alice/mine", ("w.bin", "w.bin"))  # readable source, own target: copied
        path = alice.hf_hub_download("alice/mine", "w.bin", cache_dir=tmp_path / "c")
        assert open(path, "rb").read() == weights.read_bytes()

        # Asked directly for a file the source does not hold: named in "failed", nothing copied.
        status, _, body = raw_request(
            hub.url, "POST", "/api/models/org/public/lfs-files/duplicate",
            json.dumps({"target": {"type": "model", "name": "org/theirs"},
                        "files": [{"sha256": "0" * 64, "xetHash": "0" * 64, "filename": "x"}]}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200 and json.loads(body)["failed"][0]["sha256"] == "0" * 64
        assert "no LFS file" in json.loads(body)["failed"][0]["error"]
