"""Model shapes: the architecture numbers that decide memory, from a config.json or a built-in table.

A model's shape comes from its ``config.json``: a local folder's, a built-in model's, or the hub's (one small
request at the pinned revision, kept in the hub cache: reasoner.plan.modelconfig). Only when the hub cannot be
asked does a built-in table of Qwen2.5 Instruct configurations (copied from the models' published
``config.json`` files) stand in, and the shape's ``source`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

from reasoner.errors import UserError


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The architecture numbers that decide memory: a dense decoder with gated (SwiGLU) MLP, as Qwen2/Llama."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3: an RMSNorm over each head's q and k (head_dim weights each)
    torch_dtype: str = "bfloat16"
    source: str = ""

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        h, q, kv, i = self.hidden_size, self.q_dim, self.kv_dim, self.intermediate_size
        attention = h * q + 2 * h * kv + q * h
        if self.qkv_bias:
            attention += q + 2 * kv
        if self.o_bias:
            attention += h
        mlp = 3 * h * i + (2 * i + h if self.mlp_bias else 0)
        norms = 2 * h + (2 * self.head_dim if self.qk_norm else 0)  # two RMSNorm weights (+ q/k norms)
        return attention + mlp + norms

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Exact parameter count (tied embeddings counted once), as ``sum(p.numel() for p in model.parameters())``."""
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.embedding_params + self.num_layers * self.layer_params + self.hidden_size + head

    @property
    def largest_layer_params(self) -> int:
        """Largest parameter count held directly by one module (DeepSpeed's ``largest_layer_params``)."""
        h, i = self.hidden_size, self.intermediate_size
        return max(self.embedding_params, h * i + (i if self.mlp_bias else 0), h * self.q_dim + self.q_dim)


# The published config.json values of the Qwen2.5 Instruct models (huggingface.co/Qwen/Qwen2.5-*-Instruct):
# (hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,
# tie_word_embeddings). All are model_type qwen2 (bias on q/k/v only), head_dim = hidden / heads, bfloat16.
QWEN25_CONFIGS: dict[str, tuple[int, int, int, int, int, int, bool]] = {
    "0.5b": (896, 24, 14, 2, 4864, 151936, True),
    "1.5b": (1536, 28, 12, 2, 8960, 151936, True),
    "3b": (2048, 36, 16, 2, 11008, 151936, True),
    "7b": (3584, 28, 28, 4, 18944, 152064, False),
    "14b": (5120, 48, 40, 8, 13824, 152064, False),
    "32b": (5120, 64, 40, 8, 27648, 152064, False),
}
# SmolLM2-135M-Instruct's published config.json (model_type llama, no biases); the built-in export is float32.
SMOLLM2_CONFIG: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
    "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
}


def shape_from_config(config: Mapping[str, Any], *, name: str = "", source: str = "") -> ModelShape:
    """A ModelShape from a transformers ``config.json`` mapping (nested ``text_config`` is followed)."""
    if "hidden_size" not in config and isinstance(config.get("text_config"), Mapping):
        config = config["text_config"]
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        shape = ModelShape(
            name=name,
            hidden_size=hidden,
            num_layers=int(config["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=(config.get("model_type") == "qwen2") or bool(config.get("attention_bias", False)),
            o_bias=bool(config.get("attention_bias", False)) and config.get("model_type") != "qwen2",
            mlp_bias=bool(config.get("mlp_bias", False)),
            qk_norm=str(config.get("model_type", "")).startswith("qwen3"),
            torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"cannot size model {name or '?'} from {source or 'its config'}: missing or bad key {exc}") from None
    return shape


def _read_config(folder: Path, name: str) -> ModelShape | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return shape_from_config(config, name=name, source=f"config.json in {folder}")


def _builtin_shape(model_id: str) -> ModelShape:
    """The shape of a built-in model, from its build when it exists, without building it."""
    if model_id == "tiny":
        from reasoner.models.tiny import DEFAULT_PARAMS, tiny_model_cache_dir

        built = _read_config(tiny_model_cache_dir(), "tiny")
        if built is not None:
            return built
        p = DEFAULT_PARAMS
        return shape_from_config(
            {"model_type": "qwen2", "hidden_size": p["hidden_size"], "num_hidden_layers": p["num_layers"],
             "num_attention_heads": p["num_heads"], "num_key_value_heads": p["num_kv_heads"],
             "intermediate_size": p["intermediate_size"], "vocab_size": p["vocab_size"],
             "tie_word_embeddings": True, "torch_dtype": "float32"},
            name="tiny", source="reasoner.models.tiny.DEFAULT_PARAMS (not built yet)",
        )
    try:
        from reasoner.models.builtin import smollm2_cache_dir

        built = _read_config(smollm2_cache_dir(), "smollm2")
    except UserError:
        built = None
    return built or shape_from_config(SMOLLM2_CONFIG, name="smollm2", source="SmolLM2-135M-Instruct published config.json")


def qwen25_size(model_id: str) -> str | None:
    """``Qwen/Qwen2.5-7B-Instruct`` -> ``7b`` (None when the id names no Qwen2.5 size in the table)."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    match = re.search(r"qwen2\.5-(\d+(?:\.\d+)?)b(?![a-z0-9])", name)
    if match and f"{match.group(1)}b" in QWEN25_CONFIGS:
        return f"{match.group(1)}b"
    return None


def table_shape(size: str) -> ModelShape:
    """The built-in table's Qwen2.5 Instruct shape for a size such as ``7b``."""
    hidden, layers, heads, kv, inter, vocab, tied = QWEN25_CONFIGS[size]
    return shape_from_config(
        {"model_type": "qwen2", "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab, "tie_word_embeddings": tied,
         "torch_dtype": "bfloat16"},
        name=f"Qwen/Qwen2.5-{size[:-1]}B-Instruct",
        source=f"built-in table (Qwen2.5-{size[:-1].upper()}B-Instruct published config.json)",
    )


def model_shape(model_id: str, revision: str | None = None) -> ModelShape:
    """Architecture of ``model_id``: a local folder's config.json, else the hub's (one small request, cached),
    else, only when the hub cannot be asked, the built-in table. The shape's ``source`` says which was used."""
    if model_id in ("tiny", "smollm2"):
        return _builtin_shape(model_id)
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        shape = _read_config(folder, model_id)
        if shape is None:
            raise UserError(f"{folder} holds no config.json: point model.id at a model folder")
        return shape
    from reasoner.plan.modelconfig import HubUnreachable, fetch_config

    try:
        config, source = fetch_config(model_id, revision)
    except HubUnreachable as exc:
        size = qwen25_size(model_id)
        if size is not None:
            table = table_shape(size)
            return dataclasses.replace(table, name=model_id, source=f"{table.source}; the hub was unreachable ({exc})")
        raise UserError(
            f"cannot size model '{model_id}': the hub is unreachable ({exc}) and its config.json is not cached; "
            "start the hub or fix HF_ENDPOINT, run 'reasoner prefetch' first, or give a local folder") from None
    return shape_from_config(config, name=model_id, source=source)
