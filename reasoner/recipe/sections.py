"""The recipe's sections as typed, frozen dataclasses: the one definition of every recipe key.

Each field carries the key's type (its annotation), its default, and a one-line doc (``metadata["doc"]``; allowed
values in ``metadata["choices"]``). Validation and defaults (reasoner.recipe.schema), the ``--key`` overrides
(reasoner.recipe.overrides), ``reasoner train --help`` (reasoner.recipe.keydocs) and the dry run's printout
(``Recipe.to_yaml``) are all read from these classes, so adding a key is adding a field here.

The open sections are not declared here: ``grpo`` holds TRL's ``GRPOConfig`` fields (TRL's dataclass is their
definition), ``peft`` PEFT's ``LoraConfig`` fields, ``rewards`` and ``reward_args`` the names of reward functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from reasoner.errors import UserError
from reasoner.tasks.formats import AnswerSpec
from reasoner.tasks.spec import TaskSource, task_sources

DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("transformers", "vllm")
PLACEMENTS = ("auto", "colocate", "dedicated-gpu", "dedicated-node")
DEFAULT_SEED = 42  # TRL's own default of grpo.seed


def key(default: Any, doc: str, choices: tuple[str, ...] | None = None) -> Any:
    """A recipe key: its default, one line saying what it is for, and the values it may take (if a closed set)."""
    metadata: dict[str, Any] = {"doc": doc, **({"choices": choices} if choices else {})}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The model trained: where it comes from, and how its weights are loaded."""

    id: str | None = key(None, "base model: a hub repo id, a local folder, or a built-in model (tiny, smollm2)")
    revision: str | None = key("main", "branch, tag or commit of the model; a run pins it to a commit once")
    dtype: str = key("auto", "dtype the weights are loaded in", DTYPES)
    # float32 weights for the optimizer unless false (see reasoner.train.precision)
    fp32_master_weights: bool = key(True, "keep float32 weights for the optimizer under bf16/fp16 autocast")
    attn_implementation: str | None = key(None, "attention kernel passed to transformers (e.g. sdpa, flash_attention_2)")


@dataclasses.dataclass(frozen=True)
class DatasetSection:
    """The training data: one data set and its columns, or several mixed by weight (reasoner.tasks.spec)."""

    id: str = key("generated", "data set: a hub repo id, a local file or folder (JSONL, JSON, CSV, Parquet), or 'generated'")
    config: str | None = key(None, "the data set's config (subset) name, e.g. main for openai/gsm8k")
    split: str = key("train", "split the training rows come from")
    revision: str | None = key("main", "branch, tag or commit of the data set; a run pins it to a commit once")
    question_column: str = key("question", "column holding the question")
    answer_column: str = key("answer", "column holding the gold answer (or the worked solution it is read from)")
    system_column: str | None = key(None, "column with each row's own system prompt")
    choices_column: str | None = key(None, "multiple choice: a column holding the options (a list, or {label, text})")
    choice_columns: list[str] | None = key(None, "multiple choice: one column per option, in order")
    choices_template: str | None = key(None, "multiple choice: how the question and the options make the prompt")
    choice_line: str | None = key(None, "multiple choice: how one option is written ({label}, {text})")
    mix: list[dict[str, Any]] = key([], "several data sets mixed by weight, each with its own columns and answer format")
    max_prompt_tokens: int | None = key(None, "drop rows whose prompt is longer than this many tokens")
    num_generated: int = key(256, "rows of the built-in generated arithmetic task")
    limit: int | None = key(None, "use at most this many rows")


@dataclasses.dataclass(frozen=True)
class PromptSection:
    """What each question is wrapped in before the model sees it."""

    system: str = key("default", "system prompt: 'default' (the answer-tag instructions), 'none', or the text itself")
    few_shot: list[dict[str, Any]] = key([], "worked examples put before each question ({question, answer} pairs)")
    # Jinja text, or a file beside the recipe read at load time (reasoner.recipe.chattemplate)
    chat_template: str | None = key(None, "a chat template (Jinja text, or a .jinja file beside the recipe) instead of "
                                          "the tokenizer's")


@dataclasses.dataclass(frozen=True)
class GenerationSection:
    """What generates the completions, and where."""

    backend: str = key("transformers", "what generates completions: transformers in the training process, or vLLM",
                       BACKENDS)
    placement: str = key("auto", "where vLLM runs: auto, colocate, dedicated-gpu, dedicated-node", PLACEMENTS)
    tensor_parallel_size: int = key(1, "GPUs per vLLM engine")
    gpu_memory_utilization: float = key(0.3, "share of a GPU's memory vLLM may take")

    @property
    def uses_vllm(self) -> bool:
        return self.backend == "vllm"


@dataclasses.dataclass(frozen=True)
class HubSection:
    """Where the trained model and its checkpoints are pushed (only global rank zero talks to the hub)."""

    repo_id: str | None = key(None, "repo the model and checkpoints are pushed to (ORG/NAME)")
    push: bool = key(False, "push the final model (and checkpoints) to hub.repo_id from rank zero")
    private: bool = key(False, "create the pushed repo private")
    push_checkpoints: bool = key(True, "push every saved checkpoint too (resume from the hub on another machine)")

    @property
    def push_repo(self) -> str | None:
        """The repo this run pushes to: ``repo_id`` when ``push`` is on, else None (nothing is pushed)."""
        return self.repo_id if self.push else None

    def checkpoint_repo(self) -> str:
        """The repo an earlier run pushed its checkpoints to, for ``--resume-from-hub``."""
        if not self.repo_id:
            raise UserError("--resume-from-hub needs hub.repo_id, the repo an earlier run pushed checkpoints to: "
                            "set it in the recipe or with --hub.repo_id ORG/NAME")
        return self.repo_id


