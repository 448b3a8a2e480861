"""Train: a recipe in, TRL's GRPOTrainer run, a model on disk and on the hub out.

``python -m reasoner.train --recipe NAME [--key value ...]`` is what ``accelerate launch`` and SLURM run on
every rank; ``reasoner train`` is the same entry point. The order of work is chosen so that mistakes are cheap:
recipe validation, then the checkpoint to resume from (whose recorded commits a resume keeps), then the hub
preflight and pinning (global rank zero), then one download per node, then data preparation (which can still
refuse a bad data set), and only then the model. A reward function that fails
on one rank fails on every rank at that call (reasoner.train.ranks.agreed_on_every_rank), in the same line.

We configure TRL's GRPOTrainer; we do not fork it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from reasoner.recipe.values import check_output_dir, check_time_budget
from reasoner.train.precision import load_dtype, uses_deepspeed
from reasoner.train.ranks import (agreed_on_every_rank, on_each_node_then_agree, on_main_then_share, raise_if_any_failed,
                                  ranks_by_node)
from reasoner.recipe.load import Recipe, load_recipe
from reasoner.train.resume import newest_checkpoint
from reasoner.train.taskdata import load_training_data, materialize_source, pin_source, refuse_missing_paths
from reasoner.launch.noproxy import bypass_proxy_for
from reasoner.lora.config import enabled as lora_enabled
from reasoner.lora.training import adapter_config, name_base
from reasoner.topology.server import server_settings
from reasoner.train.vllm_support import check_vllm

log = logging.getLogger("reasoner.train")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    from reasoner.recipe.keydocs import help_epilog

    parser = argparse.ArgumentParser(
        prog="reasoner train",
        description="Run GRPO on a recipe. Any other --key value pair overrides a recipe key "
                    "(a TRL GRPOConfig key such as --max_steps, or a dotted key such as --model.id).",
        epilog=help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipe", required=True, help="packaged recipe name or path to a YAML recipe")
    parser.add_argument("--resume-from-hub", action="store_true",
                        help="with an empty output folder, continue from the newest checkpoint pushed to hub.repo_id")
    parser.add_argument("--no-resume", action="store_true",
                        help="start from scratch even if output_dir holds checkpoints")
    parser.add_argument("--time-budget-minutes", type=float, default=None,
                        help="stop after the step that exhausts this wall-clock budget, then save and push as usual")
    parser.add_argument("--dry-run", action="store_true", help="validate the recipe, read the data and try the rewards as the job would "
                             "(no model is loaded), print the resolved recipe and what was found, then exit")
    return parser.parse_known_args(list(argv))


def setup_logging(is_main: bool) -> None:
    """One readable line per event on the main process; warnings only elsewhere."""
    import warnings

    # TRL 1.16 calls a transformers API that transformers 5 deprecated; the user can do nothing about it.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    level = logging.INFO if is_main else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "urllib3", "filelock", "huggingface_hub", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def server_hosts(grpo: dict[str, Any]) -> list[str]:
    """The generation server's host (``vllm_server_base_url`` wins, as in TRL) and the rendezvous address."""
    from urllib.parse import urlparse

    base_url = grpo.get("vllm_server_base_url")
    host = urlparse(base_url).hostname if base_url else grpo.get("vllm_server_host")
    return [str(item) for item in (host, os.environ.get("MASTER_ADDR")) if item]


def build_grpo_config(recipe: Recipe):
    """GRPOConfig from the recipe's ``grpo`` section plus the keys the recipe derives from its other sections;
    a value TRL or transformers refuse is one line naming the key (reasoner.train.grpoconfig)."""
    from reasoner.train.grpoconfig import make_grpo_config, model_init_kwargs
    from reasoner.train.tracking import check_report_to

    check_report_to(recipe.grpo.get("report_to"))
    kwargs: dict[str, Any] = dict(recipe.grpo)
    kwargs["reward_weights"] = list(recipe.rewards.values())
    kwargs["use_vllm"] = recipe.generation.uses_vllm
    if kwargs["use_vllm"]:
        placement = recipe.generation.placement
        kwargs["vllm_mode"] = "colocate" if placement in ("auto", "colocate") else "server"
        kwargs.setdefault("vllm_tensor_parallel_size", recipe.generation.tensor_parallel_size)
        kwargs.setdefault("vllm_gpu_memory_utilization", recipe.generation.gpu_memory_utilization)
        if kwargs["vllm_mode"] == "server":
            kwargs.update(server_settings(placement, os.environ, kwargs))  # where the plan started the server
            bypass_proxy_for(server_hosts(kwargs))  # TRL's client must not go through the job's HTTP proxy
    import torch

    if not torch.cuda.is_available():
        # Ranks on CPU meet over gloo: plain DDP needs use_cpu, while DeepSpeed needs the gloo backend and no
        # use_cpu (which would quietly turn it into plain DDP).
        if uses_deepspeed(kwargs):
            kwargs.setdefault("ddp_backend", "gloo")
        else:
            kwargs.setdefault("use_cpu", True)
    # Pushing is ours (rank zero, background, retried, verified), not the Trainer's.
    kwargs["push_to_hub"] = False
    model_init = model_init_kwargs(kwargs.get("model_init_kwargs"))
    model_init.setdefault("dtype", load_dtype(recipe.model, deepspeed=uses_deepspeed(recipe.grpo), lora=lora_enabled(recipe.peft)))
    if recipe.model.attn_implementation:
        model_init.setdefault("attn_implementation", recipe.model.attn_implementation)
    kwargs["model_init_kwargs"] = model_init
    return make_grpo_config(kwargs, stated=recipe.grpo)


