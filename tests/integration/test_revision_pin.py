"""A push to ``main`` while a run trains does not reach the run: it keeps the commits it pinned at the start.

A real ``reasoner train`` process pins ``acme/tiny-base@main`` and ``acme/gsm8k@main`` on a real hub over HTTP and
starts training; once it has logged step 1, new commits land on both repos' ``main`` (other weights, other test
questions). Everything the run loads or names afterwards must be the pinned commits: the evaluation after training
(the base model and the held-out questions), the ``recipe.yaml`` and model card it writes and pushes, and every
request it sends the hub for those two repos.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi
from safetensors.torch import load_file, save_file

from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from shared_data import GSM8K
from training_run import TrainingRun, step_records

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_revision_pin_write_0123456789abcd"
MODEL, DATA, PUSHED = "acme/tiny-base", "acme/gsm8k", "acme/tiny-grpo"
STEPS = 16
EVAL_LIMIT = 4
MOVER = {"mover": "tests"}  # in the user agent of this process's own requests, which are not the run's


def client_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "ACCELERATE_"))}
    return {**env, "HF_ENDPOINT": url, "HF_TOKEN": TOKEN, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}


def seed(env: dict[str, str], tiny_model: Path, later_test_split: Path) -> None:
    """The model and a GSM8K sample on the hub, and (on disk only) the test split that will replace it."""
    code = f"""
        from datasets import load_dataset
        from huggingface_hub import HfApi
        HfApi().create_repo({MODEL!r})
        HfApi().upload_folder(repo_id={MODEL!r}, folder_path={str(tiny_model)!r})
        test = load_dataset("json", data_files={str(GSM8K / "test.jsonl")!r}, split="train")
        train = load_dataset("json", data_files={str(GSM8K / "train.jsonl")!r}, split="train")
        train.select(range(32)).push_to_hub({DATA!r}, config_name="main", split="train")
        test.select(range(16)).push_to_hub({DATA!r}, config_name="main", split="test")
        test.select(range(500, 516)).to_parquet({str(later_test_split)!r})
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def move_main(api: HfApi, tiny_model: Path, later_test_split: Path, work: Path) -> tuple[str, str]:
    """New commits on both repos' ``main``: every weight shifted, and other test questions. Returns their shas."""
    weights = {name: tensor + 1.0 for name, tensor in load_file(str(tiny_model / "model.safetensors")).items()}
    save_file(weights, str(work / "moved.safetensors"), metadata={"format": "pt"})
    model = api.upload_file(path_or_fileobj=str(work / "moved.safetensors"), path_in_repo="model.safetensors",
                            repo_id=MODEL, commit_message="other weights on main")
    test_file = next(name for name in api.list_repo_files(DATA, repo_type="dataset")
                     if name.startswith("main/test") and name.endswith(".parquet"))
    data = api.upload_file(path_or_fileobj=str(later_test_split), path_in_repo=test_file, repo_id=DATA,
                           repo_type="dataset", commit_message="other test questions on main")
    return model.oid, data.oid


def train(url: str, work: Path, home: str, *extra: str) -> TrainingRun:
    """``reasoner train`` on the hub's model and data set, evaluating after training and pushing the result."""
    return TrainingRun(work / "run", [
        sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--model.id", MODEL, "--dataset.id", DATA,
        "--dataset.config", "main", "--max_steps", str(STEPS), "--eval.after_training", "true", "--eval.limit",
        str(EVAL_LIMIT), "--hub.push", "true", "--hub.repo_id", PUSHED, "--output_dir", str(work / "run"), *extra],
        client_env(url, work / home))


def outcome(api: HfApi, work: Path, requests: Path, run: TrainingRun, rc: int, **facts) -> dict:
    """What the tests read once the run has ended: its files, what it pushed, the hub's request log."""
    card = api.hf_hub_download(PUSHED, "README.md", cache_dir=str(work / "check")) if rc == 0 else None
    recipe = api.hf_hub_download(PUSHED, "recipe.yaml", cache_dir=str(work / "check")) if rc == 0 else None
    return {"run": run, "rc": rc, "requests": [json.loads(line) for line in requests.read_text().splitlines()],
            "card": Path(card).read_text() if card else "",
            "recipe": yaml.safe_load(Path(recipe).read_text()) if recipe else {}, **facts}


