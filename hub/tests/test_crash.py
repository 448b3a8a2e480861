"""``kill -9`` of the real ``reasoner-hub serve`` process at many points, then a restart on the same storage.

Every round starts the server through ``hub_testkit.crashserve --kill-at-write N`` (it SIGKILLs itself before
its Nth storage write), sends a fixed workload (create a private repo, commit a secret to it,
delete it, create a public repo of the same name, commit to a shared repo, make and drop
branches, a burst of creates), and kills the server at the end if it is still alive. Some rounds
leave an LFS upload half sent, some kill the server at a random moment from outside, some kill it
again during start-up recovery. After every restart the store must show:

* nothing deleted is readable: an anonymous GET of the old private file is 404, a repo of that
  name is the old private one (delete not done) or a new one without the old file or its blobs;
* nothing committed is lost: every acknowledged commit is in the history, the head is the last
  acknowledged state or the one whose answer never came;
* creation is all-or-nothing: a repo either answers with a ``main`` branch or is absent with no
  object left, and can then be created (never 409);
* the plain view (files of ``main`` at the repo root, of branches under ``.hub/branches/``)
  equals the head, byte for byte;
* no stray temp files, no journal entry, no unfinished multipart upload.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from reasoner_hub.commits import GITATTRIBUTES
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

from .crashkit import Ledger, ServerGone, StoreLook, WireClient, content_id, head_files
from .helpers import READ_TOKEN, WRITE_TOKEN, raw_request
from .served import Served

KEEP = "org/keep"
TOKENS = ["--token", f"writer={WRITE_TOKEN}:write", "--token", f"reader={READ_TOKEN}:read"]


def secret_of(i: int) -> bytes:
    return f"private secret of round {i}\n".encode() * 40


def weights_of(i: int) -> bytes:
    return hashlib.sha256(f"weights {i}".encode()).digest() * 64  # 2 KiB, LFS


class Harness:
    """One storage, the server generations run on it, and what every write was answered."""

    def __init__(self, kind: str, tmp_path: Path, seaweedfs=None) -> None:
        self.kind = kind
        self.spool = tmp_path / "tmpdir"
        self.spool.mkdir()
        self.env = {**os.environ, "TMPDIR": str(self.spool)}
        if kind == "folder":
            self.root = tmp_path / "hub"
            self.args = ["--storage", str(self.root), *TOKENS]
            self.look = StoreLook(folder=self.root)
            self.storage = lambda: LocalStorage(self.root)
        else:
            prefix = f"crash-{uuid.uuid4().hex[:10]}"
            self.args = ["--storage", f"s3://{seaweedfs.bucket}/{prefix}", "--s3-endpoint", seaweedfs.endpoint, *TOKENS]
            self.env.update(seaweedfs.env())
            self.look = StoreLook(s3=seaweedfs, prefix=prefix)
            self.storage = lambda: seaweedfs.storage(prefix=prefix)
        self.ledger = Ledger()
        self.names: list[str] = []  # every repo a create was sent for, but KEEP
        self.secrets: dict[str, int] = {}  # repo -> round of its secret
        self.keep_state: dict[str, bytes] = {}

    def setup(self) -> None:
        with HubServer(self.storage(), tokens=[f"writer={WRITE_TOKEN}:write"]) as hub:
            client = WireClient(hub.url, WRITE_TOKEN)
            assert client.create(KEEP, private=False) == 200
            self.keep_state = {".gitattributes": GITATTRIBUTES, "shared.txt": b"shared v0\n" * 50}
            status, oid = client.commit(KEEP, {"shared.txt": self.keep_state["shared.txt"]})
            assert status == 200
            self.ledger.keep_versions.append((oid, dict(self.keep_state)))

    def start(self, wait: bool = True, kill_at: int | None = None, kill_in_recovery: int | None = None) -> Served:
        return Served(self.args, self.env, wait=wait, kill_at=kill_at, kill_in_recovery=kill_in_recovery)


# -- the workload -------------------------------------------------------------------------------
def _send(ledger: Ledger, what: str, repo: str, call) -> bool:
    """Run one write; False once the server is gone (the round stops there)."""
    try:
        status = call()
    except ServerGone:
        ledger.note(what, repo, "unknown")
        return False
    status = status[0] if isinstance(status, tuple) else status
    ledger.note(what, repo, "ok" if status == 200 else f"refused {status}")
    return True


def workload(h: Harness, client: WireClient, i: int, absent: list[str]) -> None:
    ledger = h.ledger
    secret = f"org/secret-{i}"
    h.names.append(secret)
    h.secrets[secret] = i
    steps = [
        ("create-private", secret, lambda: client.create(secret, private=True)),
        ("commit-secret", secret, lambda: client.commit(secret, {"secret.txt": secret_of(i)}, lfs={"w.bin": weights_of(i)})),
        ("delete", secret, lambda: client.delete(secret)),
        ("create-public", secret, lambda: client.create(secret, private=False)),
        ("commit-keep", KEEP, lambda: _commit_keep(h, client, i)),
        ("branch", KEEP, lambda: client.branch(KEEP, f"b{i}")),
        ("unbranch", KEEP, lambda: client.branch(KEEP, f"b{i - 1}", delete=True)),
    ]
    for k in range(2):
        name = f"org/burst-{i}-{k}"
        h.names.append(name)
        steps.append(("create", name, lambda name=name: client.create(name, private=bool(k))))
    for what, repo, call in steps:
        if not _send(ledger, what, repo, call):
            return
    for name in absent:  # a create that never completed left nothing behind: the name is free again
        if not _send(ledger, "create", name, lambda name=name: client.create(name, private=False)):
            return
        assert ledger.outcomes[-1][2] != "refused 409", f"{name} is absent but its create answered 409"


def _commit_keep(h: Harness, client: WireClient, i: int) -> tuple[int, str | None]:
    files = {f"r{i}.txt": f"round {i}\n".encode(), "shared.txt": f"shared v{i}\n".encode() * 50,
             f"dir{i % 3}/nested.txt": f"nested {i}".encode()}
    lfs = {f"lfs-{i % 2}.bin": weights_of(1000 + i)}
    deleted = [p for p in h.keep_state if p.startswith("r") and p.endswith(".txt")]
    expected = {p: c for p, c in h.keep_state.items() if p not in deleted}
    expected.update(files)
    expected.update(lfs)
    h.ledger.keep_pending = expected
    try:
        status, oid = client.commit(KEEP, files, deleted, lfs)
    except ServerGone:
        raise
    if status == 200:
        h.ledger.keep_versions.append((oid, expected))
        h.keep_state, h.ledger.keep_pending = expected, None
    else:
        h.ledger.keep_pending = None
    return status, oid


def stall_an_upload(h: Harness, url: str) -> threading.Thread:
    """Send half of an LFS upload and keep the connection open: the server spools it to disk."""
    content = os.urandom(2 << 20)
    status, href = WireClient(url, WRITE_TOKEN).lfs_href(KEEP, hashlib.sha256(content).hexdigest(), len(content))
    assert status == 200 and href
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    path = href[href.index("/_lfs/"):]
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(content)}\r\n\r\n".encode())
    sock.sendall(content[: 1 << 20])

    def wait_for_the_end() -> None:
        try:
            sock.recv(1)  # returns when the server dies
        except OSError:
            pass
        sock.close()

    thread = threading.Thread(target=wait_for_the_end, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
        p.is_file() and p.stat().st_size >= (1 << 20) for p in spool_files(h)
    ):
        time.sleep(0.02)
    assert any(p.stat().st_size >= (1 << 20) for p in spool_files(h)), "the half upload never reached the spool"
    return thread


def spool_files(h: Harness) -> list[Path]:
    base = h.root / ".tmp" if h.kind == "folder" else h.spool
    return [p for p in base.rglob("*") if p.is_file()]


# -- the checks after a restart -----------------------------------------------------------------
def check(h: Harness, url: str) -> list[str]:
    """Every invariant of the module docstring; returns the repos that are absent (free to create)."""
    writer, reader = HfApi(endpoint=url, token=WRITE_TOKEN), HfApi(endpoint=url, token=READ_TOKEN)
    assert h.look.keys(".hub-journal/") == [], "recovery left journal entries"
    assert spool_files(h) == [], f"stray temp files: {spool_files(h)}"
    assert h.look.unfinished_uploads() == [], "unfinished multipart uploads were left"
    absent = []
    for name in h.names:
        if not check_repo(h, url, reader, name):
            absent.append(name)
    check_keep(h, writer)
    return absent


def expected_presence(h: Harness, name: str) -> set[bool]:
    """Whether ``name`` may exist now, from the answers to the creates and deletes sent for it."""
    presence = {False}
    for what, repo, outcome in h.ledger.outcomes:
        if repo != name or outcome.startswith("refused"):
            continue
        if what.startswith("create"):
            presence = {True} if outcome == "ok" else presence | {True}
        elif what == "delete":
            presence = {False} if outcome == "ok" else presence | {False}
    return presence


def check_repo(h: Harness, url: str, reader: HfApi, name: str) -> bool:
    """One repo a create was sent for: all there (with a plain view equal to its head) or nothing at all."""
    if name in h.secrets:
        status, _, _ = raw_request(url, "GET", f"/{name}/resolve/main/secret.txt")
        assert status == 404, f"anonymous GET of the private file of {name} answered {status}"
    try:
        info = reader.model_info(name)
    except RepositoryNotFoundError:
        assert h.look.keys(f"models/{name}/") == [], f"{name} is gone but left {h.look.keys(f'models/{name}/')}"
        assert False in expected_presence(h, name), f"{name} was acknowledged but is lost"
        return False
    assert True in expected_presence(h, name), f"{name} was deleted (acknowledged) but is back"
    assert [b.name for b in reader.list_repo_refs(name).branches] == ["main"], f"{name} has no main"
    if name in h.secrets:
        check_secret(h, reader, name, info.private)
    check_view(h, reader, name)
    return True


def check_secret(h: Harness, reader: HfApi, name: str, private: bool) -> None:
    i = h.secrets[name]
    files = head_files(reader, name)
    if private:  # the delete never happened: the old repo, whole
        assert "ok" not in h.ledger.answered("delete", name), f"{name} was deleted but its private repo is back"
        if "ok" in h.ledger.answered("commit-secret", name):
            assert set(files) == {".gitattributes", "secret.txt", "w.bin"}
        return
    assert "secret.txt" not in files, f"the new public {name} shows the old private file"
    blobs = {key.rsplit("/", 1)[1] for key in h.look.keys(f"models/{name}/.hub/blobs/")}
    assert hashlib.sha256(secret_of(i)).hexdigest() not in blobs, f"the old secret's blob survives in {name}"
    assert hashlib.sha256(weights_of(i)).hexdigest() not in blobs, f"the old LFS blob survives in {name}"


def check_view(h: Harness, api: HfApi, name: str, branch: str = "main") -> None:
    head = head_files(api, name, branch)
    if branch == "main":
        plain = h.look.plain_view(name)
    else:
        base = f"models/{name}/.hub/branches/{quote(branch, safe='')}/"
        plain = {key[len(base):]: h.look.read(key) for key in h.look.keys(base)}
    shown = {path: content_id(path, data, head) for path, data in plain.items()}
    assert shown == head, f"the plain view of {name}@{branch} differs from its head"


def check_keep(h: Harness, api: HfApi) -> None:
    history = [c.commit_id for c in api.list_repo_commits(KEEP)]
    for oid, _ in h.ledger.keep_versions:
        assert oid in history, f"acknowledged commit {oid} of {KEEP} is lost"
    head = head_files(api, KEEP)
    candidates = [h.keep_state] + ([h.ledger.keep_pending] if h.ledger.keep_pending else [])
    matching = [c for c in candidates if {p: content_id(p, d, head) for p, d in c.items()} == head]
    assert matching, f"the head of {KEEP} is neither the last acknowledged commit nor the one in flight"
    h.keep_state, h.ledger.keep_pending = matching[-1], None
    branches = {b.name for b in api.list_repo_refs(KEEP).branches}
    for branch in branches:
        check_view(h, api, KEEP, branch)
    views = {key.split("/")[5] for key in h.look.keys(f"models/{KEEP}/.hub/branches/")}
    assert views <= {quote(b, safe="") for b in branches}, f"views of deleted branches remain: {views}"


# -- the rounds ---------------------------------------------------------------------------------
# Kill points (the Nth storage write of a round; ~100 writes per round): inside the private create
# (1-11), the secret commit (12-20), the delete (21-34), the public create (35-45), the commit to
# KEEP (46-58), the branch (59-67), the burst; None: killed from outside at a random moment.
FOLDER_KILLS = [3, 8, 14, 19, 23, 27, 31, 38, 43, 49, 53, 57, 63, 75, None]
S3_KILLS = [6, 17, 25, 30, 41, 51, 56, None]


def crash_rounds(h: Harness, kills: list[int | None], seed: int) -> None:
    rng = random.Random(seed)
    h.setup()
    died_in_recovery = 0
    for i, kill_at in enumerate(kills, start=1):
        if i in (3, 6):  # die again during start-up recovery, before serving anything
            dying = h.start(wait=False, kill_in_recovery=2)
            died_in_recovery += dying.wait_for(r"^http://", timeout=60) is None
            dying.kill()
        served = h.start(kill_at=kill_at)
        stalled = timer = None
        try:
            absent = check(h, served.url)
            stalled = stall_an_upload(h, served.url) if i % 3 == 1 else None
            if kill_at is None:  # no self-kill: a kill from outside at a random moment instead
                timer = threading.Timer(rng.uniform(0.05, 0.6), served.kill)
                timer.start()
            workload(h, WireClient(served.url, WRITE_TOKEN), i, absent)
        finally:
            if timer is not None:
                timer.cancel()
            served.kill()
        if stalled is not None:
            stalled.join(10)
    final = h.start()
    try:
        check(h, final.url)
    finally:
        final.kill()
    died = [o for o in h.ledger.outcomes if o[2] == "unknown"]
    assert len(died) >= len([k for k in kills if k]), f"some kill points were never reached: {h.ledger.outcomes}"
    assert died_in_recovery, "no start-up recovery was ever cut by a kill"


def test_kill_9_at_many_points_on_a_folder(tmp_path):
    crash_rounds(Harness("folder", tmp_path), FOLDER_KILLS, seed=14)


@pytest.mark.s3
def test_kill_9_at_many_points_on_s3(tmp_path, seaweedfs):
    crash_rounds(Harness("s3", tmp_path, seaweedfs), S3_KILLS, seed=15)
