"""The hub side of reliability, with the real hub server over HTTP and real training processes.

* Resume from the hub: run A pushes its checkpoints and is preempted; run B, on an empty output folder,
  fetches ``last-checkpoint/`` and ends with exactly the weights of an uninterrupted run.
* Hub outage: the hub stops during a run; training goes on, pushes retry with backoff, and when a hub on the
  same storage and port returns every checkpoint and the final model arrive. If it never returns, the run
  ends with exit code 2, everything on disk, and one ``reasoner push`` command that finishes the upload.
* The server under faults, on S3 (SeaweedFS): a client killed mid-upload leaves no partial commit or object,
  a server killed mid-run loses no acknowledged commit, and concurrent pushes to several repos and to one
  branch all land as atomic commits on a linear history. Racing commits that name the same parent (one
  wins, the other gets 412) are covered on S3 by hub/tests/test_commits.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported: the hub speaks LFS

import pytest  # noqa: E402
from training_run import TrainingRun, step_records  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from reasoner_hub.auth import Token  # noqa: E402
from reasoner_hub.server import HubServer  # noqa: E402
from ports import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6
PREEMPTED = 75
WRITE_TOKEN = "hf_reliability_write_0123456789abcdef"
TOKENS = [Token("trainer", WRITE_TOKEN, "write")]


@pytest.fixture(autouse=True)
def _no_xet(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def client_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_"))}
    return {**env, "HF_ENDPOINT": url, "HF_TOKEN": WRITE_TOKEN, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1", "NO_PROXY": "*", "no_proxy": "*",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), **extra}


class Run(TrainingRun):
    """One ``reasoner train`` process (tiny model, 6 steps), its output captured to a file."""

    def __init__(self, out: Path, model: Path, env: dict[str, str], *extra: str) -> None:
        command = [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--model.id", str(model),
                   "--max_steps", str(STEPS), "--output_dir", str(out), *extra]
        super().__init__(out, command, env)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_file_sha256(api: HfApi, repo_id: str, path: str) -> str | None:
    info = api.get_paths_info(repo_id, [path])
    return info[0].lfs.sha256 if info and getattr(info[0], "lfs", None) else None


# -- resume from the hub ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resumed_from_hub(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("hub-resume")
    with HubServer(base / "bucket", tokens=TOKENS) as hub:
        repo = "org/tiny-resume"
        push = ["--hub.push", "true", "--hub.repo_id", repo, "--hub.push_checkpoints", "true", "--save_steps", "100"]
        reference = Run(base / "reference", tiny_model, client_env(hub.url, base / "home-r"), "--save_steps", "100")
        # HF_HUB_OFFLINE=1 as the SLURM job sets it after its prefetch: pushes must still go out.
        first = Run(base / "machine-a", tiny_model, client_env(hub.url, base / "home-a", HF_HUB_OFFLINE="1"), *push)
        first.wait_for_step(2)
        first.process.send_signal(signal.SIGUSR1)
        first_rc = first.wait()
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        hub_state = json.loads(Path(hf_hub_download(repo, "last-checkpoint/trainer_state.json", endpoint=hub.url,
                                                    token=WRITE_TOKEN, cache_dir=base / "probe")).read_text())
        commits_after_a = [c.title for c in api.list_repo_commits(repo)]
        second = Run(base / "machine-b", tiny_model, client_env(hub.url, base / "home-b"), *push, "--resume-from-hub")
        second_rc = second.wait()
        assert reference.wait() == 0, reference.text()[-3000:]
        hub_weights_sha = hub_file_sha256(api, repo, "model.safetensors")
        yield {"first": first, "first_rc": first_rc, "second": second, "second_rc": second_rc, "reference": reference,
               "hub_state": hub_state, "commits_after_a": commits_after_a, "hub_weights_sha": hub_weights_sha}


def test_preempted_run_pushed_its_checkpoint(resumed_from_hub):
    r = resumed_from_hub
    assert r["first_rc"] == PREEMPTED, r["first"].text()[-3000:]
    local = sorted(p.name for p in r["first"].out.glob("checkpoint-*"))
    assert len(local) == 1
    step = int(local[0].split("-")[1])
    assert r["hub_state"]["global_step"] == step
    assert f"checkpoint step {step}" in r["commits_after_a"]


def test_fresh_machine_resumes_from_the_hub_checkpoint(resumed_from_hub):
    r = resumed_from_hub
    assert r["second_rc"] == 0, r["second"].text()[-3000:]
    step = r["hub_state"]["global_step"]
    log = r["second"].text()
    assert f"fetched checkpoint step {step} of org/tiny-resume" in log
    assert f"resuming from {r['second'].out / f'checkpoint-{step}'}" in log
    assert [x["step"] for x in step_records(r["first"].out)] == list(range(1, step + 1))
    assert [x["step"] for x in step_records(r["second"].out)] == list(range(step + 1, STEPS + 1))
    assert not list(r["second"].out.glob(".hub-checkpoint-*"))  # the staging folder is gone


def test_resumed_weights_equal_the_uninterrupted_run(resumed_from_hub):
    r = resumed_from_hub
    assert r["second_rc"] == 0, r["second"].text()[-3000:]
    reference = load_file(str(r["reference"].out / "model.safetensors"))
    resumed = load_file(str(r["second"].out / "model.safetensors"))
    differing = [name for name in reference if not torch.equal(reference[name], resumed[name])]
    assert reference.keys() == resumed.keys() and not differing, differing[:3]
    assert "final model pushed and verified" in r["second"].text()
    assert r["hub_weights_sha"] == sha256_of(r["second"].out / "model.safetensors")


# -- hub outage ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def outages(tiny_model, tmp_path_factory):
    """Three runs side by side, each with its own hub, which stops once the run has logged step 1.

    ``returns``: the hub comes back (same storage, same port) after training has ended; ``gone``: it never
    does; ``preempted``: it never does and the run gets SIGUSR1 after step 2, so the preempted run's bounded
    wait for its pushes (REASONER_PREEMPT_PUSH_S) is what lets it exit.
    """
    base = tmp_path_factory.mktemp("outage")
    push = ["--hub.push", "true", "--hub.push_checkpoints", "true", "--save_steps", "2", "--resume-from-hub"]
    settings = {"returns": {"REASONER_PUSH_ATTEMPTS": "1000"}, "gone": {"REASONER_PUSH_ATTEMPTS": "2"},
                "preempted": {"REASONER_PUSH_ATTEMPTS": "1000", "REASONER_PREEMPT_PUSH_S": "5"}}
    hubs, runs = {}, {}
    for name, extra in settings.items():
        hubs[name] = HubServer(base / f"bucket-{name}", tokens=TOKENS).start()
        env = client_env(hubs[name].url, base / f"home-{name}", REASONER_PUSH_BACKOFF_S="0.2",
                         REASONER_PUSH_MAX_BACKOFF_S="1", **extra)
        runs[name] = Run(base / name, tiny_model, env, *push, "--hub.repo_id", f"org/{name}")
    try:
        hub_down, signalled = set(), False
        deadline = time.monotonic() + 240
        while (len(hub_down) < len(runs) or not signalled) and time.monotonic() < deadline:
            for name, run in runs.items():
                reached = max((r["step"] for r in step_records(run.out)), default=0)
                if name not in hub_down and reached >= 1:
                    hubs[name].stop()
                    hub_down.add(name)
                if name == "preempted" and reached >= 2 and not signalled:
                    run.process.send_signal(signal.SIGUSR1)
                    signalled = True
                if run.process.poll() is not None and name not in hub_down:
                    pytest.fail(f"{name} exited with {run.process.returncode} early:\n{run.text()[-3000:]}")
            time.sleep(0.05)
        assert len(hub_down) == len(runs) and signalled, "the runs never reached their first steps"
        returns = runs["returns"]
        returns.wait_for_step(STEPS)  # training went on without the hub
        deadline = time.monotonic() + 120  # the hub stays away until a push has failed and is being retried
        while "retrying in" not in returns.text() and returns.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        still_waiting = returns.process.poll() is None  # the pushes are still retrying
        hubs["returns"] = HubServer(base / "bucket-returns", port=hubs["returns"].port, tokens=TOKENS).start()
        results = {name: {"run": run, "rc": run.wait()} for name, run in runs.items()}
        results["returns"]["still_waiting"] = still_waiting
        results["returns"]["hub"] = hubs["returns"]
        for name in ("gone", "preempted"):
            results[name]["bucket"] = base / f"bucket-{name}"
            results[name]["port"] = hubs[name].port
        yield results
    finally:
        for hub in hubs.values():
            hub.stop()


def finish_upload(command: str, bucket: Path, port: int, home: Path) -> tuple[HubServer, subprocess.CompletedProcess]:
    """Run a printed ``reasoner push ...`` command against the hub restarted on its storage and port."""
    argv = shlex.split(command)
    assert argv[0] == "reasoner"
    hub = HubServer(bucket, port=port, tokens=TOKENS).start()
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", *argv[1:]], cwd=ROOT, capture_output=True,
                            text=True, timeout=180, env=client_env(hub.url, home))
    return hub, result


def test_training_goes_on_and_every_push_lands_when_the_hub_returns(outages):
    result = outages["returns"]
    run, hub = result["run"], result["hub"]
    log = run.text()
    assert result["rc"] == 0, log[-3000:]
    assert result["still_waiting"], "the run ended before the hub came back: the outage was not exercised"
    assert "retrying in" in log
    assert "no checkpoint to resume from: org/returns" in log  # --resume-from-hub on a repo with no checkpoint
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    titles = [c.title for c in reversed(api.list_repo_commits("org/returns"))]
    pushed = [t for t in titles if t.startswith(("checkpoint step", "final model"))]
    assert pushed == ["checkpoint step 2", "checkpoint step 4", "checkpoint step 6", "final model"], titles
    assert "final model pushed and verified" in log
    assert hub_file_sha256(api, "org/returns", "model.safetensors") == sha256_of(run.out / "model.safetensors")
    assert hub_file_sha256(api, "org/returns", "last-checkpoint/optimizer.pt") == sha256_of(
        run.out / f"checkpoint-{STEPS}" / "optimizer.pt")


def test_a_hub_that_never_returns_ends_with_one_command_that_finishes_the_upload(outages, tmp_path):
    result = outages["gone"]
    run = result["run"]
    log = run.text()
    assert result["rc"] == 2, log[-3000:]
    assert "Traceback" not in log
    assert log.strip().splitlines()[-1].startswith("error: training finished but")
    commands = re.findall(r"finish with: (reasoner push .*)$", log, flags=re.M)
    assert commands == [f"reasoner push --folder {run.out} --repo-id org/gone"], commands  # the final model
    for name in ("model.safetensors", "README.md", f"checkpoint-{STEPS}/trainer_state.json"):
        assert (run.out / name).is_file(), name  # everything is on local disk

    hub, finish = finish_upload(commands[0], result["bucket"], result["port"], tmp_path / "home")
    try:
        assert finish.returncode == 0, finish.stdout + finish.stderr
        assert "pushed and verified" in finish.stdout
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        assert hub_file_sha256(api, "org/gone", "model.safetensors") == sha256_of(run.out / "model.safetensors")
        card = Path(hf_hub_download("org/gone", "README.md", endpoint=hub.url, token=WRITE_TOKEN,
                                    cache_dir=tmp_path / "cache")).read_bytes()
        assert card == (run.out / "README.md").read_bytes()
    finally:
        hub.stop()


def test_a_preempted_run_behind_a_dead_hub_exits_75_with_the_command_for_its_checkpoint(outages, tmp_path):
    result = outages["preempted"]
    run = result["run"]
    log = run.text()
    assert result["rc"] == PREEMPTED, log[-3000:]
    assert "still unfinished after 5 s" in log  # REASONER_PREEMPT_PUSH_S bounded the wait
    checkpoints = sorted((p for p in run.out.glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[1]))
    newest = checkpoints[-1]
    commands = re.findall(r"finish with: (reasoner push .*)$", log, flags=re.M)
    assert commands == [f"reasoner push --folder {newest} --repo-id org/preempted --path-in-repo last-checkpoint"]
    hub, finish = finish_upload(commands[0], result["bucket"], result["port"], tmp_path / "home")
    try:
        assert finish.returncode == 0, finish.stdout + finish.stderr
        state = Path(hf_hub_download("org/preempted", "last-checkpoint/trainer_state.json", endpoint=hub.url,
                                     token=WRITE_TOKEN, cache_dir=tmp_path / "cache")).read_text()
        assert json.loads(state)["global_step"] == int(newest.name.split("-")[1])
    finally:
        hub.stop()


def test_a_checkpoint_that_lands_supersedes_older_ones_that_did_not(tmp_path, monkeypatch):
    """The pusher itself against a hub that goes away and comes back (no training: folders shaped like checkpoints)."""
    from reasoner.publish.push import HubPusher, PushPolicy, checkpoint_job, final_job

    monkeypatch.setenv("REASONER_PUSH_ATTEMPTS", "2")
    monkeypatch.setenv("REASONER_PUSH_BACKOFF_S", "0.05")
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    assert PushPolicy().attempts == 2 and PushPolicy().first_delay_s == 0.05
    folders = {}
    for step in (2, 4):
        folder = tmp_path / "run" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        (folder / "optimizer.pt").write_bytes(os.urandom(2048))
        folders[step] = folder
    (tmp_path / "run" / "config.json").write_text("{}")
    hub = HubServer(tmp_path / "bucket", tokens=TOKENS).start()
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    waits: list[float] = []
    pusher = HubPusher("org/flaky", sleep=waits.append)
    port = hub.port
    hub.stop()
    assert not pusher.push_now(checkpoint_job(folders[2], 2))
    assert waits == [0.05]  # two attempts, one backoff between them
    assert len(pusher.unfinished_commands()) == 1 and "checkpoint-2" in pusher.unfinished_commands()[0]
    # The hub has failed `attempts` times in a row: the next push gets one try, not the whole policy again.
    assert not pusher.push_now(checkpoint_job(folders[4], 4))
    assert waits == [0.05]
    assert len(pusher.unfinished_commands()) == 1 and "checkpoint-4" in pusher.unfinished_commands()[0]
    with HubServer(tmp_path / "bucket", port=port, tokens=TOKENS):
        assert pusher.push_now(checkpoint_job(folders[4], 4))
        assert pusher.push_now(final_job(tmp_path / "run"))
        assert pusher.failed == [] and pusher.unfinished_commands() == []
        files = HfApi(endpoint=hub.url, token=WRITE_TOKEN).list_repo_files("org/flaky")
    assert "last-checkpoint/optimizer.pt" in files and "config.json" in files
    assert not any(f.startswith("checkpoint-") for f in files)


def test_a_preempted_run_waits_for_its_pushes_only_so_long(tmp_path, monkeypatch):
    """drain(timeout): what is still queued when the time is up counts as failed, and its command is printed."""
    from reasoner.publish.push import HubPusher, PushPolicy, checkpoint_job

    folder = tmp_path / "run" / "checkpoint-3"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    pusher = HubPusher("org/late", policy=PushPolicy(attempts=1000, first_delay_s=0.2, max_delay_s=0.2))
    pusher.submit(checkpoint_job(folder, 3))
    started = time.monotonic()
    assert pusher.drain(timeout=1.5) is False
    assert time.monotonic() - started < 5
    assert pusher._thread is not None and not pusher._thread.is_alive()  # it stopped retrying too
    commands = pusher.unfinished_commands()
    assert commands == [f"reasoner push --folder {folder} --repo-id org/late --path-in-repo last-checkpoint"]


def test_a_bad_retry_setting_is_a_user_error(monkeypatch):
    from reasoner.errors import UserError
    from reasoner.publish.push import PushPolicy

    monkeypatch.setenv("REASONER_PUSH_ATTEMPTS", "zero")
    with pytest.raises(UserError, match="REASONER_PUSH_ATTEMPTS='zero' is not valid: use an integer >= 1"):
        PushPolicy()


# -- the server under faults, on S3 ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def seaweedfs():
    from hub_testkit.seaweed import INSTALL_HINT, SeaweedFS, find_weed

    try:
        find_weed()
    except RuntimeError:
        pytest.fail(f"the S3 tests need SeaweedFS: install it with `{INSTALL_HINT}`", pytrace=False)
    with SeaweedFS(bucket="reliability") as store:
        yield store


class ServedHub:
    """``python -m reasoner_hub serve`` on an S3 prefix, as a separate process that can be killed."""

    def __init__(self, s3, prefix: str, spool: Path, port: int = 0) -> None:
        self.s3, self.prefix, self.spool = s3, prefix, spool
        spool.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        env = {**os.environ, **self.s3.env(), "TMPDIR": str(self.spool),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reasoner_hub", "serve", "--storage", f"s3://{self.s3.bucket}/{self.prefix}",
             "--s3-endpoint", self.s3.endpoint, "--port", str(self.port), "--token", f"trainer={WRITE_TOKEN}:write"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    pytest.fail(f"the hub server exited with {self.process.returncode}")
                time.sleep(0.1)
        pytest.fail("the hub server did not listen within 30 s")

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: a crash, not a clean shutdown
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


@pytest.fixture
def s3_hub(seaweedfs, tmp_path):
    hub = ServedHub(seaweedfs, f"t-{uuid.uuid4().hex[:10]}", tmp_path / "spool")
    try:
        yield hub
    finally:
        hub.stop()


UPLOAD_SCRIPT = """
import sys
from huggingface_hub import HfApi
print("uploading", flush=True)
HfApi().upload_folder(repo_id=sys.argv[1], folder_path=sys.argv[2], commit_message="big")
print("done", flush=True)
"""


@pytest.mark.s3
def test_a_client_killed_mid_upload_leaves_no_partial_commit(s3_hub, tmp_path):
    api = HfApi(endpoint=s3_hub.url, token=WRITE_TOKEN)
    api.create_repo("org/killed")
    api.upload_file(path_or_fileobj=b"before", path_in_repo="small.txt", repo_id="org/killed")
    head = api.model_info("org/killed").sha
    folder = tmp_path / "big"
    folder.mkdir()
    big = folder / "weights.bin"
    with big.open("wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(1 << 20))  # 256 MiB of incompressible bytes: long enough to be caught mid-PUT
    env = client_env(s3_hub.url, tmp_path / "home")
    client = subprocess.Popen([sys.executable, "-c", UPLOAD_SCRIPT, "org/killed", str(folder)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    caught = None
    while time.monotonic() < deadline and client.poll() is None:
        spooled = [p for p in s3_hub.spool.rglob("*") if p.is_file() and p.stat().st_size > 0]
        if spooled:
            caught = spooled[0].stat().st_size
            client.kill()
            break
        time.sleep(0.005)
    client.wait(10)
    assert caught is not None, f"the upload was never seen in flight: {client.stdout.read()[-2000:]}"
    assert caught < big.stat().st_size
    # The server notices the cut connection and throws the partial object away.
    deadline = time.monotonic() + 30
    while any(p.is_file() for p in s3_hub.spool.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(p.is_file() for p in s3_hub.spool.rglob("*")), "a partial upload was left in the spool"
    assert api.model_info("org/killed").sha == head
    assert sorted(api.list_repo_files("org/killed")) == [".gitattributes", "small.txt"]
    # Nothing half-uploaded is stored under the object's id: the same upload, retried, lands whole.
    retry = subprocess.run([sys.executable, "-c", UPLOAD_SCRIPT, "org/killed", str(folder)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert hub_file_sha256(api, "org/killed", "weights.bin") == sha256_of(big)
    assert [c.title for c in api.list_repo_commits("org/killed")][0] == "big"


COMMIT_LOOP = """
import sys, time
from huggingface_hub import HfApi
api = HfApi()
for i in range(int(sys.argv[2])):
    for attempt in range(200):
        try:
            oid = api.upload_file(path_or_fileobj=f"file {i}".encode(), path_in_repo=f"f{i:02d}.txt",
                                  repo_id=sys.argv[1], commit_message=f"c{i}").oid
            break
        except Exception as exc:
            time.sleep(0.1)
    else:
        raise SystemExit(f"commit {i} never landed")
    print(oid, flush=True)
