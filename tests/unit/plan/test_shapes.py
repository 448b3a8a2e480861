"""Model shapes: exact parameter counts against transformers (models built on the meta device), local configs first."""

from __future__ import annotations

import json

import pytest

from reasoner.plan import shapes
from reasoner.errors import UserError

SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b"]


def _meta_model(shape: shapes.ModelShape, model_type: str):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    kwargs = dict(hidden_size=shape.hidden_size, num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
                  num_key_value_heads=shape.num_kv_heads, intermediate_size=shape.intermediate_size,
                  vocab_size=shape.vocab_size, tie_word_embeddings=shape.tie_word_embeddings)
    config = Qwen2Config(**kwargs) if model_type == "qwen2" else LlamaConfig(**kwargs)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("size", SIZES)
def test_parameter_count_is_exact_for_the_qwen_table(size):
    shape = shapes.table_shape(size)
    model = _meta_model(shape, "qwen2")
    assert shape.params == sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    assert shape.largest_layer_params == largest


def test_known_published_sizes():
    assert shapes.table_shape("0.5b").params == 494_032_768
    assert shapes.table_shape("7b").params == 7_615_616_512
    assert shapes.table_shape("32b").params == 32_763_876_352


def test_smollm2_and_tiny_shapes_count_like_transformers():
    smol = shapes.shape_from_config(shapes.SMOLLM2_CONFIG, name="smollm2")
    assert smol.params == sum(p.numel() for p in _meta_model(smol, "llama").parameters()) == 134_515_008
    tiny = shapes.model_shape("tiny")
    assert tiny.hidden_size == 64 and tiny.num_layers == 2


def test_local_config_wins_and_unknown_models_are_refused(tmp_path):
    config = {"model_type": "qwen2", "hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 1000, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = shapes.model_shape(str(tmp_path))
    assert shape.params == sum(p.numel() for p in _meta_model(shape, "qwen2").parameters())
    assert "config.json" in shape.source
    assert shapes.model_shape("someorg/Qwen2.5-14B-Instruct-GRPO").hidden_size == 5120
    with pytest.raises(UserError, match="cannot size model"):
        shapes.model_shape("someorg/unknown-model")
