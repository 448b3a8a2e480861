"""The generation server's command, checked by the parsers that will read it: TRL's and vLLM's own.

Every command the project builds for a server (each packaged recipe on each layout that runs one, and the command
``reasoner serve-generation`` starts on the serving node) goes through TRL's ``trl vllm-serve`` parser and builder
and then through vLLM's ``vllm serve`` parser (tests/support/vllm_parser.py: vLLM's Python parts, no GPU), and the
values vLLM parsed must be the recipe's. Beside it: the server's --max-model-len has no slack because the prompt
limit counts tokens exactly as GRPOTrainer tokenizes prompts (checked against TRL's own tokenizing method).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from vllm_parser import parse_serve

from reasoner import data
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes
from reasoner.models.tiny import ensure_tiny_model
from reasoner.topology import plan_for_recipe
from shared_data import GSM8K as GSM8K_FOLDER

ROOT = Path(__file__).resolve().parents[2]
GSM8K = GSM8K_FOLDER / "train.jsonl"
LAYOUTS = [(1, 8), (2, 8), (4, 8)]  # one node split, a generation node, a generation node beside three
SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "REASONER_NODELIST": "g1 g2",
         "REASONER_NODE_ADDRS": "10.1.0.1 10.1.0.2", "SLURM_NODEID": "0"}
SERVE_PREFIX = 6  # env VLLM_SERVER_DEV_MODE=1 PYTHON -m vllm.entrypoints.cli.main serve


def vllm_recipes() -> list[str]:
    return [name for name in packaged_recipes() if load_recipe(name).generation.backend == "vllm"]


def planned_servers() -> list[tuple[str, object, object]]:
    """(case id, recipe, plan) for every packaged vLLM recipe on every layout that runs a server."""
    cases = []
    for name in vllm_recipes():
        recipe = load_recipe(name)
        stated = (recipe.resources.nodes, recipe.resources.gpus_per_node)
        for nodes, gpus in dict.fromkeys([*LAYOUTS, stated] if stated != (1, 1) else LAYOUTS):  # 1 GPU: colocated
            env = {**SLURM, "SLURM_JOB_NUM_NODES": str(nodes),
                   "REASONER_NODELIST": " ".join(f"g{i}" for i in range(nodes)),
                   "REASONER_NODE_ADDRS": " ".join(f"10.1.0.{i + 1}" for i in range(nodes)),
                   "REASONER_PYTHON": "/opt/env/bin/python"}
            layout = plan_for_recipe(recipe, env=env, gpus_per_node=gpus, nodes=nodes,
                                     placement="dedicated-gpu" if nodes == 1 else "dedicated-node")
            cases.append((f"{name}-{nodes}x{gpus}", recipe, layout))
    return cases


CASES = planned_servers()


def test_every_vllm_recipe_and_layout_is_covered():
    assert len(vllm_recipes()) >= 6 and len(CASES) >= 3 * len(vllm_recipes())


def test_server_flags_pass_trls_own_parser():
    from trl.scripts.vllm_serve import make_parser

    for case, recipe, layout in CASES:
        (args, extra) = make_parser().parse_args_and_config(args=list(layout.server_args), return_remaining_strings=True)
        assert extra == [], case
        assert args.model == recipe.model.id and args.revision == recipe.model.revision, case
        assert args.gpu_memory_utilization == recipe.generation.gpu_memory_utilization, case
        assert args.tensor_parallel_size == layout.tensor_parallel_size and args.port == layout.vllm_port, case
        assert args.max_model_len == recipe.dataset.max_prompt_tokens + recipe.grpo["max_completion_length"], case


def test_server_commands_pass_vllms_own_parser_with_the_recipes_values():
    commands = [list(layout.vllm_command) for _case, _recipe, layout in CASES]
    for case, _recipe, layout in CASES:
        command = layout.vllm_command
        assert command[:SERVE_PREFIX] == ("env", "VLLM_SERVER_DEV_MODE=1", "/opt/env/bin/python", "-m",
                                          "vllm.entrypoints.cli.main", "serve"), case
    parsed = parse_serve([command[SERVE_PREFIX:] for command in commands])
    for (case, recipe, layout), values in zip(CASES, parsed):
        assert "error" not in values, (case, values)
        assert values["model_tag"] == values["engine_model"] == recipe.model.id, case
        assert values["revision"] == recipe.model.revision and values["dtype"] == recipe.model.dtype, case
        assert values["tensor_parallel_size"] == layout.tensor_parallel_size, case
        assert values["port"] == layout.vllm_port and values["host"] == "0.0.0.0", case
        assert values["gpu_memory_utilization"] == recipe.generation.gpu_memory_utilization, case
        assert values["max_model_len"] == recipe.dataset.max_prompt_tokens + recipe.grpo["max_completion_length"]
        # What TRL's client needs from the server: the NCCL weight-transfer engine, processed log-probs, no cap.
        assert values["weight_transfer_backend"] == "nccl", case
        assert values["logprobs_mode"] == "processed_logprobs" and values["max_logprobs"] == -1, case


def test_vllms_parser_really_refuses():
    """The parser above is vLLM's, not something that accepts anything."""
    refused = parse_serve([["Qwen/x", "--no-such-flag", "1"], ["Qwen/x", "--tensor-parallel-size", "two"]])
    assert all("error" in r for r in refused), refused


