"""The recipe format: which sections and keys a recipe may hold, of which types, and how a value is checked.

Kept apart from loading so that the answer to "what may a recipe say?" sits in one table. The ``grpo`` section is
not described here: TRL's own ``GRPOConfig`` fields are its schema, read from the installed TRL.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from typing import Any, Mapping

from reasoner.errors import UserError
from reasoner.tasks.formats import FORMATS
from reasoner.tasks.spec import ANSWER_SCHEMA

# Section schemas: key -> (accepted python types, default). ``None`` in the types means "may be null".
STR = (str,)
OPT_STR = (str, type(None))
BOOL = (bool,)
INT = (int,)
NUM = (int, float)
LIST = (list,)

SECTION_SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "model": {
        "id": (STR, None),
        "revision": (OPT_STR, "main"),
        "dtype": (STR, "auto"),
        # float32 weights for the optimizer unless false (see reasoner.train.precision)
        "fp32_master_weights": (BOOL, True),
        "attn_implementation": (OPT_STR, None),
    },
    "dataset": {
        "id": (STR, "generated"),
        "config": (OPT_STR, None),
        "split": (STR, "train"),
        "revision": (OPT_STR, "main"),
        "question_column": (STR, "question"),
        "answer_column": (STR, "answer"),
        "system_column": (OPT_STR, None),  # a column with each row's own system prompt
        # multiple choice: the options as a list or {label, text} column, or one column per option
        "choices_column": (OPT_STR, None),
        "choice_columns": ((list, type(None)), None),
        "choices_template": (OPT_STR, None),  # "{question}\n\n{choices}" unless set
        "choice_line": (OPT_STR, None),  # "({label}) {text}" unless set
        "mix": (LIST, []),  # several data sets mixed by weight (reasoner.tasks.spec)
        "max_prompt_tokens": ((int, type(None)), None),
        "num_generated": (INT, 256),
        "limit": ((int, type(None)), None),
    },
    "answer": ANSWER_SCHEMA,  # how gold answers are read and compared (reasoner.tasks.formats)
    "prompt": {
        "system": (STR, "default"),
        "few_shot": (LIST, []),
        "chat_template": (OPT_STR, None),  # Jinja text or a file beside the recipe (reasoner.recipe.chattemplate)
    },
    "generation": {
        "backend": (STR, "transformers"),
        "placement": (STR, "auto"),
        "tensor_parallel_size": (INT, 1),
        "gpu_memory_utilization": (NUM, 0.3),
    },
    "hub": {
        "repo_id": (OPT_STR, None),
        "push": (BOOL, False),
        "private": (BOOL, False),
        "push_checkpoints": (BOOL, True),
    },
    "resources": {  # the layout a recipe is sized for, and what reasoner plan assumes about it
        "nodes": (INT, 1),
        "gpus_per_node": (INT, 1),
        "gpu_memory_gb": (NUM, 80),
        "signal_lead_s": (NUM, 120),  # seconds SLURM's warning comes before the kill (sbatch --signal=B:USR1@N)
        "checkpoint_write_gbps": (NUM, 1.0),  # GB/s one node writes to the output folder
        # the throughput model's assumptions (reasoner.plan.throughput), printed with every plan
        "gpu_peak_tflops": (NUM, 989.0),  # dense bf16 TFLOP/s per GPU
        "train_mfu": (NUM, 0.35),  # share of peak the training passes reach
        "gpu_memory_bandwidth_gbps": (NUM, 3350.0),  # HBM GB/s per GPU
        "decode_bandwidth_share": (NUM, 0.6),  # share of HBM bandwidth a decode step reaches
        "intra_node_gbps": (NUM, 300.0),  # GB/s between GPUs of a node
        "inter_node_gbps": (NUM, 50.0),  # GB/s per GPU between nodes
        "allreduce_latency_us": (NUM, 15.0),  # one small all-reduce of a tensor-parallel decode step
    },
    "tracking": {
        "samples_every": (INT, 10),
        "samples": (INT, 4),
    },
    "eval": {
        "after_training": (BOOL, False),
        "split": (STR, "test"),
        "limit": ((int, type(None)), 200),
        # a seeded fraction of a split-less source's rows kept out of training for evaluation (e.g. 0.1)
        "holdout": ((int, float, type(None)), None),
        "samples": (INT, 1),  # completions per question: 1 is greedy; K > 1 samples and reports pass@K, maj@K
        "temperature": ((int, float, type(None)), None),  # sampling temperature (default: grpo.temperature)
        "top_p": ((int, float, type(None)), None),  # nucleus sampling (default: grpo.top_p, else 1.0)
        "max_new_tokens": ((int, type(None)), None),  # completion length (default: grpo.max_completion_length)
    },
}
TOP_LEVEL_SCALARS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": (STR, "recipe"),
    "accelerate_config": (OPT_STR, None),
}
SECTIONS = (*SECTION_SCHEMAS, "rewards", "reward_args", "grpo", "peft")  # peft: PEFT LoraConfig keys (reasoner.lora)
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("generation", "backend"): ("transformers", "vllm"),
    ("generation", "placement"): ("auto", "colocate", "dedicated-gpu", "dedicated-node"),
    ("model", "dtype"): ("auto", "float32", "bfloat16", "float16"),
    ("answer", "format"): FORMATS,
}
# GRPOConfig keys the recipe derives from its own sections; setting them directly would contradict those.
DERIVED_GRPO_KEYS = {
    "use_vllm": "generation.backend",
    "vllm_mode": "generation.placement",
    "push_to_hub": "hub.push",
    "hub_model_id": "hub.repo_id",
    "reward_weights": "rewards",
    "hub_token": "the HF_TOKEN environment variable",
}


def grpo_fields() -> dict[str, dataclasses.Field]:
    """GRPOConfig's fields, the authority on what the ``grpo`` section may hold."""
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


