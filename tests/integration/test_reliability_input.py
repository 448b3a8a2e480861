"""Bad input: each mistake is one line naming what is wrong and how to fix it, exit code 2, and nothing half-written.

Recipe mistakes go through the ``reasoner`` entry point in this process (they fail before anything starts);
every other case is a real ``reasoner train`` process, the hub cases against the real hub server over HTTP
with write and read-only tokens, run side by side in one fixture. Each test checks its case: the last line
of output is the ``error:`` line, no traceback anywhere, and no output folder left behind, except for the
full disk, where only complete checkpoints may stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported: the hub speaks LFS

import pytest  # noqa: E402
from huggingface_hub import HfApi, constants  # noqa: E402

from reasoner_hub.auth import Token  # noqa: E402
from reasoner_hub.server import HubServer  # noqa: E402
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_input_write_0123456789abcdef"
READ_TOKEN = "hf_input_read_0123456789abcdef"


def closed_port() -> int:
    """A port nothing listens on (bound and released: nothing else is started on it in this test)."""
    return free_port()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub enforcing tokens, holding the tiny model as org/tiny."""
    from reasoner.models.tiny import ensure_tiny_model

    constants.HF_HUB_DISABLE_XET = True
    with HubServer(tmp_path_factory.mktemp("hub") / "bucket",
                   tokens=[Token("writer", WRITE_TOKEN, "write"), Token("reader", READ_TOKEN, "read")]) as server:
        api = HfApi(endpoint=server.url, token=WRITE_TOKEN)
        api.create_repo("org/tiny")
        api.upload_folder(repo_id="org/tiny", folder_path=str(ensure_tiny_model()), ignore_patterns=[".reasoner-*", "*.lock"])
        yield server


