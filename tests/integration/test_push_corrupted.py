"""A final push that the hub stores corrupted is caught by the verification and never reported as done.

The real hub server runs over a store that flips one byte of every LFS object once the hub has accepted it (the
hub checks an upload's sha256 on arrival, so this is what a failing disk or a faulty object store does after
that check): the hub's record of the file (size, sha256) stays right, and only the bytes it serves are wrong.
A real ``reasoner train`` run pushes its final model there; the verification must read the file back, say in
one line that it did not verify, leave the push unfinished with the command that retries it, and keep every
local file. The printed command, run again, must not report the push done either: the hub still serves the
corrupted object.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from reasoner_hub.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_corrupt_write_0123456789abcdef"
REPO = "org/tiny-corrupted"


class CorruptingStorage(LocalStorage):
    """A folder store that flips the middle byte of every LFS object right after storing it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.corrupted: list[str] = []

    def put_file(self, key: str, path: str, move: bool = False) -> None:
        super().put_file(key, path, move)
        if "/blobs/" in key:  # file contents by sha256 (reasoner_hub.repos.RepoStore.blob_key)
            stored = self._path(key)
            data = bytearray(stored.read_bytes())
            data[len(data) // 2] ^= 0xFF
            stored.write_bytes(bytes(data))
            self.corrupted.append(key)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def client_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_"))}
    return {**env, "HF_ENDPOINT": url, "HF_TOKEN": WRITE_TOKEN, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1", "NO_PROXY": "*", "no_proxy": "*",
            "REASONER_PUSH_BACKOFF_S": "0", "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}


def test_a_final_push_stored_corrupted_is_reported_failed_and_kept(tiny_model, tmp_path):
    store = CorruptingStorage(tmp_path / "bucket")
    out = tmp_path / "run"
    with HubServer(store, tokens=[Token("trainer", WRITE_TOKEN, "write")], xet=False) as hub:
        env = client_env(hub.url, tmp_path / "home")
        run = subprocess.run(
            [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--model.id", str(tiny_model),
             "--max_steps", "1", "--hub.push", "true", "--hub.repo_id", REPO, "--output_dir", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        log = run.stdout + run.stderr
        weights = sha256_of(out / "model.safetensors")
        assert any(key.endswith(f"/blobs/{weights}") for key in store.corrupted), (store.corrupted, log[-3000:])

        assert run.returncode == 2, log[-3000:]
        assert "Traceback" not in log and "pushed and verified" not in log
        failed = [line for line in log.splitlines() if "final push did not verify" in line]
        assert len(failed) == 1 and "model.safetensors: the hub serves other bytes" in failed[0], log[-3000:]
        commands = re.findall(r"finish with: (reasoner push .*)$", log, flags=re.M)
        assert commands == [f"reasoner push --folder {out} --repo-id {REPO}"], log[-3000:]
        assert run.stderr.strip().splitlines()[-1].startswith(f"error: training finished but 1 push(es) to {REPO}")
        for name in ("model.safetensors", "config.json", "README.md", "checkpoint-1/trainer_state.json"):
            assert (out / name).is_file(), name  # everything stays on local disk, the weights unchanged
        assert sha256_of(out / "model.safetensors") == weights

        # The command the run printed retries the push: the hub still serves the corrupted object, so it fails too.
        retry = subprocess.run([sys.executable, "-m", "reasoner.cli", *shlex.split(commands[0])[1:]], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=300)
        assert retry.returncode == 2, retry.stdout + retry.stderr
        assert "pushed and verified" not in retry.stdout + retry.stderr
        errors = [line for line in retry.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "did not verify (model.safetensors: the hub serves other bytes" in errors[0], \
            retry.stderr[-3000:]
        assert sha256_of(out / "model.safetensors") == weights
