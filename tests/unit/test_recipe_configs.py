"""Every packaged recipe becomes a TRL GRPOConfig, as is and with the overrides each layout's plan adds."""

from __future__ import annotations

import pytest

from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes
from reasoner.topology import plan_for_recipe
from reasoner.train.run import build_grpo_config

SAME_KEYS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
             "max_completion_length", "beta", "loss_type", "save_steps", "temperature", "seed", "output_dir")


@pytest.mark.parametrize("name", packaged_recipes())
def test_grpo_config_from_every_packaged_recipe(name, monkeypatch):
    recipe = load_recipe(name)
    for key in ("REASONER_VLLM_HOST", "REASONER_VLLM_PORT", "REASONER_GROUP_PORT", "SLURM_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    if recipe.generation.placement == "dedicated-node":
        # No default address reaches a server on another node: refused until something names it.
        with pytest.raises(UserError, match="set REASONER_VLLM_HOST or --vllm_server_host"):
            build_grpo_config(recipe)
        monkeypatch.setenv("REASONER_VLLM_HOST", "gen.example")
    config = build_grpo_config(recipe)
    if recipe.generation.placement in ("dedicated-gpu", "dedicated-node"):
        assert config.vllm_mode == "server" and config.vllm_server_port == 8000
        assert config.vllm_server_host == ("127.0.0.1" if recipe.generation.placement == "dedicated-gpu"
                                           else "gen.example")
    for key in SAME_KEYS:
        if key in recipe.grpo:
            assert getattr(config, key) == recipe.grpo[key], key
    assert config.use_vllm == (recipe.generation.backend == "vllm")
    assert config.reward_weights == list(recipe.rewards.values())
    assert config.push_to_hub is False
    if config.use_vllm:
        assert config.vllm_gpu_memory_utilization == recipe.generation.gpu_memory_utilization


@pytest.mark.parametrize("name", [n for n in packaged_recipes() if load_recipe(n).generation.backend == "vllm"])
def test_grpo_config_with_each_layouts_generation_settings(name):
    env = {"SLURM_JOB_ID": "77", "SLURM_NODEID": "0", "REASONER_NODELIST": "a b c d",
           "REASONER_NODE_ADDRS": "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4"}
    for nodes, gpus, mode in ((1, 1, "colocate"), (1, 8, "server"), (4, 8, "server")):
        layout_env = {**env, "REASONER_NODELIST": " ".join("abcd"[:nodes]),
                      "REASONER_NODE_ADDRS": " ".join(f"10.0.0.{i + 1}" for i in range(nodes))}
        placement = {1: "colocate", 8: "dedicated-gpu"}[gpus] if nodes == 1 else "dedicated-node"
        generation = ["--generation.tensor_parallel_size", "1"] if gpus == 1 else []
        layout = plan_for_recipe(load_recipe(name, generation), env=layout_env, gpus_per_node=gpus, nodes=nodes,
                                 placement=placement)
        config = build_grpo_config(load_recipe(name, [*generation, *layout.train_args]))
        assert config.use_vllm and config.vllm_mode == mode, (nodes, gpus)
        if mode == "server":
            assert (config.vllm_server_host, config.vllm_server_port, config.vllm_group_port) == (
                layout.vllm_host, layout.vllm_port, layout.group_port)
        else:
            assert config.vllm_tensor_parallel_size == layout.tensor_parallel_size