@dataclasses.dataclass(frozen=True)
class ResourcesSection:
    """The layout a recipe is sized for, and what ``reasoner plan`` assumes about its hardware."""

    nodes: int = key(1, "nodes the recipe is sized for (reasoner plan)")
    gpus_per_node: int = key(1, "GPUs per node the recipe is sized for")
    gpu_memory_gb: float = key(80, "GPU memory the plan assumes when it cannot read the GPUs")
    signal_lead_s: float = key(120, "seconds SLURM's warning comes before the kill (sbatch --signal=B:USR1@N)")
    checkpoint_write_gbps: float = key(1.0, "GB/s one node writes to the output folder (save time in the plan)")
    # the throughput model's assumptions (reasoner.plan.throughput), printed with every plan
    gpu_peak_tflops: float = key(989.0, "throughput model: dense bf16 TFLOP/s per GPU")
    train_mfu: float = key(0.35, "throughput model: share of peak FLOP/s the training passes reach")
    gpu_memory_bandwidth_gbps: float = key(3350.0, "throughput model: GPU memory (HBM) GB/s per GPU")
    decode_bandwidth_share: float = key(0.6, "throughput model: share of memory bandwidth a decode step reaches")
    intra_node_gbps: float = key(300.0, "throughput model: GB/s between the GPUs of a node (weight sync, tensor parallel)")
    inter_node_gbps: float = key(50.0, "throughput model: GB/s per GPU between nodes")
    allreduce_latency_us: float = key(15.0, "throughput model: one small all-reduce of a tensor-parallel decode step")
    sleep_wake_s: float = key(1.0, "throughput model: seconds per step a colocated vLLM in sleep mode spends being "
                                   "woken (weights, KV cache) and put back to sleep")


@dataclasses.dataclass(frozen=True)
class TrackingSection:
    """Sample completions logged while training."""

    samples_every: int = key(10, "log sample completions every this many steps")
    samples: int = key(4, "completions shown each time")


@dataclasses.dataclass(frozen=True)
class EvalSection:
    """Evaluation after training, and the decoding ``reasoner eval --recipe`` uses."""

    after_training: bool = key(False, "evaluate the base and the trained model after training, into the model card")
    split: str = key("test", "split the evaluation questions come from")
    limit: int | None = key(200, "evaluate on at most this many questions")
    holdout: float | None = key(None, "fraction of a split-less source's rows kept out of training for evaluation")
    samples: int = key(1, "completions per question: 1 is greedy; K > 1 reports pass@1 (mean), pass@K and maj@K")
    temperature: float | None = key(None, "sampling temperature (default: grpo.temperature)")
    top_p: float | None = key(None, "nucleus sampling (default: grpo.top_p, else 1.0)")
    max_new_tokens: int | None = key(None, "completion length (default: grpo.max_completion_length)")


def open_section(doc: str, factory: Any = dict) -> Any:
    """A section whose keys are defined elsewhere (TRL, PEFT, the reward registry), checked by their own rules."""
    return dataclasses.field(default_factory=factory, metadata={"open": doc})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe: one typed object per section, so every reader names the attribute it reads."""

    name: str = key("recipe", "the run's name: the output folder and the pushed repo are named after it")
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    dataset: DatasetSection = dataclasses.field(default_factory=DatasetSection)
    prompt: PromptSection = dataclasses.field(default_factory=PromptSection)
    rewards: dict[str, float] = open_section("reward names and their weights")
    generation: GenerationSection = dataclasses.field(default_factory=GenerationSection)
    hub: HubSection = dataclasses.field(default_factory=HubSection)
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)
    grpo: dict[str, Any] = open_section("TRL GRPOConfig keys")
    resources: ResourcesSection = dataclasses.field(default_factory=ResourcesSection)
    tracking: TrackingSection = dataclasses.field(default_factory=TrackingSection)
    answer: AnswerSpec = dataclasses.field(default_factory=AnswerSpec)
    reward_args: dict[str, dict[str, Any]] = open_section("keyword arguments per reward")
    peft: dict[str, Any] = open_section("PEFT LoraConfig keys (reasoner.lora); empty: every weight trains")
    accelerate_config: str | None = key(None, "the accelerate config the launchers use (DDP, ZeRO-2, ZeRO-3)")
    source: str = ""  # the file it was read from; not a recipe key

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo["output_dir"])

    @property
    def seed(self) -> int:
        """The run's seed (``grpo.seed``, TRL's 42 unless set): it also picks the data's order and hold-out."""
        return int(self.grpo.get("seed", DEFAULT_SEED))

    @property
    def task_sources(self) -> list[TaskSource]:
        """The task's data sets (the one data set, or each ``dataset.mix`` entry), in recipe order."""
        return task_sources(self.dataset, self.answer)
