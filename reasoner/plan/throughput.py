"""How long one GRPO step takes on a layout: a stated throughput model, so layouts can be compared before a run.

A step generates its completions, pushes the new weights to the generation engine, and trains on them; TRL
runs the three one after the other, so the step time is their sum:

* **generation** is decode-bound by memory bandwidth: every decode step reads the engine's weight shard and
  the KV cache of the sequences it holds at once. ``completion`` decode steps per wave (completions run to
  ``max_completion_length``: an upper bound), as many waves as the KV cache needs to hold the engine's share of
  the batch, plus the prompt's prefill at the training MFU. Tensor parallelism splits the reads but adds two
  all-reduces per layer to every decode step (``allreduce_latency_us`` each, plus the activations over NVLink). Engines run in parallel (colocated: one per
  tensor-parallel group of ranks; a server: one). A colocated engine in sleep mode (``vllm_enable_sleep_mode``)
  also pays ``sleep_wake_s`` per step: TRL sleeps it at level 2 after generating (weights and KV cache freed) and
  wakes both before the next weight sync and generation, so their memory is mapped again every step.
* **training** is compute-bound: ``6 P`` FLOPs per token for the forward and backward pass, ``2 P`` more for
  the recomputation of activation checkpointing and for the reference model's forward when ``beta > 0``, over
  prompt plus completion tokens, at ``train_mfu`` of ``gpu_peak_tflops`` on every training GPU.
* **weight sync** moves the 16-bit weights: under ZeRO-3 gathered over the interconnect (between nodes when
  there are several), then, for a server, broadcast from rank zero over NVLink when the server shares its node,
  else over the network. Colocated engines under ZeRO-0/2 copy from memory.

Every number is a ``resources.*`` recipe value (defaults: an H100 SXM node on 400 Gb/s InfiniBand), printed
with the plan, so a user on other hardware restates them instead of trusting a hidden constant.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from reasoner.plan.formulas import VLLM_MAX_NUM_SEQS, kv_bytes_per_token
from reasoner.plan.shapes import ModelShape
from reasoner.recipe.sections import ResourcesSection

THROUGHPUT_DOC = "throughput model: "


def _assumptions() -> dict[str, tuple[float, str]]:
    """resources key -> (default, what it means), read from the ``resources`` section's own fields (those whose doc
    says they belong to the throughput model): the recipe's definition is the only one. The defaults describe an
    H100 SXM 80 GB node on 400 Gb/s InfiniBand."""
    return {field.name: (float(field.default), field.metadata["doc"].removeprefix(THROUGHPUT_DOC))
            for field in dataclasses.fields(ResourcesSection) if field.metadata["doc"].startswith(THROUGHPUT_DOC)}


ASSUMPTIONS: dict[str, tuple[float, str]] = _assumptions()


@dataclasses.dataclass(frozen=True)
class Hardware:
    """The assumptions of the throughput model, read from a recipe's ``resources``."""

    values: Mapping[str, float]

    @classmethod
    def from_resources(cls, resources: ResourcesSection) -> "Hardware":
        """The assumptions a recipe's ``resources`` section states (a stated 0 is kept, not taken for unset)."""
        return cls({key: float(default if getattr(resources, key) is None else getattr(resources, key))
                    for key, (default, _) in ASSUMPTIONS.items()})

    def __getattr__(self, key: str) -> float:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None

    def lines(self) -> list[str]:
        """One line per assumption: ``resources.KEY = VALUE  (meaning)``."""
        return [f"resources.{key} = {self.values[key]:g}  ({meaning})" for key, (_, meaning) in ASSUMPTIONS.items()]


@dataclasses.dataclass(frozen=True)
class Work:
    """What one optimizer step does, independent of the layout's split."""

    shape: ModelShape
    prompt: int
    completion: int
    completions: int  # generated and trained on per optimizer step
    passes: int  # 2P-FLOP passes per token in training (6 forward+backward, +2 checkpointing, +2 reference)
    weight_bytes: int  # bytes per parameter the engine serves


