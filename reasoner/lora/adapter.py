"""Adapter folders: what a LoRA run saves, how its base model is found again, and the merged model.

A LoRA run saves what PEFT saves (``adapter_config.json`` and ``adapter_model.safetensors``), in every
checkpoint and in the final folder, with the tokenizer beside it. PEFT records the base model as the path the
weights were loaded from, which for a hub model is a snapshot folder of the training machine's cache; the run
replaces it in each saved adapter with the recipe's ``model.id`` and the pinned commit (:func:`record_base`), so
the adapter names a base any machine can load through ``HF_ENDPOINT``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from reasoner.errors import UserError

log = logging.getLogger("reasoner.lora")

ADAPTER_CONFIG = "adapter_config.json"
MERGED_FOLDER = "merged"  # the merged model, beside the adapter in the output folder and the hub repo


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def record_base(folder: Path, base_id: str, revision: str | None) -> None:
    """Name the recipe's model and pinned commit as the base in the adapter config saved in ``folder``.

    Done on the saved file, not on the live model: while saving, PEFT reads the base's config.json from
    ``base_model_name_or_path`` (a local folder during training) to see whether the vocabulary changed, and a
    hub id there would cost a request per save, or a failed lookup for a built-in model.
    """
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        return
    config = load_config(path)
    config["base_model_name_or_path"], config["revision"] = base_id, revision
    tmp = path.with_name(f".{ADAPTER_CONFIG}.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def base_naming_callback(base_id: str, revision: str | None, is_main: bool):
    """A TrainerCallback that records the base in each checkpoint's adapter config, right after the save and
    before the checkpoint is recorded complete and pushed (so it goes first in the callback list)."""
    from transformers import TrainerCallback

    class BaseNaming(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
            if is_main:
                record_base(Path(args.output_dir) / f"checkpoint-{state.global_step}", base_id, revision)

    return BaseNaming()


def read_base(adapter_config: dict[str, Any], where: str) -> tuple[str, str | None]:
    """The base model id and revision an adapter config names, or UserError when it names none."""
    base = adapter_config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise UserError(f"{where} names no base model (base_model_name_or_path is empty): pass the merged model, "
                        "or set base_model_name_or_path in its adapter_config.json")
    revision = adapter_config.get("revision")
    return base, revision if isinstance(revision, str) and revision else None


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable adapter config ({type(exc).__name__}): re-save the adapter") from None


def attach(base_model: Any, adapter: str, *, revision: str | None = None, merge: bool = True) -> Any:
    """The base model with the adapter at ``adapter`` (a folder or hub repo) applied; merged into the weights
    by default, which makes generation as fast as the base model's."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model, adapter, revision=revision)
    return model.merge_and_unload() if merge else model


def write_merged(output_dir: Path, base_path: str, *, dtype: str = "auto") -> Path:
    """Merge the adapter saved in ``output_dir`` into its base (read from ``base_path``, a local folder) and save a
    whole model with the tokenizer into ``output_dir/merged``: what vLLM and ``from_pretrained`` load as is.

    Runs on the CPU of rank zero after training, so it needs host memory for one copy of the model in ``dtype``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = output_dir / MERGED_FOLDER
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    merged = attach(base, str(output_dir))
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(output_dir)).save_pretrained(target)
    log.info("merged model written to %s", target)
    return target
