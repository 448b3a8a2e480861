"""The model an evaluation loads: a builtin id, a local folder, or a hub repo pinned to a commit; the device and
the generation backend it runs on.

vLLM is used only when it is installed and a GPU is present (``backend="auto"``); it is imported lazily so the
CPU path never needs it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.errors import UserError
from reasoner.lora.adapter import ADAPTER_CONFIG, attach, is_adapter_folder, load_config, read_base

__all__ = ["BACKENDS", "ModelRef", "eos_ids", "generation_config", "load_model", "load_tokenizer", "resolve_backend",
           "resolve_device", "resolve_model"]

BACKENDS = ("auto", "transformers", "vllm")


@dataclass
class ModelRef:
    """Where the weights come from: ``load`` is what from_pretrained gets, ``commit`` the pinned hub commit."""

    id: str
    kind: str  # builtin | local | hub
    load: str
    revision: str | None
    commit: str | None
    base: "ModelRef | None" = None  # set for a LoRA adapter: the model it applies to (reasoner.lora)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str, revision: str | None) -> ModelRef:
    """Builtin id, local folder or hub repo id; a hub id is pinned to a commit (unless offline)."""
    from reasoner.hubclient.calls import classify_model, pin

    if not isinstance(model, str) or not model.strip():
        raise UserError("--model must name a model: a hub repo id, a local folder, or 'tiny'/'smollm2'")
    path = Path(model).expanduser()
    if path.is_file():
        raise UserError(f"{model} is a file, not a model folder: pass the folder that holds config.json")
    if not path.exists() and _looks_like_path(model):
        raise UserError(f"model folder {model} does not exist: check the path (or pass a hub repo id like org/name)")
    source = classify_model(model, revision)
    if source.kind == "local" and is_adapter_folder(source.path):
        ref = ModelRef(id=model, kind="local", load=str(source.path), revision=None, commit=None)
        return _with_base(ref, load_config(Path(source.path) / ADAPTER_CONFIG))
    if source.kind == "local" and not (Path(source.path) / "config.json").is_file():
        raise UserError(f"{model} holds no config.json, so it is not a model folder: pass a save_pretrained folder "
                        "(or a LoRA adapter folder with adapter_config.json)")
    if source.kind in ("builtin", "local"):
        return ModelRef(id=model, kind=source.kind, load=str(source.path), revision=None, commit=None)
    source = pin(source, "model")
    ref = ModelRef(id=model, kind="hub", load=model, revision=revision, commit=source.commit)
    config = _hub_adapter_config(ref)
    return ref if config is None else _with_base(ref, config)


def _with_base(ref: ModelRef, adapter_config: dict) -> ModelRef:
    """An adapter's reference with its base model resolved (and pinned) from its adapter_config.json."""
    base_id, base_revision = read_base(adapter_config, f"the adapter {ref.id}")
    ref.base = resolve_model(base_id, base_revision)
    if ref.base.base is not None:
        raise UserError(f"the adapter {ref.id} names another adapter ({base_id}) as its base: pass a merged model")
    return ref


def _hub_adapter_config(ref: ModelRef) -> dict | None:
    """A hub repo's adapter_config.json at the pinned commit, or None when the repo holds a whole model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    from reasoner.hubclient.calls import hub_call

    def fetch() -> str | None:
        try:
            return hf_hub_download(ref.id, ADAPTER_CONFIG, revision=ref.commit)
        except EntryNotFoundError:
            return None

    path = hub_call(fetch, ref.id, "model", ref.commit, "looking for a LoRA adapter in")
    return None if path is None else load_config(path)


def resolve_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device} asked for, but torch sees no GPU here: leave --device out or use cpu")
    return device


def resolve_backend(backend: str, device: str) -> str:
    """``auto``: vLLM when it is installed and the device is a GPU, transformers otherwise."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    on_gpu = device.startswith("cuda")
    if backend == "auto":
        return "vllm" if has_vllm and on_gpu else "transformers"
    if backend == "vllm" and not (has_vllm and on_gpu):
        raise UserError(
            "the vllm backend needs vLLM installed (pip install 'reasoner[vllm]') and a GPU: "
            "use --backend transformers here"
        )
    return backend


def load_tokenizer(ref: ModelRef):
    from transformers import AutoTokenizer

    from reasoner.hubclient.calls import hub_call

    revision = ref.commit or ref.revision
    try:
        tokenizer = hub_call(
            lambda: AutoTokenizer.from_pretrained(ref.load, revision=revision),
            ref.id, "model", revision, "loading the tokenizer of",
        )
    except (OSError, ValueError, UserError):
        if ref.base is None:
            raise
        return load_tokenizer(ref.base)  # an adapter saved without its tokenizer uses its base's
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"the tokenizer of {ref.id} has no chat template, so the recipe's prompt cannot be built: "
            "evaluate an instruct/chat model"
        )
    tokenizer.padding_side = "left"  # a decoder-only model continues from the right end of each row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: ModelRef, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    from reasoner.hubclient.calls import hub_call

    if ref.base is not None:  # a LoRA adapter: its base, with the adapter merged in
        base = load_model(ref.base, device)
        model = hub_call(lambda: attach(base, ref.load, revision=ref.commit), ref.id, "model", ref.commit,
                         "loading the adapter")
        model.to(device)
        model.eval()
        return model
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    revision = ref.commit or ref.revision
    model = hub_call(
        lambda: AutoModelForCausalLM.from_pretrained(ref.load, revision=revision, dtype=dtype),
        ref.id, "model", revision, "loading",
    )
    model.to(device)
    model.eval()
    return model


def generation_config(ref: ModelRef) -> Any:
    """The model's own generation config (for its end-of-sequence ids), or None when it has none."""
    from transformers import GenerationConfig

    if ref.base is not None:
        return generation_config(ref.base)
    try:
        return GenerationConfig.from_pretrained(ref.load, revision=ref.commit or ref.revision)
    except (OSError, ValueError):
        return None


def eos_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a completion: the generation config's (Qwen lists two) and the tokenizer's."""
    ids: list[int] = []
    for value in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and int(item) not in ids:
                ids.append(int(item))
    return ids
