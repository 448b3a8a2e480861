"""GSM8K accuracy of a model, with the prompt a recipe trains on.

Why it is shaped like this:

* Scoring is one pure function, ``score_completion``, built on the same parsers the rewards use
  (``reasoner.rewards``), so "correct" means the same thing during training and in evaluation.
* Two accuracies: *strict* (the number inside the ``<answer>`` tags equals the gold number, what the
  ``correctness`` reward pays for) and *lenient* (the last number anywhere in the completion equals it,
  what the model knows even when it ignores the format). Their gap shows how much of a change in
  accuracy is format and how much is arithmetic.
* Greedy decoding by default, with a clean generation config (no sampling knobs or repetition penalty
  inherited from the model's ``generation_config.json``), so two runs of the same model give the same
  numbers. Seeded sampling is an option.
* A hub model is pinned to a commit before loading, and the commit goes into ``results.json``: a
  number without the exact weights behind it cannot be compared later.
* vLLM is used only when it is installed and a GPU is present (``backend="auto"``); it is imported
  lazily so the CPU path never needs it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from reasoner.errors import UserError
from reasoner.rewards import extract_answer, last_number, numbers_equal, parse_number, strict_format

DEFAULT_DATA = "openai/gsm8k"
DEFAULT_DATA_CONFIG = "main"
DEFAULT_OUTPUT_ROOT = Path("outputs") / "eval"
RESULTS_FILE = "results.json"
COMPLETIONS_FILE = "completions.jsonl"
BACKENDS = ("auto", "transformers", "vllm")

# (key in results.json, label in tables, kind): rates print as percentages, lengths as tokens.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("strict_accuracy", "strict accuracy (answer tags)", "rate"),
    ("lenient_accuracy", "lenient accuracy (last number)", "rate"),
    ("format_rate", "strict format", "rate"),
    ("mean_completion_tokens", "mean completion length (tokens)", "tokens"),
)


# --------------------------------------------------------------------------------------------------
# Scoring


def score_completion(completion: str, gold: str) -> dict[str, Any]:
    """Score one completion against the gold number. Pure: no model, no I/O.

    Returns ``extracted`` (text inside the last answer tags, or None), ``last_number`` (the last number
    written anywhere, or None), ``strict_correct``, ``lenient_correct`` and ``format_ok`` (the
    ``strict_format`` reward is positive). Numbers compare by value: ``$1,000.00`` equals ``1000``.
    """
    extracted = extract_answer(completion)
    last = last_number(completion)
    return {
        "extracted": extracted,
        "last_number": last,
        "strict_correct": numbers_equal(extracted, gold),
        "lenient_correct": numbers_equal(last, gold),
        "format_ok": strict_format([completion])[0] > 0,
    }


def aggregate(scores: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> dict[str, float]:
    """The metrics of a run from per-question scores and completion lengths (tokens)."""
    n = len(scores)
    if n == 0:
        return {key: 0.0 for key, _, _ in METRICS}
    return {
        "strict_accuracy": sum(bool(s["strict_correct"]) for s in scores) / n,
        "lenient_accuracy": sum(bool(s["lenient_correct"]) for s in scores) / n,
        "format_rate": sum(bool(s["format_ok"]) for s in scores) / n,
        "mean_completion_tokens": sum(lengths) / n,
    }


# --------------------------------------------------------------------------------------------------
# Results


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class EvalResult:
    """One evaluation: what was evaluated (model, revision, commit, split), how, and the metrics."""

    model: str
    revision: str | None
    commit: str | None
    split: str
    n: int
    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    wall_seconds: float = 0.0
    dropped: int = 0
    output_dir: Path | None = None

    @property
    def label(self) -> str:
        """Short name for tables: the model, with the first characters of its commit when pinned."""
        return f"{self.model}@{self.commit[:8]}" if self.commit else self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "commit": self.commit,
            "split": self.split,
            "n": self.n,
            "dropped": self.dropped,
            "metrics": self.metrics,
            "settings": self.settings,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_seconds": self.wall_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], output_dir: Path | None = None) -> "EvalResult":
        return cls(
            model=str(data["model"]),
            revision=data.get("revision"),
            commit=data.get("commit"),
            split=str(data.get("split", "test")),
            n=int(data["n"]),
            metrics={k: float(v) for k, v in dict(data["metrics"]).items()},
            settings=dict(data.get("settings") or {}),
            started_at=str(data.get("started_at", "")),
            finished_at=str(data.get("finished_at", "")),
            wall_seconds=float(data.get("wall_seconds", 0.0)),
            dropped=int(data.get("dropped", 0)),
            output_dir=output_dir,
        )

    @classmethod
    def load(cls, path: Path) -> "EvalResult":
        """A saved result: a ``results.json`` file or the folder that holds one."""
        path = Path(path)
        file = path / RESULTS_FILE if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            return cls.from_dict(data, output_dir=file.parent)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"cannot read evaluation results {file} ({error}): pass a results.json written by 'reasoner eval'") from None


def is_saved_result(path: str | Path) -> bool:
    """True for a results.json or a folder holding one (and no model): a baseline that needs no rerun."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.name.endswith(".json") and path.name != "config.json"
    return path.is_dir() and (path / RESULTS_FILE).is_file() and not (path / "config.json").is_file()


