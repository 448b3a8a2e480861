"""``reasoner eval``: evaluate a model (and a baseline) on a task, write the files, print a compact table.

Flags take precedence; a ``--recipe`` fills in everything they leave out (prompt, data sets, columns, answer
format, split, limit), so ``reasoner eval --recipe R --model M`` asks the questions training asked, the same way.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Sequence

from reasoner.eval.models import BACKENDS
from reasoner.recipe.load import Recipe, load_recipe
from reasoner.eval.results import COMPLETIONS_FILE, RESULTS_FILE, EvalResult, is_saved_result
from reasoner.eval.run import DEFAULT_DATA_CONFIG, evaluate
from reasoner.eval.tables import DEFAULT_DATA, compare, describe, single_table
from reasoner.tasks.formats import FORMATS
from reasoner.tasks.spec import CHOICE_KEYS

__all__ = ["DEFAULT_OUTPUT_ROOT", "eval_main", "recipe_settings"]

DEFAULT_OUTPUT_ROOT = Path("outputs") / "eval"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_NEW_TOKENS = 256


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "model"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reasoner eval",
        description="Accuracy (strict and lenient) of a model on a task, with the recipe's prompt, data and answer format, "
                    "optionally beside a baseline.",
    )
    parser.add_argument("--model", required=True, help="hub repo id, local model folder, or tiny/smollm2")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a hub model (default: main)")
    parser.add_argument("--split", default=None, help="data split (default: the recipe's eval split, else test)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N questions (default: recipe's, else all)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="completion length limit (default: the recipe's eval.max_new_tokens, else its "
                             "grpo.max_completion_length, else 256)")
    parser.add_argument("--baseline", default=None,
                        help="a model to evaluate the same way and compare with, or a results.json (or its folder) from an earlier run")
    parser.add_argument("--baseline-revision", default=None, help="revision of a hub baseline model")
    parser.add_argument("--data", default=None, help="data set: hub id, local .jsonl/.parquet or folder, or 'generated' (default: recipe's, else openai/gsm8k)")
    parser.add_argument("--data-config", default=None, help="data set config (default: main for hub data sets)")
    parser.add_argument("--answer-format", default=None, choices=FORMATS,
                        help="how gold answers are read and compared (default: the recipe's, else gsm8k)")
    parser.add_argument("--question-column", default=None, help="column with the question (default: recipe's, else question)")
    parser.add_argument("--answer-column", default=None, help="column with the gold answer (default: recipe's, else answer)")
    parser.add_argument("--output", type=Path, default=None, help=f"output folder (default {DEFAULT_OUTPUT_ROOT}/<model>)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--samples", type=int, default=None,
                        help="K completions per question, sampled: reports pass@1 (mean of K, with its standard error), "
                             "pass@K and maj@K (default: the recipe's eval.samples, else 1, greedy)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature (default: the recipe's eval.temperature, else its grpo.temperature, else 0.7)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling (default: the recipe's eval.top_p, else its grpo.top_p, else 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (with --sample)")
    parser.add_argument("--recipe", default=None, help="recipe name or path: supplies the prompt and the data set")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: vLLM on a GPU when installed, else transformers")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return parser



def recipe_settings(recipe: Recipe) -> dict[str, Any]:
    """evaluate() keyword arguments a recipe supplies: its prompt, data sets, columns, answer format, eval split,
    hold-out, and decoding (samples, temperature, top_p, and the completion length training used)."""
    dataset, prompt, section = recipe.dataset, recipe.prompt, recipe.eval
    return dict(
        system=prompt.system, few_shot=list(prompt.few_shot), chat_template=prompt.chat_template,
        data_source=dataset.id, data_config=dataset.config, data_revision=dataset.revision,
        question_column=dataset.question_column, answer_column=dataset.answer_column,
        system_column=dataset.system_column, answer=recipe.answer, mixture=dataset.mix or None,
        num_generated=dataset.num_generated, data_seed=recipe.seed,
        split=section.split, limit=section.limit, holdout=section.holdout,
        choices={key: getattr(dataset, key) for key in CHOICE_KEYS}, samples=section.samples,
        temperature=float(_first(section.temperature, recipe.grpo.get("temperature"), DEFAULT_TEMPERATURE)),
        top_p=float(_first(section.top_p, recipe.grpo.get("top_p"), 1.0)),
        max_new_tokens=int(_first(section.max_new_tokens, recipe.grpo.get("max_completion_length"),
                                  DEFAULT_MAX_NEW_TOKENS)),
    )


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """evaluate() keyword arguments from the flags, with a recipe filling in what the flags leave out."""
    settings: dict[str, Any] = {
        "system": "default", "few_shot": [], "data_source": DEFAULT_DATA, "data_config": DEFAULT_DATA_CONFIG,
        "split": "test", "limit": None, "samples": 1, "temperature": DEFAULT_TEMPERATURE, "top_p": 1.0,
        "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
    }
    if args.recipe:
        settings.update(recipe_settings(load_recipe(args.recipe, [])))
    if args.data is not None:
        settings.update(data_source=args.data, data_config=args.data_config or DEFAULT_DATA_CONFIG, data_revision=None,
                        mixture=None)
    elif args.data_config is not None:
        settings["data_config"] = args.data_config
    flags = {"split": args.split, "limit": args.limit, "answer": args.answer_format,
             "question_column": args.question_column, "answer_column": args.answer_column, "samples": args.samples,
             "temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens}
    settings.update({key: value for key, value in flags.items() if value is not None})
    settings.update(batch_size=args.batch_size, sampling=args.sample, seed=args.seed, device=args.device,
                    backend=args.backend)
    return settings


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``reasoner eval``: evaluate a model (and a baseline), write the files, print a compact table."""
    args = _parser().parse_args(None if argv is None else list(argv))
    settings = _settings_from_args(args)
    output = args.output if args.output is not None else DEFAULT_OUTPUT_ROOT / _slug(args.model)
    result = evaluate(args.model, revision=args.revision, output_dir=output, **settings)
    baseline = None
    if args.baseline:
        if is_saved_result(args.baseline):
            baseline = EvalResult.load(Path(args.baseline).expanduser())
        else:
            baseline = evaluate(args.baseline, revision=args.baseline_revision, output_dir=output / "baseline", **settings)
    print()
    print(f"{describe(result)}:")
    print()
    if baseline is not None:
        table = compare(result, baseline)
        (output / "comparison.md").write_text(table + "\n", encoding="utf-8")
    else:
        table = single_table(result)
    print(table)
    print()
    print(f"results: {output / RESULTS_FILE}  completions: {output / COMPLETIONS_FILE}")
    return 0



if __name__ == "__main__":
    import sys

    from reasoner.cli import run_guarded

    sys.exit(run_guarded(lambda: eval_main(sys.argv[1:])))
