"""Every layout this project can launch for a recipe on an allocation, each sized and timed, and the fastest.

The candidates (backend vLLM on GPUs), all of which ``reasoner launch-env`` starts as planned:

* ``colocate``: vLLM inside every training rank (TRL ``vllm_mode: colocate``), tensor parallel 1, 2, 4 or 8
  where the model's heads split that way, at a few ``gpu_memory_utilization`` shares, awake when a share fits
  beside training, else in sleep mode (``vllm_enable_sleep_mode``: its weights and KV cache are released while
  training, at ``resources.sleep_wake_s`` a step), on any number of nodes: every GPU trains and generates;
* ``dedicated-gpu``: a vLLM server on k GPUs (tensor parallel k) of the first node and training on every other
  GPU of the allocation, the rest of that node included: no GPU idle. On several nodes the first node runs k
  training processes fewer than the others; the launchers start each node with its own count
  (reasoner.topology.ranks);
* ``dedicated-node``: a whole generation node, only when the recipe or the user asks for it (TRL's client
  talks to one server and TRL has no vLLM data parallelism for dense models, so most of that node idles).

Each candidate is laid out by reasoner.topology (which refuses what cannot work, the batch rule included),
sized by reasoner.plan.estimate and timed by reasoner.plan.throughput. The winner fits and has the shortest
time per completion (its step time over the completions the step trains on: layouts differ in batch size);
the recipe's own placement and tensor-parallel size, when it states them, restrict the search instead of being
overruled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reasoner.errors import UserError
from reasoner.lora.config import enabled as lora_enabled
from reasoner.plan.budget import MemoryPlan
from reasoner.plan.estimate import estimate_for_layout
from reasoner.plan.settings import activation_checkpointing, precision, zero_stage_of
from reasoner.plan.shapes import ModelShape, model_shape
from reasoner.plan.throughput import Engines, Hardware, StepEstimate, Work, step_estimate
from reasoner.topology import Plan, plan_for_recipe

TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
COLOCATE_UTILIZATIONS = (0.3, 0.5, 0.7)  # shares of a GPU a colocated vLLM may take while generating
SERVER_UTILIZATION = 0.9  # a server has its GPUs to itself
NOT_LAUNCHABLE = "not launchable"  # the start of a refusal for a layout no launcher can start (none is today)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One layout of the recipe: how it splits the GPUs, whether it fits, how fast it is (or why it cannot run)."""

    name: str
    placement: str
    tensor_parallel_size: int
    overrides: tuple[str, ...]  # recipe overrides that select this layout (``--generation.placement ...``)
    total_gpus: int
    layout: Plan | None = None
    memory: MemoryPlan | None = None
    step: StepEstimate | None = None
    refused: str | None = None

    @property
    def launchable(self) -> bool:
        return self.refused is None or not self.refused.startswith(NOT_LAUNCHABLE)

    @property
    def gpus(self) -> dict[str, int] | None:
        """GPUs training, generating and idle (colocated GPUs count as both training and generating); None for
        a layout refused before its GPUs were split."""
        return None if self.layout is None else gpu_split(self.layout)

    @property
    def fits(self) -> bool:
        return self.refused is None and self.memory is not None and self.memory.fits

    @property
    def rate(self) -> float:
        """Completions per second (0 when it cannot run or is not timed)."""
        return self.step.completions_per_s if self.step is not None and self.fits else 0.0


def gpu_split(layout: Plan) -> dict[str, int]:
    """A layout's GPUs: total, training, generating (colocated GPUs do both) and idle (neither)."""
    total = layout.nodes * layout.gpus_per_node
    training = layout.num_processes if layout.gpus_per_node else 0
    colocated = layout.placement == "colocate"
    generation = training if colocated else len(layout.generation_gpus)
    busy = training if colocated else training + generation
    return {"total": total, "training": training, "generation": generation, "idle": max(0, total - busy)}


def allowed_placements(recipe: Any, env: Mapping[str, str]) -> tuple[list[str], int | None]:
    """The placements to try and a fixed tensor-parallel size (None: try each), from the recipe and overrides."""
    wanted = env.get("REASONER_PLACEMENT") or recipe.generation.placement or "auto"
    fixed = env.get("REASONER_TP_SIZE") or (None if wanted == "auto" else recipe.generation.tensor_parallel_size)
    tp = None if fixed in (None, "", "auto") else int(fixed)
    return (["colocate", "dedicated-gpu"] if wanted == "auto" else [wanted]), tp


def tensor_parallel_sizes(shape: ModelShape, gpus_per_node: int) -> list[int]:
    """Sizes vLLM can split the model into on one node: heads divide, and KV heads divide or are replicated."""
    sizes = []
    for tp in TENSOR_PARALLEL_SIZES:
        kv_ok = shape.num_kv_heads % tp == 0 if tp <= shape.num_kv_heads else tp % shape.num_kv_heads == 0
        if tp <= gpus_per_node and shape.num_heads % tp == 0 and kv_ok:
            sizes.append(tp)
    return sizes