# --------------------------------------------------------------------------------------------------
# Tables


def _cell(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if kind == "rate" else f"{value:.1f}"


def _change(new: float | None, old: float | None, kind: str) -> str:
    if new is None or old is None:
        return "–"
    delta = new - old
    return f"{100 * delta:+.1f} pts" if kind == "rate" else f"{delta:+.1f}"


def _describe(result: EvalResult) -> str:
    settings = result.settings
    decoding = (
        f"sampling at temperature {settings.get('temperature')} (seed {settings.get('seed')})"
        if settings.get("sampling")
        else "greedy decoding"
    )
    data = settings.get("data_source", DEFAULT_DATA)
    return (
        f"{result.n} questions of `{data}` split `{result.split}`, {decoding}, "
        f"at most {settings.get('max_new_tokens', '?')} new tokens"
    )


def _single_table(result: EvalResult) -> str:
    lines = [f"| metric | {result.label} |", "|---|---:|"]
    for key, label, kind in METRICS:
        lines.append(f"| {label} | {_cell(result.metrics.get(key), kind)} |")
    return "\n".join(lines)


def questions_fingerprint(items: Sequence[Mapping[str, Any]]) -> str:
    """A hash of the questions and gold answers, in order: two evaluations with equal ones asked the same."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item["question"], item["gold"]], ensure_ascii=False).encode())
    return digest.hexdigest()


def same_questions(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two evaluations' settings describe the same questions: by their fingerprints when both have
    one, else by data source, a local path compared as the folder it names (``../data`` == ``/abs/data``)."""
    if a.get("questions_sha256") and b.get("questions_sha256"):
        return a["questions_sha256"] == b["questions_sha256"]

    def where(settings: Mapping[str, Any]) -> str:
        source = str(settings.get("data_source"))
        path = Path(source).expanduser()
        return str(path.resolve()) if path.exists() else source

    return where(a) == where(b)


def compare(result: EvalResult, baseline: EvalResult) -> str:
    """A side-by-side markdown table: baseline, model, and the change, one row per metric."""
    lines = [
        f"| metric | baseline: {baseline.label} | model: {result.label} | change |",
        "|---|---:|---:|---:|",
    ]
    for key, label, kind in METRICS:
        new, old = result.metrics.get(key), baseline.metrics.get(key)
        lines.append(f"| {label} | {_cell(old, kind)} | {_cell(new, kind)} | {_change(new, old, kind)} |")
    notes = []
    if (result.n, result.split) != (baseline.n, baseline.split):
        notes.append(
            f"Note: not the same questions (baseline: {baseline.n} of split `{baseline.split}`, "
            f"model: {result.n} of split `{result.split}`)."
        )
    elif not same_questions(result.settings, baseline.settings):
        notes.append("Note: the two evaluations used different data sets.")
    return "\n".join(lines + ([""] + notes if notes else []))


def model_card_section(result: EvalResult, baseline: EvalResult | None = None) -> str:
    """Markdown for a model card's evaluation section (the caller adds the heading)."""
    lines = [
        f"GSM8K accuracy on {_describe(result)}. Strict: the number inside `<answer>` tags equals the gold "
        "answer. Lenient: the last number in the completion does. Strict format: the completion has exactly "
        "the `<reasoning>`/`<answer>` shape. Measured with `reasoner eval`.",
        "",
        compare(result, baseline) if baseline is not None else _single_table(result),
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Models


@dataclass
class ModelRef:
    """Where the weights come from: ``load`` is what from_pretrained gets, ``commit`` the pinned hub commit."""

    id: str
    kind: str  # builtin | local | hub
    load: str
    revision: str | None
    commit: str | None


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str, revision: str | None) -> ModelRef:
    """Builtin id, local folder or hub repo id; a hub id is pinned to a commit (unless offline)."""
    from reasoner.hub import classify_model, pin

    if not isinstance(model, str) or not model.strip():
        raise UserError("--model must name a model: a hub repo id, a local folder, or 'tiny'/'smollm2'")
    path = Path(model).expanduser()
    if path.is_file():
        raise UserError(f"{model} is a file, not a model folder: pass the folder that holds config.json")
    if not path.exists() and _looks_like_path(model):
        raise UserError(f"model folder {model} does not exist: check the path (or pass a hub repo id like org/name)")
    source = classify_model(model, revision)
    if source.kind == "local" and not (Path(source.path) / "config.json").is_file():
        raise UserError(f"{model} holds no config.json, so it is not a model folder: pass a save_pretrained folder")
    if source.kind in ("builtin", "local"):
        return ModelRef(id=model, kind=source.kind, load=str(source.path), revision=None, commit=None)
    source = pin(source, "model")
    return ModelRef(id=model, kind="hub", load=model, revision=revision, commit=source.commit)


def _resolve_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device} asked for, but torch sees no GPU here: leave --device out or use cpu")
    return device