def known_keys(fields: Mapping[str, Any]) -> list[str]:
    keys = list(TOP_LEVEL_SCALARS) + list(fields)
    for section, schema in SECTION_SCHEMAS.items():
        keys += [f"{section}.{k}" for k in schema]
    return keys


# keys people reach for that TRL does not have, and what to do instead (no did-you-mean: the near key is another thing)
NOT_IN_TRL = {
    "vllm_data_parallel_size": "TRL has no vLLM data parallelism for dense models; for more generation throughput "
                               "let reasoner plan choose (colocated vLLM generates on every GPU) or raise "
                               "generation.tensor_parallel_size",
}


def unknown_key(key: str, fields: Mapping[str, Any], where: str = "") -> UserError:
    name = key.replace("-", "_").rsplit(".", 1)[-1]
    name = name if name in NOT_IN_TRL else f"vllm_{name}"
    if name in NOT_IN_TRL:
        return UserError(f"{key}: {NOT_IN_TRL[name]}")
    close = difflib.get_close_matches(key.replace("-", "_"), known_keys(fields), n=1, cutoff=0.7)
    hint = f"did you mean '{close[0]}'?" if close else "see the packaged recipes for the valid keys"
    return UserError(
        f"unknown recipe key '{key}'{where}: it is neither a recipe key nor a TRL GRPOConfig field; {hint}"
    )


def unknown_top_level_key(key: str, fields: Mapping[str, Any], where: str = "") -> UserError:
    """A top-level key of a recipe file that is no section or scalar: the nearest section name (``modle`` ->
    ``model``) first, since that is what a top-level typo almost always is, else any known key."""
    owners = [section for section, schema in SECTION_SCHEMAS.items() if key in schema] + (["grpo"] if key in fields else [])
    if owners:
        return UserError(f"recipe key '{key}'{where} is at the top level, but it belongs in a section: move it under "
                         f"{' or '.join(f'{owner}:' for owner in owners)}")
    close = difflib.get_close_matches(str(key), [*SECTIONS, *TOP_LEVEL_SCALARS, "base"], n=1, cutoff=0.75)
    if not close:
        return unknown_key(str(key), fields, where)
    return UserError(f"unknown recipe key '{key}'{where}: did you mean '{close[0]}'? "
                     f"(the top level holds: {', '.join([*SECTIONS, *TOP_LEVEL_SCALARS, 'base'])})")


