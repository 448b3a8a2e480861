"""Every CPU benchmark runs with its smallest settings, prints its table and writes valid JSON.

The benchmarks start real training processes (each pays ~10 s of imports on 2 cores), so they are all
started at once when the module begins and each test waits for its own: the whole file takes about as
long as the slowest benchmark. The numbers of such runs are noise; only the shape of the output is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALLEST = {
    "step_time": ["--models", "tiny", "--rounds", "1", "--steps", "2"],
    "startup": ["--rounds", "1", "--modes", "cold"],
    "hub_traffic": ["--nodes", "1", "--ranks", "1"],
    "push_cost": ["--rounds", "1", "--steps", "2", "--save-every", "1"],
    "memory": ["--models", "tiny", "--steps", "1", "--no-reasoner"],
    "gpu": ["--skip-install"],  # a test never installs packages: on a GPU machine the environment must be complete
    "hub_latency": ["--rounds", "1", "--requests", "5"],
    "eval_sampling": ["--rounds", "1", "--questions", "4", "--max-new-tokens", "8"],
}
# What each table's header line starts with, and the keys each JSON result must hold.
TABLE_HEADS = {"step_time": "model", "startup": "cache", "hub_traffic": "who", "push_cost": "measure", "memory": "model",
               "hub_latency": "operation", "eval_sampling": "model"}
KEYS = {
    "step_time": {"rows": {"model", "ratio", "reasoner_step_s", "plain_step_s", "wall_ratio", "same_completions"}},
    "startup": {"rows": {"mode", "reasoner_s", "plain_s", "ratio"}},
    "hub_traffic": {"top": {"files", "reasoner", "plain", "goals"}},
    "push_cost": {"rows": {"measure", "push_s", "none_s", "ratio_of_medians"}, "top": {"save_step_pairs", "pushes"}},
    "memory": {"rows": {"model", "measured_growth_mib", "estimated_mib", "estimate_over_measured"}},
    "hub_latency": {"rows": {"operation", "client", "legacy", "new", "p50_ratio", "throughput_ratio"}},
    "eval_sampling": {"rows": {"model", "samples", "sampled_s", "k_runs_s", "ratio", "completions"}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every benchmark at once; each test collects its own process."""
    out = tmp_path_factory.mktemp("bench-results")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = {}
    for name, args in SMALLEST.items():
        log = open(out / f"{name}.log", "w+")  # noqa: SIM115 - closed in the test that reads it
        procs[name] = (subprocess.Popen([sys.executable, str(REPO / "bench" / f"{name}.py"), "--out", str(out), *args],
                                        cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT), log)
    yield out, procs
    for proc, log in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def finished(runs, name: str) -> tuple[str, dict | None]:
    out, procs = runs
    proc, log = procs[name]
    code = proc.wait(timeout=600)
    log.seek(0)
    text = log.read()
    assert code == 0, f"bench/{name}.py exited {code}:\n{text[-3000:]}"
    path = out / f"{name}.json"
    return text, (json.loads(path.read_text()) if path.is_file() else None)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_benchmark_prints_its_table_and_writes_json(runs, name):
    text, data = finished(runs, name)
    assert any(line.startswith(TABLE_HEADS[name]) for line in text.splitlines()), text[-2000:]
    assert data is not None, f"bench/{name}.py wrote no JSON"
    assert data["benchmark"] == name and data["command"].startswith("python bench/")
    assert {"cpus", "load_average"} <= set(data["machine"])
    keys = KEYS[name]
    if "rows" in keys:
        assert data["rows"], "no result rows"
        for row in data["rows"]:
            assert keys["rows"] <= set(row), sorted(row)
    assert keys.get("top", set()) <= set(data)


def test_hub_traffic_meets_its_goals_even_at_the_smallest_size(runs):
    _text, data = finished(runs, "hub_traffic")
    assert data["goals"] == {"downloads_equal_files_x_nodes": True, "zero_requests_from_ranks": True}


def test_step_time_sides_generate_the_same_completions(runs):
    _text, data = finished(runs, "step_time")
    assert data["rows"][0]["same_completions"] is True


def test_gpu_benchmark_refuses_to_measure_without_a_gpu(runs):
    """On a CPU machine it says so and exits 3, writing nothing; with a GPU it records its rows."""
    out, procs = runs
    proc, log = procs["gpu"]
    code = proc.wait(timeout=600)
    log.seek(0)
    text = log.read()
    if shutil.which("nvidia-smi"):
        assert code == 0 and (out / "gpu.json").is_file(), text[-3000:]
    else:
        assert code == 3, text[-3000:]
        assert "no GPU on this machine" in text and "nothing measured" in text
        assert not (out / "gpu.json").exists()
