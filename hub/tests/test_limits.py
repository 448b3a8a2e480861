"""Bounded resources: what one client can make the hub hold, read or compute has a limit, said in one line."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from reasoner_hub import limits, metrics
from reasoner_hub.commits import GITATTRIBUTES
from reasoner_hub.lookup import PathIndex
from reasoner_hub.server import HubServer

from .crashkit import WireClient
from .helpers import WRITE_TOKEN, raw_request
from .served import Served


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_distinct_huge_user_agents_do_not_grow_memory(tmp_path):
    """1,200 requests, each with its own 50 KB user agent, on one pooled connection: memory stays flat."""
    served = Served(["--storage", str(tmp_path / "hub")])
    try:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            for i in range(50):  # warm up: threads, imports, buffers
                client.get("/api/_health", headers={"User-Agent": f"warm-{i}"})
            before = _rss_kib(served.process.pid)
            filler = "x" * 50_000
            for i in range(1200):
                assert client.get("/api/_health", headers={"User-Agent": f"agent-{i}-{filler}"}).status_code == 200
            time.sleep(0.2)
            grown_mib = (_rss_kib(served.process.pid) - before) / 1024
    finally:
        served.stop()
    # Unbounded keys hold 1,200 x 50 KB = 57 MiB (and more in dict overhead); bounded ones ~0.3 MiB.
    assert grown_mib < 15, f"the server grew by {grown_mib:.1f} MiB"


def test_metrics_groups_keep_bounded_keys(folder_storage):
    with HubServer(folder_storage) as hub, httpx.Client(base_url=hub.url, timeout=30) as client:
        for i in range(metrics.MAX_KEYS + 50):
            client.get("/api/_health", headers={"User-Agent": f"a{i}-" + "y" * 1000, "X-Reasoner-Client": f"c{i}"})
        deadline = time.monotonic() + 5
        while hub.metrics.snapshot()["requests"] < metrics.MAX_KEYS + 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        snapshot = hub.metrics.snapshot()
    for group in ("by_user_agent", "by_client"):
        keys = snapshot[group]
        assert len(keys) == metrics.MAX_KEYS + 1 and metrics.OTHER in keys
        assert max(len(key) for key in keys) <= metrics.MAX_KEY_CHARS
        assert keys[metrics.OTHER]["requests"] == 50
    assert snapshot["requests"] == metrics.MAX_KEYS + 50  # nothing is lost from the totals


def test_paths_info_limits_and_answers(folder_api, folder_hub):
    api = folder_api
    api.create_repo("org/many")
    ops = [CommitOperationAdd(f"d{i % 40}/f{i}.txt", b"x") for i in range(2000)]
    api.create_commit("org/many", ops, commit_message="2000 files")
    asked = [f"d{i % 50}/f{i}.txt" for i in range(0, 1890, 2)] + [f"d{i}" for i in range(0, 50)] + ["nope", "d1/f1.txt/x"]
    assert len(asked) <= limits.MAX_PATHS_PER_CALL
    answer = {item.path: item for item in api.get_paths_info("org/many", asked)}
    files = {op.path_in_repo for op in ops}
    expected_files = {p for p in asked if p in files}
    expected_folders = {p for p in asked if any(f.startswith(p + "/") for f in files)}
    assert set(answer) == expected_files | expected_folders
    assert all(hasattr(answer[p], "tree_id") for p in expected_folders)

    too_many = [f"p{i}" for i in range(limits.MAX_PATHS_PER_CALL + 1)]
    status, headers, body = raw_request(folder_hub.url, "POST", "/api/models/org/many/paths-info/main",
                                        urlencode({"paths": too_many}, doseq=True).encode(),
                                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "at most 1000 paths" in headers["x-error-message"]
    assert "\n" not in json.loads(body)["error"]


def test_path_index_agrees_with_a_scan():
    files = {p: None for p in ["a", "a/b", "a/b/c", "a/bc", "a.b/x", "a-b/y", "ab/z", "b/a/c", "é/ü"]}
    index = PathIndex(files)
    for folder in ["a", "a/b", "ab", "a.b", "b", "b/a", "é", "c", "a/bc"]:
        scan = sorted(p for p in files if p.startswith(folder + "/"))
        assert index.under(folder) == scan and index.is_folder(folder) == bool(scan), folder


def _card(size: int) -> bytes:
    lines = "".join(f"key{i}: value {i}\n" for i in range(size // 16))
    return json.dumps({"repoType": "model", "content": f"---\n{lines}---\n# card\n"}).encode()


def test_validate_yaml_bounds(folder_hub):
    url = folder_hub.url
    ok, _, body = raw_request(url, "POST", "/api/validate-yaml", _card(2000), {"Content-Type": "application/json"})
    assert ok == 200 and json.loads(body)["errors"] == []
    status, _, body = raw_request(url, "POST", "/api/validate-yaml", _card(1 << 20), {"Content-Type": "application/json"})
    assert status == 400 and "larger than 128 KiB" in json.loads(body)["errors"][0]["message"]
    status, headers, _ = raw_request(url, "POST", "/api/validate-yaml", b"{}", {
        "Content-Type": "application/json", "Content-Length": str(limits.MAX_CARD_BODY + 1)})
    assert status == 413 and "larger than 4 MiB" in headers["x-error-message"]
    status, _, body = raw_request(url, "POST", "/api/validate-yaml", b'{"content": 5}', {"Content-Type": "application/json"})
    assert status == 400 and "content must be a string" in json.loads(body)["error"]


def _send_in_background(sock: socket.socket, chunks) -> threading.Thread:
    def pump() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading and closed: what these tests want

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _answer(sock: socket.socket, timeout: float = 30) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return int(data.split(b" ", 2)[1]), data


def test_a_huge_commit_line_is_refused_without_buffering_it(folder_api, folder_hub):
    folder_api.create_repo("org/line")
    parts = urlsplit(folder_hub.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    total = 128 * 1024 * 1024
    head = (f"POST /api/models/org/line/commit/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE_TOKEN}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {total}\r\n\r\n").encode()
    sent = [0]

    def body():
        yield head
        block = b"a" * (1 << 20)
        while sent[0] < total:
            sent[0] += len(block)
            yield block

    pump = _send_in_background(sock, body())
    status, answer = _answer(sock)
    sock.close()
    pump.join(10)
    assert status == 413 and b"A line of the commit body is larger than" in answer
    assert sent[0] < 40 * 1024 * 1024, f"the server read {sent[0] >> 20} MiB before refusing"
    assert folder_api.list_repo_files("org/line") == [".gitattributes"]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_lfs_upload_stops_at_the_signed_size(folder_api, folder_hub, folder_storage, chunked):
    folder_api.create_repo("org/signed")
    content = b"0123456789"
    status, href = WireClient(folder_hub.url, WRITE_TOKEN).lfs_href("org/signed", hashlib.sha256(content).hexdigest(), 10)
    assert status == 200 and href
    parts = urlsplit(folder_hub.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    path = href[href.index("/_lfs/"):]
    if chunked:
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        chunks = [head] + [b"10000\r\n" + b"z" * 0x10000 + b"\r\n"] * 16  # 1 MiB, never terminated
    else:
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {300 * 1024 * 1024}\r\n\r\n".encode()
        chunks = [head, b"z" * 65536]  # announces 300 MB, sends 64 KB and waits
    pump = _send_in_background(sock, chunks)
    status, answer = _answer(sock, timeout=20)  # answered at once: the server never waits for the rest
    sock.close()
    pump.join(10)
    assert status == 400 and b"larger than the 10 bytes this URL was signed for" in answer
    spool = Path(folder_storage.root) / ".tmp"
    assert [p for p in spool.rglob("*") if p.is_file()] == []
    blobs = set(folder_storage.list("models/org/signed/.hub/blobs/"))
    assert blobs == {f"models/org/signed/.hub/blobs/{hashlib.sha256(GITATTRIBUTES).hexdigest()}"}
    deadline = time.monotonic() + 5
    while "upload" not in folder_hub.metrics.snapshot()["by_kind"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert folder_hub.metrics.snapshot()["by_kind"]["upload"]["bytes_received"] <= 65536


@pytest.mark.parametrize("legacy", [False, True])
def test_kept_alive_answers_go_out_without_nagle(folder_storage, legacy):
    """Nagle's algorithm held an answer's body for the client's delayed ACK (~40 ms per pooled request).
    The speed is measured by bench/hub_latency.py; here, that the server's sockets are set up for it."""
    with HubServer(folder_storage, legacy_send=legacy) as hub, httpx.Client(base_url=hub.url, timeout=30) as client:
        for _ in range(3):
            answer = client.get("/api/_health")
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        with hub._connections_lock:
            sockets = list(hub._connections)
        assert len(sockets) == 1  # one pooled connection served all three
        assert sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == (0 if legacy else 1)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP_BODIES = [
    ("POST", "/api/repos/create", "application/json"),
    ("POST", "/api/models/org/deep/preupload/main", "application/json"),
    ("POST", "/api/models/org/deep/paths-info/main", "application/json"),
    ("POST", "/api/models/org/deep/branch/dev", "application/json"),
    ("PUT", "/api/models/org/deep/settings", "application/json"),
    ("POST", "/api/validate-yaml", "application/json"),
    ("POST", "/org/deep.git/info/lfs/objects/batch", "application/vnd.git-lfs+json"),
    ("POST", "/api/models/org/deep/commit/main", "application/x-ndjson"),
]