def coerce(value: Any, types: tuple[type, ...]) -> Any:
    """Accept what YAML makes of command-line text when it is unambiguous (``5e-6`` is a str to YAML)."""
    if isinstance(value, bool) and bool not in types:
        return value  # never let True pass as 1
    if isinstance(value, types):
        return value
    if isinstance(value, str):
        for kind in (int, float):
            if kind in types:
                try:
                    return kind(value)
                except ValueError:
                    pass
    if isinstance(value, int) and float in types:
        return float(value)
    return value


def type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    shown = [t for t in types if not (t is int and float in types)]
    return " or ".join(names.get(t, t.__name__) for t in shown)


def field_types(field: dataclasses.Field) -> tuple[type, ...] | None:
    """The plain python types a GRPOConfig field accepts, or None when it is too rich to check here."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    text = str(annotation).replace("typing.", "").replace("Optional[", "").replace("]", "")
    parts = {p.strip() for p in text.replace("Union[", "").replace(",", "|").split("|")}
    mapping = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None), "NoneType": type(None),
               "list": list, "dict": dict}
    types: list[type] = []
    for part in parts:
        base = part.split("[")[0]
        if base not in mapping:
            return None  # enums, literals, nested types: GRPOConfig checks those itself
        types.append(mapping[base])
    if float in types and int not in types:
        types.append(int)
    return tuple(types)


def split_list(value: Any, types: tuple[type, ...]) -> Any:
    """A comma list (``wandb,tensorboard``, as the command line writes it) as a list, for a key that holds a list;
    a key that also takes one string keeps a string without a comma (``report_to: none``)."""
    if list in types and isinstance(value, str) and ("," in value or str not in types):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_section(section: str, values: Any, schema: Mapping[str, tuple[tuple[type, ...], Any]]) -> dict:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"recipe section '{section}' must be a mapping of keys, not {type(values).__name__}")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in schema and f"vllm_{key}" in NOT_IN_TRL:
            raise UserError(f"{section}.{key}: {NOT_IN_TRL['vllm_' + key]}")
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"did you mean '{section}.{close[0]}'?" if close else f"valid keys: {', '.join(schema)}"
            raise UserError(f"unknown recipe key '{section}.{key}': {hint}")
        types, _default = schema[key]
        value = coerce(value, types)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise UserError(
                f"recipe key '{section}.{key}' must be {type_name(types)}, got {value!r}; fix it in the recipe or with --{section}.{key}"
            )
        allowed = ENUMS.get((section, key))
        if allowed and value not in allowed:
            raise UserError(f"recipe key '{section}.{key}' is {value!r}; use one of: {', '.join(allowed)}")
        checked[key] = value
    for key, (_types, default) in schema.items():
        checked.setdefault(key, copy.deepcopy(default))
    return checked


def check_grpo(values: Any, fields: Mapping[str, dataclasses.Field]) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("recipe section 'grpo' must be a mapping of TRL GRPOConfig keys")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in DERIVED_GRPO_KEYS:
            raise UserError(f"recipe key 'grpo.{key}' is set from {DERIVED_GRPO_KEYS[key]}: set that instead")
        if key not in fields:
            raise unknown_key(f"grpo.{key}", fields, " (not a field of TRL's GRPOConfig)")
        types = field_types(fields[key])
        if types is not None:
            value = coerce(split_list(value, types), types)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise UserError(
                    f"recipe key '{key}' must be {type_name(types)}, got {value!r}; fix it in the recipe or with --{key}"
                )
        checked[key] = value
    return checked