def _variants(placements: list[str], sizes: list[int], recipe: Any) -> list[tuple[str, int, tuple[tuple[str, ...], ...]]]:
    """(placement, tensor-parallel size, the override sets to try in order: the first that fits wins)."""
    own_utilization = recipe.generation.gpu_memory_utilization
    prompt, completion = recipe.dataset.max_prompt_tokens, recipe.grpo.get("max_completion_length")
    length = ("--vllm_max_model_length", str(prompt + completion)) if isinstance(prompt, int) and isinstance(
        completion, int) else ()
    # Sleep mode frees vLLM's memory for training but costs resources.sleep_wake_s every step: tried only when
    # no share fits awake, unless the recipe states it.
    stated_sleep = recipe.grpo.get("vllm_enable_sleep_mode")
    sleep_modes = (bool(stated_sleep),) if stated_sleep is not None else (False, True)
    found = []
    for where in placements:
        for tp in sizes:
            if where == "colocate":
                shares = COLOCATE_UTILIZATIONS if recipe.generation.placement != "colocate" else (own_utilization,)
                tries = tuple(("--generation.gpu_memory_utilization", f"{share:g}", "--vllm_enable_sleep_mode",
                               "true" if sleep else "false", *length) for sleep in sleep_modes for share in shares)
            else:
                share = own_utilization if recipe.generation.placement == where else SERVER_UTILIZATION
                tries = (("--generation.gpu_memory_utilization", f"{share:g}"),)
            found.append((where, tp, tries))
    return found


def with_overrides(recipe: Any, overrides: tuple[str, ...]) -> Any:
    """``recipe`` with a candidate's ``--section.key value`` / ``--grpo_key value`` overrides applied."""
    sections: dict[str, dict[str, Any]] = {"generation": {}, "grpo": dict(recipe.grpo)}
    for flag, value in zip(overrides[::2], overrides[1::2]):
        key = flag.removeprefix("--")
        section, _, name = key.rpartition(".")
        parsed: Any = {"true": True, "false": False}.get(value, value)
        if isinstance(parsed, str):
            try:
                parsed = int(value) if value.isdigit() else float(value)
            except ValueError:
                pass
        sections[section or "grpo"][name] = parsed
    return dataclasses.replace(recipe, generation=dataclasses.replace(recipe.generation, **sections["generation"]),
                               grpo=sections["grpo"])


def enumerate_candidates(recipe: Any, *, env: Mapping[str, str], nodes: int | None, gpus_per_node: int,
                         gpu_memory_gb: float, shape: ModelShape, host_memory_gb: float | None) -> list[Candidate]:
    """Every candidate layout of ``recipe`` on ``nodes`` x ``gpus_per_node``, laid out, sized and timed."""
    placements, fixed_tp = allowed_placements(recipe, env)
    sizes = [fixed_tp] if fixed_tp else tensor_parallel_sizes(shape, gpus_per_node)
    hw = Hardware.from_resources(recipe.resources)
    found: list[Candidate] = []
    total = (nodes or 1) * gpus_per_node
    for where, tp, tries in _variants(placements, sizes, recipe):
        if where == "dedicated-gpu" and len(placements) > 1 and tp >= gpus_per_node:
            continue  # the server would take the whole node: nothing left to train beside it
        tried = [_candidate(recipe, where, tp, extra, total, env=env, nodes=nodes, gpus_per_node=gpus_per_node,
                            gpu_memory_gb=gpu_memory_gb, shape=shape, host_memory_gb=host_memory_gb, hw=hw)
                 for extra in tries]
        whole = [c for c in tried if c.fits and c.memory is not None and not c.memory.generation_queued]
        fitting = [c for c in tried if c.fits]
        found.append((whole or fitting or tried)[0])
    return found


def _candidate(recipe: Any, where: str, tp: int, extra: tuple[str, ...], total: int, *, env: Mapping[str, str],
               nodes: int | None, gpus_per_node: int, gpu_memory_gb: float, shape: ModelShape,
               host_memory_gb: float | None, hw: Hardware) -> Candidate:
    """One candidate: laid out by reasoner.topology, sized, timed; or refused with topology's reason."""
    name = f"{where} tp{tp}" + (f" util {extra[1]}" if where == "colocate" else "")
    overrides = ("--generation.placement", where, "--generation.tensor_parallel_size", str(tp), *extra)
    base = Candidate(name, where, tp, overrides, total)
    try:
        variant = with_overrides(recipe, overrides)
        layout = plan_for_recipe(variant, env=env, gpus_per_node=gpus_per_node, nodes=nodes,
                                 gpu_memory_gb=gpu_memory_gb, placement=where, tensor_parallel_size=tp)
        memory = estimate_for_layout(variant, layout, gpu_memory_gb=gpu_memory_gb, host_memory_gb=host_memory_gb,
                                     shape=shape, zero_stage=zero_stage_of(layout.accelerate_config))
    except UserError as exc:
        return dataclasses.replace(base, refused=str(exc))
    layout = dataclasses.replace(layout, train_args=(*layout.train_args, *extra))
    return dataclasses.replace(base, layout=layout, memory=memory, step=time_step(variant, layout, memory, hw))