def test_serve_generation_loads_the_local_snapshot_through_both_parsers(tmp_path):
    """On the serving node the hub id becomes the prefetched folder, with no revision, on its GPUs."""
    model = ensure_tiny_model()
    recipe = load_recipe("tiny-cpu", ["--generation.backend", "vllm", "--model.id", str(model)])
    layout = plan_for_recipe(recipe, env={}, gpus_per_node=4, nodes=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    run = subprocess.run([sys.executable, "-m", "reasoner.cli", "serve-generation", "--dry-run", "--",
                          *layout.server_args], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip().splitlines()[-1]
    assert "GPU(s) 4:" in line  # the node's first tensor-parallel-size GPU, as it numbers them
    command = shlex.split(line.split(": ", 1)[1])
    assert command[:SERVE_PREFIX] == ["env", "VLLM_SERVER_DEV_MODE=1", sys.executable, "-m",
                                      "vllm.entrypoints.cli.main", "serve"]
    [values] = parse_serve([command[SERVE_PREFIX:]])
    assert "error" not in values, values
    assert values["model_tag"] == str(model) and values["revision"] is None
    assert values["weight_transfer_backend"] == "nccl"


def test_each_job_gets_its_own_ports_and_weight_sync_host():
    recipe = load_recipe("qwen2.5-7b-gsm8k")
    first = plan_for_recipe(recipe, env=SLURM, gpus_per_node=8, nodes=2)
    second = plan_for_recipe(recipe, env={**SLURM, "SLURM_JOB_ID": "4243"}, gpus_per_node=8, nodes=2)
    ports = lambda p: {p.main_process_port, p.vllm_port, p.group_port}  # noqa: E731
    assert len(ports(first)) == 3 and not ports(first) & ports(second)
    assert all(port < 32768 for port in ports(first) | ports(second))  # below the ephemeral range
    assert first.weight_sync_host == first.main_process_ip == "10.1.0.1"  # rank zero's node, as g2 reaches it
    assert first.train_args[-2:] == ("--vllm_group_port", str(first.group_port))
    pinned = plan_for_recipe(recipe, env={**SLURM, "REASONER_GROUP_PORT": "40000"}, gpus_per_node=8, nodes=2)
    assert pinned.group_port == 40000


def test_prompt_limit_counts_tokens_as_grpo_trainer_does(tmp_path):
    """dataset.max_prompt_tokens keeps exactly the prompts GRPOTrainer tokenizes to at most that many tokens, so
    prompt + completion fits --max-model-len with no slack."""
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from reasoner.rewards import get_reward_funcs
    from reasoner.train.run import build_grpo_config

    model = ensure_tiny_model()
    recipe = load_recipe("smollm2-cpu", ["--model.id", str(model), "--output_dir", str(tmp_path / "out")])
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:48]]
    system = data.resolve_system_prompt(recipe.prompt.system)
    everything, _ = data.prepare_dataset(rows, system=system, few_shot=recipe.prompt.few_shot, tokenizer=tokenizer)
    trainer = GRPOTrainer(model=str(model), reward_funcs=get_reward_funcs(recipe.rewards),
                          args=build_grpo_config(recipe), train_dataset=everything,
                          processing_class=tokenizer)
    prompts = list(everything["prompt"])
    lengths = [len(ids) for ids in trainer._tokenize_prompts(prompts)[0]]
    limit = sorted(lengths)[len(lengths) // 2]
    kept, stats = data.prepare_dataset(rows, system=system, few_shot=recipe.prompt.few_shot, tokenizer=tokenizer,
                                       max_prompt_tokens=limit)
    assert list(kept["prompt"]) == [p for p, n in zip(prompts, lengths) if n <= limit]
    assert stats.dropped_too_long == sum(n > limit for n in lengths) > 0
    assert limit in lengths  # a prompt of exactly the limit is kept
