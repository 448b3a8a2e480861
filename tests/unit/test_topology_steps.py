"""Each step of the layout on its own (reasoner.topology.environment, .placement, .server) and the batch rule
(reasoner.recipe.batch); tests/integration/test_topology.py checks them composed by plan()."""

from __future__ import annotations

import pytest

from reasoner.recipe.batch import BatchShape, check_generation_batch, whole_number
from reasoner.errors import UserError
from reasoner.topology import environment, placement, server

# ---- environment -----------------------------------------------------------------------------------


def test_nodes_come_expanded_with_their_addresses():
    found = environment.read_nodes({"SLURM_JOB_ID": "9", "REASONER_NODELIST": "a\nb\n",
                                    "REASONER_NODE_ADDRS": "10.0.0.1,10.0.0.2"}, None)
    assert found == environment.Nodes(("a", "b"), ("10.0.0.1", "10.0.0.2"), True)
    assert found.address("b") == "10.0.0.2"
    assert environment.read_nodes({}, None) == environment.Nodes(("localhost",), ("127.0.0.1",), False)
    assert environment.read_nodes({}, 3).names == ("node0", "node1", "node2")
    with pytest.raises(UserError, match="node names repeat"):
        environment.read_nodes({"REASONER_NODELIST": "a a"}, None)


def test_node_index_only_inside_slurm():
    nodes = environment.Nodes(("a", "b"), ("1", "2"), True)
    assert environment.node_index({"SLURM_NODEID": "1"}, nodes) == 1
    assert environment.node_index({"SLURM_PROCID": "0"}, nodes) == 0
    assert environment.node_index({"SLURM_NODEID": "1"}, environment.Nodes(("a", "b"), ("1", "2"), False)) is None
    with pytest.raises(UserError, match="outside the 2 nodes"):
        environment.node_index({"SLURM_NODEID": "5"}, nodes)


def test_overrides_keyword_first_then_variables():
    env = {"REASONER_PLACEMENT": "colocate", "REASONER_TP_SIZE": "2", "REASONER_MAIN_PORT": "1234"}
    found = environment.read_overrides(env, {"tensor_parallel_size": 4})
    assert (found.placement, found.tensor_parallel_size, found.main_port) == ("colocate", 4, 1234)
    assert environment.read_overrides({}).placement is None
    with pytest.raises(UserError, match="REASONER_TP_SIZE='two' is not a whole number"):
        environment.read_overrides({"REASONER_TP_SIZE": "two"})


def test_ports_default_outside_slurm_and_follow_the_job_id_inside():
    none = environment.Overrides()
    assert environment.job_ports({}, none) == environment.Ports(29500, 8000, 51216)
    ports = environment.job_ports({"SLURM_JOB_ID": "123457"}, none)
    offset = 123457 % environment.JOB_PORT_SPAN
    assert ports == environment.Ports(20000 + offset, 23000 + offset, 26000 + offset)
    others = [environment.job_ports({"SLURM_JOB_ID": str(123457 + k)}, none) for k in range(1, 50)]
    taken = {ports.main, ports.vllm, ports.group}
    assert all(not taken & {p.main, p.vllm, p.group} for p in others)  # neighbouring jobs share no port
    assert environment.job_ports({"SLURM_JOB_ID": "7"}, environment.Overrides(vllm_port=9000)).vllm == 9000


# ---- placement -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend,wanted,nodes,gpus,where", [
    ("vllm", "auto", 1, 1, "colocate"), ("vllm", "auto", 1, 8, "dedicated-gpu"), ("vllm", "auto", 3, 8, "dedicated-node"),
    ("vllm", "colocate", 3, 8, "colocate"), ("transformers", "auto", 2, 0, "none"), ("transformers", "none", 1, 8, "none"),
])
def test_choose_placement(backend, wanted, nodes, gpus, where):
    assert placement.choose_placement(backend, wanted, nodes, gpus) == where


def test_tensor_parallel_precedence():
    sized = placement.choose_tensor_parallel(recipe_tp="auto", tp_override=None, generation_gpus=None,
                                             model_params_b=32, gpu_memory_gb=80)
    assert sized[0] == 4 and "sized for a 32" in sized[1]
    assert placement.choose_tensor_parallel(recipe_tp=2, tp_override=None, generation_gpus=None,
                                            model_params_b=32, gpu_memory_gb=80) == (2, None)
    assert placement.choose_tensor_parallel(recipe_tp=2, tp_override=8, generation_gpus=None,
                                            model_params_b=None, gpu_memory_gb=80) == (8, None)
    assert placement.choose_tensor_parallel(recipe_tp="auto", tp_override=None, generation_gpus=None,
                                            model_params_b=32, gpu_memory_gb=141)[0] == 2  # a bigger GPU


def test_split_devices_and_processes():
    one_node = placement.split_devices("dedicated-gpu", ["n"], 8, 2)
    assert one_node == placement.DeviceSplit("n", (0, 1), ("n",), (2, 3, 4, 5, 6, 7))
    assert placement.training_processes(one_node, gpus=8, override=None, where="dedicated-gpu", tp=2) == (6,)
    nodes = placement.split_devices("dedicated-node", ["a", "b", "c"], 8, 4)
    assert nodes.generation_node == "c" and nodes.training_nodes == ("a", "b") and nodes.generation_gpus == (0, 1, 2, 3)
    assert placement.training_processes(nodes, gpus=8, override=None, where="dedicated-node", tp=4) == (8, 8)
    cpu = placement.split_devices("none", ["a", "b"], 0, 1)
    assert placement.training_processes(cpu, gpus=0, override=3, where="none", tp=1) == (3, 3)
    with pytest.raises(UserError, match="divisible by it"):
        placement.training_processes(placement.split_devices("colocate", ["a"], 3, 2), gpus=3, override=None,
                                     where="colocate", tp=2)


