"""Metrics and the request log prove who talked to the hub, about what, and how much."""

from __future__ import annotations

import json
import os
import time
import urllib.request

from huggingface_hub import HfApi, hf_hub_download

from reasoner_hub.metrics import agent_fields
from reasoner_hub.server import HubServer

from .helpers import WRITE_TOKEN


def test_counts_by_kind_repo_client_and_agent(folder_storage, tmp_path):
    log = tmp_path / "requests.jsonl"
    weights = os.urandom(30_000)
    with HubServer(folder_storage, request_log=str(log)) as hub:
        trainer = {"X-Reasoner-Client": "trainer-0", "X-Reasoner-Pid": "4242"}
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN, headers=trainer)
        api.create_repo("org/counted")
        api.upload_file(path_or_fileobj=weights, path_in_repo="w.safetensors", repo_id="org/counted")
        for i in range(3):
            hf_hub_download("org/counted", "w.safetensors", endpoint=hub.url, cache_dir=tmp_path / f"c{i}",
                            token=False, headers={"X-Reasoner-Client": "evaluator"})
        metrics = json.loads(urllib.request.urlopen(f"{hub.url}/api/_metrics").read())

    evaluator = metrics["by_client"]["evaluator"]
    assert evaluator["requests"] == 6  # HEAD + GET per download
    assert evaluator["bytes_sent"] == 3 * len(weights)
    assert metrics["by_client"]["trainer-0"]["bytes_received"] >= len(weights)
    assert metrics["by_kind"]["download"]["bytes_sent"] == 3 * len(weights)
    assert metrics["by_kind"]["upload"]["bytes_received"] >= len(weights)
    assert metrics["by_repo"]["models/org/counted"]["requests"] >= 9
    assert any("hf_hub/" in agent for agent in metrics["by_user_agent"])
    assert metrics["requests"] == sum(group["requests"] for group in metrics["by_kind"].values())

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == metrics["requests"] + 1  # + the metrics request, logged after its own snapshot
    gets = [r for r in lines if r["kind"] == "download" and r["method"] == "GET"]
    assert len(gets) == 3 and all(r["bytes_sent"] == len(weights) and r["status"] == 200 for r in gets)
    assert all(r["repo"] == "models/org/counted" and r["revision"] == "main" for r in gets)
    assert {r["pid"] for r in lines if r["client"] == "trainer-0"} == {"4242"}
    assert {"time", "method", "path", "kind", "status", "bytes_received", "user_agent"} <= set(lines[0])
    assert all("?" not in r["path"] for r in lines)


def test_without_client_header_the_remote_address_counts(folder_hub):
    # A bare HTTP client: huggingface_hub's user agent may carry an origin/NAME of its environment.
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{folder_hub.url}/api/models/org/none", timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 404
    # The server records a request once its answer is sent, a moment after the client has read it.
    deadline = time.monotonic() + 5
    while not folder_hub.metrics.snapshot()["by_client"] and time.monotonic() < deadline:
        time.sleep(0.01)
    clients = folder_hub.metrics.snapshot()["by_client"]
    assert clients["127.0.0.1"]["requests"] == 1, clients


# What the trainer's clients add to huggingface_hub's user agent (reasoner.hubclient.calls.client_agent),
# written here with huggingface_hub alone: the hub's tests never import the trainer.
RANKED_CLIENT = """
import os
from huggingface_hub import HfApi
agent = {"reasoner": "0.0-test", "node": os.environ["SLURMD_NODENAME"], "pid": str(os.getpid()),
         "rank": os.environ["RANK"]}
HfApi(user_agent=agent).create_repo("org/ranked")
print(os.getpid())
"""


def test_reasoner_clients_name_their_node_pid_and_rank(folder_storage, tmp_path):
    """A client that names node, pid and rank in its user agent: the log says which node and rank it was."""
    import subprocess
    import sys

    log = tmp_path / "requests.jsonl"
    with HubServer(folder_storage, request_log=str(log)) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=WRITE_TOKEN, HF_HOME=str(tmp_path / "home"), RANK="3",
                   SLURMD_NODENAME="gpu-node-7", NO_PROXY="*", no_proxy="*")
        done = subprocess.run([sys.executable, "-c", RANKED_CLIENT], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "repos/create" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.05)
    created = [json.loads(line) for line in log.read_text().splitlines() if "repos/create" in line]
    assert len(created) == 1
    agent = agent_fields(created[0]["user_agent"])
    assert agent["node"] == "gpu-node-7" and agent["rank"] == "3" and agent["pid"] == done.stdout.strip()
    assert "reasoner" in agent
    assert created[0]["pid"] == agent["pid"]  # the server reads the pid from the user agent too
