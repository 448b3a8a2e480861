"""``reasoner train`` in this process, with two readings its own log lacks: generation time and torch's peak memory.

    python -m bench.gpu_probe --timings T.jsonl --memory M.json -- --recipe R [recipe overrides...]

TRL times its generation itself (``profiling_context(self, "transformers.generate")`` around each generate
call) but hands the durations only to Weights & Biases, MLflow or Trackio. This wraps TRL's
``ProfilingContext._log_metrics`` so every duration is also appended, with the training step it began at, to
``--timings`` (one JSON line each); everything else about the run is ``reasoner.train`` unchanged. At the end
it writes torch's peak allocated and reserved CUDA memory to ``--memory`` (zeros on a CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def record_profiling(path: Path) -> None:
    """Append each TRL profiling duration to ``path`` (main process only, as TRL logs them)."""
    from trl.extras import profiling

    original = profiling.ProfilingContext._log_metrics

    def log_metrics(self, duration: float) -> None:
        if self.is_main_process:
            with path.open("a") as fh:
                fh.write(json.dumps({"name": self.name, "step": self.step, "seconds": duration}) + "\n")
        original(self, duration)

    profiling.ProfilingContext._log_metrics = log_metrics


def write_memory(path: Path) -> None:
    import torch

    on_gpu = torch.cuda.is_available()
    peak = {"allocated_bytes": torch.cuda.max_memory_allocated() if on_gpu else 0,
            "reserved_bytes": torch.cuda.max_memory_reserved() if on_gpu else 0,
            "device": torch.cuda.get_device_name() if on_gpu else "cpu"}
    path.write_text(json.dumps(peak) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timings", type=Path, required=True)
    parser.add_argument("--memory", type=Path, required=True)
    parser.add_argument("train", nargs=argparse.REMAINDER, help="-- then reasoner train's arguments")
    ns = parser.parse_args(argv)
    train_args = ns.train[1:] if ns.train[:1] == ["--"] else ns.train
    ns.timings.parent.mkdir(parents=True, exist_ok=True)
    record_profiling(ns.timings)
    from reasoner.train.run import main as train

    try:
        return train(train_args)
    finally:
        write_memory(ns.memory)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
