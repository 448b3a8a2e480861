"""What a training run does differently when it trains an adapter: the config TRL gets, and the base it names.

Kept out of the trainer's run loop so the loop reads the same with or without LoRA: :func:`adapter_config` is
``None`` for a full fine-tune, and :func:`name_base` does nothing then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from reasoner.lora.config import build_lora_config, enabled


def adapter_config(peft: Mapping[str, Any], base_id: str, revision: str | None, is_main: bool,
                   callbacks: list) -> Any:
    """The ``peft_config`` for TRL's GRPOTrainer (None: every weight trains). With an adapter, a callback that
    names the pinned base in each checkpoint goes first in ``callbacks``, before any callback pushes the save."""
    if not enabled(peft):
        return None
    from reasoner.lora.adapter import base_naming_callback

    callbacks.insert(0, base_naming_callback(base_id, revision, is_main))
    return build_lora_config(peft)


def name_base(peft: Mapping[str, Any], output_dir: Path, base_id: str, revision: str | None) -> None:
    """Record the recipe's model and pinned commit as the final adapter's base: one any machine can load."""
    if enabled(peft):
        from reasoner.lora.adapter import record_base

        record_base(output_dir, base_id, revision)