@pytest.fixture(scope="module")
def moved(tiny_model, tmp_path_factory):
    """New commits on main once the run has logged step 1."""
    work = tmp_path_factory.mktemp("revision-pin")
    requests = work / "requests.jsonl"
    with HubServer(work / "bucket", tokens=[Token("trainer", TOKEN, "write")], request_log=str(requests)) as hub:
        seed(client_env(hub.url, work / "seed-home"), tiny_model, work / "later-test.parquet")
        api = HfApi(endpoint=hub.url, token=TOKEN, user_agent=MOVER)
        pinned = {"model": api.model_info(MODEL).sha, "data": api.dataset_info(DATA).sha}
        run = train(hub.url, work, "train-home")
        run.wait_for_step(1)
        moved_at = time.time()
        new = dict(zip(("model", "data"), move_main(api, tiny_model, work / "later-test.parquet", work)))
        moved_until = time.time()
        return outcome(api, work, requests, run, run.wait(timeout=600), pinned=pinned, new=new, moved_at=moved_at,
                       moved_until=moved_until)


@pytest.fixture(scope="module")
def resumed(tiny_model, tmp_path_factory):
    """A run stopped by SIGUSR1 after step 1; new commits on main; the same command again resumes it."""
    work = tmp_path_factory.mktemp("revision-pin-resume")
    requests = work / "requests.jsonl"
    with HubServer(work / "bucket", tokens=[Token("trainer", TOKEN, "write")], request_log=str(requests)) as hub:
        seed(client_env(hub.url, work / "seed-home"), tiny_model, work / "later-test.parquet")
        api = HfApi(endpoint=hub.url, token=TOKEN, user_agent=MOVER)
        pinned = {"model": api.model_info(MODEL).sha, "data": api.dataset_info(DATA).sha}
        first = train(hub.url, work, "train-home", "--hub.push_checkpoints", "true")
        first.wait_for_step(1)
        first.process.send_signal(signal.SIGUSR1)
        first_rc = first.wait()
        stopped = sorted(work.glob("run/checkpoint-*"))
        try:
            pushed_pins = json.loads(Path(api.hf_hub_download(PUSHED, "last-checkpoint/pins.json",
                                                              cache_dir=str(work / "check-pins"))).read_text())
        except Exception as exc:  # noqa: BLE001 - the test that reads it says what is missing
            pushed_pins = repr(exc)
        moved_at = time.time()
        new = dict(zip(("model", "data"), move_main(api, tiny_model, work / "later-test.parquet", work)))
        moved_until = time.time()
        run = train(hub.url, work, "train-home", "--hub.push_checkpoints", "true")  # the same command again
        return outcome(api, work, requests, run, run.wait(timeout=600), pinned=pinned, new=new, moved_at=moved_at,
                       moved_until=moved_until, first=first, first_rc=first_rc, stopped=stopped,
                       pushed_pins=pushed_pins)


@pytest.fixture(params=["moved", "resumed"])
def ended(request) -> dict:
    """Each way main moves under a run: while it trains, and while it is stopped before the same command resumes it."""
    return request.getfixturevalue(request.param)


def _ok(moved) -> Path:
    assert moved["rc"] == 0, moved["run"].text()[-4000:]
    assert moved["new"]["model"] != moved["pinned"]["model"] and moved["new"]["data"] != moved["pinned"]["data"]
    return moved["run"].out


def test_main_moved_while_the_run_was_training(moved):
    out = _ok(moved)
    walls = [record["wall"] for record in step_records(out)]
    assert [record["step"] for record in step_records(out)] == list(range(1, STEPS + 1))
    assert walls[0] < moved["moved_at"] and walls[-1] > moved["moved_until"], (
        "the new commits did not land between the run's first and last step: the test proves nothing")


