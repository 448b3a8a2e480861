"""``evaluate``: a model's accuracy on a task's questions, asked with the recipe's prompt, written to disk.

The questions come from the same ``TaskSource`` list training reads (``reasoner.data.task_questions``), so an
evaluation follows the task's columns, per-row system prompts and answer format; a mixture is evaluated on
the same mixture of its data sets' held-out splits.
"""

from __future__ import annotations

import sys
import time
import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from reasoner.data import GENERATED, build_prompt, resolve_system_prompt, task_questions
from reasoner.data.task import training_row_sources
from reasoner.data.files import is_local_source
from reasoner.errors import UserError
from reasoner.eval.generation import chat_texts, generate_transformers, generate_vllm
from reasoner.eval.models import ModelRef, load_tokenizer, resolve_backend, resolve_device, resolve_model
from reasoner.eval.results import EvalResult, now, questions_fingerprint, write_result
from reasoner.eval.sampling import per_task_metrics, sampled_metrics
from reasoner.eval.scoring import aggregate, score_completion
from reasoner.eval.tables import DEFAULT_DATA
from reasoner.tasks.formats import AnswerSpec
from reasoner.tasks.spec import TaskSource, mixture_sources

__all__ = ["DEFAULT_DATA_CONFIG", "Decoding", "evaluate"]

DEFAULT_DATA_CONFIG = "main"


