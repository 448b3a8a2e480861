"""``reasoner plan`` chooses among the layouts this project launches: the fastest that fits, no GPU idle.

The packaged Qwen2.5 recipes are planned at the size they document (``resources.nodes`` x ``gpus_per_node``);
the planner sizes the models from the built-in table here (``HF_HUB_OFFLINE=1`` for the commands it starts, the
table being exact for Qwen2.5: tests/plan/test_shapes.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.errors import UserError
from reasoner.launch.launchenv import Request, train_node_args
from reasoner.plan import candidates, run, throughput
from reasoner.plan.shapes import table_shape
from reasoner.recipe.batch import BatchShape, check_generation_batch
from reasoner.recipe.files import packaged_recipes
from reasoner.recipe.load import load_recipe
from reasoner.recipe.sections import ResourcesSection

ROOT = Path(__file__).resolve().parents[2]
QWEN = sorted(name for name in packaged_recipes() if name.startswith("qwen2.5-") and name.endswith("-gsm8k"))


def at_documented_size(name: str, *overrides: str) -> run.RunPlan:
    recipe = load_recipe(name, list(overrides), planned=True)
    resources = recipe.resources
    return run.plan_run(recipe, env={}, nodes=resources.nodes, gpus_per_node=resources.gpus_per_node)


def reasoner(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300, **kwargs)


@pytest.mark.parametrize("name", QWEN)
def test_no_packaged_qwen_recipe_leaves_a_gpu_idle_at_its_size(name):
    plan = at_documented_size(name)
    chosen, layout = plan.chosen, plan.layout
    assert chosen is not None and chosen.fits and chosen.launchable, plan.candidates
    total = layout.nodes * layout.gpus_per_node
    assert chosen.gpus == candidates.gpu_split(layout)
    assert chosen.gpus["total"] == total and chosen.gpus["idle"] == 0
    # accelerate launch starts num_processes / num_machines on every node: the layout must be even
    assert layout.num_processes == layout.num_machines * layout.processes_per_node
    assert layout.placement != "dedicated-node"
    # nothing launchable that fits is faster
    others = [c for c in plan.candidates if c.fits and c.launchable]
    assert max(c.rate for c in others) == chosen.rate
    assert plan.memory is chosen.memory and plan.memory.fits


@pytest.mark.parametrize("name,nodes", [("qwen2.5-7b-gsm8k", 2), ("qwen2.5-14b-gsm8k", 4), ("qwen2.5-32b-gsm8k", 8)])
def test_several_nodes_colocate_vllm_in_every_rank(name, nodes):
    """A server on part of the first node, training on every other GPU (fewer processes on that node), is a
    launchable, timed candidate that leaves no GPU idle; colocation beats it at these sizes. A generation node is
    not considered unless asked for."""
    plan = at_documented_size(name)
    assert plan.layout.placement == "colocate" and plan.layout.num_machines == nodes
    assert plan.layout.num_processes == nodes * 8 and plan.layout.vllm_command == ()
    train_args = plan.layout.train_args
    assert train_args[:2] == ("--generation.placement", "colocate") and "--vllm_enable_sleep_mode" in train_args
    uneven = [c for c in plan.candidates if c.placement == "dedicated-gpu"]
    assert uneven and all(c.launchable and c.step is not None and c.layout is not None for c in uneven)
    for c in uneven:
        tp = c.tensor_parallel_size
        assert c.gpus == {"total": nodes * 8, "training": nodes * 8 - tp, "generation": tp, "idle": 0}
        assert c.layout.node_processes == (8 - tp,) + (8,) * (nodes - 1) and c.layout.generation_gpus == tuple(range(tp))
        assert c.rate <= plan.chosen.rate
    assert not any(c.placement == "dedicated-node" for c in plan.candidates)


def test_the_chosen_layout_is_what_the_launcher_starts_and_trl_accepts():
    """The colocated layout goes to accelerate launch with an even process count, and its overrides become TRL's
    colocate mode with the chosen tensor-parallel size, awake (its share fits beside training on 80 GB)."""
    from reasoner.train.run import build_grpo_config

    plan = at_documented_size("qwen2.5-7b-gsm8k")
    layout = plan.layout
    args = train_node_args(Request("slurm", "qwen2.5-7b-gsm8k", ()), layout, [], None)
    launch = args[args.index("--") + 1:]
    assert launch[launch.index("--num_machines") + 1] == "2" and launch[launch.index("--num_processes") + 1] == "16"
    cpu_safe = ["--bf16", "false", "--gradient_checkpointing", "false"]
    config = build_grpo_config(load_recipe("qwen2.5-7b-gsm8k", [*layout.train_args, *cpu_safe]))
    assert config.vllm_mode == "colocate" and config.vllm_enable_sleep_mode is False
    assert layout.train_args[layout.train_args.index("--vllm_enable_sleep_mode") + 1] == "false"
    assert config.vllm_tensor_parallel_size == layout.tensor_parallel_size == plan.chosen.tensor_parallel_size


def test_a_generation_node_only_when_asked_and_its_idle_gpus_are_counted():
    plan = at_documented_size("qwen2.5-7b-gsm8k", "--generation.placement", "dedicated-node")
    assert [c.placement for c in plan.candidates] == ["dedicated-node"]
    assert plan.layout.placement == "dedicated-node" and plan.layout.num_processes == 8
    tp = plan.layout.tensor_parallel_size
    assert plan.chosen.gpus == {"total": 16, "training": 8, "generation": tp, "idle": 8 - tp}


def test_one_node_weighs_colocation_against_a_server_on_k_gpus_sized_to_the_heads():
    recipe = load_recipe("qwen2.5-3b-gsm8k", ["--generation.placement", "auto"], planned=True)
    plan = run.plan_run(recipe, env={}, nodes=1, gpus_per_node=8)
    servers = {c.tensor_parallel_size: c for c in plan.candidates if c.placement == "dedicated-gpu"}
    assert sorted(servers) == [1, 2, 4]  # 16 heads and 2 KV heads split 1, 2 or 4 ways; 8 would leave none to train
    for tp, c in servers.items():
        assert c.launchable and c.gpus == {"total": 8, "training": 8 - tp, "generation": tp, "idle": 0}
        assert c.layout.cuda_visible_devices["generation"] == ",".join(str(i) for i in range(tp))
    assert plan.chosen is not None and plan.chosen.gpus["idle"] == 0
    assert candidates.tensor_parallel_sizes(table_shape("7b"), 8) == [1, 2, 4]  # 28 heads: not 8
    assert candidates.tensor_parallel_sizes(table_shape("14b"), 8) == [1, 2, 4, 8]


def test_every_assumption_of_the_step_time_is_a_recipe_value():
    """Training time follows the stated MFU; generation the stated HBM bandwidth; sync the interconnect."""
    base = at_documented_size("qwen2.5-7b-gsm8k").chosen.step
    slower = at_documented_size("qwen2.5-7b-gsm8k", "--resources.train_mfu", "0.175").chosen
    assert slower.step.train_s == pytest.approx(2 * base.train_s)
    narrow = at_documented_size("qwen2.5-7b-gsm8k", "--resources.gpu_memory_bandwidth_gbps", "1675").chosen.step
    assert narrow.generate_s > base.generate_s
    hw = throughput.Hardware.from_resources(ResourcesSection(inter_node_gbps=25))
    assert hw.inter_node_gbps == 25 and len(hw.lines()) == len(throughput.ASSUMPTIONS)
    work = throughput.Work(shape=table_shape("7b"), prompt=256, completion=200, completions=512, passes=8,
                           weight_bytes=2)
    flops = 8 * table_shape("7b").params * 512 * 456
    assert throughput.training_seconds(work, 16, hw) == pytest.approx(flops / (16 * 989e12 * 0.35))


def test_num_generations_that_no_layout_can_hold_names_the_layouts_processes():
    """7 divides no batch of 16, 15 or 12 ranks: the planner takes the 6 + 8 ranks beside a TP-2 server; a
    placement that cannot hold it names its own processes."""
    recipe = load_recipe("qwen2.5-7b-gsm8k", ["--num_generations", "7"], planned=True)
    plan = run.plan_run(recipe, env={}, nodes=2, gpus_per_node=8)
    assert plan.layout.placement == "dedicated-gpu" and plan.layout.node_processes == (6, 8)
    assert plan.layout.generation_batch_size % 7 == 0
    colocated = load_recipe("qwen2.5-7b-gsm8k", ["--num_generations", "7", "--generation.placement", "colocate"],
                            planned=True)
    with pytest.raises(UserError, match=r"x 16 training processes x steps_per_generation 4 = 512 is not divisible "
                                        r"by num_generations 7"):
        run.plan_run(colocated, env={}, nodes=2, gpus_per_node=8)
    asked = load_recipe("qwen2.5-7b-gsm8k", ["--num_generations", "7", "--generation.placement", "dedicated-node"],
                        planned=True)
    with pytest.raises(UserError, match=r"x 8 training processes x steps_per_generation 4 = 256"):
        run.plan_run(asked, env={}, nodes=2, gpus_per_node=8)


@pytest.mark.parametrize("name", QWEN)
def test_the_batch_rule_holds_for_odd_rank_counts(name):
    """Each packaged recipe's per-rank completions are whole groups, so any rank count (7 beside a server, 15,
    63) works; where they are not, the fix the rule names works for that odd count."""
    shape = BatchShape.from_grpo(load_recipe(name, planned=True).grpo)
    for ranks in range(1, 65):
        assert check_generation_batch(shape, ranks) % shape.num_generations == 0
    odd = BatchShape(per_device=4, steps_per_generation=1, num_generations=16)
    for ranks in (7, 15):
        with pytest.raises(UserError, match=rf"x {ranks} training processes x .* set per_device_train_batch_size "
                                            r"to 16") as refused:
            check_generation_batch(odd, ranks)
        assert "\n" not in str(refused.value)
        assert check_generation_batch(BatchShape(16, 1, 16), ranks) == 16 * ranks


def test_plan_json_is_one_object_with_the_chosen_gpus_and_every_candidate():
    result = reasoner("plan", "--recipe", "qwen2.5-14b-gsm8k", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["gpus"] == {"total": 32, "training": 32, "generation": 32, "idle": 0}
    assert plan["placement"] == "colocate" and plan["fits"] is True and plan["estimated_step_s"] > 0
    assert plan["training_processes"] == {"nodes": 4, "per_node": 8, "total": 32,
                                          "by_node": {f"node{i}": 8 for i in range(4)}}
    chosen = [c for c in plan["candidates"] if c["overrides"] and c["fits"]
              and c["completions_per_s"] == max(d["completions_per_s"] for d in plan["candidates"])]
    assert chosen and chosen[0]["tensor_parallel_size"] == plan["tensor_parallel_size"]
    servers = [c for c in plan["candidates"] if c["placement"] == "dedicated-gpu"]  # on the first of 4 nodes
    assert servers and all(c["launchable"] and c["estimated_step_s"] and c["gpus"]["idle"] == 0 for c in servers)
    assert set(plan["assumptions"]) == set(throughput.ASSUMPTIONS)


def test_the_table_says_why_and_prints_the_assumptions():
    result = reasoner("plan", "--recipe", "qwen2.5-7b-gsm8k")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "chosen: colocate tp" in out and "the fastest launchable layout that fits" in out
    assert "not launchable" not in out
    # the server beside 7 training ranks on the first node, 8 on the second: a timed row
    row = next(line for line in out.splitlines() if "dedicated-gpu tp1" in line)
    assert row.split()[2:5] == ["15", "1", "0"] and "fits" in row
    for key in throughput.ASSUMPTIONS:
        assert f"resources.{key} = " in out


def test_a_reader_that_stops_early_gets_no_traceback():
    """``reasoner plan | head``: the pipe closes before the plan is written; the command ends quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "reasoner.cli", "plan", "--recipe", "qwen2.5-7b-gsm8k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("flag", ["--vllm_data_parallel_size", "--generation.data_parallel_size"])
