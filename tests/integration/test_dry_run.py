"""``reasoner train --dry-run`` checks what the job would refuse, on a login node, without a model: the data is read
as training reads it (columns, answer format, rows kept and dropped), a prompt is shown, every reward runs on a
trial batch, and local data never makes a request. Each case runs the real ``reasoner`` entry point in a process
whose ``HF_ENDPOINT`` is a socket that records whether anything connected."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasoner.recipe.load import load_recipe
from shared_data import GSM8K

ROOT = Path(__file__).resolve().parents[2]
ROWS = [json.loads(line) for line in (GSM8K / "train.jsonl").read_text(encoding="utf-8").splitlines()[:12]]


@pytest.fixture
def endpoint():
    """A listening socket as HF_ENDPOINT: a connection to it is a request the dry run should not have made."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def dry_run(tmp_path: Path, server: socket.socket | int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    port = server if isinstance(server, int) else server.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*",
               HF_HUB_DISABLE_XET="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reasoner.cli", "train", "--dry-run", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd or tmp_path)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    return errors[0]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_wrong_question_column_fails_the_dry_run_in_one_line(tmp_path, endpoint):
    data = write_rows(tmp_path / "train.jsonl", ROWS)
    result = dry_run(tmp_path, endpoint, "--recipe", "tiny-cpu", "--dataset.id", str(data),
                     "--dataset.question_column", "prompt")
    error = one_error_line(result)
    assert f"data set {data} has no column 'prompt' (its columns: question, answer)" in error
    assert "set dataset.question_column to one of them" in error
    assert connections(endpoint) == 0


def test_a_good_recipe_prints_counts_a_prompt_and_the_final_rewards(tmp_path, endpoint):
    rows = [*ROWS, {"question": "How many legs has a cat?", "answer": "four, as everyone knows"}]
    data = write_rows(tmp_path / "train.jsonl", rows)
    # A base that loads a hub model: the dry run must not touch it (the endpoint records any request).
    recipe = tmp_path / "child.yaml"
    recipe.write_text(yaml.safe_dump({"base": "tiny-cpu", "name": "child", "model": {"id": "org/never-loaded"},
                                      "dataset": {"id": str(data)}, "rewards": {"xml_count": None}}))
    result = dry_run(tmp_path, endpoint, "--recipe", str(recipe), "--rewards.integer", "0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert connections(endpoint) == 0
    out = result.stdout
    # The output is still the resolved recipe (the report is YAML comments).
    assert yaml.safe_load(out) == load_recipe(str(recipe), ["--rewards.integer", "0.5"]).to_dict()
    assert f"# data set {data} (local file or folder), split train: question column 'question', answer column " \
           "'answer', answer format gsm8k" in out
    assert "# rows: kept 12 of 13 rows (1 without a numeric '#### ' answer, 0 over the prompt token limit, " \
           "0 without a question)" in out
    assert "# prompt lengths not measured here" in out and "over 256 tokens" in out
    gold = ROWS[0]["answer"].split("####")[-1].strip().replace(",", "")
    assert f"# prompt 1 of 12 (gold answer '{gold}'):" in out
    assert f"#   [user] {ROWS[0]['question'].splitlines()[0]}" in out and "#   [system] Solve the math problem" in out
    assert "# prompt 2 of 12" in out and "# prompt 3 of 12" not in out
    assert ("# rewards (final, name: weight): soft_format: 1, strict_format: 1, integer: 0.5, correctness: 1\n"
            in out)
    assert "# each reward called on a trial batch of 4 completions: ok" in out
    assert "# grpo: TRL's GRPOConfig accepts the section" in out


def test_a_reward_that_raises_fails_the_dry_run(tmp_path, endpoint):
    (tmp_path / "house.py").write_text("def strict(completions, **kwargs):\n    raise KeyError('difficulty')\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"base": "tiny-cpu", "rewards": {"house.py:strict": 1.0}}))
    error = one_error_line(dry_run(tmp_path, endpoint, "--recipe", str(recipe)))
    assert "house.py:strict' raised KeyError: 'difficulty' on a batch of 4 completions: fix the function" in error
    assert connections(endpoint) == 0


@pytest.mark.parametrize("dataset_id", ["data/gsm8k", "mydata"])
def test_a_missing_local_path_is_no_such_file_or_folder(tmp_path, endpoint, dataset_id):
    """Written without ./ it could be a hub id, so the hub is asked; when the hub does not resolve it either, the
    line leads with the missing path (here the hub is a socket that never answers HTTP)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "math.jsonl").write_text("")
    port = endpoint.getsockname()[1]
    endpoint.close()  # nothing listens: the hub is unreachable
    error = one_error_line(dry_run(tmp_path, port, "--recipe", "tiny-cpu", "--dataset.id", dataset_id))
    assert error.startswith(f"error: dataset.id '{dataset_id}': no such file or folder ({tmp_path}")
    held = "folder data holds: math.jsonl" if "/" in dataset_id else "the current folder holds: data"
    assert held in error and "fix the path, or name a hub data set as ORG/NAME" in error


def test_grpo_settings_are_built_by_the_dry_run(tmp_path, endpoint):
    good = dry_run(tmp_path, endpoint, "--recipe", "tiny-cpu", "--report_to", "wandb", "tensorboard", "--bf16", "false")
    assert good.returncode == 0, good.stderr[-3000:]
    assert yaml.safe_load(good.stdout)["grpo"]["report_to"] == ["wandb", "tensorboard"]
    assert "# grpo: TRL's GRPOConfig accepts the section (bf16: checked on the job's machine)\n" in good.stdout


@pytest.mark.parametrize("args, expected", [
    (["--report_to", "wandb,tensorbord"], "report_to names 'tensorbord', which transformers cannot report to: "
                                          "did you mean 'tensorboard'?"),
    (["--optim", "adamw_torhc"], "TRL refused grpo.optim = 'adamw_torhc' (ValueError: adamw_torhc is not a valid "
                                 "OptimizerNames"),
])
def test_values_trl_refuses_fail_the_dry_run(tmp_path, endpoint, args, expected):
    error = one_error_line(dry_run(tmp_path, endpoint, "--recipe", "tiny-cpu", *args))
    assert expected in error
    assert connections(endpoint) == 0
