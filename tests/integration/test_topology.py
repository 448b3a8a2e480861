"""The run layout (reasoner.topology): placement, ranks, addresses and refusals, without a cluster."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from reasoner.errors import UserError
from reasoner.recipe.sections import DatasetSection, GenerationSection, ModelSection, Recipe
from reasoner.topology import (
    Plan,
    format_env,
    format_plan,
    model_params_from_id,
    plan,
    plan_for_recipe,
    plan_to_env,
    tensor_parallel_for,
)

VLLM = {"backend": "vllm", "placement": "auto", "tensor_parallel_size": 1}
# The reference recipe's batch shape: 16 completions per device, 4 accumulation steps, 16 generations.
BATCH = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 4, "num_generations": 16}
MODEL = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "model_revision": "main", "model_dtype": "bfloat16"}


def make(env=None, *, gpus, nodes=None, generation=VLLM, **kwargs) -> Plan:
    args = {**BATCH, **MODEL, **kwargs}
    return plan(env=env or {}, gpus_per_node=gpus, nodes=nodes, recipe_generation=generation, **args)


# ---- layouts --------------------------------------------------------------------------------------

LAYOUTS = [
    # nodes, gpus, placement, machines, procs/node, total, vllm node, main ip
    (1, 1, "colocate", 1, 1, 1, None, "127.0.0.1"),
    (1, 8, "dedicated-gpu", 1, 7, 7, "localhost", "127.0.0.1"),
    (2, 8, "dedicated-node", 1, 8, 8, "node1", "node0"),
    (4, 8, "dedicated-node", 3, 8, 24, "node3", "node0"),
    (16, 8, "dedicated-node", 15, 8, 120, "node15", "node0"),
]


@pytest.mark.parametrize("nodes,gpus,placement,machines,ppn,total,vllm_node,main_ip", LAYOUTS)
def test_layouts(nodes, gpus, placement, machines, ppn, total, vllm_node, main_ip):
    p = make(gpus=gpus, nodes=nodes)
    assert p.placement == placement
    assert (p.num_machines, p.processes_per_node, p.num_processes) == (machines, ppn, total)
    assert p.generation_node == vllm_node
    assert p.main_process_ip == main_ip
    assert p.tensor_parallel_size == 1
    assert p.generation_batch_size == 16 * total * 4
    assert list(p.machine_ranks.values()) == list(range(machines))
    if vllm_node is not None:
        assert vllm_node not in p.machine_ranks or placement == "dedicated-gpu"


def test_one_gpu_colocates_vllm_in_the_training_process():
    p = make(gpus=1, nodes=1, accelerate_config="accelerate_configs/single_gpu.yaml")
    assert p.vllm_command == ()
    assert p.train_args == ("--generation.placement", "colocate", "--generation.tensor_parallel_size", "1")
    assert p.cuda_visible_devices == {}
    assert p.machine_rank == 0
    assert p.accelerate_config == "accelerate_configs/single_gpu.yaml"
    assert p.accelerate_args == (
        "--num_machines", "1", "--num_processes", "1", "--machine_rank", "0",
        "--main_process_ip", "127.0.0.1", "--main_process_port", "29500",
    )


def test_one_node_of_eight_gives_vllm_one_gpu_and_trains_on_seven():
    p = make(gpus=8, nodes=1, accelerate_config="accelerate_configs/single_gpu.yaml", max_model_len=456)
    assert p.generation_gpus == (0,)
    assert p.training_gpus == (1, 2, 3, 4, 5, 6, 7)
    assert p.cuda_visible_devices == {"generation": "0", "training": "1,2,3,4,5,6,7"}
    # The server as `trl vllm-serve` flags, and the command TRL's own builder makes of them: vLLM's server
    # through this interpreter, with the weight-transfer engine TRL's client needs and vLLM's dev mode.
    assert p.server_args == (
        "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--revision", "main",
        "--tensor-parallel-size", "1", "--host", "0.0.0.0", "--port", "8000", "--gpu-memory-utilization", "0.9",
        "--dtype", "bfloat16", "--max-model-len", "456",
    )
    assert p.vllm_command == (
        "env", "VLLM_SERVER_DEV_MODE=1", sys.executable, "-m", "vllm.entrypoints.cli.main", "serve",
        "Qwen/Qwen2.5-0.5B-Instruct", "--host", "0.0.0.0", "--port", "8000", "--tensor-parallel-size", "1",
        "--data-parallel-size", "1", "--gpu-memory-utilization", "0.9", "--dtype", "bfloat16", "--kv-cache-dtype",
        "auto", "--model-impl", "vllm", "--uvicorn-log-level", "info", "--revision", "main", "--max-model-len", "456",
        "--weight-transfer-config", '{"backend": "nccl"}', "--logprobs-mode", "processed_logprobs",
        "--max-logprobs", "-1",
    )
    assert p.train_args == (
        "--generation.placement", "dedicated-gpu",
        "--vllm_server_host", "127.0.0.1", "--vllm_server_port", "8000", "--vllm_group_port", "51216",
    )
    assert p.weight_sync_host == "127.0.0.1"  # VLLM_HOST_IP of the training ranks: the server is on this node
    # single_gpu.yaml cannot start 7 processes: the plan says so and switches to DDP.
    assert p.accelerate_config == "accelerate_configs/ddp.yaml"
    assert any("ddp.yaml" in note for note in p.notes)


def test_gpu_split_follows_an_existing_cuda_visible_devices():
    p = make({"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, gpus=4, nodes=1)
    assert p.cuda_visible_devices == {"generation": "4", "training": "5,6,7"}


def test_four_nodes_train_on_three_and_serve_from_the_last():
    env = {"REASONER_NODELIST": "gpu-a gpu-b gpu-c gpu-d", "REASONER_NODE_ADDRS": "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4"}
    p = make(env, gpus=8, nodes=4)
    assert p.training_nodes == ("gpu-a", "gpu-b", "gpu-c")
    assert p.machine_ranks == {"gpu-a": 0, "gpu-b": 1, "gpu-c": 2}
    assert p.generation_node == "gpu-d"
    assert p.main_process_ip == "10.0.0.1"
    assert p.vllm_host == "10.0.0.4"
    assert p.train_args[:2] == ("--generation.placement", "dedicated-node")
    assert p.train_args[2:4] == ("--vllm_server_host", "10.0.0.4")
    assert p.generation_gpus == (0,)
    assert p.cuda_visible_devices == {}  # the generation node picks its own GPUs in its task


# ---- SLURM environment ----------------------------------------------------------------------------

def slurm_env(node_id: int, **extra: str) -> dict[str, str]:
    return {
        "SLURM_JOB_ID": "42",
        "SLURM_JOB_NUM_NODES": "4",
        "SLURM_JOB_NODELIST": "gpu[07-10]",
        "SLURM_NODEID": str(node_id),
        "SLURM_PROCID": str(node_id),
        "REASONER_NODELIST": "gpu07\ngpu08\ngpu09\ngpu10\n",  # as `scontrol show hostnames` prints it
        "REASONER_NODE_ADDRS": "192.168.1.7,192.168.1.8,192.168.1.9,192.168.1.10",
        **extra,
    }


@pytest.mark.parametrize("node_id,rank", [(0, 0), (1, 1), (2, 2), (3, None)])
def test_slurm_node_id_gives_this_nodes_machine_rank(node_id, rank):
    p = make(slurm_env(node_id), gpus=8)
    assert p.slurm and p.nodes == 4
    assert p.machine_rank == rank  # the generation node (index 3) has no training rank
    assert p.main_process_ip == "192.168.1.7"  # first training node's address, not its name
    assert p.vllm_host == "192.168.1.10"
    assert ("--machine_rank" in p.accelerate_args) == (rank is not None)


def test_slurm_overrides_for_addresses_ports_and_placement():
    env = slurm_env(0, REASONER_MAIN_IP="10.9.9.9", REASONER_MAIN_PORT="31000", REASONER_VLLM_PORT="8123",
                    REASONER_VLLM_HOST="gen.example")
    p = make(env, gpus=8)
    assert (p.main_process_ip, p.main_process_port) == ("10.9.9.9", 31000)
    assert p.vllm_port == 8123 and p.vllm_host == "gen.example"
    assert "--port" in p.vllm_command and p.vllm_command[p.vllm_command.index("--port") + 1] == "8123"
    colocated = make(slurm_env(0, REASONER_PLACEMENT="colocate"), gpus=8)
    assert colocated.placement == "colocate"
    assert colocated.num_machines == 4 and colocated.num_processes == 32
    assert colocated.vllm_command == ()


def test_compressed_nodelist_without_expansion_is_refused():
    env = {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "n[1-2]"}
    with pytest.raises(UserError, match="scontrol show hostnames"):
        make(env, gpus=0, generation={"backend": "transformers"})


def test_plain_nodelist_is_read_and_counts_must_agree():
    p = make({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n1,n2", "SLURM_JOB_NUM_NODES": "2"},
             gpus=0, generation={"backend": "transformers"}, per_device_train_batch_size=4,
             gradient_accumulation_steps=1, num_generations=4)
    assert p.node_names == ("n1", "n2")
    with pytest.raises(UserError, match="2 node names"):
        make({"REASONER_NODELIST": "n1 n2"}, gpus=8, nodes=3)
    with pytest.raises(UserError, match="one address per node"):
        make({"REASONER_NODELIST": "n1 n2", "REASONER_NODE_ADDRS": "127.0.0.1"}, gpus=8)


def test_cpu_nodes_train_everywhere_one_process_each():
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1",
           "REASONER_NODELIST": "n1 n2", "REASONER_NODE_ADDRS": "127.0.0.1 127.0.0.1"}
    p = make(env, gpus=0, generation={"backend": "transformers", "placement": "auto"},
             per_device_train_batch_size=4, gradient_accumulation_steps=1, num_generations=4,
             accelerate_config="accelerate_configs/cpu_ddp.yaml")
    assert p.placement == "none" and p.tensor_parallel_size == 0
    assert (p.num_machines, p.processes_per_node, p.num_processes) == (2, 1, 2)
    assert p.machine_rank == 1 and p.main_process_ip == "127.0.0.1"
    assert p.vllm_command == () and p.train_args == ()
    assert p.accelerate_config == "accelerate_configs/cpu_ddp.yaml"
    env_out = plan_to_env(p)
    assert env_out["REASONER_TRAIN_NODES"] == "n1,n2"
    assert env_out["REASONER_TP_SIZE"] == ""  # re-planning from these variables must not break
    two = make({"REASONER_PROCS_PER_NODE": "2"}, gpus=0, generation={"backend": "transformers"},
               per_device_train_batch_size=4, gradient_accumulation_steps=1, num_generations=4)
    assert two.num_processes == 2 and two.num_machines == 1


# ---- tensor parallel sizing -----------------------------------------------------------------------

@pytest.mark.parametrize("model_id,params", [
    ("Qwen/Qwen2.5-0.5B-Instruct", 0.5), ("Qwen/Qwen2.5-7B-Instruct", 7.0), ("meta-llama/Llama-3.1-8B", 8.0),
    ("Qwen/Qwen2.5-14B", 14.0), ("Qwen/Qwen2.5-32B-Instruct", 32.0), ("tiny", None), ("org/model-v2", None),
])
def test_model_size_from_its_name(model_id, params):
    assert model_params_from_id(model_id) == params


@pytest.mark.parametrize("params,tp", [(0.5, 1), (7, 1), (8, 1), (14, 2), (32, 4), (72, 8), (None, 1)])
def test_tensor_parallel_sized_to_the_model_on_80gb(params, tp):
    assert tensor_parallel_for(params) == tp


def test_auto_tensor_parallel_comes_from_the_model_name():
    auto = {"backend": "vllm", "placement": "auto", "tensor_parallel_size": "auto"}
    p = make(gpus=8, nodes=2, generation=auto, model="Qwen/Qwen2.5-32B-Instruct")
    assert p.tensor_parallel_size == 4 and p.generation_gpus == (0, 1, 2, 3)
    assert "--tensor-parallel-size" in p.vllm_command
    assert p.vllm_command[p.vllm_command.index("--tensor-parallel-size") + 1] == "4"
    one_node = make(gpus=8, nodes=1, generation=auto, model="Qwen/Qwen2.5-14B", per_device_train_batch_size=8)
    assert one_node.generation_gpus == (0, 1) and one_node.training_gpus == (2, 3, 4, 5, 6, 7)
    assert one_node.num_processes == 6
    # The recipe's explicit value wins over the size rule; an override wins over the recipe.
    assert make(gpus=8, nodes=2, model="Qwen/Qwen2.5-32B-Instruct").tensor_parallel_size == 1
    assert make({"REASONER_TP_SIZE": "2"}, gpus=8, nodes=2).tensor_parallel_size == 2
    assert make(gpus=8, nodes=1, generation_gpus=2, per_device_train_batch_size=8).training_gpus == (2, 3, 4, 5, 6, 7)


# ---- refused layouts ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    # 12 x 7 x 1 = 84 completions is not a whole number of 16-completion groups.
    (dict(gpus=8, nodes=1, per_device_train_batch_size=12, gradient_accumulation_steps=1),
     r"per_device_train_batch_size 12 x 7 training processes x steps_per_generation 1 = 84 "
     r"is not divisible by num_generations 16; set per_device_train_batch_size to 16"),
    (dict(gpus=8, nodes=1, generation_batch_size=100), r"generation_batch_size 100 is not a multiple of the global batch"),
    (dict(gpus=2, nodes=1, generation={"backend": "vllm", "tensor_parallel_size": 2}), r"no GPU left to train"),
    (dict(gpus=1, nodes=1, placement="dedicated-gpu"), r"no GPU left to train"),
    (dict(gpus=8, nodes=1, placement="dedicated-node"), r"no node left to train"),
    (dict(gpus=8, nodes=2, generation={"backend": "vllm", "tensor_parallel_size": 16}),
     r"tensor_parallel_size 16 is larger than the generation node's 8 GPUs"),
    # a server on the first node of several trains on its other GPUs: it must leave it one
    (dict(gpus=4, nodes=3, placement="dedicated-gpu", generation={"backend": "vllm", "tensor_parallel_size": 4}),
     r"no GPU left to train: the generation server takes 4 of this node's 4 GPUs"),
    (dict(gpus=0, nodes=1), r"generation.backend vllm needs GPUs"),
    (dict(gpus=8, nodes=1, generation={"backend": "transformers", "placement": "dedicated-gpu"}),
     r"needs generation.backend vllm"),
    (dict(gpus=8, nodes=1, placement="sideways"), r"placement 'sideways' is unknown"),
    (dict(gpus=8, nodes=1, generation={"backend": "sglang"}), r"generation.backend 'sglang' is unknown"),
    (dict(gpus=8, nodes=1, generation_gpus=2, tensor_parallel_size=1), r"generation GPUs 2 differ from tensor_parallel_size 1"),
    (dict(gpus=1, nodes=1, generation={"backend": "vllm", "tensor_parallel_size": 2}), r"larger than the 1 GPUs"),
    (dict(gpus=8, nodes=1, per_device_train_batch_size=0), r"per_device_train_batch_size=0 must be at least 1"),
    (dict(gpus="eight", nodes=1), r"gpus_per_node='eight' is not a whole number"),
])
def test_layouts_that_cannot_work_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(UserError, match=message):
        make(**kwargs)


def test_refusal_message_is_one_line():
    with pytest.raises(UserError) as caught:
        make(gpus=8, nodes=1, per_device_train_batch_size=12, gradient_accumulation_steps=1)
    assert "\n" not in str(caught.value)


def test_the_suggested_batch_size_really_works():
    with pytest.raises(UserError, match="set per_device_train_batch_size to 16"):
        make(gpus=8, nodes=1, per_device_train_batch_size=12, gradient_accumulation_steps=1)
    assert make(gpus=8, nodes=1, gradient_accumulation_steps=1, per_device_train_batch_size=16).num_processes == 7


# ---- output ---------------------------------------------------------------------------------------

def test_env_lines_round_trip_through_a_shell():
    env = {"REASONER_NODELIST": "a b", "REASONER_NODE_ADDRS": "10.0.0.1 10.0.0.2", "SLURM_JOB_ID": "3",
           "SLURM_NODEID": "0"}
    p = make(env, gpus=8, model="/shared/models/it's here")
    script = format_env(p) + 'printf "%s\\n" "$REASONER_MAIN_IP" "$REASONER_NUM_PROCESSES"\n'
    script += 'eval "cmd=($REASONER_VLLM_COMMAND)"; printf "<%s>\\n" "${cmd[@]}"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[:2] == ["10.0.0.1", "8"]
    assert [line.strip("<>") for line in out[2:]] == list(p.vllm_command)
    assert p.vllm_command[5:7] == ("serve", "/shared/models/it's here")


def test_env_keys_the_scripts_read():
    keys = set(plan_to_env(make(gpus=8, nodes=1)))
    needed = {"REASONER_PLACEMENT", "REASONER_NUM_MACHINES", "REASONER_NUM_PROCESSES", "REASONER_MAIN_IP",
              "REASONER_MAIN_PORT", "REASONER_VLLM_NODE", "REASONER_VLLM_URL", "REASONER_VLLM_COMMAND",
              "REASONER_VLLM_GPUS", "REASONER_VLLM_CUDA_VISIBLE_DEVICES", "REASONER_TRAIN_NODES",
              "REASONER_TRAIN_CUDA_VISIBLE_DEVICES", "REASONER_TRAIN_ARGS", "REASONER_ACCELERATE_CONFIG",
              "REASONER_GPUS_PER_NODE"}
    assert needed <= keys


def test_table_names_every_node_and_role():
    env = {"REASONER_NODELIST": "a b c", "REASONER_NODE_ADDRS": "10.0.0.1 10.0.0.2 10.0.0.3"}
    text = format_plan(make(env, gpus=8))
    assert "dedicated-node" in text and "10.0.0.1:29500" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in "abc"}
    assert "training" in rows["a"] and rows["a"].split()[-1] == "0"
    assert "training" in rows["b"] and rows["b"].split()[-1] == "1"
    assert "generation (vLLM)" in rows["c"]
    assert shlex.join(make(env, gpus=8).vllm_command) in text


def test_plan_for_recipe_reads_the_recipe_sections():
    recipe = Recipe(
        name="r",
        model=ModelSection(id="Qwen/Qwen2.5-0.5B-Instruct", revision="main", dtype="bfloat16"),
        dataset=DatasetSection(max_prompt_tokens=256),
        generation=GenerationSection(backend="vllm", placement="auto", tensor_parallel_size=1),
        grpo={**BATCH, "max_completion_length": 200},
        accelerate_config="accelerate_configs/zero2.yaml",
    )
    p = plan_for_recipe(recipe, env={}, gpus_per_node=8, nodes=1)
    assert p.placement == "dedicated-gpu" and p.num_processes == 7
    assert p.accelerate_config == "accelerate_configs/zero2.yaml"
    assert p.server_args[-2:] == ("--max-model-len", "456")
    assert p.vllm_command[p.vllm_command.index("--max-model-len") + 1] == "456"
    p = plan_for_recipe(recipe, env={"REASONER_MODEL_PATH": "/cache/snap"}, gpus_per_node=8, nodes=1)
    assert p.server_args[:2] == ("--model", "/cache/snap") and "--revision" not in p.server_args
    assert p.vllm_command[5:7] == ("serve", "/cache/snap") and "--revision" not in p.vllm_command
    with pytest.raises(UserError, match="lacks num_generations"):
        plan_for_recipe(Recipe(grpo={"per_device_train_batch_size": 1}),
                        env={}, gpus_per_node=1)


@pytest.mark.parametrize("nodes,gpus,mode,host", [(1, 1, "colocate", None), (1, 8, "server", "127.0.0.1"),
                                                  (3, 8, "server", "node2")])
def test_train_arguments_reach_trls_config(nodes, gpus, mode, host):
    """The plan's overrides pass the real recipe loader and become TRL's vLLM settings."""
    from reasoner.recipe.load import load_recipe
    from reasoner.train.run import build_grpo_config

    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    p = plan_for_recipe(recipe, env={}, gpus_per_node=gpus, nodes=nodes)
    # bf16 and gradient checkpointing off only so GRPOConfig accepts this CPU machine.
    cpu_safe = ["--bf16", "false", "--gradient_checkpointing", "false"]
    config = build_grpo_config(load_recipe("qwen2.5-0.5b-gsm8k", [*p.train_args, *cpu_safe]))
    assert config.use_vllm and config.vllm_mode == mode
    if host:
        assert (config.vllm_server_host, config.vllm_server_port) == (host, 8000)


@pytest.mark.parametrize("env", [{}, {"SLURM_JOB_ID": "123457"}, {"REASONER_VLLM_PORT": "8123"}])
def test_a_rank_started_without_the_plans_arguments_reaches_the_planned_server(env, monkeypatch):
    """``reasoner train`` on a dedicated-gpu layout without --vllm_server_* finds the server the plan started."""
    from reasoner.recipe.load import load_recipe
    from reasoner.train.run import build_grpo_config

    for key in ("SLURM_JOB_ID", "REASONER_VLLM_HOST", "REASONER_VLLM_PORT", "REASONER_GROUP_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cpu_safe = ["--bf16", "false", "--gradient_checkpointing", "false"]
    recipe = load_recipe("qwen2.5-0.5b-gsm8k", ["--generation.placement", "dedicated-gpu", *cpu_safe])
    p = plan_for_recipe(recipe, env=env, gpus_per_node=8, nodes=1)
    served_port = int(p.server_args[p.server_args.index("--port") + 1])
    config = build_grpo_config(recipe)
    assert config.vllm_mode == "server"
    assert (config.vllm_server_host, config.vllm_server_port, config.vllm_group_port) == (
        p.vllm_host, served_port, p.group_port)


def test_a_dedicated_node_without_the_servers_address_is_refused_in_one_line(monkeypatch):
    from reasoner.recipe.load import load_recipe
    from reasoner.train.run import build_grpo_config

    monkeypatch.delenv("REASONER_VLLM_HOST", raising=False)
    recipe = load_recipe("qwen2.5-0.5b-gsm8k", ["--generation.placement", "dedicated-node", "--bf16", "false",
                                                "--gradient_checkpointing", "false"])
    with pytest.raises(UserError, match="^generation.placement dedicated-node: .* set REASONER_VLLM_HOST"):
        build_grpo_config(recipe)