def time_step(recipe: Any, layout: Plan, memory: MemoryPlan, hw: Hardware) -> StepEstimate:
    """The throughput model's step estimate for ``recipe`` on ``layout``."""
    grpo = recipe.grpo
    passes = 6 + (2 if activation_checkpointing(grpo) else 0) + (2 if float(grpo.get("beta", 0) or 0) > 0 else 0)
    if lora_enabled(getattr(recipe, "peft", None)):
        passes -= 2  # a frozen base needs no weight gradients: its backward pass costs half the usual
    served = precision(recipe.model, grpo, memory.model, zero_stage=memory.zero_stage, on_gpu=True).served_bytes
    work = Work(shape=memory.model, prompt=int(recipe.dataset.max_prompt_tokens or 512),
                completion=int(grpo.get("max_completion_length", 256)), completions=layout.generation_batch_size,
                passes=passes, weight_bytes=served)
    colocated = layout.placement == "colocate"
    tp = max(1, layout.tensor_parallel_size)
    engines = Engines(count=layout.num_processes // tp if colocated else 1, tensor_parallel=tp,
                      at_once=memory.generation_at_once, colocated=colocated,
                      same_node_as_rank0=layout.generation_node == (layout.training_nodes or (None,))[0],
                      sleeps=colocated and bool(grpo.get("vllm_enable_sleep_mode")))
    return step_estimate(work, engines, training_gpus=layout.num_processes, zero_stage=memory.zero_stage,
                         nodes=layout.nodes, hw=hw)


def choose(found: list[Candidate]) -> Candidate | None:
    """The fitting candidate with the most completions per second (the least step time per completion trained
    on); ties go to fewer idle GPUs, then the candidate listed first. None when nothing fits."""
    fitting = [c for c in found if c.fits and c.step is not None and c.gpus is not None]
    if not fitting:
        return None
    return max(fitting, key=lambda c: (round(c.rate, 6), -(c.gpus or {}).get("idle", 0), -found.index(c)))


def closest(found: list[Candidate]) -> Candidate | None:
    """When nothing fits: the launchable candidate that misses its memory by the least (its refusal is the one
    to show), else None (every candidate was refused before it could be sized)."""
    sized = [c for c in found if c.refused is None and c.memory is not None]
    return min(sized, key=_overshoot, default=None)


def first_refusal(found: list[Candidate]) -> str | None:
    """The reason the first launchable candidate was refused (its layout's own numbers, e.g. its processes)."""
    return next((c.refused for c in found if c.refused is not None and c.launchable), None)


def chosen_memory(recipe: Any, *, nodes: int, gpus_per_node: int, gpu_memory_gb: float) -> MemoryPlan | None:
    """For a recipe that leaves its layout to the planner (vLLM on GPUs, placement auto): the memory plan of the
    layout ``reasoner plan`` chooses, else of the launchable one nearest to fitting (UserError when every layout
    is refused). None for a recipe that names its placement: reasoner.topology lays that out alone."""
    generation = recipe.generation
    if not generation.uses_vllm or gpus_per_node < 1 or (generation.placement or "auto") != "auto":
        return None
    found = enumerate_candidates(recipe, env={}, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb,
                                 shape=model_shape(recipe.model.id, recipe.model.revision), host_memory_gb=None)
    shown = choose(found) or closest(found)
    if shown is None:
        raise UserError(first_refusal(found) or "no layout can run this recipe")
    return shown.memory


def _overshoot(c: Candidate) -> float:
    assert c.memory is not None
    return max((b.total / b.capacity for b in c.memory.budgets if b.capacity), default=0.0)


def why(winner: Candidate, found: list[Candidate]) -> str:
    """One sentence: why the winner won against the best of the others."""
    others = [c for c in found if c is not winner and c.fits and c.step is not None]
    if not others:
        refused = len([c for c in found if not c.fits])
        return f"the only candidate that fits ({refused} other(s) refused or out of memory)"
    best = max(others, key=lambda c: c.rate)
    gain = winner.rate / best.rate - 1 if best.rate else 0.0
    assert winner.step is not None and best.step is not None
    idle = (winner.gpus or {}).get("idle", 0)
    return (f"the fastest launchable layout that fits: {winner.rate:.1f} completions/s "
            f"({winner.step.completions} in an estimated {winner.step.total_s:.1f} s step), {gain:+.0%} over the "
            f"next best ({best.name}: {best.rate:.1f}/s, {best.step.total_s:.1f} s), {idle} GPU(s) idle")
