"""A tiny Qwen2-architecture causal LM, built locally in seconds: the model id ``tiny``.

Tests, the CPU recipe and the demo need a real model that every part of the stack (transformers,
TRL, accelerate, DeepSpeed, the hub client) treats like any other, without a network and without
minutes of loading. This module builds one from nothing: a byte-level BPE tokenizer trained on a
small corpus of the package's own generated GSM8K-style problems, wrapped with a Qwen-style chat
template, and a randomly initialised ``Qwen2ForCausalLM`` in float32, saved with ``save_pretrained``.

The vocabulary is deliberately small (512 by default) and the reasoning tags are single tokens:
a random model then often emits digits and sometimes tags, so reward functions see signal from the
first GRPO step. The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from reasoner.data import SYSTEM_PROMPT, extract_gold, generate_problems
from reasoner.models.cache import build_once, cache_root, params_digest

# Bump when the build changes in a way that should invalidate folders already in caches.
TINY_BUILD_FORMAT = 3

CORPUS_SEED = 20240611

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
# Ordinary (not special) tokens: completions are decoded with skip_special_tokens=True, and the
# tags must survive that for the format rewards to see them.
TAG_TOKENS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")

# Qwen-style turns: <|im_start|>role\ncontent<|im_end|>\n, then an open assistant turn on request.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

DEFAULT_PARAMS: dict[str, Any] = {
    "seed": 0,
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "max_position_embeddings": 2048,
    # Supervised steps on answers in the <reasoning>/<answer> format. A random model's completions all score
    # zero, and zero rewards give zero gradients; after a short warm-up, sampled completions hit the format
    # part of the time, so GRPO tests see real reward signal from the real rewards.
    "warmup_steps": 120,
}

_PROSE = (
    "A careful solver reads the question twice, writes down what is known, and checks the units.",
    "Think step by step. First find the total, then subtract what was used, then divide the rest.",
    "Respond in the following format, with the reasoning first and the final number last.",
    "The answer is a single number without units, commas or a dollar sign.",
    "If each box holds the same number of items, multiply the number of boxes by the items per box.",
    "Half of a number is that number divided by 2, and a quarter is that number divided by 4.",
    "A week has 7 days, a day has 24 hours, an hour has 60 minutes, and a dozen is 12.",
    "Percent means out of 100, so 25% of 80 is 80 * 25 / 100 = 20.",
    "You are a helpful assistant. Answer the math question and show your work.",
    "Let's check the result: the parts add up to the whole, so the answer is right.",
)


def formatted_answer(row: dict) -> str:
    """A generated row's worked solution in the exact reward format: its steps as reasoning, then the gold number."""
    gold = extract_gold(row["answer"]) or "0"
    steps = row["answer"].split("####")[0].strip().replace("\n", " ")
    return f"<reasoning>\n{steps}\n</reasoning>\n<answer>\n{gold}\n</answer>\n"


def training_corpus(num_problems: int = 400) -> list[str]:
    """The built-in text the tokenizer learns from: fixed, so every build sees the same corpus.

    The word problems are the package's own generated ones (``reasoner.data.generate_problems``), each as its
    question, its GSM8K-style solution and its solution in the reward format.
    """
    lines: list[str] = list(_PROSE)
    for row in generate_problems(num_problems, seed=CORPUS_SEED):
        lines += [row["question"], row["answer"], formatted_answer(row)]
    lines.append(" ".join(str(n) for n in range(0, 1001, 7)))
    lines.append("+ - * / = < > ( ) [ ] { } , . ; : ! ? ' \" % $ # @ & _ ~ \n \t")
    return lines


