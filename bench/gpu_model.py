"""A model of Qwen2.5-0.5B-Instruct's exact shape, built on the machine itself, for a GPU benchmark offline.

A GPU machine without a network cannot download Qwen2.5-0.5B-Instruct. Speed and memory depend on the shape
(layers, widths, heads, the 151,936-entry vocabulary and its LM head), the sequence lengths and the dtype,
not on what the weights have learned. So this builds a ``Qwen2ForCausalLM`` with the published config values
and random weights, saved in bfloat16 as the real one is, with a tokenizer that has an entry for every one of
the model's ids: the tiny model's byte-level BPE (trained on a small built-in corpus, so prompts come out
longer in tokens than with Qwen's tokenizer), padded with distinct byte strings no text encodes to. A random
model rarely ends a completion, so every completion runs to the length limit: the worst case for speed.
Accuracy numbers of such a model mean nothing, and the benchmark says so.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

# Qwen2.5-0.5B-Instruct's published config.json (the values that shape compute and memory).
QWEN25_05B: dict[str, Any] = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": False, "hidden_act": "silu",
}
# Qwen2.5-1.5B-Instruct's: the same family one size up (bench/gpu.py --sizes 0.5b,1.5b).
QWEN25_15B: dict[str, Any] = {**QWEN25_05B, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                              "num_attention_heads": 12, "num_key_value_heads": 2}
SHAPES = {"0.5b": QWEN25_05B, "1.5b": QWEN25_15B}
MARKER = "bench-shape.json"


def full_vocab_tokenizer(vocab_size: int, max_length: int):
    """The tiny model's tokenizer with filler entries up to ``vocab_size``, so every model id decodes to text."""
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from reasoner.models.tiny import ensure_tiny_model

    base = AutoTokenizer.from_pretrained(str(ensure_tiny_model()))
    data = json.loads(base.backend_tokenizer.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    # Ids stay contiguous: the BPE vocabulary first, then the added tokens that are not in it (the tags).
    added = [token for token in data.get("added_tokens", []) if token["content"] not in vocab]
    model_size = vocab_size - len(added)
    if model_size < len(vocab):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer's {len(vocab) + len(added)} entries")
    taken = set(vocab) | {token["content"] for token in added}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    fillers = ("".join(chars) for width in (2, 3) for chars in itertools.product(alphabet, repeat=width))
    for text in fillers:
        if len(vocab) == model_size:
            break
        if text not in taken:
            vocab[text] = len(vocab)
    for offset, token in enumerate(added):
        token["id"] = model_size + offset
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)), eos_token=base.eos_token, pad_token=base.pad_token,
        chat_template=base.chat_template, padding_side="left", model_max_length=max_length)
    if len(tokenizer) != vocab_size:
        raise ValueError(f"the padded tokenizer has {len(tokenizer)} entries, not {vocab_size}")
    return tokenizer


def build_shaped_model(dest: Path, shape: dict[str, Any] | None = None, *, seed: int = 0, device: str = "cpu") -> Path:
    """Build (once) a random-weight Qwen2 model of ``shape`` (default: Qwen2.5-0.5B-Instruct's) in ``dest``; its
    random initialisation runs on ``device`` (a GPU initialises 1.5B parameters in a second, a CPU in a minute)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    shape = dict(QWEN25_05B if shape is None else shape)
    marker = dest / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == {"shape": shape, "seed": seed}:
        return dest
    tokenizer = full_vocab_tokenizer(shape["vocab_size"], shape["max_position_embeddings"])
    eos_id, pad_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token), tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    config = Qwen2Config(**shape, bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id, dtype="bfloat16")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    marker.write_text(json.dumps({"shape": shape, "seed": seed}))
    del model
    if device != "cpu":  # hand the memory back: the training process, not this one, is measured on the GPU
        torch.cuda.empty_cache()
    return dest


def parameter_count(shape: dict[str, Any]) -> int:
    """Parameters of a tied-embedding Qwen2 model of ``shape`` (q/k/v biases, no o/MLP biases)."""
    hidden, inter, heads, kv = (shape[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads",
                                                    "num_key_value_heads"))
    kv_dim = hidden // heads * kv
    attention = hidden * hidden + 2 * hidden * kv_dim + hidden + 2 * kv_dim + hidden * hidden
    layer = attention + 3 * hidden * inter + 2 * hidden
    head = 0 if shape["tie_word_embeddings"] else shape["vocab_size"] * hidden
    return shape["num_hidden_layers"] * layer + shape["vocab_size"] * hidden + hidden + head
