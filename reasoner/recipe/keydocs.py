"""One line per recipe key, for ``reasoner train --help`` and ``reasoner recipe-keys``.

Types, defaults and allowed values come from the schema (reasoner.recipe.schema); only the sentence saying what a
key is for lives here, and a test keeps the two in step (every key has a line, no line names a key that is gone).
The ``grpo`` section is TRL's ``GRPOConfig``, documented by TRL itself.
"""

from __future__ import annotations

from typing import Any

from reasoner.recipe.schema import ENUMS, SECTION_SCHEMAS, TOP_LEVEL_SCALARS, type_name

KEY_DOCS: dict[str, str] = {
    "name": "the run's name: the output folder and the pushed repo are named after it",
    "accelerate_config": "the accelerate config the launchers use (DDP, ZeRO-2, ZeRO-3)",
    "model.id": "base model: a hub repo id, a local folder, or a built-in model (tiny, smollm2)",
    "model.revision": "branch, tag or commit of the model; a run pins it to a commit once",
    "model.dtype": "dtype the weights are loaded in",
    "model.fp32_master_weights": "keep float32 weights for the optimizer under bf16/fp16 autocast",
    "model.attn_implementation": "attention kernel passed to transformers (e.g. sdpa, flash_attention_2)",
    "dataset.id": "data set: a hub repo id, a local file or folder (JSONL, JSON, CSV, Parquet), or 'generated'",
    "dataset.config": "the data set's config (subset) name, e.g. main for openai/gsm8k",
    "dataset.split": "split the training rows come from",
    "dataset.revision": "branch, tag or commit of the data set; a run pins it to a commit once",
    "dataset.question_column": "column holding the question",
    "dataset.answer_column": "column holding the gold answer (or the worked solution it is read from)",
    "dataset.system_column": "column with each row's own system prompt",
    "dataset.choices_column": "multiple choice: a column holding the options (a list, or {label, text})",
    "dataset.choice_columns": "multiple choice: one column per option, in order",
    "dataset.choices_template": "multiple choice: how the question and the options make the prompt",
    "dataset.choice_line": "multiple choice: how one option is written ({label}, {text})",
    "dataset.mix": "several data sets mixed by weight, each with its own columns and answer format",
    "dataset.max_prompt_tokens": "drop rows whose prompt is longer than this many tokens",
    "dataset.num_generated": "rows of the built-in generated arithmetic task",
    "dataset.limit": "use at most this many rows",
    "answer.format": "how gold answers are read and compared",
    "answer.pattern": "regex whose first group is the answer (answer.format regex)",
    "answer.compare": "how two answers are compared, when not the format's own way",
    "answer.index_from": "multiple choice: a numeric gold key counts options from 0 or 1",
    "answer.read_from": "where a completion's answer is read: tags, boxed, or either",
    "prompt.system": "system prompt: 'default' (the answer-tag instructions), 'none', or the text itself",
    "prompt.few_shot": "worked examples put before each question ({question, answer} pairs)",
    "prompt.chat_template": "a chat template (Jinja text, or a .jinja file beside the recipe) instead of the tokenizer's",
    "generation.backend": "what generates completions: transformers in the training process, or vLLM",
    "generation.placement": "where vLLM runs: auto, colocate, dedicated-gpu, dedicated-node",
    "generation.tensor_parallel_size": "GPUs per vLLM engine",
    "generation.gpu_memory_utilization": "share of a GPU's memory vLLM may take",
    "hub.repo_id": "repo the model and checkpoints are pushed to (ORG/NAME)",
    "hub.push": "push the final model (and checkpoints) to hub.repo_id from rank zero",
    "hub.private": "create the pushed repo private",
    "hub.push_checkpoints": "push every saved checkpoint too (resume from the hub on another machine)",
    "resources.nodes": "nodes the recipe is sized for (reasoner plan)",
    "resources.gpus_per_node": "GPUs per node the recipe is sized for",
    "resources.gpu_memory_gb": "GPU memory the plan assumes when it cannot read the GPUs",
    "resources.signal_lead_s": "seconds SLURM's warning comes before the kill (sbatch --signal=B:USR1@N)",
    "resources.checkpoint_write_gbps": "GB/s one node writes to the output folder (save time in the plan)",
    "resources.gpu_peak_tflops": "throughput model: dense bf16 TFLOP/s per GPU",
    "resources.train_mfu": "throughput model: share of peak FLOP/s the training passes reach",
    "resources.gpu_memory_bandwidth_gbps": "throughput model: GPU memory (HBM) GB/s per GPU",
    "resources.decode_bandwidth_share": "throughput model: share of memory bandwidth a decode step reaches",
    "resources.intra_node_gbps": "throughput model: GB/s between the GPUs of a node (weight sync, tensor parallel)",
    "resources.inter_node_gbps": "throughput model: GB/s per GPU between nodes",
    "resources.allreduce_latency_us": "throughput model: one small all-reduce of a tensor-parallel decode step",
    "tracking.samples_every": "log sample completions every this many steps",
    "tracking.samples": "completions shown each time",
    "eval.after_training": "evaluate the base and the trained model after training, into the model card",
    "eval.split": "split the evaluation questions come from",
    "eval.limit": "evaluate on at most this many questions",
    "eval.holdout": "fraction of a split-less source's rows kept out of training for evaluation",
    "eval.samples": "completions per question: 1 is greedy; K > 1 reports pass@1 (mean), pass@K and maj@K",
    "eval.temperature": "sampling temperature (default: grpo.temperature)",
    "eval.top_p": "nucleus sampling (default: grpo.top_p, else 1.0)",
    "eval.max_new_tokens": "completion length (default: grpo.max_completion_length)",
}


def schema_keys() -> dict[str, tuple[tuple[type, ...], Any]]:
    """Every recipe key outside ``grpo``, dotted, with its accepted types and default."""
    keys = dict(TOP_LEVEL_SCALARS)
    for section, schema in SECTION_SCHEMAS.items():
        keys.update({f"{section}.{key}": value for key, value in schema.items()})
    return keys


def key_lines() -> list[str]:
    """``--section.key  doc (type; default ...; one of ...)`` for every key, in schema order."""
    lines = []
    for dotted, (types, default) in schema_keys().items():
        section, _, key = dotted.rpartition(".")
        allowed = ENUMS.get((section, key))
        detail = f"{type_name(types)}; default {default!r}" + (f"; one of {', '.join(allowed)}" if allowed else "")
        lines.append(f"  --{dotted:<34} {KEY_DOCS.get(dotted, '')} ({detail})")
    return lines


def help_epilog() -> str:
    return ("recipe keys (set in the YAML or as --key value; lists as a comma list):\n" + "\n".join(key_lines())
            + "\n  --peft.<LoraConfig field>            a LoRA adapter instead of full fine-tuning, e.g. --peft.r 8 "
              "(PEFT's LoraConfig; docs/lora.md)"
            + "\n  --<GRPOConfig field>                 any TRL GRPOConfig field, e.g. --max_steps 100 "
              "--learning_rate 1e-6 (TRL's documentation)")
