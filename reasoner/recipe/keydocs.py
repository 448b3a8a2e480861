"""``reasoner train --help``'s list of recipe keys, read from the section dataclasses (reasoner.recipe.sections).

Nothing is written here about any key: its doc line, type, default and allowed values are the field's, so a key
added to a section appears in the help as it is accepted by the recipe and the command line.
The ``grpo`` section is TRL's ``GRPOConfig``, documented by TRL itself.
"""

from __future__ import annotations

from reasoner.recipe.schema import KeySpec, section_keys, section_types, top_level_keys


def schema_keys() -> dict[str, KeySpec]:
    """Every recipe key outside the open sections (``grpo``, ``peft``, ``rewards``), dotted, in recipe order."""
    keys = dict(top_level_keys())
    for section, section_type in section_types().items():
        keys.update({f"{section}.{key}": spec for key, spec in section_keys(section_type).items()})
    return keys


def key_lines() -> list[str]:
    """``--section.key  doc (type; default ...; one of ...)`` for every key."""
    return [f"  --{dotted:<34} {spec.doc} ({spec.describe()})" for dotted, spec in schema_keys().items()]


def help_epilog() -> str:
    return ("recipe keys (set in the YAML or as --key value; lists as a comma list):\n" + "\n".join(key_lines())
            + "\n  --peft.<LoraConfig field>            a LoRA adapter instead of full fine-tuning, e.g. --peft.r 8 "
              "(PEFT's LoraConfig; docs/lora.md)"
            + "\n  --<GRPOConfig field>                 any TRL GRPOConfig field, e.g. --max_steps 100 "
              "--learning_rate 1e-6 (TRL's documentation)")
