"""``reasoner-hub gc``: Xet data no repo needs goes, everything a repo can still serve stays, on both storages.

Files go up through the real huggingface_hub + hf_xet in client processes (Xet on); gc runs with the
hub stopped (the supported way), and a fresh hub on the same storage then serves the downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import hf_xet
import pytest
from huggingface_hub import HfApi

from reasoner_hub.auth import TokenBook
from reasoner_hub.cli import main
from reasoner_hub.journal import Intent, Journal
from reasoner_hub.paths import repo_from_id
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage
from reasoner_hub.xet.hashes import to_hex
from reasoner_hub.xet.gc import DEDUPE, INDEXES, XORBS, collect
from reasoner_hub.xet.store import StoredFile

from .helpers import TOKENS, WRITE_TOKEN, client_env, raw_request, run_client

SUMMARY = re.compile(r"^gc( \(dry run\))?: \d+ repo\(s\) walked; xorbs kept (\d+) \((\d+) younger than [\d.]+ min\), "
                     r"(?:would delete|deleted) (\d+); (?:would free|freed) (\d+) bytes")


def _names(storage, prefix: str) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in storage.list(prefix)}


def _record_xorbs(storage, repo, but: str = "") -> set[str]:
    """The xorbs the file records of ``repo`` (all but the record ``but``) name."""
    xorbs = set()
    for key in storage.list(f"{repo.internal}xet/files/"):
        if key != but:
            xorbs |= {to_hex(term.xorb) for term in StoredFile.from_json(storage.get(key)).terms}
    return xorbs


def _xet_hash(path: Path) -> str:
    return hf_xet.hash_files([str(path)])[0].hash


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _cli_gc(storage, request, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``reasoner-hub gc`` on the storage under test (the S3 credentials from the environment, as a user runs it)."""
    if isinstance(storage, LocalStorage):
        spec = [str(storage.root)]
    else:
        seaweed = request.getfixturevalue("seaweedfs")
        for name, value in seaweed.env().items():
            monkeypatch.setenv(name, value)
        spec = [f"s3://{storage.bucket}/{storage.prefix}", "--s3-endpoint", seaweed.endpoint]
    capsys.readouterr()
    code = main(["gc", "--storage", *spec, *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip()


def test_gc_keeps_what_repos_serve_and_frees_the_rest(storage, tmp_path, request, monkeypatch, capsys):
    files = tmp_path / "files"
    shared = _write(files / "a" / "shared.bin", os.urandom(1_500_000))
    _write(files / "b" / "shared.bin", shared.read_bytes())
    a_only = _write(files / "a-only.bin", os.urandom(700_000))
    v1 = _write(files / "v1" / "weights.bin", os.urandom(500_000))
    v2 = _write(files / "b" / "weights.bin", os.urandom(500_000))
    orphan = _write(files / "orphan.bin", os.urandom(400_000))
    repo_a, repo_b = repo_from_id("model", "org/gc-a"), repo_from_id("model", "org/gc-b")

    with HubServer(storage, tokens=TokenBook(TOKENS), request_log=str(tmp_path / "requests.jsonl")) as hub:
        def client(*args: str, home: str) -> dict:
            env = client_env(hub.url, tmp_path / home, xet=True)
            result = run_client("xet_client.py", list(args), env, timeout=600)
            return json.loads(result.stdout.strip().splitlines()[-1])

        client("upload-folder", repo_a.id, str(files / "a"), home="home-a")
        a_xorbs = _record_xorbs(storage, repo_a)
        client("upload-file", repo_a.id, str(a_only), "a-only.bin", home="home-a2")  # a xorb only repo A names
        only_a = _record_xorbs(storage, repo_a) - a_xorbs
        old = client("upload-file", repo_b.id, str(v1), "weights.bin", home="home-b")["commit"]
        client("upload-folder", repo_b.id, str(files / "b"), home="home-b2")  # shared.bin dedupes against A's xorb
        client("preupload", repo_b.id, str(orphan), "orphan.bin", home="home-orphan")  # bytes up, never committed
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.super_squash_history(repo_b.id)  # the old revision is no longer in main's history
        api.delete_repo(repo_a.id)
    orphan_record = f"{repo_b.internal}xet/files/{_xet_hash(orphan)}.json"
    assert storage.exists(orphan_record)
    b_xorbs = _record_xorbs(storage, repo_b, but=orphan_record)
    orphan_xorbs = {to_hex(t.xorb) for t in StoredFile.from_json(storage.get(orphan_record)).terms}
    assert only_a and a_xorbs & b_xorbs  # B reuses A's xorb for shared.bin: a delete of A must not take it
    assert not only_a & b_xorbs and orphan_xorbs and not orphan_xorbs & b_xorbs
    before = _names(storage, XORBS)
    assert only_a <= before
    shards_before = len(list(storage.list(f"{repo_b.internal}xet/shards/")))

    # Repo A deleted, B squashed, an upload abandoned: only what nothing names goes.
    report = collect(storage, grace_minutes=0)
    after = _names(storage, XORBS)
    assert after == before - only_a - orphan_xorbs and b_xorbs <= after
    assert not (only_a | orphan_xorbs) & _names(storage, INDEXES)
    assert report.xorbs_deleted == len(only_a | orphan_xorbs) and report.bytes_freed > 0
    assert report.records_deleted == 1 and not storage.exists(orphan_record)
    assert report.shards_deleted == 1 and len(list(storage.list(f"{repo_b.internal}xet/shards/"))) == shards_before - 1
    assert not storage.exists(f"{repo_b.internal}xet/sha256/{_sha256(orphan.read_bytes())}")
    for key in storage.list(DEDUPE):  # no dedupe answer names a deleted xorb
        assert set(json.loads(storage.get(key))) <= after

    # A fresh hub serves B whole: the head and the old revision, through Xet and through plain HTTP.
    with HubServer(storage, tokens=TokenBook(TOKENS), request_log=str(tmp_path / "requests2.jsonl")) as hub:
        down = client_env(hub.url, tmp_path / "home-down", xet=True)
        seen = json.loads(run_client("xet_client.py", ["download", repo_b.id, str(files / "b"), str(tmp_path / "d")],
                                     down, timeout=600).stdout.strip().splitlines()[-1])
        assert all(seen["single"].values()) and all(seen["snapshot"].values()) and len(seen["single"]) == 2, seen
        seen = json.loads(run_client("xet_client.py", ["download-at", repo_b.id, old, "weights.bin", str(v1)],
                                     down, timeout=600).stdout.strip().splitlines()[-1])
        assert seen["same"]
        status, headers, _ = raw_request(hub.url, "HEAD", f"/{repo_b.id}/resolve/{old}/weights.bin")
        assert status == 200 and headers["x-xet-hash"] == _xet_hash(v1)  # the old revision really went through Xet
        plain = (("main", "shared.bin", shared), ("main", "weights.bin", v2), (old, "weights.bin", v1))
        for revision, path, expected in plain:
            status, _, body = raw_request(hub.url, "GET", f"/{repo_b.id}/resolve/{revision}/{path}")
            assert status == 200 and _sha256(body) == _sha256(expected.read_bytes())
        log = [json.loads(line) for line in (tmp_path / "requests2.jsonl").read_text().splitlines()]
        assert any(e["path"].startswith("/_xet/fetch/") and e["status"] in (200, 206) for e in log)
        assert not [e for e in log if e["status"] >= 500]
        HfApi(endpoint=hub.url, token=WRITE_TOKEN).delete_repo(repo_b.id)

    # B deleted too: xorbs younger than the grace period stay; a dry run says what would go and removes nothing.
    left = _names(storage, XORBS)
    young = collect(storage)  # the default grace: three weeks
    assert young.xorbs_deleted == 0 and young.xorbs_young == len(left) and _names(storage, XORBS) == left
    code, line = _cli_gc(storage, request, monkeypatch, capsys, "--grace-minutes", "0", "--dry-run")
    match = SUMMARY.match(line)
    assert code == 0 and match and match.group(1), line
    assert int(match.group(4)) == len(left) and int(match.group(5)) > 0
    assert _names(storage, XORBS) == left and _names(storage, INDEXES) == left and list(storage.list(DEDUPE))

    # Then gc frees them all: the bytes the dry run announced.
    code, line = _cli_gc(storage, request, monkeypatch, capsys, "--grace-minutes", "0")
    done = SUMMARY.match(line)
    assert code == 0 and done and not done.group(1), line
    assert int(done.group(4)) == len(left) and done.group(5) == match.group(5) and int(done.group(2)) == 0
    assert not _names(storage, XORBS) and not _names(storage, INDEXES) and not list(storage.list(DEDUPE))


def test_gc_walks_datasets_and_spaces(storage, tmp_path):
    """Files of every repo type keep their xorbs, through Xet and plain HTTP; the shared chunks stay once."""
    data = _write(tmp_path / "data.bin", os.urandom(300_000))
    repos = (("dataset", "org/gc-data", "datasets/"), ("space", "org/gc-space", "spaces/"))
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        for kind, repo_id, _ in repos:
            run_client("xet_client.py", ["upload-file", repo_id, str(data), "data.bin", kind],
                       client_env(hub.url, tmp_path / f"home-{kind}", xet=True))
    stored = _names(storage, XORBS)
    report = collect(storage, grace_minutes=0)
    assert stored and report.repos == 2 and report.xorbs_deleted == 0 and _names(storage, XORBS) == stored
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        for kind, repo_id, url_prefix in repos:
            status, headers, body = raw_request(hub.url, "GET", f"/{url_prefix}{repo_id}/resolve/main/data.bin")
            assert status == 200 and body == data.read_bytes() and headers["x-xet-hash"] == _xet_hash(data)
            HfApi(endpoint=hub.url, token=WRITE_TOKEN).delete_repo(repo_id, repo_type=kind)
    assert collect(storage, grace_minutes=0).xorbs_deleted == len(stored) and not _names(storage, XORBS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_client_that_remembers_a_collected_xorb_is_told_how_to_recover(storage, tmp_path):
    """hf_xet keeps the shards it uploaded (per endpoint, for weeks) and skips their xorbs next time: after gc the
    hub refuses such a shard with a line naming the fix, and a fresh client cache uploads the bytes again."""
    data = _write(tmp_path / "data.bin", os.urandom(600_000))
    port, home = _free_port(), tmp_path / "home"
    with HubServer(storage, port=port, tokens=TokenBook(TOKENS)) as hub:
        run_client("xet_client.py", ["upload-file", "org/first", str(data), "data.bin"],
                   client_env(hub.url, home, xet=True))
        HfApi(endpoint=hub.url, token=WRITE_TOKEN).delete_repo("org/first")
    assert collect(storage, grace_minutes=0).xorbs_deleted == 1
    with HubServer(storage, port=port, tokens=TokenBook(TOKENS)) as hub:
        script = Path(__file__).parent / "clients" / "xet_client.py"
        again = subprocess.run([sys.executable, str(script), "upload-file", "org/second", str(data), "data.bin"],
                               env=client_env(hub.url, home, xet=True), capture_output=True, text=True, timeout=600)
        assert again.returncode != 0 and "was not uploaded first" in again.stderr
        assert "reasoner-hub gc" in again.stderr and "Xet cache" in again.stderr
        shutil.rmtree(home / "xet")
        run_client("xet_client.py", ["upload-file", "org/second", str(data), "data.bin"],
                   client_env(hub.url, home, xet=True))
        status, _, body = raw_request(hub.url, "GET", "/org/second/resolve/main/data.bin",
                                      headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200 and body == data.read_bytes()


def test_gc_refuses_an_unfinished_journal(storage, request, monkeypatch, capsys):
    repo = repo_from_id("model", "org/half-done")
    intent = Intent("delete", repo, stamp="g1")
    Journal(storage).begin(intent)
    storage.put(".hub/xet/xorbs/" + "0" * 64, b"x")  # something that would otherwise be garbage
    code, line = _cli_gc(storage, request, monkeypatch, capsys, "--grace-minutes", "0")
    assert code == 2 and len(line.splitlines()) == 1
    assert "unfinished operation" in line and "reasoner-hub serve --storage" in line and "then run gc" in line
    assert storage.exists(".hub/xet/xorbs/" + "0" * 64)
    Journal(storage).end(intent)
    code, line = _cli_gc(storage, request, monkeypatch, capsys, "--grace-minutes", "0")
    assert code == 0 and not storage.exists(".hub/xet/xorbs/" + "0" * 64), line


def test_gc_refuses_a_negative_grace(tmp_path, capsys):
    assert main(["gc", "--storage", str(tmp_path / "hub"), "--grace-minutes", "-5"]) == 2
    assert "--grace-minutes -5 is negative" in capsys.readouterr().err