def resolve_sources(recipe: Recipe, state, resume: Path | None = None) -> tuple[Any, list[Any]]:
    """Pin on global rank zero, download once per node, then every rank reads its node's cache.

    Returns the model and the task's data sets (one, or each data set of a ``dataset.mix``), in recipe order.
    A run resuming from ``resume`` keeps the commits that checkpoint was trained on (reasoner.train.pinned).
    Any failure on the rank doing the work reaches every rank at once (reasoner.train.ranks), never as a wait for the
    collective's timeout.
    """
    from reasoner.hubclient import calls as hub
    from reasoner.train.pinned import read_pins, recorded_commit

    model, datasets = hub.classify_recipe(recipe)
    refuse_missing_paths((model, "model.id"), *[(dataset, "dataset.id") for dataset in datasets])
    sources = [(model, "model"), *[(dataset, "dataset") for dataset in datasets]]

    def pin() -> list[str | None]:
        if not hub.is_offline() and any(source.kind == "hub" for source, _ in sources):
            hub.check_token()
        recorded = read_pins(resume)
        for source, kind in sources:
            source.commit = recorded_commit(source, kind, recorded) or source.commit
        pinned = [pin_source(source, kind) for source, kind in sources]
        if recipe.hub.push_repo:
            from reasoner.publish.checks import preflight_push

            preflight_push(recipe.hub.push_repo, private=recipe.hub.private)
        return pinned

    commits = on_main_then_share(state, pin, "checking the hub and pinning commits")
    for (source, _), commit in zip(sources, commits):
        source.commit = commit

    def download() -> None:
        for source, kind in sources:
            materialize_source(source, kind, download=True)

    on_each_node_then_agree(state, download, "downloading the model and data sets")
    if not state.is_local_main_process:
        for source, kind in sources:
            materialize_source(source, kind, download=False)
    return model, datasets


def resume_checkpoint(recipe: Recipe, state, output_dir: Path, *, from_hub: bool) -> Path | None:
    """The checkpoint this run continues from (fetched from the hub first with ``--resume-from-hub``), or None.

    Found before the sources are pinned, because a resumed run keeps the commits its checkpoint was trained on.
    """
    if from_hub:
        from reasoner.train.resume import fetch_hub_checkpoint

        on_each_node_then_agree(state, lambda: newest_checkpoint(output_dir) or fetch_hub_checkpoint(recipe, output_dir),
                                "fetching the newest checkpoint from the hub")
    found = newest_checkpoint(output_dir)
    if found and state.is_main_process:
        log.info("resuming from %s", found)
    return found


def stop_preempted(trainer: Any, state: Any, finish: Any, preemption: Any, output_dir: Path) -> None:
    """End a run stopped by a preemption signal: every rank waits for rank zero's pushes, then raises Preempted.

    No rank exits before rank zero's bounded wait for its queued pushes ends: torch elastic stops every worker once
    one exits and kills them ~30 s later, which would cut that wait (up to REASONER_PREEMPT_PUSH_S) short.
    """
    state.wait_for_everyone()  # every rank's part of the checkpoint is on disk before any rank exits
    drained: BaseException | None = None
    try:
        finish(trainer, preempted=True)  # rank zero: the bounded wait for its queued pushes
    except Exception as exc:  # noqa: BLE001 - shared with every rank, then re-raised on this one
        drained = exc
    raise_if_any_failed(drained, "waiting for the hub pushes after the preemption save")
    from reasoner.train.preemption import Preempted, exit_line

    checkpoint = output_dir / f"checkpoint-{trainer.state.global_step}"
    raise Preempted(exit_line(preemption.stopped_by, str(checkpoint)))