def _build_tokenizer(vocab_size: int, max_length: int):
    """Train a byte-level BPE with Qwen2's own text pipeline and wrap it as a ``Qwen2Tokenizer``.

    ``AutoTokenizer`` loads a ``qwen2`` model's tokenizer as ``Qwen2Tokenizer``, which rebuilds the
    normalizer and pre-tokenizer its own way; training through that same pipeline (taken from the
    class, not restated here) makes the saved tokenizer and the loaded one split text identically.
    Qwen's pipeline also splits numbers into single digits, which keeps arithmetic compositional.
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    pipeline = Qwen2Tokenizer().backend_tokenizer
    backend = Tokenizer(models.BPE())
    backend.normalizer = pipeline.normalizer
    backend.pre_tokenizer = pipeline.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS),
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte has a token
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    trained = json.loads(backend.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in trained["merges"]],
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        padding_side="left",
        model_max_length=max_length,
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.add_tokens([AddedToken(IM_START, special=True, normalized=False)], special_tokens=True)
    # Ordinary tokens: they survive skip_special_tokens=True decoding, as the format rewards need.
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    return tokenizer


def _build_into(out: Path, params: dict[str, Any]) -> None:
    """Build tokenizer, model and generation config into ``out`` from ``params``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _build_tokenizer(params["vocab_size"], params["max_position_embeddings"])
    if len(tokenizer) > params["vocab_size"]:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, more than vocab_size={params['vocab_size']}")
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    config = Qwen2Config(
        vocab_size=params["vocab_size"],
        hidden_size=params["hidden_size"],
        intermediate_size=params["intermediate_size"],
        num_hidden_layers=params["num_layers"],
        num_attention_heads=params["num_heads"],
        num_key_value_heads=params["num_kv_heads"],
        max_position_embeddings=params["max_position_embeddings"],
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    # A private RNG state: the build must not depend on, or disturb, the caller's torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params["seed"])
        model = Qwen2ForCausalLM(config).to(torch.float32)
    if params["warmup_steps"]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params["seed"])
            _warm_up(model, tokenizer, params["warmup_steps"], params["seed"])
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _formatted_examples(count: int, seed: int) -> list[list[dict[str, str]]]:
    """Chat conversations whose assistant turn is a (short, correct) answer in the exact reward format."""
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": row["question"]},
             {"role": "assistant", "content": formatted_answer(row)}]
            for row in generate_problems(count, seed=seed + 7919)]


def _warm_up(model, tokenizer, steps: int, seed: int, batch_size: int = 8) -> None:
    """A few supervised steps on the assistant turns only, so the format is likely but not certain."""
    import torch

    conversations = _formatted_examples(steps * batch_size // 4 + batch_size, seed)
    encoded = []
    for conversation in conversations:
        prompt = tokenizer.apply_chat_template(conversation[:2], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(conversation, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(prompt_ids) + ids[len(prompt_ids):]
        encoded.append((ids, labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    rng = random.Random(seed)
    for _ in range(steps):
        batch = rng.sample(encoded, batch_size)
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def tiny_params(**overrides: Any) -> dict[str, Any]:
    """The full parameter set of a build: the defaults, the overrides, and the build format."""
    unknown = set(overrides) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown tiny model parameters: {sorted(unknown)}")
    return {**DEFAULT_PARAMS, **overrides, "format": TINY_BUILD_FORMAT}


def build_tiny_model(
    dest: str | Path,
    *,
    seed: int = DEFAULT_PARAMS["seed"],
    vocab_size: int = DEFAULT_PARAMS["vocab_size"],
    hidden_size: int = DEFAULT_PARAMS["hidden_size"],
    intermediate_size: int = DEFAULT_PARAMS["intermediate_size"],
    num_layers: int = DEFAULT_PARAMS["num_layers"],
    num_heads: int = DEFAULT_PARAMS["num_heads"],
    num_kv_heads: int = DEFAULT_PARAMS["num_kv_heads"],
    max_position_embeddings: int = DEFAULT_PARAMS["max_position_embeddings"],
    warmup_steps: int = DEFAULT_PARAMS["warmup_steps"],
) -> Path:
    """Build the tiny model into ``dest`` (a new or empty folder) and return it.

    Same parameters, same files, byte for byte. When ``dest`` already holds a build of the same
    parameters it is returned as it is, without rebuilding.
    """
    params = tiny_params(
        seed=seed,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        warmup_steps=warmup_steps,
    )
    return build_once(Path(dest), params, lambda out: _build_into(out, params))


def tiny_model_cache_dir() -> Path:
    """The per-user cache folder of the default tiny model, named by a hash of its parameters."""
    return cache_root() / f"tiny-{params_digest(tiny_params())}"


def ensure_tiny_model() -> Path:
    """The default tiny model in the per-user cache, built there once (under a file lock)."""
    return build_tiny_model(tiny_model_cache_dir())
