"""Layouts whose nodes run different numbers of training processes (reasoner.topology.ranks and the split in
reasoner.topology.placement): each node's count, global ranks, GPUs and launch arguments, without a cluster.
tests/integration/slurm/test_sbatch.py starts such a layout for real."""

from __future__ import annotations

import pytest

from reasoner.errors import UserError
from reasoner.recipe.batch import BatchShape, check_generation_batch
from reasoner.topology import environment, placement, plan, plan_to_env, ranks

SLURM_2X8 = {"SLURM_JOB_ID": "5", "REASONER_NODELIST": "n1 n2", "REASONER_NODE_ADDRS": "10.0.0.1 10.0.0.2"}


def server_on_first_node(env=SLURM_2X8, gpus=8, tp=2, nodes=None, **batch):
    shape = dict(per_device_train_batch_size=16, gradient_accumulation_steps=1, num_generations=16) | batch
    return plan(env=env, gpus_per_node=gpus, nodes=nodes, recipe_generation={"backend": "vllm"},
                placement="dedicated-gpu", tensor_parallel_size=tp, model="Qwen/Qwen2.5-7B-Instruct",
                accelerate_config="accelerate_configs/zero2.yaml", **shape)


def test_a_server_on_the_first_node_leaves_it_its_other_gpus_to_train():
    split = placement.split_devices("dedicated-gpu", ["a", "b", "c"], 8, 2)
    assert split.generation_node == "a" and split.generation_gpus == (0, 1) and split.training_nodes == ("a", "b", "c")
    assert [split.gpus_of(i) for i in range(3)] == [(2, 3, 4, 5, 6, 7), tuple(range(8)), tuple(range(8))]
    assert placement.training_processes(split, gpus=8, override=None, where="dedicated-gpu", tp=2) == (6, 8, 8)
    with pytest.raises(UserError, match="trains on 6,8,8 GPU"):
        placement.training_processes(split, gpus=8, override=8, where="dedicated-gpu", tp=2)


def test_global_ranks_follow_machine_rank_order_in_one_block_per_node():
    found = ranks.node_ranks((6, 8), ("n1", "n2"), ((2, 3, 4, 5, 6, 7), tuple(range(8))))
    assert [(n.node, n.machine_rank, n.processes, list(n.ranks), n.world_size) for n in found] == [
        ("n1", 0, 6, [0, 1, 2, 3, 4, 5], 14), ("n2", 1, 8, list(range(6, 14)), 14)]
    # accelerate starts num_processes // num_machines on a node: each node is given its own count x machines
    assert [n.accelerate_processes for n in found] == [12, 16]
    assert found[0].describe() == "n1: machine rank 0, 6 rank(s) (0-5) of 14"
    with pytest.raises(UserError, match="at least one"):
        ranks.node_ranks((0, 2), ("a", "b"))
    with pytest.raises(UserError, match="per training node"):
        ranks.node_ranks((1, 2), ("a",))


def test_each_node_launches_its_own_count_on_its_own_gpus():
    node = ranks.node_ranks((6, 8), ("n1", "n2"), ((2, 3, 4, 5, 6, 7), tuple(range(8))))[0]
    args = ["--config_file", "c.yaml", "--num_machines", "2", "--num_processes", "14", "--main_process_ip", "x"]
    assert ranks.with_node_processes(args, node) == [*args[:5], "12", *args[6:]]
    assert ranks.node_devices(node, "10,11,12,13,14,15,16,17") == "12,13,14,15,16,17"  # through SLURM's list
    assert ranks.node_devices(node, None) == "2,3,4,5,6,7"
    assert ranks.node_devices(ranks.node_ranks((1, 2), ("a", "b"))[1], "0") is None  # CPU node: nothing to set
    text = ranks.format_gpus(((2, 3), (0, 1, 2, 3)))
    assert text == "2,3;0,1,2,3" and ranks.parse_gpus(text) == ((2, 3), (0, 1, 2, 3))
    assert ranks.parse_counts("6,8") == (6, 8)
    with pytest.raises(UserError, match="whole numbers"):
        ranks.parse_counts("6,eight")


def test_the_plan_of_two_nodes_with_a_tp2_server_trains_6_plus_8():
    p = server_on_first_node()
    assert (p.placement, p.generation_node, p.generation_gpus) == ("dedicated-gpu", "n1", (0, 1))
    assert p.node_processes == (6, 8) and p.num_processes == 14 and p.num_machines == 2 and not p.even
    assert p.processes_per_node == 8  # the busiest node, for host-memory estimates
    assert p.node_gpus == ((2, 3, 4, 5, 6, 7), tuple(range(8)))
    assert p.cuda_visible_devices == {}  # each node maps its own GPUs in its own task
    assert p.vllm_host == "10.0.0.1" and p.weight_sync_host == "10.0.0.1"  # the first node's address, not loopback
    assert p.generation_batch_size == 16 * 14
    assert plan_to_env(p)["REASONER_PROCS_PER_NODE"] == "6,8"
    # re-planning from the printed variables gives the same layout
    again = server_on_first_node(env={**SLURM_2X8, "REASONER_PROCS_PER_NODE": "6,8"})
    assert again.node_processes == (6, 8)
    assert server_on_first_node(env={**SLURM_2X8, "SLURM_NODEID": "0"}).accelerate_args[:4] == (
        "--num_machines", "2", "--num_processes", "12")


def test_one_node_keeps_its_one_node_split():
    p = server_on_first_node(env={}, nodes=1)
    assert p.node_processes == (6,) and p.even and p.node_gpus == ()
    assert p.cuda_visible_devices == {"generation": "0,1", "training": "2,3,4,5,6,7"} and p.vllm_host == "127.0.0.1"


def test_the_batch_rule_counts_every_rank_of_an_odd_world():
    # 7 + 8 = 15 ranks beside a tp1 server: 4 x 15 = 60 completions is not a whole number of 16-completion groups
    with pytest.raises(UserError, match=r"x 15 training processes .* not divisible by num_generations 16"):
        server_on_first_node(tp=1, per_device_train_batch_size=4)
    assert server_on_first_node(tp=1).generation_batch_size == 16 * 15
    assert check_generation_batch(BatchShape(4, 1, 4), 3) == 12  # the CPU cluster's 1 + 2 ranks


def test_cpu_nodes_take_a_count_per_node():
    assert environment.env_counts({"REASONER_PROCS_PER_NODE": "1,2"}, "REASONER_PROCS_PER_NODE") == (1, 2)
    assert environment.env_counts({"REASONER_PROCS_PER_NODE": "2"}, "REASONER_PROCS_PER_NODE") == 2
    with pytest.raises(UserError, match="list of whole numbers"):
        environment.env_counts({"REASONER_PROCS_PER_NODE": "1,x"}, "REASONER_PROCS_PER_NODE")
    env = {**SLURM_2X8, "REASONER_PROCS_PER_NODE": "1,2"}
    p = plan(env=env, gpus_per_node=0, recipe_generation={"backend": "transformers"}, per_device_train_batch_size=4,
             gradient_accumulation_steps=1, num_generations=4)
    assert p.node_processes == (1, 2) and p.num_processes == 3 and p.generation_batch_size == 12
    assert [list(n.ranks) for n in p.node_ranks()] == [[0], [1, 2]]
    with pytest.raises(UserError, match="3 counts for 2 training nodes"):
        plan(env={**env, "REASONER_PROCS_PER_NODE": "1,2,3"}, gpus_per_node=0,
             recipe_generation={"backend": "transformers"}, per_device_train_batch_size=4,
             gradient_accumulation_steps=1, num_generations=4)