def test_devices_ranks_and_config():
    split = placement.split_devices("dedicated-gpu", ["n"], 4, 1)
    assert placement.cuda_visible_devices("dedicated-gpu", split, "4,5,6,7") == {"generation": "4", "training": "5,6,7"}
    assert placement.cuda_visible_devices("dedicated-node", split, None) == {}
    assert placement.machine_ranks(("a", "b"), ("a", "b", "c"), 2) == ({"a": 0, "b": 1}, None)
    assert placement.machine_ranks(("a",), ("a",), None) == ({"a": 0}, 0)
    notes: list[str] = []
    assert placement.accelerate_config("accelerate_configs/single_gpu.yaml", 4, notes) == "accelerate_configs/ddp.yaml"
    assert notes and placement.accelerate_config("accelerate_configs/zero3.yaml", 4, []) == "accelerate_configs/zero3.yaml"


# ---- server ----------------------------------------------------------------------------------------


def test_server_spec_as_trl_flags_and_the_command_trl_builds():
    spec = server.ServerSpec(model="/m", revision=None, tensor_parallel_size=2, port=9, gpu_memory_utilization=0.85,
                             dtype="auto", max_model_len=300)
    assert spec.trl_args() == ("--model", "/m", "--tensor-parallel-size", "2", "--host", "0.0.0.0", "--port", "9",
                               "--gpu-memory-utilization", "0.85", "--max-model-len", "300")
    command = server.vllm_command(spec.trl_args(), "/env/bin/python")
    assert command[:7] == ("env", "VLLM_SERVER_DEV_MODE=1", "/env/bin/python", "-m", "vllm.entrypoints.cli.main",
                           "serve", "/m")
    assert server.server_flag(command, "--weight-transfer-config") == '{"backend": "nccl"}'
    with pytest.raises(UserError, match="trl vllm-serve refused"):
        server.vllm_command(("--model", "/m", "--tensor-parallel-size", "two"), "python")


def test_training_arguments_per_placement():
    assert server.training_args("dedicated-node", host="10.0.0.9", port=1, group_port=2, tp=4) == (
        "--generation.placement", "dedicated-node", "--vllm_server_host", "10.0.0.9", "--vllm_server_port", "1",
        "--vllm_group_port", "2")
    assert server.training_args("colocate", host=None, port=1, group_port=2, tp=2) == (
        "--generation.placement", "colocate", "--generation.tensor_parallel_size", "2")
    assert server.training_args("none", host=None, port=1, group_port=2, tp=1) == ()



def test_server_settings_for_the_training_ranks():
    """What the ranks use to reach the server when the command line does not say: the plan's own choices."""
    assert server.server_settings("dedicated-gpu", {}) == {
        "vllm_server_host": server.LOCAL_SERVER_HOST, "vllm_server_port": environment.DEFAULT_VLLM_PORT,
        "vllm_group_port": environment.DEFAULT_GROUP_PORT}
    job = environment.job_ports({"SLURM_JOB_ID": "4242"}, environment.Overrides())
    assert server.server_settings("dedicated-gpu", {"SLURM_JOB_ID": "4242"}) == {
        "vllm_server_host": "127.0.0.1", "vllm_server_port": job.vllm, "vllm_group_port": job.group}
    env = {"REASONER_VLLM_HOST": "gen.example", "REASONER_VLLM_PORT": "8123", "REASONER_GROUP_PORT": "9000"}
    assert server.server_settings("dedicated-node", env) == {
        "vllm_server_host": "gen.example", "vllm_server_port": 8123, "vllm_group_port": 9000}
    given = {"vllm_server_host": "10.0.0.9", "vllm_server_port": 1, "vllm_group_port": 2, "max_steps": 5}
    assert server.server_settings("dedicated-node", env, given) == {
        "vllm_server_host": "10.0.0.9", "vllm_server_port": 1, "vllm_group_port": 2}
    with pytest.raises(UserError) as refused:
        server.server_settings("dedicated-node", {"SLURM_JOB_ID": "4242"})
    assert str(refused.value) == ("generation.placement dedicated-node: the training ranks need the generation "
                                  "server's address; set REASONER_VLLM_HOST or --vllm_server_host, or start the run "
                                  "with slurm/grpo.sbatch")
    with pytest.raises(UserError, match="REASONER_VLLM_PORT='eighty' is not a whole number"):
        server.server_settings("dedicated-gpu", {"REASONER_VLLM_PORT": "eighty"})

# ---- the batch rule --------------------------------------------------------------------------------


def test_the_one_batch_rule():
    shape = BatchShape.from_grpo({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
                                  "num_generations": 8})
    assert check_generation_batch(shape, 3) == 24
    with pytest.raises(UserError, match=r"4 x 1 training process x steps_per_generation 2 = 8 is not divisible"):
        check_generation_batch(BatchShape.from_grpo({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
                                                     "num_generations": 16}), 1)
    with pytest.raises(UserError, match="not a multiple of the global batch 12"):
        check_generation_batch(BatchShape.from_grpo({"per_device_train_batch_size": 4, "generation_batch_size": 16,
                                                     "num_generations": 8}), 3)
    with pytest.raises(UserError, match="either generation_batch_size or steps_per_generation"):
        BatchShape.from_grpo({"generation_batch_size": 8, "steps_per_generation": 2})
    assert BatchShape.from_grpo({}) == BatchShape(8, 1, 8, None)  # TRL's defaults
    with pytest.raises(UserError, match="is not a whole number"):
        whole_number("x", 1.5)
