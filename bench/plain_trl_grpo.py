"""A plain, single-file GRPO run with TRL: the baseline the benchmarks compare ``reasoner train`` with.

It is what one writes without reasoner: load the model and GSM8K rows, build chat prompts, hand TRL's
GRPOTrainer the reward functions and a GRPOConfig, call ``trainer.train()``. The reward functions are
imported from ``reasoner.rewards`` so that both sides score completions with identical code; nothing else
of reasoner is used. The GRPOConfig keyword arguments, the system prompt and the worked examples come from
a JSON file (``--settings``) that the benchmark writes from the same recipe reasoner runs.

    python bench/plain_trl_grpo.py --model PATH_OR_HUB_ID --data FILE_OR_HUB_ID --settings s.json \
        [--limit N] [--output-dir DIR] [--log-jsonl FILE] [--max-steps N] [--no-train]

``--log-jsonl`` appends one JSON line per logged step (TRL's metrics plus a wall-clock stamp), and the last
line of the output reports the process's memory (current and peak RSS) after the imports, after building
the trainer, and after training, for the memory benchmark.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS so far) of this process, MiB, from /proc (VmRSS, VmHWM).

    Not getrusage's ru_maxrss: Linux carries the launching parent's high-water mark into it across exec.
    """
    values = {"VmRSS:": float("nan"), "VmHWM:": float("nan")}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in values:
                values[key] = int(line.split()[1]) / 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return float("nan"), peak
    return values["VmRSS:"], values["VmHWM:"]


MEMORY: dict[str, list[float]] = {"start": list(rss_mib())}

from datasets import Dataset, load_dataset  # noqa: E402
from transformers import AutoTokenizer, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reward code, installed or not
from reasoner.rewards import get_reward_funcs  # noqa: E402  (identical reward code on both sides)

MEMORY["imports"] = list(rss_mib())


class JsonlLog(TrainerCallback):
    """One line per log event with a wall-clock stamp, so step times are read alike on both sides."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a") as fh:
                fh.write(json.dumps({"step": state.global_step, "wall": time.time(), **logs}, default=float) + "\n")


def read_rows(source: str, config: str | None, limit: int | None) -> list[dict]:
    path = Path(source)
    if path.is_dir():
        path = path / "train.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = list(load_dataset(source, config, split="train"))
    return rows[:limit] if limit else rows


def build_dataset(rows: list[dict], settings: dict, tokenizer) -> Dataset:
    system = settings["system"]
    if system == "default":
        from reasoner.data import SYSTEM_PROMPT

        system = SYSTEM_PROMPT
    prompts, answers = [], []
    for row in rows:
        answer = str(row["answer"]).rpartition("####")[2].strip().replace(",", "")
        messages = [{"role": "system", "content": system}] if system else []
        for shot in settings["few_shot"]:
            messages += [{"role": "user", "content": shot["question"]}, {"role": "assistant", "content": shot["answer"]}]
        messages.append({"role": "user", "content": row["question"]})
        prompts.append(messages)
        answers.append(answer)
    limit = settings.get("max_prompt_tokens")
    if limit:  # TRL 1.x does not truncate prompts: drop the long ones, as any careful script does
        lengths = [len(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
                   for p in prompts]
        keep = [n <= limit for n in lengths]
        prompts = [p for p, k in zip(prompts, keep) if k]
        answers = [a for a, k in zip(answers, keep) if k]
    return Dataset.from_dict({"prompt": prompts, "answer": answers})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--data-config", default="main")
    parser.add_argument("--settings", required=True, type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--log-jsonl", type=Path, default=None)
    parser.add_argument("--no-train", action="store_true", help="build the trainer, then stop (memory baseline)")
    ns = parser.parse_args(argv)

    settings = json.loads(ns.settings.read_text())
    kwargs = dict(settings["grpo"])
    if ns.output_dir:
        kwargs["output_dir"] = ns.output_dir
    if ns.max_steps:
        kwargs["max_steps"] = ns.max_steps
    tokenizer = AutoTokenizer.from_pretrained(ns.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(read_rows(ns.data, ns.data_config, ns.limit), settings, tokenizer)
    trainer = GRPOTrainer(
        model=ns.model,
        reward_funcs=get_reward_funcs(settings["rewards"]),
        args=GRPOConfig(**kwargs),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[JsonlLog(ns.log_jsonl)] if ns.log_jsonl else None,
    )
    MEMORY["setup"] = list(rss_mib())
    if not ns.no_train:
        trainer.train()
        MEMORY["train"] = list(rss_mib())
    print("MEMORY " + json.dumps({k: {"rss_mib": v[0], "peak_mib": v[1]} for k, v in MEMORY.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