@dataclass(frozen=True)
class Decoding:
    """How completions are generated: the same settings for the model and its baseline."""

    max_new_tokens: int = 256
    sampling: bool = False
    temperature: float = 0.7
    seed: int = 0
    batch_size: int = 8
    samples: int = 1
    top_p: float = 1.0

    def check(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise UserError(f"--samples must be 1 or more completions per question, got {self.samples}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be above 0 and at most 1, got {self.top_p}")
        if self.batch_size <= 0:
            raise UserError(f"--batch-size must be positive, got {self.batch_size}")
        if self.max_new_tokens <= 0:
            raise UserError(f"max_new_tokens must be positive, got {self.max_new_tokens}")
        if self.sampling and not self.temperature > 0:
            raise UserError(f"sampling needs a temperature above 0, got {self.temperature}: drop --sample for greedy decoding")


def _generate(ref: ModelRef, backend: str, device: str, prompts: list[list[dict]], decoding: Decoding,
              label: str, chat_template: str | None = None) -> list[tuple[str, int]]:
    from reasoner.recipe.chattemplate import use_chat_template

    tokenizer = use_chat_template(load_tokenizer(ref), chat_template)
    texts = chat_texts(tokenizer, prompts)
    options = dict(max_new_tokens=decoding.max_new_tokens, sampling=decoding.sampling,
                   temperature=decoding.temperature, seed=decoding.seed, samples=decoding.samples,
                   top_p=decoding.top_p)
    if backend == "vllm" and ref.base is None:  # an adapter is merged in memory and generates with transformers
        return generate_vllm(ref, tokenizer, texts, **options)
    return generate_transformers(ref, tokenizer, texts, device=device, batch_size=decoding.batch_size,
                                 desc=f"eval {label}", **options)


def _sources(data_source: str, data_config: str | None, data_revision: str | None, question_column: str,
             answer_column: str, system_column: str | None, answer: AnswerSpec | Mapping[str, Any] | str | None,
             mixture: Sequence[Mapping[str, Any]] | None, choices: Mapping[str, Any] | None) -> list[TaskSource]:
    answer_spec = AnswerSpec.of(answer)
    if mixture:
        return mixture_sources(list(mixture), answer_spec)
    return [TaskSource(id=data_source, config=data_config, revision=data_revision, question_column=question_column,
                       answer_column=answer_column, system_column=system_column, answer=answer_spec,
                       **{key: value for key, value in dict(choices or {}).items() if value is not None})]


def _pin_hub_sources(sources: list[TaskSource]) -> dict[str, str]:
    """Pin each hub data set to a commit before loading, as training does: the commit goes into the results,
    and an unreachable hub is one line (``datasets`` would retry for half a minute, then raise)."""
    from reasoner.hubclient import calls as hub

    commits: dict[str, str] = {}
    for source in sources:
        if source.id == GENERATED or is_local_source(source.id):
            continue
        found = hub.classify_dataset(source.id, source.revision)
        try:
            hub.pin(found, "dataset")
        except UserError as error:
            raise UserError(f"{error}, or evaluate on local data with --data PATH") from None
        if found.commit:
            commits[source.id] = found.commit
    return commits


def _settings(sources: list[TaskSource], items: list[dict], *, data_seed: int, limit: int | None, decoding: Decoding,
              device: str, backend: str, ref: ModelRef, system_text: str, examples: list[dict]) -> dict[str, Any]:
    first = sources[0]
    return {
        "data_source": ", ".join(source.id for source in sources),
        "data_config": first.config if len(sources) == 1 else None,
        "data_revision": first.revision if len(sources) == 1 else None,
        "data_seed": data_seed if any(source.id == "generated" for source in sources) or len(sources) > 1 else None,
        "mixture": [dataclasses.asdict(source) for source in sources] if len(sources) > 1 else None,
        "answer_format": sorted({source.answer.format_name for source in sources}),
        "compare_as": sorted({item["compare_as"] for item in items}),
        "limit": limit, "batch_size": decoding.batch_size, "max_new_tokens": decoding.max_new_tokens,
        "sampling": decoding.sampling, "temperature": decoding.temperature if decoding.sampling else None,
        "top_p": decoding.top_p if decoding.sampling else None, "samples": decoding.samples,
        "seed": decoding.seed, "device": device, "backend": backend, "model_kind": ref.kind,
        "system": system_text, "few_shot": examples, "questions_sha256": questions_fingerprint(items),
        # a LoRA adapter's scores belong to the adapter on this base: which one, pinned
        "adapter_base": None if ref.base is None else {"id": ref.base.id, "commit": ref.base.commit},
    }


def _score(items: list[dict], generations: list[tuple[str, int]], samples: int) -> list[dict[str, Any]]:
    """One record per question and sample (the samples of a question in a row), scored as training scores."""
    records = []
    for position, (completion, length) in enumerate(generations):
        index, sample = divmod(position, samples)
        item = items[index]
        score = score_completion(completion, item["gold"], item["compare_as"], item.get("read_from"))
        records.append({"index": index, **({"sample": sample} if samples > 1 else {}), **item,
                        "completion": completion, "completion_tokens": length, **score})
    return records


def evaluate(
    model: str, *, revision: str | None = None, split: str = "test", limit: int | None = None, batch_size: int = 8,
    data_source: str = DEFAULT_DATA, data_config: str | None = DEFAULT_DATA_CONFIG, data_revision: str | None = None,
    question_column: str = "question", answer_column: str = "answer", system_column: str | None = None,
    answer: AnswerSpec | Mapping[str, Any] | str | None = None, mixture: Sequence[Mapping[str, Any]] | None = None,
    num_generated: int = 200, data_seed: int = 42, system: str | None = "default",
    few_shot: Sequence[Mapping[str, Any]] = (), max_new_tokens: int = 256, sampling: bool = False,
    temperature: float = 0.7, seed: int = 0, device: str | None = None, backend: str = "auto", output_dir: Path,
    samples: int = 1, top_p: float = 1.0, holdout: float | None = None, choices: Mapping[str, Any] | None = None,
    chat_template: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on a task's questions and write ``results.json`` and ``completions.jsonl``.

    ``model`` is a hub repo id (pinned to the commit ``revision`` points at, loaded through ``HF_ENDPOINT``),
    a local folder, or a builtin id (``tiny``, ``smollm2``). The questions are ``data_source`` read with the
    columns and ``answer`` format given (GSM8K's by default), or a recipe's ``mixture`` of data sets.
    ``system``, ``few_shot`` and ``chat_template`` are a recipe's prompt, so the model is asked exactly as it was
    trained.
    ``samples`` > 1 samples that many completions per question (at ``temperature`` and ``top_p``) and adds
    pass@1 (mean over samples, with its standard error), pass@K and maj@K, overall and per data set. A data set
    without the split asked for gives its ``holdout`` slice (the rows training left out); without ``holdout``
    its questions are training rows, which the results and the printed table say.
    """
    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be a positive number of questions, got {limit}")
    decoding = Decoding(max_new_tokens, sampling or samples > 1, temperature, seed, batch_size, samples, top_p)
    decoding.check()
    started, clock = now(), time.monotonic()
    # Cheap checks first: a wrong device, backend or model path fails before any data is fetched.
    device_name = resolve_device(device)
    chosen_backend = resolve_backend(backend, device_name)
    ref = resolve_model(model, revision)
    system_text = resolve_system_prompt(system)
    examples = [dict(example) for example in few_shot]
    sources = _sources(data_source, data_config, data_revision, question_column, answer_column, system_column,
                       answer, mixture, choices)
    commits = _pin_hub_sources(sources)
    pinned = [replace(source, revision=commits.get(source.id, source.revision)) for source in sources]
    items, dropped = task_questions(pinned, split=split, limit=limit, num_generated=num_generated, seed=data_seed,
                                    holdout=holdout)
    training_rows = training_row_sources(pinned, split=split, holdout=holdout)
    if training_rows:
        print(f"warning: {', '.join(training_rows)} has no '{split}' split, so these questions are training rows; "
              "set eval.holdout (e.g. 0.1) to keep a slice out of training", file=sys.stderr)
    if not items:
        raise UserError(f"no question of {', '.join(s.describe() for s in sources)} split '{split}' has a gold answer "
                        f"its answer format can read in column '{sources[0].answer_column}': check --data and the columns")
    prompts = [build_prompt(item["question"], item["system"] or system_text, examples) for item in items]
    generations = _generate(ref, chosen_backend, device_name, prompts, decoding, model, chat_template)

    records = _score(items, generations, decoding.samples)
    metrics = aggregate(records, [r["completion_tokens"] for r in records])
    groups = [records[i : i + decoding.samples] for i in range(0, len(records), decoding.samples)]
    per_task = per_task_metrics(groups, decoding.samples) if decoding.samples > 1 else {}
    if decoding.samples > 1:
        metrics.update(sampled_metrics(groups, decoding.samples))
    settings = _settings(sources, items, data_seed=data_seed, limit=limit, decoding=decoding, device=device_name,
                         backend=chosen_backend, ref=ref, system_text=system_text, examples=examples)
    settings.update(data_commits=commits, holdout=holdout, training_rows=training_rows,
                    chat_template="the recipe's" if chat_template else "the tokenizer's")
    result = EvalResult(
        model=model, revision=revision, commit=ref.commit, split=split, n=len(items), metrics=metrics,
        settings=settings, started_at=started, finished_at=now(),
        wall_seconds=round(time.monotonic() - clock, 3), dropped=dropped, output_dir=Path(output_dir),
        per_task=per_task,
    )
    write_result(result, records, Path(output_dir))
    return result
