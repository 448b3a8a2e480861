"""`sbatch slurm/grpo.sbatch tiny-cpu` on the real two-node cluster, against a local hub over HTTP.

What a user does on a CPU cluster, end to end: the job prefetches the model and data set from the hub on
every node into that node's own cache, trains over gloo (machine ranks 0 and 1, each read inside its own task),
sends no request to the hub for them after the prefetch, pushes a checkpoint at every save and the result at the
end from global rank zero only, and ends COMPLETED. The token never shows in the job's output.

The nodes run a different number of ranks, one on n1 and two on n2 (``REASONER_PROCS_PER_NODE=1,2``): on GPU
nodes that is the layout of a vLLM server on the first GPUs of the first node with training on every other GPU
(reasoner.topology.ranks), which CPU nodes cannot serve; the launch path is the same. One job covers both, the
cluster tests' time being short; tests/integration/slurm/test_preemption.py runs an even layout (one rank each).

Who sent each request is read from the hub's request log: reasoner's hub clients add ``node/NAME``,
``pid/N`` and, in a training rank, ``rank/R`` to their user agent (and rank zero's uploader child adds
``parent/N``, the pid of the rank it uploads for). The two nodes share this machine's disk,
so the job's cache is ``node-cache-{node}``, which ``slurm/task.sh`` expands per node.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reasoner_hub.auth import Token
from reasoner_hub.metrics import agent_fields
from reasoner_hub.server import HubServer
from shared_data import GSM8K
from ports import free_port

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "hf_sbatch_write_token_5c1f0e2a9d"
BASE, DATA, OUT_REPO = "acme/tiny-base", "acme/gsm8k-mini", "acme/tiny-grpo-slurm"
NODES = {"n1", "n2"}
WRITE_METHODS = {"POST", "PUT", "DELETE", "PATCH"}


def agent(record: dict) -> dict[str, str]:
    """The ``name/value`` fields of a request's user agent (empty for clients that are not reasoner's)."""
    fields = agent_fields(record["user_agent"])
    return fields if "reasoner" in fields else {}


def hub_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_ENDPOINT=url, HF_TOKEN=TOKEN, HF_HOME=str(home), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="*", no_proxy="*")
    return env


@pytest.fixture(scope="module")
def job(slurm_cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("sbatch")
    log = work / "requests.jsonl"
    with HubServer(work / "bucket", tokens=[Token("ci", TOKEN, "write")], request_log=str(log)) as server:
        from reasoner.models.tiny import ensure_tiny_model

        seed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from huggingface_hub import HfApi
            from datasets import load_dataset
            api = HfApi()
            api.create_repo({BASE!r})
            api.upload_folder(repo_id={BASE!r}, folder_path={str(ensure_tiny_model())!r})
            rows = load_dataset("json", data_files={str(GSM8K / "train.jsonl")!r}, split="train")
            rows.select(range(32)).push_to_hub({DATA!r}, config_name="main", split="train")
        """)], env=hub_env(server.url, work / "seed-home"), capture_output=True, text=True, timeout=300)
        assert seed.returncode == 0, seed.stderr[-3000:]
        seeded = len(log.read_text().splitlines())

        out_dir = work / "run"
        job_log = work / "job.out"
        env = hub_env(server.url, work / "job-home")
        env.update(
            SLURM_CONF=slurm_cluster,
            REASONER_PYTHON=sys.executable,
            REASONER_CACHE_DIR=str(work / "node-cache-{node}"),
            REASONER_MAIN_PORT=str(free_port()),
            REASONER_LOG_DIR=str(work / "logs"),
            REASONER_PROCS_PER_NODE="1,2",  # n1 one rank, n2 two: a world of 3, batch 4 x 3 = 12 in groups of 4
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            DS_ACCELERATOR="cpu",
            OMP_NUM_THREADS="1",
        )
        submit = subprocess.run(
            ["sbatch", "--wait", "--parsable", "--nodes=2", f"--output={job_log}", "--time=15",
             "slurm/grpo.sbatch", "tiny-cpu",
             "--model.id", BASE, "--dataset.id", DATA, "--dataset.config", "main",
             "--hub.push", "true", "--hub.repo_id", OUT_REPO, "--hub.push_checkpoints", "true",
             "--max_steps", "2", "--save_steps", "1", "--output_dir", str(out_dir)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        job_id = submit.stdout.strip().split(";")[0]
        state = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
        records = [json.loads(line) for line in log.read_text().splitlines()[seeded:]]
        commits = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from huggingface_hub import HfApi
            for commit in HfApi().list_repo_commits({OUT_REPO!r}):
                print(commit.title)
        """)], env=hub_env(server.url, work / "commits-home"), capture_output=True, text=True, timeout=120)
        yield {"submit": submit, "id": job_id, "state": state, "out": out_dir, "work": work,
               "log": job_log.read_text() if job_log.exists() else "", "records": records, "url": server.url,
               "commit_titles": commits.stdout.splitlines() if commits.returncode == 0 else commits.stderr}


def test_job_completes(job):
    assert job["submit"].returncode == 0, job["submit"].stderr + job["log"][-6000:]
    assert "JobState=COMPLETED" in job["state"], job["state"]
    assert (job["out"] / "model.safetensors").is_file()


def test_cpu_nodes_planned_as_cpu_nodes(job):
    assert re.search(r"nodes x GPUs\s+2 x 0\s+\(SLURM\)", job["log"]), job["log"][:3000]
    assert "generation         transformers, placement none" in job["log"]


def test_each_node_read_its_own_rank(job):
    ranks = set(re.findall(r"\[task train (n\d)\] machine rank (\d) of 2", job["log"]))
    assert ranks == {("n1", "0"), ("n2", "1")}, job["log"][-4000:]
    assert "rendezvous 127.0.0.1:" in job["log"]  # NodeAddr, since the names n1/n2 do not resolve


def test_one_three_rank_job_trained(job):
    for step in (1, 2):
        lines = [line for line in job["log"].splitlines() if f"reasoner.train: step {step}/2" in line]
        assert len(lines) == 1, f"{len(lines)} main processes logged step {step}"
    record = json.loads((job["out"] / "checkpoint-2" / "checkpoint_complete.json").read_text())
    assert record["world_size"] == 3  # every rank saved its part of the last checkpoint
    assert {f"rng_state_{rank}.pth" for rank in range(3)} <= set(record["files"]), record["files"]


def test_the_plan_gives_each_node_its_own_count(job):
    assert re.search(r"training\s+2 node\(s\): 1 \+ 2 process\(es\) = 3", job["log"]), job["log"][:4000]
    assert re.search(r"launch on n1\s+machine rank 0, 1 rank\(s\) \(0\) of 3: .*--num_processes 2 --machine_rank 0",
                     job["log"])
    assert re.search(r"launch on n2\s+machine rank 1, 2 rank\(s\) \(1-2\) of 3: .*--num_processes 4 --machine_rank 1",
                     job["log"])


def test_each_node_started_its_own_ranks_of_one_world(job):
    started = set(re.findall(r"\[task train (n\d)\] machine rank (\d) of 2, .*; (\d) rank\(s\) (\d-\d) of world "
                             r"size (\d)", job["log"]))
    assert started == {("n1", "0", "1", "0-0", "3"), ("n2", "1", "2", "1-2", "3")}, job["log"][-4000:]
    # gathered from the three ranks themselves: each reports the node it runs on
    assert "world size 3: n1 rank(s) 0; n2 rank(s) 1,2" in job["log"], job["log"][-4000:]


def clock_reading_after(clock: str, earliest: datetime) -> datetime:
    """The first moment at or after ``earliest`` (less a second, the clock's rounding) whose local time of day is
    ``clock`` (HH:MM:SS). The job log's lines carry no date, and a job may run across midnight, so the date comes
    from the job's own records rather than from the clock at assertion time."""
    local = earliest.astimezone()
    time_of_day = datetime.strptime(clock, "%H:%M:%S").time()
    moment = datetime.combine(local.date(), time_of_day).astimezone()
    if moment < local - timedelta(seconds=1):
        moment = datetime.combine(local.date() + timedelta(days=1), time_of_day).astimezone()
    return moment


def test_a_log_clock_reading_is_dated_from_the_job_not_the_wall_clock():
    evening = datetime(2026, 3, 1, 23, 59, 58).astimezone()
    assert clock_reading_after("23:59:59", evening) == datetime(2026, 3, 1, 23, 59, 59).astimezone()
    assert clock_reading_after("00:00:03", evening) == datetime(2026, 3, 2, 0, 0, 3).astimezone()
    assert clock_reading_after("23:59:57", evening) == datetime(2026, 3, 1, 23, 59, 57).astimezone()
    assert clock_reading_after("12:00:00", evening) == datetime(2026, 3, 2, 12, 0, 0).astimezone()


def test_no_request_for_model_or_data_after_the_prefetch(job):
    match = re.search(r"\[grpo\.sbatch (\d\d:\d\d:\d\d)\] training on ", job["log"])
    assert match, job["log"][-3000:]
    inputs = [r for r in job["records"] if r["repo"] in (f"models/{BASE}", f"datasets/{DATA}")]
    assert any("/resolve/" in r["path"] for r in inputs), "the prefetch downloaded nothing"
    # Training starts after the job's first request to the hub (its pins and prefetch): date the line from that.
    started = clock_reading_after(match[1], min(datetime.fromisoformat(r["time"]) for r in job["records"]))
    late = [r for r in inputs if (datetime.fromisoformat(r["time"]) - started).total_seconds() >= 1.0]
    assert not late, f"requests after training started: {[(r['time'], r['method'], r['path']) for r in late][:5]}"


def test_each_file_downloaded_once_per_node_into_its_own_cache(job):
    downloads = [r for r in job["records"] if r["method"] == "GET" and "/resolve/" in r["path"]
                 and r["repo"] in (f"models/{BASE}", f"datasets/{DATA}")]
    assert downloads, "the prefetch downloaded nothing"
    assert all(agent(r) for r in downloads), "a download came from a client that is not reasoner's"
    per_file_and_node = Counter((r["path"], agent(r)["node"]) for r in downloads)
    repeated = {key: n for key, n in per_file_and_node.items() if n != 1}
    assert not repeated, f"files downloaded more than once on one node: {repeated}"
    nodes_per_file: dict[str, set[str]] = {}
    for path, node in per_file_and_node:
        nodes_per_file.setdefault(path, set()).add(node)
    assert all(nodes == NODES for nodes in nodes_per_file.values()), nodes_per_file
    assert not [r for r in downloads if "rank" in agent(r)], "a training rank downloaded a file"
    for node in NODES:  # each node's own cache holds both snapshots
        hub_cache = job["work"] / f"node-cache-{node}" / "hub"
        assert (hub_cache / "models--acme--tiny-base" / "snapshots").is_dir(), node
        assert (hub_cache / "datasets--acme--gsm8k-mini" / "snapshots").is_dir(), node


def test_exactly_one_process_pushed_one_commit_per_save(job):
    to_output = [r for r in job["records"] if OUT_REPO in (r["repo"] or "") or OUT_REPO in r["path"]]
    writes = [r for r in to_output if r["method"] in WRITE_METHODS]
    assert writes, "nothing was pushed to the output repo"
    api_writes = [r for r in writes if not r["path"].startswith("/_lfs/")]
    # Rank zero checks its push access itself; its uploads run in its uploader child (lower CPU priority),
    # whose user agent names the training process it works for.
    owners = {(agent(r).get("node"), agent(r).get("parent") or agent(r).get("pid"), agent(r).get("rank")) for r in api_writes}
    assert len(owners) == 1, f"more than one training process wrote to the hub: {owners}"
    node, pid, rank = next(iter(owners))
    assert rank == "0", f"the pushing process is not global rank zero: {owners}"
    processes = {agent(r).get("pid") for r in api_writes}
    commits_by = {agent(r).get("parent") for r in api_writes if "/commit/" in r["path"]}
    assert commits_by == {pid}, f"the commits were not made by rank zero's uploader child: {commits_by}"
    # LFS uploads go to a signed URL without the client's headers; the hub records the pid it signed it for.
    uploads = [r for r in writes if r["path"].startswith("/_lfs/")]
    assert uploads and {r["pid"] for r in uploads} <= processes, ({r["pid"] for r in uploads}, processes)
    readers = {(agent(r).get("node"), agent(r).get("parent") or agent(r).get("pid"))
               for r in to_output if agent(r).get("rank") is not None}
    assert readers == {(node, pid)}, f"training ranks other than the pusher talked to the output repo: {readers}"
    commit_posts = [r for r in writes if r["method"] == "POST" and "/commit/" in r["path"] and r["status"] == 200]
    titles = job["commit_titles"]
    assert isinstance(titles, list), titles
    assert titles[0] == "final model", titles
    assert sorted(t for t in titles if t.startswith("checkpoint")) == ["checkpoint step 1", "checkpoint step 2"], titles
    assert len(commit_posts) == 3, f"{len(commit_posts)} commits for 2 saves and the final model: {titles}"


def test_result_pushed_and_token_kept_secret(job):
    assert TOKEN not in job["log"]
    for path in job["out"].rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert TOKEN.encode() not in path.read_bytes(), path