def run(recipe: Recipe, *, resume_from_hub: bool = False, no_resume: bool = False,
        time_budget_s: float | None = None) -> Path:
    """Train one recipe; returns the output folder holding the final model."""
    if recipe.generation.uses_vllm:
        check_vllm()  # before any rank loads anything: the wrong vLLM fails late and obscurely
    args = build_grpo_config(recipe)
    from accelerate import PartialState

    state = PartialState()
    setup_logging(state.is_main_process)
    output_dir = Path(args.output_dir)
    where = ranks_by_node(state)
    if state.is_main_process:
        log.info("world size %d: %s", state.num_processes,
                 "; ".join(f"{node} rank(s) {','.join(map(str, found))}" for node, found in where.items()))

    found = None if no_resume else resume_checkpoint(recipe, state, output_dir, from_hub=resume_from_hub)
    resume = str(found) if found else None
    model_src, dataset_srcs = resolve_sources(recipe, state, found)
    from transformers import AutoTokenizer

    from reasoner.recipe.chattemplate import use_chat_template

    tokenizer = use_chat_template(AutoTokenizer.from_pretrained(str(model_src.path)), recipe.prompt.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset, stats = load_training_data(recipe, dataset_srcs, tokenizer)
    if state.is_main_process:
        log.info("data: %d rows kept, %d dropped without an answer, %d dropped as longer than %s prompt tokens",
                 stats.kept, stats.dropped_no_answer, stats.dropped_too_long, recipe.dataset.max_prompt_tokens)

    from trl import GRPOTrainer

    from reasoner.train.callbacks import build_callbacks
    from reasoner.rewards import get_reward_funcs
    from reasoner.rewards.trial import try_rewards

    reward_funcs = [agreed_on_every_rank(fn, f"computing reward '{name}'") for name, fn in zip(
        recipe.rewards, get_reward_funcs(recipe.rewards, args=recipe.reward_args, base_dir=Path(recipe.source).parent))]
    try_rewards(reward_funcs, list(recipe.rewards), train_dataset, tokenizer)  # before the model loads

    callbacks, finish, preemption = build_callbacks(recipe, output_dir, state, sources=(model_src, *dataset_srcs), stats=stats,
                                                 time_budget_s=time_budget_s)
    peft_config = adapter_config(recipe.peft, recipe.model.id, model_src.commit, state.is_main_process, callbacks)
    trainer = GRPOTrainer(
        model=str(model_src.path),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=peft_config,
    )
    for callback in callbacks:
        if hasattr(callback, "attach"):
            callback.attach(trainer)  # callbacks that read the trainer's own state (completion samples)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)  # StepLineCallback prints one line per logged step instead
    from reasoner.train.resume import disk_full_is_a_user_error

    with disk_full_is_a_user_error(output_dir):
        trainer.train(resume_from_checkpoint=resume)
    if preemption.stopped:
        stop_preempted(trainer, state, finish, preemption, output_dir)
    with disk_full_is_a_user_error(output_dir):
        trainer.save_model(str(output_dir))
        if state.is_main_process:
            tokenizer.save_pretrained(str(output_dir))
            name_base(recipe.peft, output_dir, recipe.model.id, model_src.commit)
    state.wait_for_everyone()
    finish(trainer)
    return output_dir


def main(argv: Sequence[str] | None = None) -> int:
    from reasoner.cli import run_guarded

    def _run() -> int:
        ns, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        recipe = load_recipe(ns.recipe, overrides)
        if ns.dry_run:
            from reasoner.train.dryrun import dry_run

            dry_run(recipe, lambda text: print(text, end="", flush=True))
            return 0
        check_time_budget(ns.time_budget_minutes)
        check_output_dir(recipe.output_dir)
        from reasoner.train.preemption import PREEMPTED_EXIT_CODE, Preempted

        try:
            budget = ns.time_budget_minutes * 60 if ns.time_budget_minutes else None
            run(recipe, resume_from_hub=ns.resume_from_hub, no_resume=ns.no_resume, time_budget_s=budget)
        except Preempted as exc:
            log.warning("%s", exc)  # exit_line: the signal, the checkpoint, and what happens next
            return PREEMPTED_EXIT_CODE
        return 0

    return run_guarded(_run)


if __name__ == "__main__":
    sys.exit(main())