def test_evaluation_after_training_reads_the_pinned_data_set_and_base_model(ended):
    out = _ok(ended)
    later = {json.loads(line)["question"] for line in
             subprocess.run([sys.executable, "-c", "import sys,pandas; print(pandas.read_parquet(sys.argv[1])"
                             ".to_json(orient='records', lines=True))", str(out.parent / "later-test.parquet")],
                            capture_output=True, text=True, check=True).stdout.splitlines() if line.strip()}
    first = {json.loads(line)["question"] for line in (GSM8K / "test.jsonl").read_text().splitlines()[:16]}
    for which in ("base", "trained"):
        result = json.loads((out / "eval" / which / "results.json").read_text())
        assert result["settings"]["data_commits"] == {DATA: ended["pinned"]["data"]}, result["settings"]
        asked = [json.loads(line)["question"] for line in (out / "eval" / which / "completions.jsonl").read_text().splitlines()]
        assert len(asked) == EVAL_LIMIT and set(asked) <= first and not set(asked) & later, asked
    base = json.loads((out / "eval" / "base" / "results.json").read_text())
    assert f"/snapshots/{ended['pinned']['model']}" in base["model"], base["model"]


def test_written_and_pushed_recipe_and_card_name_the_pinned_commits(ended):
    out = _ok(ended)
    written = yaml.safe_load((out / "recipe.yaml").read_text())
    for recipe in (written, ended["recipe"]):
        assert recipe["model"]["revision"] == ended["pinned"]["model"]
        assert recipe["dataset"]["revision"] == ended["pinned"]["data"]
    card = ended["card"]
    assert f"| base model commit | `{ended['pinned']['model']}` |" in card
    assert f"| data set commit | `{ended['pinned']['data']}` |" in card
    assert ended["new"]["model"] not in card and ended["new"]["data"] not in card


def test_no_request_after_the_move_follows_main(ended):
    """Every read the run sent for the base model or the data set once main had moved names a pinned commit
    (the moves' own requests carry MOVER in their user agent, and are writes)."""
    _ok(ended)
    after = [r for r in ended["requests"] if r["repo"] in (f"models/{MODEL}", f"datasets/{DATA}")
             and r["method"] in ("GET", "HEAD") and r["time"] > _iso(ended["moved_at"])
             and "mover/tests" not in r["user_agent"]]
    allowed = {ended["pinned"]["model"], ended["pinned"]["data"]}
    following = [f"{r['method']} {r['path']} ({r['revision']})" for r in after if r["revision"] not in allowed]
    assert not following, following
    # The evaluation after training read the held-out questions from the hub, at the pinned commit.
    assert any(r["repo"] == f"datasets/{DATA}" and r["revision"] == ended["pinned"]["data"] for r in after), after


def test_a_resumed_run_keeps_the_commits_its_checkpoint_was_trained_on(resumed):
    out = _ok(resumed)
    assert resumed["first_rc"] == 75, resumed["first"].text()[-3000:]
    assert len(resumed["stopped"]) == 1, resumed["stopped"]
    checkpoint = resumed["stopped"][0]
    pins = {(p["kind"], p["id"]): p for p in json.loads((checkpoint / "pins.json").read_text())["pins"]}
    assert pins[("model", MODEL)]["commit"] == resumed["pinned"]["model"] and pins[("model", MODEL)]["revision"] == "main"
    assert pins[("dataset", DATA)]["commit"] == resumed["pinned"]["data"]
    # The pushed checkpoint carries them, for a resume on another machine (--resume-from-hub).
    assert resumed["pushed_pins"] == json.loads((checkpoint / "pins.json").read_text())
    log = resumed["run"].text()
    assert f"resuming from {checkpoint}" in log
    assert f"resuming on model {MODEL}@{resumed['pinned']['model']}, the commit the checkpoint was trained on" in log
    assert f"resuming on dataset {DATA}@{resumed['pinned']['data']}, the commit the checkpoint was trained on" in log
    assert [r["step"] for r in step_records(out)] == list(range(1, STEPS + 1))


def _iso(seconds: float) -> str:
    """A time as the hub's request log writes it (ISO 8601, UTC), so the two compare as strings."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
