"""Bad values refused before the model loads: one line naming the problem and the fix, exit code 2, nothing
written. Each case runs the real ``reasoner`` entry point; ``reasoner eval`` runs as a separate process
against an endpoint nothing listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_one_line(code: int, out: str, err: str, *parts: str) -> str:
    text = out + err
    assert code == 2, text[-3000:]
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], errors
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]


@pytest.mark.parametrize("args, parts", [
    (["--learning_rate", "-1e-5"], ["recipe key 'learning_rate' must be a finite number >= 0", "-1e-05", "--learning_rate"]),
    (["--learning_rate", "nan"], ["recipe key 'learning_rate' must be a finite number >= 0", "got nan"]),
    (["--learning_rate", "inf"], ["'learning_rate' must be a finite number"]),
    (["--max_steps", "-5"], ["recipe key 'max_steps' must be a positive number of optimizer steps, or -1", "got -5"]),
    (["--max_steps", "0"], ["'max_steps' must be a positive number"]),
    (["--temperature", "0"], ["'temperature' must be a finite number above 0"]),
    (["--time-budget-minutes", "-1"], ["--time-budget-minutes must be a positive number of minutes, got -1.0"]),
    (["--time-budget-minutes", "nan"], ["--time-budget-minutes must be a positive number of minutes"]),
    (["--hub.push", "true", "--hub.repo_id", "../../etc"], ["hub.repo_id '../../etc' is not a hub repo id", "ORG/NAME"]),
    (["--hub.push", "true", "--hub.repo_id", "/etc/passwd"], ["hub.repo_id '/etc/passwd' is not a hub repo id"]),
    (["--hub.push", "true", "--hub.repo_id", "just-a-name"], ["has no organization", "my-org/just-a-name"]),
    # Values only TRL/transformers refuse, when GRPOConfig is built (not always as a ValueError): the key is named.
    (["--optim", "bogus"], ["TRL refused grpo.optim = 'bogus'", "not a valid OptimizerNames", "--optim"]),
    (["--lr_scheduler_type", "nope"], ["TRL refused grpo.lr_scheduler_type = 'nope'", "SchedulerType"]),
    (["--accelerator_config", "/no/such/accelerator.json"],
     ["TRL refused grpo.accelerator_config", "FileNotFoundError", "--accelerator_config"]),
    (["--parallelism_config", "zz"], ["TRL refused grpo.parallelism_config = 'zz' (AttributeError"]),
    (["--torch_empty_cache_steps", "-1"], ["TRL refused grpo.torch_empty_cache_steps = -1"]),
    (["--model_init_kwargs", "not json"], ["grpo.model_init_kwargs is not a JSON object", "write a mapping"]),
    (["--report_to", "wandb,tensorbord"], ["report_to names 'tensorbord'", "did you mean 'tensorboard'?"]),
    (["--report_to", "none", "wandb"], ["report_to lists 'none' beside other trackers (none, wandb)"]),
    (["--max_steps", "3", "4"], ["--max_steps takes one value, got 2: 3 4"]),
])
def test_bad_training_values(args, parts, tmp_path, capsys):
    out = tmp_path / "out"
    check_one_line(*run(["train", "--recipe", "tiny-cpu", *args, "--output_dir", str(out)], capsys), *parts)
    assert not out.exists()


def test_output_dir_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me\n")
    check_one_line(*run(["train", "--recipe", "tiny-cpu", "--output_dir", str(a_file)], capsys),
                   f"output_dir {a_file} is a file, not a folder", "choose another --output_dir")
    under = a_file / "run" / "out"
    check_one_line(*run(["train", "--recipe", "tiny-cpu", "--output_dir", str(under)], capsys),
                   f"output_dir {under} is under {a_file}, which is a file")
    assert a_file.read_text() == "keep me\n"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write: a read-only tmpfs when running as root, else a folder without write
    permission."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_output_dir_that_cannot_be_written(read_only_folder, capsys):
    out = read_only_folder / "runs" / "out"
    check_one_line(*run(["train", "--recipe", "tiny-cpu", "--output_dir", str(out)], capsys),
                   f"output_dir {out} cannot be written", "choose a writable --output_dir")
    assert list(read_only_folder.iterdir()) == []


@pytest.mark.parametrize("content, parts", [
    (bytes(range(128, 256)) * 4, ["is not a text file (byte 0x80 at offset 0 is not UTF-8)", "pass a YAML recipe"]),
    (b"name: x\n\x00\x01\x02\x03binary", ["is a binary file (it holds NUL bytes at offset 8)", "pass a YAML recipe"]),
])
def test_binary_recipe_files(content, parts, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content)
    check_one_line(*run(["train", "--recipe", str(recipe)], capsys), f"recipe {recipe}", *parts)
    check_one_line(*run(["eval", "--recipe", str(recipe), "--model", "tiny"], capsys), *parts)


def test_eval_without_data_and_without_a_hub_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # released: nothing listens on it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        result = subprocess.run([sys.executable, "-m", "reasoner.cli", "eval", "--model", "tiny", "--output",
                                 str(tmp_path / "out")], env={**env, **extra}, capture_output=True, text=True, timeout=300)
        expected = ["not in the local cache and HF_HUB_OFFLINE is set"] if extra else [
            "is unreachable while resolving dataset 'openai/gsm8k'", "start the hub or fix HF_ENDPOINT"]
        line = check_one_line(result.returncode, result.stdout, result.stderr, "'openai/gsm8k'", "--data PATH", *expected)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "out").exists(), line
