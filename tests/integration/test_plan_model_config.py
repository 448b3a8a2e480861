"""Any model is planned from its config.json on the hub (one request at the pinned revision, no weights);
the Qwen2.5 table only when the hub cannot be asked. A real hub over HTTP."""

from __future__ import annotations

import json

import pytest

from reasoner.plan import shapes


# Published config.json files of models outside the Qwen2.5 Instruct line (huggingface.co, trimmed to what a
# shape reads), served by a real hub that holds nothing else: the planner sizes them without their weights.
HUB_CONFIGS = {
    "Qwen/Qwen2.5-Math-7B": {"model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28,
                             "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
                             "vocab_size": 152064, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {
        "model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
        "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16"},
    "Qwen/Qwen3-8B": {"model_type": "qwen3", "hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32,
                      "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288, "vocab_size": 151936,
                      "tie_word_embeddings": False, "attention_bias": False, "torch_dtype": "bfloat16"},
}


@pytest.fixture(scope="module")
def config_hub(tmp_path_factory):
    """A real hub over HTTP whose model repos hold only a config.json."""
    from huggingface_hub import HfApi

    from reasoner_hub.server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub") / "bucket") as server:
        api = HfApi(endpoint=server.url, token="hf_plan_0123456789")
        for repo, config in HUB_CONFIGS.items():
            api.create_repo(repo)
            api.upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json", repo_id=repo)
        yield server


def _plan_shape(url: str, home, model_id: str, revision: str | None = None) -> tuple[int, str]:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        from reasoner.plan.shapes import model_shape
        shape = model_shape({model_id!r}, {revision!r})
        print(shape.params, shape.source, sep="|")
    """)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "REASONER_"))}
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", NO_PROXY="*", no_proxy="*")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("model_id", sorted(HUB_CONFIGS))
def test_any_hub_model_is_sized_from_its_config_json_without_weights(config_hub, tmp_path, model_id):
    code, out = _plan_shape(config_hub.url, tmp_path, model_id)
    assert code == 0, out
    params, source = out.splitlines()[-1].split("|")
    config = HUB_CONFIGS[model_id]
    expected = shapes.shape_from_config(config, name=model_id)
    assert int(params) == expected.params
    assert source.startswith("config.json from " + config_hub.url)
    if config["model_type"] == "qwen3":  # q/k norms and an explicit head_dim, counted like transformers
        from transformers import AutoModelForCausalLM, Qwen3Config
        import torch

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(Qwen3Config(**{k: v for k, v in config.items() if k != "model_type"}))
        assert expected.params == sum(p.numel() for p in model.parameters())
    assert not list(tmp_path.rglob("*.safetensors"))


def test_a_model_the_hub_does_not_have_is_refused_in_one_line(config_hub, tmp_path):
    code, out = _plan_shape(config_hub.url, tmp_path, "someorg/no-such-model")
    assert code != 0
    assert "UserError" in out and "someorg/no-such-model" in out and "not found" in out


def test_an_unreachable_hub_falls_back_to_the_table_and_says_so(tmp_path):
    from ports import free_port

    code, out = _plan_shape(f"http://127.0.0.1:{free_port()}", tmp_path, "Qwen/Qwen2.5-7B-Instruct")
    assert code == 0, out
    assert "built-in table" in out and "unreachable" in out
    code, out = _plan_shape(f"http://127.0.0.1:{free_port()}", tmp_path, "someorg/unknown-model")
    assert code != 0 and "cannot size model" in out