def resolve_backend(backend: str, device: str) -> str:
    """``auto``: vLLM when it is installed and the device is a GPU, transformers otherwise."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    on_gpu = device.startswith("cuda")
    if backend == "auto":
        return "vllm" if has_vllm and on_gpu else "transformers"
    if backend == "vllm" and not (has_vllm and on_gpu):
        raise UserError(
            "the vllm backend needs vLLM installed (pip install 'reasoner[vllm]') and a GPU: "
            "use --backend transformers here"
        )
    return backend


def _load_tokenizer(ref: ModelRef):
    from transformers import AutoTokenizer

    from reasoner.hub import hub_call

    revision = ref.commit or ref.revision
    tokenizer = hub_call(
        lambda: AutoTokenizer.from_pretrained(ref.load, revision=revision),
        ref.id, "model", revision, "loading the tokenizer of",
    )
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"the tokenizer of {ref.id} has no chat template, so the recipe's prompt cannot be built: "
            "evaluate an instruct/chat model"
        )
    tokenizer.padding_side = "left"  # a decoder-only model continues from the right end of each row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(ref: ModelRef, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    from reasoner.hub import hub_call

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    revision = ref.commit or ref.revision
    model = hub_call(
        lambda: AutoModelForCausalLM.from_pretrained(ref.load, revision=revision, dtype=dtype),
        ref.id, "model", revision, "loading",
    )
    model.to(device)
    model.eval()
    return model


def _generation_config(ref: ModelRef) -> Any:
    """The model's own generation config (for its end-of-sequence ids), or None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(ref.load, revision=ref.commit or ref.revision)
    except (OSError, ValueError):
        return None


