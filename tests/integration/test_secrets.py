"""The hub token never leaves the process environment: not in logs, checkpoints, pushed files or trackers.

A full pushed run (tiny model, checkpoints pushed, tensorboard and offline wandb tracking) and a second run
that resumes from the pushed checkpoint on another output folder use a recognisable token. Then every byte
they could have written is scanned for it, raw and base64-encoded at each alignment: both output folders
(checkpoints with their pickled training_args.bin, model card, tracker files), the HF cache, the wandb
folder, the hub's storage folder and request log, and the captured stdout/stderr.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported: the hub speaks LFS

import pytest  # noqa: E402
from huggingface_hub import HfApi, constants  # noqa: E402

from reasoner_hub.auth import Token  # noqa: E402
from reasoner_hub.server import HubServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CANARY = "hf_SECRETcanary7f3a9Qx2LmZ0vB8nK4tR6wY1"


def encodings(secret: str) -> dict[str, bytes]:
    """The token as bytes in the forms a leak could take: raw, URL-quoted, and base64 at any alignment."""
    raw = secret.encode()
    forms = {"raw": raw, "url-quoted": urllib.parse.quote(secret, safe="").encode()}
    for shift in range(3):  # the token's offset, modulo 3, in whatever larger blob was encoded
        shared = (3 - shift) % 3  # its first bytes share a 3-byte group with what comes before it
        groups = (len(raw) - shared) // 3  # the groups made of token bytes only encode the same everywhere
        start = 4 if shift else 0
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}+{shift}"] = encode(b"\0" * shift + raw)[start:start + 4 * groups]
    return forms


def scan(paths: list[Path], blobs: dict[str, str]) -> list[str]:
    """Every (place, form) where the token turns up."""
    forms = encodings(CANARY)
    found = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            data = path.read_bytes()
            found += [f"{path} ({form})" for form, needle in forms.items() if needle in data]
    for name, text in blobs.items():
        found += [f"{name} ({form})" for form, needle in forms.items() if needle in text.encode()]
    return found


def test_the_scanner_finds_every_encoding(tmp_path):
    """A scan that cannot fail proves nothing: plant each encoding and see it found."""
    for shift in range(3):
        blob = base64.b64encode(os.urandom(5 + shift) + CANARY.encode() + os.urandom(7))
        (tmp_path / f"planted-{shift}.bin").write_bytes(b"xx" + blob + b"yy")
    found = scan([tmp_path], {"stdout": f"token={urllib.parse.quote(CANARY)}"})
    for shift in range(3):
        assert any(f"planted-{shift}.bin" in f for f in found), (shift, found)
    assert any(f.startswith("stdout") for f in found), found


@pytest.fixture(scope="module")
def pushed_runs(tmp_path_factory):
    from reasoner.models.tiny import ensure_tiny_model

    constants.HF_HUB_DISABLE_XET = True
    base = tmp_path_factory.mktemp("secrets")
    model = base / "tiny"
    shutil.copytree(ensure_tiny_model(), model)
    bucket, request_log = base / "bucket", base / "requests.jsonl"
    with HubServer(bucket, tokens=[Token("trainer", CANARY, "write")], request_log=str(request_log)) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "WANDB_"))}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=CANARY, HF_HUB_DISABLE_XET="1", HF_HOME=str(base / "hf-home"),
                   WANDB_DIR=str(base / "wandb"), WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
                   NO_PROXY="*", no_proxy="*", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        (base / "wandb").mkdir()
        common = ["--recipe", "tiny-cpu", "--model.id", str(model), "--hub.push", "true", "--hub.repo_id",
                  "org/secret-run", "--hub.push_checkpoints", "true", "--save_steps", "2", "--report_to",
                  "[tensorboard, wandb]"]
        results = {}
        for name, extra in (("first", ["--max_steps", "2"]), ("resumed", ["--max_steps", "4", "--resume-from-hub"])):
            results[name] = subprocess.run(
                [sys.executable, "-m", "reasoner.cli", "train", *common, *extra, "--output_dir", str(base / name)],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        files_on_hub = HfApi(endpoint=hub.url, token=CANARY).list_repo_files("org/secret-run")
    yield base, results, files_on_hub, [bucket, request_log, base / "hf-home", base / "wandb", base / "first",
                                        base / "resumed"]


def test_the_runs_really_pushed_and_tracked(pushed_runs):
    base, results, files_on_hub, _ = pushed_runs
    for name, result in results.items():
        assert result.returncode == 0, f"{name}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    assert "fetched checkpoint step 2 of org/secret-run" in results["resumed"].stderr
    assert {"model.safetensors", "README.md", "last-checkpoint/training_args.bin"} <= set(files_on_hub)
    assert list((base / "first").rglob("events.out.tfevents.*")), "tensorboard wrote nothing"
    assert list((base / "wandb").rglob("*.wandb")), "wandb wrote nothing"
    assert (base / "requests.jsonl").stat().st_size > 0


def test_the_token_is_nowhere(pushed_runs):
    _, results, _, places = pushed_runs
    blobs = {f"{name} {stream}": getattr(result, stream) for name, result in results.items()
             for stream in ("stdout", "stderr")}
    leaks = scan(places, blobs)
    assert not leaks, f"the token leaked into: {leaks[:10]}"
