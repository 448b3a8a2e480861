"""How a run ends on rank zero: what it writes beside the model, and what it publishes.

A finished run writes the recipe it really ran (with the pinned commits), a merged model when the recipe asks for
one, the evaluation after training and the model card, then pushes the final model and verifies it. A preempted
run only waits, for a bounded time, for the pushes it had queued. Every other rank has nothing to do. What did
not land is never dropped: each unfinished push is named with the ``reasoner push`` command that finishes it,
and the run fails in one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from reasoner.errors import UserError
from reasoner.recipe.load import Recipe

log = logging.getLogger("reasoner.train")


class RunFinisher:
    """Ends one run: ``finisher(trainer)`` after training, ``finisher(trainer, preempted=True)`` after a signal."""

    def __init__(self, recipe: Recipe, output_dir: Path, *, is_main: bool, pusher: Any, sources: Sequence[Any],
                 stats: Any) -> None:
        self.recipe = recipe
        self.output_dir = output_dir
        self.is_main = is_main
        self.pusher = pusher  # reasoner.publish.push.HubPusher on rank zero of a pushing run, else None
        self.sources = sources  # the model, then the data sets, each pinned to its commit
        self.stats = stats

    def __call__(self, trainer: Any, *, preempted: bool = False) -> None:
        if not self.is_main:
            return
        if preempted:
            self.after_preemption()
        else:
            self.after_training(trainer)

    def after_preemption(self) -> None:
        """Wait, only so long, for the queued pushes: the scheduler's kill is near."""
        if self.pusher is None:
            return
        from reasoner.publish.push import preempted_drain_s

        self.pusher.drain(timeout=preempted_drain_s())
        self.pusher.close()
        self._name_unfinished()

    def after_training(self, trainer: Any) -> None:
        self.write_run_files(trainer)
        if self.pusher is not None:
            self.publish()

    def write_run_files(self, trainer: Any) -> Recipe:
        """The recipe as run, a merged model if asked, the evaluation after training and the model card."""
        from reasoner.publish.card import write_model_card
        from reasoner.train.pinned import pinned_recipe

        model, datasets = self.sources[0], self.sources[1:]
        ran = pinned_recipe(self.recipe, model, datasets)  # main may have moved since the run pinned it
        (self.output_dir / "recipe.yaml").write_text(ran.to_yaml())
        if self.recipe.peft.get("push_merged"):
            from reasoner.lora.adapter import write_merged

            write_merged(self.output_dir, str(model.path or model.id), dtype=self.recipe.model.dtype)
        eval_section = None
        if self.recipe.eval.after_training:
            from reasoner.train.aftereval import evaluate_after_training

            eval_section = evaluate_after_training(ran, self.output_dir, base_model=model)
        write_model_card(self.output_dir, ran, sources=self.sources, stats=self.stats,
                         log_history=trainer.state.log_history, eval_section=eval_section)
        return ran

    def publish(self) -> None:
        """Push the final model once every queued checkpoint push is done, verify it, and fail on what did not land."""
        from reasoner.publish.checks import verify_upload
        from reasoner.publish.push import final_job

        pusher = self.pusher
        pusher.drain()
        job = final_job(self.output_dir)
        landed = pusher.push_now(job)
        pusher.close()
        if landed:
            problems = verify_upload(pusher.repo_id, self.output_dir, job)
            if problems:
                log.error("final push did not verify: %s", "; ".join(problems[:3]))
                pusher.failed.append(job)
            else:
                from reasoner.hubclient.calls import endpoint

                log.info("final model pushed and verified: %s/%s", endpoint(), pusher.repo_id)
        self._name_unfinished()
        if pusher.failed:
            raise UserError(f"training finished but {len(pusher.failed)} push(es) to {pusher.repo_id} did not land; "
                            f"the model is in {self.output_dir}: run the 'reasoner push' command(s) above")

    def _name_unfinished(self) -> None:
        for command in self.pusher.unfinished_commands():
            log.error("not on the hub yet (everything is on local disk); finish with: %s", command)
