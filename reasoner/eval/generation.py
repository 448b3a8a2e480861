"""Generation for evaluation: batched transformers ``generate`` on CPU or GPU, or vLLM on a GPU, with the same
decoding on both paths.

Greedy decoding by default, with a clean generation config (no sampling knobs or repetition penalty inherited
from the model's ``generation_config.json``), so two runs of the same model give the same numbers. Seeded
sampling is an option.
"""

from __future__ import annotations

from typing import Any, Sequence

from reasoner.eval.models import ModelRef, eos_ids, generation_config, load_model

__all__ = ["chat_texts", "generate_transformers", "generate_vllm", "vllm_arguments"]


def chat_texts(tokenizer: Any, prompts: Sequence[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def generate_transformers(
    ref: ModelRef, tokenizer: Any, texts: list[str], *, device: str, batch_size: int,
    max_new_tokens: int, sampling: bool, temperature: float, seed: int, desc: str, samples: int = 1,
    top_p: float = 1.0,
) -> list[tuple[str, int]]:
    """(completion text, completion tokens) per prompt and sample (``samples`` in a row for each prompt), with
    batched ``generate`` and left padding.

    The K samples of a prompt come from one ``generate`` call (``num_return_sequences``), so the prompt is
    encoded once and the samples decode as one batch: K samples cost no more than K greedy runs. The token count
    runs up to and including the first end-of-sequence token, as TRL counts ``completions/mean_length``;
    padding after it is not counted.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, set_seed

    model = load_model(ref, device)
    eos = eos_ids(model.generation_config, tokenizer)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling,
                               "num_return_sequences": samples}
    if sampling:
        options.update(temperature=temperature, top_p=top_p, top_k=0)
    config = GenerationConfig(**options, eos_token_id=eos or None, pad_token_id=tokenizer.pad_token_id)
    set_seed(seed)
    outputs: list[tuple[str, int]] = []
    for batch in tqdm(_batches(texts, batch_size), desc=desc, unit="batch"):
        encoded = tokenizer(list(batch), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            generated = model.generate(**encoded, generation_config=config)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :].tolist()
        for row in new_tokens:
            length = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
            outputs.append((tokenizer.decode(row[:length], skip_special_tokens=True), length))
    return outputs


def vllm_arguments(
    ref: ModelRef, *, max_new_tokens: int, sampling: bool, temperature: float, seed: int,
    stop_token_ids: Sequence[int], samples: int = 1, top_p: float = 1.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of vLLM's ``LLM`` and ``SamplingParams``: the same decoding as the transformers path.

    Greedy is temperature 0; sampling is plain temperature sampling (top_p 1, no top_k), seeded. The
    model's own ``generation_config.json`` is not applied (``generation_config="vllm"``), as on the
    transformers path, so the numbers do not depend on a repo's sampling defaults.
    """
    revision = ref.commit or ref.revision
    llm = {"model": ref.load, "revision": revision, "tokenizer_revision": revision, "seed": seed,
           "generation_config": "vllm"}
    params: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature if sampling else 0.0,
                              "top_p": top_p if sampling else 1.0, "top_k": -1, "seed": seed if sampling else None}
    if samples > 1:
        params["n"] = samples  # K completions per prompt in one request
    if stop_token_ids:
        params["stop_token_ids"] = list(stop_token_ids)
    return llm, params


def generate_vllm(
    ref: ModelRef, tokenizer: Any, texts: list[str], *, max_new_tokens: int, sampling: bool,
    temperature: float, seed: int, samples: int = 1, top_p: float = 1.0,
) -> list[tuple[str, int]]:  # pragma: no cover - needs vLLM and a GPU
    """(completion text, completion tokens) per prompt and sample from vLLM (``n`` samples per prompt in one
    request); the same prompts and order as the transformers path."""
    from vllm import LLM, SamplingParams

    llm_kwargs, params = vllm_arguments(
        ref, max_new_tokens=max_new_tokens, sampling=sampling, temperature=temperature, seed=seed,
        stop_token_ids=eos_ids(generation_config(ref), tokenizer), samples=samples, top_p=top_p,
    )
    llm = LLM(**llm_kwargs)
    results = llm.generate(texts, SamplingParams(**params), use_tqdm=True)
    return [(output.text, len(output.token_ids)) for r in results for output in r.outputs]
