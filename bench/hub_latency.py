"""Request latency and throughput of the hub with pooled (kept-alive) clients, before and after the keep-alive fix.

Two hub servers run side by side, each in its own process on its own folder, seeded alike:

* ``legacy``: answers as the hub did before the fix (headers and body in two writes, Nagle's
  algorithm on): the body waits for the client's delayed ACK of the headers on a kept-alive
  connection (HubServer's internal ``legacy_send``);
* ``new``: headers and body in one write, ``TCP_NODELAY`` on.

Each operation is timed on both in ABBA order over ``--rounds``, ``--requests`` requests per round
on one pooled client: HEAD and GET of a small file and GET of the repo info with ``httpx.Client``
(huggingface_hub's own HTTP library), GET with ``requests.Session``, and ``create_commit`` through
huggingface_hub's own pooled session (a preupload and a commit request each). A last row opens a
new connection per request (no pooling, ``http.client``) for reference. Printed: requests/s, p50 and p99 latency
per side, and the ratios legacy/new of p50 and new/legacy of requests/s.

    python bench/hub_latency.py                 # 4 rounds x 40 requests
    python bench/hub_latency.py --rounds 1 --requests 10
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["HF_HUB_DISABLE_XET"] = "1"  # this hub speaks LFS; read when huggingface_hub is imported

import httpx  # noqa: E402
import requests  # noqa: E402
from huggingface_hub import CommitOperationAdd, HfApi  # noqa: E402

from bench import common  # noqa: E402

REPO_ID = "bench/latency"
SIDES = {"A": "legacy", "B": "new"}


def serve(folder: str, legacy: bool) -> None:
    """Child mode: one hub on ``folder``, URL on stdout, until stdin closes."""
    from reasoner_hub.server import HubServer

    with HubServer(folder, legacy_send=legacy) as hub:
        print(hub.url, flush=True)
        sys.stdin.read()


def start_server(folder: Path, legacy: bool) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(folder)] + (["--legacy"] if legacy else []),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(common.REPO)})
    url = child.stdout.readline().strip()
    if not url.startswith("http://"):
        raise RuntimeError(f"the {'legacy' if legacy else 'new'} hub did not start")
    api = HfApi(endpoint=url, token=False)
    api.create_repo(REPO_ID)
    api.upload_file(path_or_fileobj=b'{"hidden_size": 64}\n' * 50, path_in_repo="config.json", repo_id=REPO_ID)
    return child, url


def operations(url: str, counter: list[int]) -> dict[str, tuple[str, Callable[[], None]]]:
    """name -> (client, one request) against the hub at ``url``; clients are made once and reused."""
    pooled = httpx.Client(base_url=url, timeout=30)
    session = requests.Session()
    api = HfApi(endpoint=url, token=False)
    resolve = f"/{REPO_ID}/resolve/main/config.json"

    def check(status: int) -> None:
        if status != 200:
            raise RuntimeError(f"unexpected answer {status}")

    def commit() -> None:
        counter[0] += 1
        api.create_commit(REPO_ID, [CommitOperationAdd(f"runs/{counter[0]}.txt", b"x" * 100)], commit_message="bench")

    host, port = url.split("//")[1].split(":")

    def fresh_get() -> None:  # http.client: a new httpx.Client would time its own TLS set-up too
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("GET", resolve)
            answer = connection.getresponse()
            answer.read()
            check(answer.status)
        finally:
            connection.close()

    return {
        "HEAD file": ("httpx.Client", lambda: check(pooled.head(resolve).status_code)),
        "GET file (1 KiB)": ("httpx.Client", lambda: check(pooled.get(resolve).status_code)),
        "GET repo info": ("httpx.Client", lambda: check(pooled.get(f"/api/models/{REPO_ID}").status_code)),
        "GET file (1 KiB) ": ("requests.Session", lambda: check(session.get(url + resolve).status_code)),
        "commit (2 requests)": ("huggingface_hub", commit),
        "GET file, new connection each": ("http.client, no pool", fresh_get),
    }


def time_requests(call: Callable[[], None], count: int) -> tuple[list[float], float]:
    for _ in range(3):
        call()  # warm: connection open, caches filled
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begin)
    return latencies, time.perf_counter() - started


def summarise(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000,
            "requests_per_s": len(ordered) / elapsed, "n": len(ordered)}


def measure(rounds: int, count: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="hub-latency-") as tmp:
        servers = {side: start_server(Path(tmp) / side, legacy=side == "A") for side in SIDES}
        try:
            ops = {side: operations(url, [0]) for side, (_, url) in servers.items()}
            samples = {name: {side: ([], 0.0) for side in SIDES} for name in ops["A"]}
            for order in common.abba(rounds):
                for name in samples:
                    for side in order:
                        latencies, elapsed = time_requests(ops[side][name][1], count)
                        previous = samples[name][side]
                        samples[name][side] = (previous[0] + latencies, previous[1] + elapsed)
        finally:
            for child, _ in servers.values():
                child.stdin.close()
                child.wait(30)
    rows = []
    for name, by_side in samples.items():
        legacy, new = summarise(*by_side["A"]), summarise(*by_side["B"])
        rows.append({"operation": name.strip(), "client": ops["A"][name][0], "legacy": legacy, "new": new,
                     "p50_ratio": legacy["p50_ms"] / new["p50_ms"],
                     "throughput_ratio": new["requests_per_s"] / legacy["requests_per_s"]})
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds (default 4)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per operation, side and round")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.serve:
        serve(ns.serve, ns.legacy)
        return 0
    rows = measure(ns.rounds, ns.requests)
    headers = ["operation", "client", "legacy req/s", "legacy p50 ms", "legacy p99 ms", "new req/s", "new p50 ms",
               "new p99 ms", "p50 legacy/new", "req/s new/legacy"]
    print(common.table(headers, [[r["operation"], r["client"], r["legacy"]["requests_per_s"], r["legacy"]["p50_ms"],
                                  r["legacy"]["p99_ms"], r["new"]["requests_per_s"], r["new"]["p50_ms"],
                                  r["new"]["p99_ms"], r["p50_ratio"], r["throughput_ratio"]] for r in rows]))
    path = common.write_result("hub_latency", {"command": common.this_command(), "rounds": ns.rounds,
                                               "requests": ns.requests, "rows": rows}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
