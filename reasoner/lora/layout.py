"""What TRL 1.16 can run with a LoRA adapter, checked before anything loads.

Read from TRL 1.16's source (trl/trainer/grpo_trainer.py, trl/generation/vllm_generation.py):

* The reference model is the base with the adapter disabled: no second model is loaded, so
  ``sync_ref_model`` has nothing to sync and TRL raises NotImplementedError. Refused here in one line.
* vLLM never sees the adapter: before each weight sync TRL merges it into the base weights (``merge_adapter``),
  sends the merged weights (colocate: ``load_weights`` in process; server: the client's NCCL broadcast from rank
  zero) and unmerges. Under DeepSpeed ZeRO-3 it first gathers *every* parameter at once on every training rank
  (merging shards is not supported), so each training GPU briefly holds the whole 16-bit model: the planner
  counts that, and a layout where it does not fit is refused by ``reasoner plan``'s memory verdict.
* Under ZeRO-3 TRL keeps the adapter in the base dtype (``autocast_adapter_dtype=False``, DeepSpeed keeps the
  float32 master copy) and forces reentrant activation checkpointing; both work as they are.
* FSDP with an adapter and vLLM is marked untested in TRL ("TODO: does this work with FSDP?"): refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reasoner.errors import UserError
from reasoner.lora.config import enabled


def distributed_type(accelerate_config: str | None) -> str:
    """The accelerate config's ``distributed_type`` (upper case), or an empty string when unknown."""
    if not accelerate_config:
        return ""
    for path in (Path(accelerate_config).expanduser(), Path(__file__).resolve().parents[2] / accelerate_config):
        if path.is_file():
            try:
                return str((yaml.safe_load(path.read_text()) or {}).get("distributed_type", "")).upper()
            except (OSError, yaml.YAMLError):
                return ""
    return ""


def check_lora_layout(recipe: Any) -> None:
    """Refuse, in one line, a LoRA recipe TRL 1.16 cannot run."""
    if not enabled(getattr(recipe, "peft", None)):
        return
    if recipe.grpo.get("sync_ref_model"):
        raise UserError("grpo.sync_ref_model cannot be used with LoRA: the reference model is the base with the "
                        "adapter disabled, so there is no separate model to sync (TRL 1.16); set --sync_ref_model false")
    if recipe.generation.uses_vllm and distributed_type(recipe.accelerate_config) == "FSDP":
        raise UserError("LoRA with vLLM under FSDP is not supported by TRL 1.16's weight sync: use a DeepSpeed "
                        "accelerate config (accelerate_configs/zero2.yaml or zero3.yaml) or DDP")