@dataclasses.dataclass(frozen=True)
class Engines:
    """The generation engines of a layout: how many, their tensor-parallel size, sequences each holds at once."""

    count: int
    tensor_parallel: int
    at_once: int  # sequences one engine's KV cache holds together (0: unknown, take the whole share)
    same_node_as_rank0: bool  # a server on rank zero's node (weights cross NVLink, not the network)
    colocated: bool
    sleeps: bool = False  # colocated in sleep mode: freed after generating, woken before the next step


@dataclasses.dataclass(frozen=True)
class StepEstimate:
    """Seconds of one optimizer step, by phase."""

    generate_s: float
    train_s: float
    sync_s: float
    completions: int

    @property
    def total_s(self) -> float:
        return self.generate_s + self.train_s + self.sync_s

    @property
    def completions_per_s(self) -> float:
        return self.completions / self.total_s if self.total_s > 0 else 0.0


def generation_seconds(work: Work, engines: Engines, hw: Hardware) -> float:
    """Decode (bandwidth-bound) plus prefill (compute-bound) of one engine's share of the batch, plus sleep mode's
    wake-up and sleep when the engine uses it."""
    tp = max(1, engines.tensor_parallel)
    share = math.ceil(work.completions / max(1, engines.count))
    at_once = min(share, engines.at_once or share, VLLM_MAX_NUM_SEQS)
    waves = math.ceil(share / max(1, at_once))
    context = work.prompt + work.completion / 2  # mean tokens in the KV cache over a decode
    read = work.weight_bytes * work.shape.params / tp + at_once * context * kv_bytes_per_token(
        work.shape, work.weight_bytes, tp)
    step = read / (hw.gpu_memory_bandwidth_gbps * 1e9 * hw.decode_bandwidth_share)
    if tp > 1:  # two all-reduces of the batch's hidden states per layer
        exchanged = 2 * at_once * work.shape.hidden_size * work.weight_bytes
        step += 2 * work.shape.num_layers * (hw.allreduce_latency_us * 1e-6 + exchanged / (hw.intra_node_gbps * 1e9))
    decode = work.completion * step
    prefill = 2 * work.shape.params * at_once * work.prompt / (tp * hw.gpu_peak_tflops * 1e12 * hw.train_mfu)
    return waves * (decode + prefill) + (hw.sleep_wake_s if engines.sleeps else 0.0)


def training_seconds(work: Work, training_gpus: int, hw: Hardware) -> float:
    """The step's training FLOPs over every training GPU at the assumed MFU."""
    flops = work.passes * work.shape.params * work.completions * (work.prompt + work.completion)
    return flops / (max(1, training_gpus) * hw.gpu_peak_tflops * 1e12 * hw.train_mfu)


def sync_seconds(work: Work, engines: Engines, *, zero_stage: int, nodes: int, hw: Hardware) -> float:
    """Moving the new 16-bit weights into the engines."""
    size = work.weight_bytes * work.shape.params
    link = (hw.inter_node_gbps if nodes > 1 else hw.intra_node_gbps) * 1e9
    gather = size / link if zero_stage == 3 else 0.0
    if engines.colocated:
        return gather or size / (hw.gpu_memory_bandwidth_gbps * 1e9)
    push = size / ((hw.intra_node_gbps if engines.same_node_as_rank0 else hw.inter_node_gbps) * 1e9)
    return gather + push


def step_estimate(work: Work, engines: Engines, *, training_gpus: int, zero_stage: int, nodes: int,
                  hw: Hardware) -> StepEstimate:
    """One optimizer step on a layout, by phase (see the module's docstring for the model)."""
    return StepEstimate(generate_s=generation_seconds(work, engines, hw), train_s=training_seconds(work, training_gpus, hw),
                        sync_s=sync_seconds(work, engines, zero_stage=zero_stage, nodes=nodes, hw=hw),
                        completions=work.completions)