@pytest.mark.parametrize("method,path,content_type", DEEP_BODIES, ids=[p for _, p, _ in DEEP_BODIES])
@pytest.mark.parametrize("depth", [limits.MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_a_one_line_400(folder_api, folder_hub, method, path, content_type, depth):
    """Past the parser's recursion limit (100,000 levels: 600 KB) or just past the hub's own: 400, never 500."""
    folder_api.create_repo("org/deep", exist_ok=True)
    head = folder_api.model_info("org/deep").sha
    status, headers, body = raw_request(folder_hub.url, method, path, _nested(depth),
                                        {"Content-Type": content_type, "Authorization": f"Bearer {WRITE_TOKEN}"})
    message = headers.get("x-error-message") or json.loads(body)["error"]
    assert status == 400 and "\n" not in message, (status, body[:300])
    assert "deeper than" in message or "not valid JSON" in message, message
    assert folder_api.model_info("org/deep").sha == head  # nothing changed
    shallow = _nested(limits.MAX_JSON_DEPTH - 1)  # deep but allowed: the route's own field checks answer
    status, _, body = raw_request(folder_hub.url, method, path, shallow,
                                  {"Content-Type": content_type, "Authorization": f"Bearer {WRITE_TOKEN}"})
    assert status < 500 and b"deeper than" not in body, (status, body[:300])