"""


@pytest.mark.s3
def test_a_server_killed_mid_run_loses_no_acknowledged_commit(s3_hub, tmp_path):
    api = HfApi(endpoint=s3_hub.url, token=WRITE_TOKEN)
    api.create_repo("org/durable")
    count = 24
    client = subprocess.Popen([sys.executable, "-c", COMMIT_LOOP, "org/durable", str(count)],
                              env=client_env(s3_hub.url, tmp_path / "home"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    acknowledged: list[str] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(line.strip() for line in client.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 8 and time.monotonic() < deadline and client.poll() is None:
        time.sleep(0.01)
    assert len(acknowledged) >= 8, client.stderr.read()[-2000:]
    s3_hub.kill()  # in the middle of the client's stream of commits
    before_restart = list(acknowledged)
    time.sleep(1)
    s3_hub.start()  # same S3 prefix, same port, fresh process
    assert client.wait(180) == 0, client.stderr.read()[-2000:]
    reader.join(10)
    history = [c.commit_id for c in api.list_repo_commits("org/durable")]
    assert set(before_restart) <= set(history), "a commit acknowledged before the crash was lost"
    assert set(acknowledged) <= set(history)
    files = set(api.list_repo_files("org/durable"))
    assert {f"f{i:02d}.txt" for i in range(count)} <= files
    for i in (0, count // 2, count - 1):
        path = hf_hub_download("org/durable", f"f{i:02d}.txt", endpoint=s3_hub.url, token=WRITE_TOKEN,
                               cache_dir=tmp_path / "cache")
        assert Path(path).read_bytes() == f"file {i}".encode()


@pytest.mark.s3
def test_concurrent_pushes_to_several_repos_and_one_branch(s3_hub):
    """Each push is one atomic commit: every one lands, on a linear history, with nothing lost or mixed."""
    api = HfApi(endpoint=s3_hub.url, token=WRITE_TOKEN)
    repos = [f"org/parallel-{i}" for i in range(3)]
    for repo in [*repos, "org/shared"]:
        api.create_repo(repo)
    errors: list[BaseException] = []

    def push(repo: str, name: str, rounds: int) -> None:
        try:
            for r in range(rounds):
                ops = [CommitOperationAdd(f"{name}/{r}/{k}.txt", f"{name}:{r}:{k}".encode()) for k in range(3)]
                api.create_commit(repo, ops, commit_message=f"{name} {r}")
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    jobs = [(repo, "solo", 3) for repo in repos] + [("org/shared", f"writer{w}", 3) for w in range(4)]
    threads = [threading.Thread(target=push, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    for repo in repos:
        assert len(api.list_repo_commits(repo)) == 1 + 3
        assert len([f for f in api.list_repo_files(repo) if f.startswith("solo/")]) == 9
    history = api.list_repo_commits("org/shared")
    assert len(history) == 1 + 4 * 3  # linear: the initial commit and every push, none lost
    files = set(api.list_repo_files("org/shared"))
    assert {f"writer{w}/{r}/{k}.txt" for w in range(4) for r in range(3) for k in range(3)} <= files
    # Every commit is whole: each commit's tree holds all three files of that push.
    for commit in history[:-1]:
        writer, round_ = commit.title.split()
        names = set(api.list_repo_files("org/shared", revision=commit.commit_id))
        assert {f"{writer}/{round_}/{k}.txt" for k in range(3)} <= names