def env_for(url: str | None, home: Path, token: str | None = WRITE_TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_"))}
    env.update(HF_HOME=str(home), HF_HUB_DISABLE_XET="1", OMP_NUM_THREADS="1", NO_PROXY="*", no_proxy="*",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    if url:
        env["HF_ENDPOINT"] = url
    else:
        env["HF_HUB_OFFLINE"] = "1"
    if token:
        env["HF_TOKEN"] = token
    return env


def train(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasoner.cli", "train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# What a case is: (extra args, environment kind, token) and the substrings its error line must hold.
EXPECTED = {
    "malformed_yaml": ["is not valid YAML at line 3", "fix the syntax there"],
    "unknown_key": ["unknown recipe key 'max_stepz'", "did you mean 'max_steps'?"],
    "mistyped_section_key": ["unknown recipe key 'hub.repoid'", "did you mean 'hub.repo_id'?"],
    "wrong_type": ["recipe key 'hub.push' must be true/false", "--hub.push"],
    "impossible_batch": ["not divisible by num_generations 4", "make per_device_train_batch_size a multiple of 4"],
    "missing_dataset": ["dataset.id", "missing.jsonl' is not an existing file or folder", "fix the path"],
    "empty_dataset": ["empty.jsonl has no rows", "point dataset.id"],
    "rows_without_answers": ["no usable rows: kept 0 of 3 rows (3 without a numeric '#### ' answer", "dataset.answer_column"],
    "unknown_model_repo": ["model 'org/nope' not found at", "(404)", "check the repo id"],
    "unknown_revision": ["revision 'v9' of model 'org/tiny' not found at", "model.revision"],
    "unreachable_endpoint": ["is unreachable", "start the hub or fix HF_ENDPOINT"],
    "unreachable_resume_from_hub": ["is unreachable while looking for a checkpoint in model 'org/out'",
                                    "start the hub or fix HF_ENDPOINT"],
    "rejected_token": ["rejected the token (401)", "set a valid HF_TOKEN"],
    "read_only_token_push": ["hub.push is true but the token is read-only", "(whoami role 'read')",
                             "write access to org/out", "--hub.push false"],
}


@pytest.fixture(scope="module")
def cases(hub, tiny_model, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    base = tmp_path_factory.mktemp("input")
    (base / "empty.jsonl").write_text("")
    (base / "no-answers.jsonl").write_text(
        '{"question": "How many?", "answer": "about three"}\n{"question": "And now?", "answer": ""}\n'
        '{"question": "Total?", "answer": "Add them up. #### none"}\n')
    local = ["--model.id", str(tiny_model)]
    url, down = hub.url, f"http://127.0.0.1:{closed_port()}"
    plan = {
        "missing_dataset": (["--recipe", "tiny-cpu", *local, "--dataset.id", str(base / "missing.jsonl")], None, None),
        "empty_dataset": (["--recipe", "tiny-cpu", *local, "--dataset.id", str(base / "empty.jsonl")], None, None),
        "rows_without_answers": (["--recipe", "tiny-cpu", *local, "--dataset.id", str(base / "no-answers.jsonl")],
                                 None, None),
        "unknown_model_repo": (["--recipe", "tiny-cpu", "--model.id", "org/nope"], url, WRITE_TOKEN),
        "unknown_revision": (["--recipe", "tiny-cpu", "--model.id", "org/tiny", "--model.revision", "v9"], url,
                             WRITE_TOKEN),
        "unreachable_endpoint": (["--recipe", "tiny-cpu", "--model.id", "org/tiny"], down, WRITE_TOKEN),
        "unreachable_resume_from_hub": (["--recipe", "tiny-cpu", *local, "--hub.repo_id", "org/out",
                                         "--resume-from-hub"], down, WRITE_TOKEN),
        "rejected_token": (["--recipe", "tiny-cpu", "--model.id", "org/tiny"], url, "hf_not_a_valid_token_000"),
        "read_only_token_push": (["--recipe", "tiny-cpu", *local, "--hub.push", "true", "--hub.repo_id", "org/out"],
                                 url, READ_TOKEN),
    }

    def one(name: str) -> tuple[Path, subprocess.CompletedProcess]:
        args, endpoint, token = plan[name]
        out = base / name / "out"
        return out, train([*args, "--output_dir", str(out), "--max_steps", "2"],
                          env_for(endpoint, base / name / "home", token))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(plan, pool.map(one, plan)))


RECIPE_CASES = {
    "malformed_yaml": ["--recipe", "{base}/bad.yaml"],
    "unknown_key": ["--recipe", "tiny-cpu", "--max_stepz", "3"],
    "mistyped_section_key": ["--recipe", "tiny-cpu", "--hub.repoid", "org/x"],
    "wrong_type": ["--recipe", "tiny-cpu", "--hub.push", "maybe"],
    "impossible_batch": ["--recipe", "tiny-cpu", "--per_device_train_batch_size", "3"],
}


@pytest.mark.parametrize("case", sorted(RECIPE_CASES))
def test_recipe_mistakes_are_one_line_exit_2_and_write_nothing(case, tmp_path, capsys):
    from reasoner.cli import main

    (tmp_path / "bad.yaml").write_text("name: broken\nmodel: [unclosed\n")
    out = tmp_path / "out"
    args = [a.format(base=tmp_path) for a in RECIPE_CASES[case]]
    code = main(["train", *args, "--output_dir", str(out)])
    captured = capsys.readouterr()
    check_error(case, out, subprocess.CompletedProcess(args, code, captured.out, captured.err))


@pytest.mark.parametrize("case", sorted(set(EXPECTED) - set(RECIPE_CASES)))
def test_one_line_error_exit_2_and_nothing_written(cases, case):
    check_error(case, *cases[case])


def check_error(case: str, out: Path, result: subprocess.CompletedProcess) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert errors == [last], errors  # exactly one error line
    for expected in EXPECTED[case]:
        assert expected in last, f"{expected!r} not in {last!r}"
    assert not out.exists(), f"{case} left {sorted(p.name for p in out.rglob('*'))} behind"


def test_the_read_only_token_is_refused_before_training(cases, hub):
    out, result = cases["read_only_token_push"]
    assert result.returncode == 2
    assert "step 1/" not in result.stdout + result.stderr
    # The refusal came from the preflight: nothing was created on the hub either.
    assert not HfApi(endpoint=hub.url, token=WRITE_TOKEN).repo_exists("org/out")


# -- a full disk -------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: one tiny-model checkpoint (~1.4 MB) fits, a second does not."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk needs root to mount a 2 MiB tmpfs")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to simulate a full disk: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_at_checkpoint_time_is_one_line_and_leaves_only_complete_checkpoints(small_disk, tiny_model,
                                                                                          tmp_path):
    out = small_disk / "out"
    args = ["--recipe", "tiny-cpu", "--model.id", str(tiny_model), "--max_steps", "4", "--save_steps", "2",
            "--output_dir", str(out)]
    env = env_for(None, tmp_path / "home", None)
    result = train(args, env)
    text = result.stdout + result.stderr
    assert result.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no space left on the disk of {out} (removed the incomplete checkpoint-4)"), last
    assert "the newest complete checkpoint is checkpoint-2" in last and "free space there" in last
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()

    # The advice works: with room on the disk, the same command resumes from checkpoint-2 and finishes.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    again = train(args, env)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert f"resuming from {out / 'checkpoint-2'}" in again.stdout + again.stderr
    assert (out / "model.safetensors").is_file()