def _eos_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a completion: the generation config's (Qwen lists two) and the tokenizer's."""
    ids: list[int] = []
    for value in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and int(item) not in ids:
                ids.append(int(item))
    return ids


# --------------------------------------------------------------------------------------------------
# Generation


def _chat_texts(tokenizer: Any, prompts: Sequence[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _generate_transformers(
    ref: ModelRef, tokenizer: Any, texts: list[str], *, device: str, batch_size: int,
    max_new_tokens: int, sampling: bool, temperature: float, seed: int, desc: str,
) -> list[tuple[str, int]]:
    """(completion text, completion tokens) per prompt, with batched ``generate`` and left padding.

    The token count runs up to and including the first end-of-sequence token, as TRL counts
    ``completions/mean_length``; padding after it is not counted.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, set_seed

    model = _load_model(ref, device)
    eos = _eos_ids(model.generation_config, tokenizer)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling}
    if sampling:
        options.update(temperature=temperature, top_p=1.0, top_k=0)
    config = GenerationConfig(**options, eos_token_id=eos or None, pad_token_id=tokenizer.pad_token_id)
    set_seed(seed)
    outputs: list[tuple[str, int]] = []
    for batch in tqdm(_batches(texts, batch_size), desc=desc, unit="batch"):
        encoded = tokenizer(list(batch), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            generated = model.generate(**encoded, generation_config=config)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :].tolist()
        for row in new_tokens:
            length = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
            outputs.append((tokenizer.decode(row[:length], skip_special_tokens=True), length))
    return outputs


