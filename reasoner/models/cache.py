"""A per-user cache of models that reasoner builds itself, each built once and never seen half-written.

The built-in models (``tiny``, built from nothing by ``reasoner.models.tiny``; ``smollm2``, exported from a
GGUF file by ``reasoner.models.builtin``) become ordinary ``save_pretrained`` folders here. A marker file written
last records the build parameters, and a file lock keeps two ranks or processes that start at the same
moment from building twice or reading a half-written folder.
"""

from __future__ import annotations

import hashlib
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