def test_vllm_data_parallelism_is_refused_in_one_line_with_what_to_do(flag):
    result = reasoner("plan", "--recipe", "qwen2.5-7b-gsm8k", flag, "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "TRL has no vLLM data parallelism for dense models" in result.stderr
    assert "did you mean" not in result.stderr


def test_sleep_mode_costs_its_wake_and_sleep_each_step_and_a_zero_assumption_is_kept():
    hw = throughput.Hardware.from_resources(ResourcesSection(sleep_wake_s=2.5))
    zero = throughput.Hardware.from_resources(ResourcesSection(sleep_wake_s=0))
    assert zero.sleep_wake_s == 0  # a stated 0 is a value, not "use the default"
    work = throughput.Work(shape=table_shape("7b"), prompt=256, completion=200, completions=512, passes=8,
                           weight_bytes=2)
    awake = throughput.Engines(count=8, tensor_parallel=1, at_once=64, same_node_as_rank0=True, colocated=True)
    asleep = dataclasses.replace(awake, sleeps=True)
    assert throughput.generation_seconds(work, asleep, hw) == pytest.approx(
        throughput.generation_seconds(work, awake, hw) + 2.5)
    assert throughput.generation_seconds(work, asleep, zero) == pytest.approx(
        throughput.generation_seconds(work, awake, zero))


def plan_json(*args: str) -> dict:
    result = reasoner("plan", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_sleep_mode_only_when_vllm_does_not_fit_awake_and_it_costs_its_stated_seconds():
    roomy, tight = (plan_json("--recipe", "qwen2.5-7b-gsm8k", "--gpu-memory", memory) for memory in ("80GB", "24GB"))
    sleep = lambda plan: plan["train_args"][plan["train_args"].index("--vllm_enable_sleep_mode") + 1]
    assert roomy["placement"] == tight["placement"] == "colocate" and roomy["fits"] and tight["fits"]
    assert (sleep(roomy), sleep(tight)) == ("false", "true")
    assert tight["step"]["generate_s"] - roomy["step"]["generate_s"] == pytest.approx(1.0, abs=0.02)


def test_every_colocated_candidate_in_sleep_mode_pays_it_and_a_server_does_not():
    plans = [plan_json("--recipe", "qwen2.5-14b-gsm8k", "--vllm_enable_sleep_mode", "true",
                       "--resources.sleep_wake_s", str(seconds)) for seconds in (0, 7)]
    steps = [{c["name"]: c["estimated_step_s"] for c in plan["candidates"] if c.get("estimated_step_s")} for plan in plans]
    colocated = [name for name in steps[0] if name.startswith("colocate")]
    servers = [name for name in steps[0] if not name.startswith("colocate")]
    assert colocated and servers
    for name in colocated:
        assert steps[1][name] - steps[0][name] == pytest.approx(7, abs=0.02), name
    for name in servers:
        assert steps[1][name] == steps[0][name], name