def vllm_arguments(
    ref: ModelRef, *, max_new_tokens: int, sampling: bool, temperature: float, seed: int,
    stop_token_ids: Sequence[int],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of vLLM's ``LLM`` and ``SamplingParams``: the same decoding as the transformers path.

    Greedy is temperature 0; sampling is plain temperature sampling (top_p 1, no top_k), seeded. The
    model's own ``generation_config.json`` is not applied (``generation_config="vllm"``), as on the
    transformers path, so the numbers do not depend on a repo's sampling defaults.
    """
    revision = ref.commit or ref.revision
    llm = {"model": ref.load, "revision": revision, "tokenizer_revision": revision, "seed": seed,
           "generation_config": "vllm"}
    params: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature if sampling else 0.0,
                              "top_p": 1.0, "top_k": -1, "seed": seed if sampling else None}
    if stop_token_ids:
        params["stop_token_ids"] = list(stop_token_ids)
    return llm, params


def _generate_vllm(
    ref: ModelRef, tokenizer: Any, texts: list[str], *, max_new_tokens: int, sampling: bool,
    temperature: float, seed: int,
) -> list[tuple[str, int]]:  # pragma: no cover - needs vLLM and a GPU
    """(completion text, completion tokens) per prompt from vLLM; the same prompts as the transformers path."""
    from vllm import LLM, SamplingParams

    llm_kwargs, params = vllm_arguments(
        ref, max_new_tokens=max_new_tokens, sampling=sampling, temperature=temperature, seed=seed,
        stop_token_ids=_eos_ids(_generation_config(ref), tokenizer),
    )
    llm = LLM(**llm_kwargs)
    results = llm.generate(texts, SamplingParams(**params), use_tqdm=True)
    return [(r.outputs[0].text, len(r.outputs[0].token_ids)) for r in results]


# --------------------------------------------------------------------------------------------------
# Data


def _questions(rows: Any, question_column: str, answer_column: str, limit: int | None) -> tuple[list[dict], int]:
    """The first ``limit`` usable rows as {question, gold}; rows without a numeric gold answer are counted."""
    from reasoner.data import extract_gold

    usable: list[dict] = []
    dropped = 0
    for row in rows:
        gold = extract_gold(row.get(answer_column))
        question = row.get(question_column)
        if gold is None or parse_number(gold) is None or not isinstance(question, str) or not question.strip():
            dropped += 1
            continue
        usable.append({"question": question, "gold": gold})
        if limit is not None and len(usable) >= limit:
            break
    return usable, dropped


# --------------------------------------------------------------------------------------------------
# evaluate


def evaluate(
    model: str,
    *,
    revision: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 8,
    data_source: str = DEFAULT_DATA,
    data_config: str | None = DEFAULT_DATA_CONFIG,
    data_revision: str | None = None,
    question_column: str = "question",
    answer_column: str = "answer",
    num_generated: int = 200,
    data_seed: int = 42,
    system: str | None = "default",
    few_shot: Sequence[Mapping[str, Any]] = (),
    max_new_tokens: int = 256,
    sampling: bool = False,
    temperature: float = 0.7,
    seed: int = 0,
    device: str | None = None,
    backend: str = "auto",
    output_dir: Path,
) -> EvalResult:
    """Evaluate ``model`` on GSM8K-style questions and write ``results.json`` and ``completions.jsonl``.

    ``model`` is a hub repo id (pinned to the commit ``revision`` points at, loaded through ``HF_ENDPOINT``),
    a local folder, or a builtin id (``tiny``, ``smollm2``). ``system`` and ``few_shot`` are a recipe's
    prompt, so the model is asked exactly as it was trained.
    """
    from reasoner.data import build_prompt, load_rows, resolve_system_prompt

    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be a positive number of questions, got {limit}")
    if batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    if max_new_tokens <= 0:
        raise UserError(f"max_new_tokens must be positive, got {max_new_tokens}")
    if sampling and not temperature > 0:
        raise UserError(f"sampling needs a temperature above 0, got {temperature}: drop --sample for greedy decoding")

    started, clock = _now(), time.monotonic()
    # Cheap checks first: a wrong device, backend or model path fails before any data is fetched.
    device_name = _resolve_device(device)
    chosen_backend = resolve_backend(backend, device_name)
    ref = resolve_model(model, revision)
    system_text = resolve_system_prompt(system)
    examples = [dict(example) for example in few_shot]
    rows = load_rows(
        data_source, config=data_config, split=split, revision=data_revision, question_column=question_column,
        answer_column=answer_column, num_generated=num_generated, seed=data_seed,
    )
    items, dropped = _questions(rows, question_column, answer_column, limit)
    if not items:
        raise UserError(
            f"no question of {data_source} split '{split}' has a numeric '#### ' gold answer in column "
            f"'{answer_column}': check --data and the answer column"
        )
    prompts = [build_prompt(item["question"], system_text, examples) for item in items]

    tokenizer = _load_tokenizer(ref)
    texts = _chat_texts(tokenizer, prompts)
    if chosen_backend == "vllm":
        generations = _generate_vllm(
            ref, tokenizer, texts, max_new_tokens=max_new_tokens, sampling=sampling,
            temperature=temperature, seed=seed,
        )
    else:
        generations = _generate_transformers(
            ref, tokenizer, texts, device=device_name, batch_size=batch_size, max_new_tokens=max_new_tokens,
            sampling=sampling, temperature=temperature, seed=seed, desc=f"eval {model}",
        )

    records = []
    for index, (item, (completion, length)) in enumerate(zip(items, generations)):
        score = score_completion(completion, item["gold"])
        records.append({"index": index, **item, "completion": completion, "completion_tokens": length, **score})
    metrics = aggregate(records, [r["completion_tokens"] for r in records])

    settings = {
        "data_source": data_source,
        "data_config": data_config,
        "data_revision": data_revision,
        "data_seed": data_seed if data_source == "generated" else None,
        "limit": limit,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "sampling": sampling,
        "temperature": temperature if sampling else None,
        "seed": seed,
        "device": device_name,
        "backend": chosen_backend,
        "model_kind": ref.kind,
        "system": system_text,
        "few_shot": examples,
        "questions_sha256": questions_fingerprint(items),
    }
    result = EvalResult(
        model=model, revision=revision, commit=ref.commit, split=split, n=len(records), metrics=metrics,
        settings=settings, started_at=started, finished_at=_now(),
        wall_seconds=round(time.monotonic() - clock, 3), dropped=dropped, output_dir=Path(output_dir),
    )
    write_result(result, records, Path(output_dir))
    return result


def write_result(result: EvalResult, records: Sequence[Mapping[str, Any]], output_dir: Path) -> None:
    """``results.json`` (the summary) and ``completions.jsonl`` (one line per question) in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    with (output_dir / COMPLETIONS_FILE).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# Command line


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "model"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reasoner eval",
        description="GSM8K accuracy (strict and lenient) of a model with the recipe's prompt, optionally beside a baseline.",
    )
    parser.add_argument("--model", required=True, help="hub repo id, local model folder, or tiny/smollm2")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a hub model (default: main)")
    parser.add_argument("--split", default=None, help="data split (default: the recipe's eval split, else test)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N questions (default: recipe's, else all)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="completion length limit (default 256)")
    parser.add_argument("--baseline", default=None,
                        help="a model to evaluate the same way and compare with, or a results.json (or its folder) from an earlier run")
    parser.add_argument("--baseline-revision", default=None, help="revision of a hub baseline model")
    parser.add_argument("--data", default=None, help="data set: hub id, local .jsonl/.parquet or folder, or 'generated' (default: recipe's, else openai/gsm8k)")
    parser.add_argument("--data-config", default=None, help="data set config (default: main for hub data sets)")
    parser.add_argument("--output", type=Path, default=None, help=f"output folder (default {DEFAULT_OUTPUT_ROOT}/<model>)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (with --sample)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (with --sample)")
    parser.add_argument("--recipe", default=None, help="recipe name or path: supplies the prompt and the data set")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: vLLM on a GPU when installed, else transformers")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return parser


def _settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """evaluate() keyword arguments from the flags, with a recipe filling in what the flags leave out."""
    settings: dict[str, Any] = {
        "system": "default", "few_shot": [], "data_source": DEFAULT_DATA, "data_config": DEFAULT_DATA_CONFIG,
        "split": "test", "limit": None,
    }
    if args.recipe:
        from reasoner.recipe import load_recipe

        recipe = load_recipe(args.recipe, [])
        dataset = recipe.dataset
        settings.update(
            system=recipe.prompt.get("system", "default"),
            few_shot=list(recipe.prompt.get("few_shot") or []),
            data_source=dataset["id"],
            data_config=dataset.get("config"),
            data_revision=dataset.get("revision"),
            question_column=dataset.get("question_column", "question"),
            answer_column=dataset.get("answer_column", "answer"),
            num_generated=dataset.get("num_generated", 200),
            data_seed=int(recipe.grpo.get("seed", 42)),
            split=recipe.eval.get("split", "test"),
            limit=recipe.eval.get("limit"),
        )
    if args.data is not None:
        settings.update(data_source=args.data, data_config=args.data_config or DEFAULT_DATA_CONFIG, data_revision=None)
    elif args.data_config is not None:
        settings["data_config"] = args.data_config
    if args.split is not None:
        settings["split"] = args.split
    if args.limit is not None:
        settings["limit"] = args.limit
    settings.update(
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, sampling=args.sample,
        temperature=args.temperature, seed=args.seed, device=args.device, backend=args.backend,
    )
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
    print(f"{_describe(result)}:")
    print()
    if baseline is not None:
        table = compare(result, baseline)
        (output / "comparison.md").write_text(table + "\n", encoding="utf-8")
    else:
        table = _single_table(result)
    print(table)
    print()
    print(f"results: {output / RESULTS_FILE}  completions: {output / COMPLETIONS_FILE}")
    return 0


if __name__ == "__main__":
    import sys

    from reasoner.cli import run_guarded

    sys.exit(run_guarded(lambda: eval_main(sys.argv[1:])))
