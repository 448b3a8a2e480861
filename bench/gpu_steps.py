"""The pieces of ``bench/gpu.py`` that talk to the machine: the GPU, the installed packages, the embedded hub."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import common
from reasoner.publish.checks import sha256

EXIT_NO_GPU = 3
EXIT_SETUP = 4
MIB = 2**20
# Besides the weights, what a pushed model or adapter must bring back unchanged.
PUSHED_FILES = ("config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json")
# Children import this checkout's reasoner and reasoner-hub, installed or not.
CHILD_PYTHONPATH = os.pathsep.join([str(common.REPO), str(common.REPO / "hub")])


# -- the GPU -----------------------------------------------------------------------------------------------
def _smi(*args: str) -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def gpu_inventory() -> dict[str, Any] | None:
    """The GPU the benchmark uses (the first visible one): name, memory, the id nvidia-smi and CUDA know it by.

    None when there is none: no ``nvidia-smi``, no GPU listed, or ``CUDA_VISIBLE_DEVICES`` hides them all.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ident = visible.split(",")[0].strip() if visible is not None else "0"
    if not ident or ident == "-1":
        return None
    found = _smi("--query-gpu=name,memory.total", "--format=csv,noheader,nounits", f"--id={ident}")
    if found is None:
        return None
    name, total_mib = (part.strip() for part in found.splitlines()[0].rsplit(",", 1))
    return {"name": name, "memory_gib": float(total_mib) * MIB / 2**30, "id": ident, "visible": ident}


def used_gib(ident: str) -> float | None:
    found = _smi("--query-gpu=memory.used", "--format=csv,noheader,nounits", f"--id={ident}")
    return float(found.splitlines()[0]) * MIB / 2**30 if found else None


class GpuMemoryPoller:
    """The device's peak memory in use while the block runs (every process on it), polled with nvidia-smi.

    Reading it from outside covers what the training process's own allocator cannot see: vLLM's pool, CUDA
    contexts and graphs. ``baseline_gib`` is what was in use before.
    """

    def __init__(self, ident: str, every_s: float = 0.2) -> None:
        self.ident = ident
        self.every_s = every_s
        self.baseline_gib = 0.0
        self.peak_gib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            value = used_gib(self.ident)
            if value is not None:
                self.peak_gib = max(self.peak_gib or 0.0, value)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "GpuMemoryPoller":
        self.baseline_gib = used_gib(self.ident) or 0.0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- packages ----------------------------------------------------------------------------------------------
def not_ready(need_gpu: bool, *, imports: bool = True) -> str | None:
    """Why this Python cannot run the benchmark (None: it can): reasoner's requirements met (pyproject.toml), then,
    with ``imports``, the packages import in a child as the runs will import them, and torch sees a GPU when one
    is needed (a child costs a few seconds of imports: a CPU rehearsal of an unchanged environment skips it)."""
    from bench.gpu_wheels import installed_version, project_requirements, unmet

    problems = unmet(project_requirements(), installed_version)
    if problems or not imports:
        return "; ".join(problems) or None
    check = ["import torch, transformers, trl, accelerate, datasets, huggingface_hub, peft, yaml, blake3, lz4",
             "import reasoner.train.run, reasoner_hub.server"]
    if need_gpu:
        check.append("assert torch.cuda.is_available(), f'torch {torch.__version__} sees no GPU'")
    done = subprocess.run([common.python(), "-c", "\n".join(check)], cwd=common.REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": CHILD_PYTHONPATH})
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


# -- the embedded hub --------------------------------------------------------------------------------------
class LocalHub:
    """``reasoner hub serve`` on 127.0.0.1 with a folder store, one write token; stopped on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.token = "hf_bench_" + secrets.token_urlsafe(18)
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def client_env(self, home: Path) -> dict[str, str]:
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": self.token, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
                "HF_HUB_OFFLINE": "0", "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": CHILD_PYTHONPATH}

    def __enter__(self) -> "LocalHub":
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [common.python(), "-m", "reasoner.cli", "hub", "serve", "--storage", str(self.folder / "store"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--token", f"bench={self.token}:write"]
        self.process = subprocess.Popen(command, cwd=common.REPO, env={**os.environ, **common.QUIET_ENV,
                                                                          "PYTHONPATH": CHILD_PYTHONPATH},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with opener.open(f"{self.url}/api/_health", timeout=2):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"reasoner hub serve exited with code {self.process.returncode}") from None
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("reasoner hub serve did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pull_and_compare(self, repo_id: str, local: Path, dest: Path) -> dict[str, Any]:
        """Download the pushed repo into ``dest`` (huggingface_hub, as any client would) and compare it with the
        folder that was pushed: its config, tokenizer and every weight file (a whole model's or an adapter's)
        must come back byte for byte."""
        from huggingface_hub import snapshot_download

        pulled = Path(snapshot_download(repo_id, endpoint=self.url, token=self.token, local_dir=str(dest)))
        files = [p for p in pulled.rglob("*") if p.is_file() and ".cache" not in p.parts]
        weights = sorted(p.name for p in local.glob("*.safetensors"))
        needed = [*weights, *(n for n in PUSHED_FILES if (local / n).is_file())]
        verified = bool(weights) and all((pulled / name).is_file() and sha256(pulled / name) == sha256(local / name)
                                         for name in needed)
        return {"repo_id": repo_id, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
                "compared": needed, "verified": verified}
