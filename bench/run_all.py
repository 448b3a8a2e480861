"""Run every benchmark, then print one summary of all results with the command that reproduces each.

    python bench/run_all.py              # the default runs (minutes each on 2 cores)
    python bench/run_all.py --quick      # smallest settings: a smoke run, numbers too noisy to quote
    python bench/run_all.py --only step_time,memory
    python bench/run_all.py --summary-only   # rewrite summary.md from the JSON results already there

Each benchmark writes bench/results/<name>.json (``--out`` elsewhere); the summary is also written to
``<out>/summary.md``, the tables bench/README.md quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.gpu_steps import EXIT_NO_GPU  # noqa: E402

QUICK = {
    "step_time": ["--models", "tiny", "--rounds", "1", "--steps", "2"],
    "startup": ["--rounds", "1", "--modes", "cold"],
    "hub_traffic": ["--nodes", "1", "--ranks", "1"],
    "push_cost": ["--rounds", "1", "--steps", "3", "--save-every", "1"],
    "memory": ["--models", "tiny", "--steps", "1", "--no-reasoner"],
    "gpu": [],
    "hub_latency": ["--rounds", "1", "--requests", "5"],
    "eval_sampling": ["--rounds", "1", "--questions", "4", "--max-new-tokens", "8"],
}
ORDER = list(QUICK)


def summary(out: Path) -> str:
    """Markdown tables of every result in ``out``."""
    lines = []
    for name in ORDER:
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        m = data["machine"]
        lines += [f"### {name}", "", f"`{data.get('command', '')}`  ", f"measured {data['measured_at']}, {m.get('cpus')} "
                  f"CPUs, load average {m.get('load_average')}, torch {m.get('torch')}, trl {m.get('trl')}", ""]
        lines += _rows(name, data) + [""]
    return "\n".join(lines)


def _rows(name: str, data: dict) -> list[str]:
    def f(x: float) -> str:
        return f"{x:.3f}"

    if name == "step_time":
        out = ["| model | rounds x steps | reasoner s/step | plain s/step | ratio (median) | ratio min..max | wall ratio | same completions |",
               "|---|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['model']} | {r['rounds']} x {r['steps_per_run'] - 1} | {f(r['reasoner_step_s']['median'])} | "
                       f"{f(r['plain_step_s']['median'])} | **{f(r['ratio']['median'])}** | {f(r['ratio']['min'])}..{f(r['ratio']['max'])} | "
                       f"{f(r['wall_ratio']['median'])} | {r['same_completions']} |")
        return out
    if name == "startup":
        out = ["| cache | reasoner s | plain s | ratio (median) | ratio min..max |", "|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['mode']} | {f(r['reasoner_s']['median'])} | {f(r['plain_s']['median'])} | "
                       f"**{f(r['ratio']['median'])}** | {f(r['ratio']['min'])}..{f(r['ratio']['max'])} |")
        return out
    if name == "hub_traffic":
        o, p = data["reasoner"], data["plain"]
        return ["| who | requests | bytes | file downloads |", "|---|---|---|---|",
                f"| reasoner prefetch ({data['nodes']} nodes) | {o['prefetch']['requests']} | {o['prefetch']['bytes_sent']} | {o['prefetch']['file_downloads']} (goal {data['files'] * data['nodes']}) |",
                f"| reasoner ranks ({data['ranks']}, offline) | {o['ranks']['requests']} | {o['ranks']['bytes_sent']} | {o['ranks']['file_downloads']} (goal 0) |",
                f"| plain TRL, every rank ({data['ranks']}) | {p['ranks']['requests']} | {p['ranks']['bytes_sent']} | {p['ranks']['file_downloads']} |"]
    if name == "push_cost":
        out = ["| measure | with pushes s | no pushes s | ratio |", "|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['measure']} | {f(r['push_s']['median'])} | {f(r['none_s']['median'])} | **{f(r['ratio_of_medians'])}** |")
        pair = data["save_step_pairs"]
        out.append(f"| save-step pairs (median, min..max, n={pair['n']}) | | | {f(pair['median'])} ({f(pair['min'])}..{f(pair['max'])}) |")
        return out
    if name == "memory":
        out = ["| model | batch x (prompt + completion) | measured growth MiB | estimated MiB | estimate / measured | plain peak MiB | reasoner peak MiB |",
               "|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['model']} | {r['batch']} x ({r['prompt_tokens']} + {r['completion_tokens']}) | "
                       f"{r['measured_growth_mib']:.0f} | {r['estimated_mib']:.0f} | {f(r['estimate_over_measured'])} | "
                       f"{r['plain_peak_rss_mib']:.0f} | {_mib(r['reasoner_peak_rss_mib'])} |")
        return out
    if name == "gpu":
        from bench.gpu_report import TABLE_HEAD, table_row

        title = ["**rehearsal on CPU, not a GPU measurement**", ""] if data.get("rehearsal") else []
        cells = [[f(v) if isinstance(v, float) else "-" if v is None else v for v in table_row(run)] for run in data["runs"]]
        return title + ["| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD)] + [
            "| " + " | ".join(str(c) for c in row) + " |" for row in cells]
    if name == "hub_latency":
        out = ["| operation | client | legacy req/s | legacy p50 / p99 ms | new req/s | new p50 / p99 ms | p50 legacy/new |",
               "|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            lg, nw = r["legacy"], r["new"]
            out.append(f"| {r['operation']} | {r['client']} | {lg['requests_per_s']:.1f} | {lg['p50_ms']:.1f} / "
                       f"{lg['p99_ms']:.1f} | {nw['requests_per_s']:.1f} | {nw['p50_ms']:.1f} / {nw['p99_ms']:.1f} | "
                       f"**{f(r['p50_ratio'])}** |")
        return out
    if name == "eval_sampling":
        out = ["| model | K | questions | --samples K s | K runs s | ratio (median) | ratio min..max |",
               "|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['model']} | {r['samples']} | {r['questions']} | {f(r['sampled_s']['median'])} | "
                       f"{f(r['k_runs_s']['median'])} | **{f(r['ratio']['median'])}** | {f(r['ratio']['min'])}.."
                       f"{f(r['ratio']['max'])} |")
        return out
    return ["```", json.dumps(data.get("rows"), indent=1), "```"]


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest settings (smoke run)")
    parser.add_argument("--only", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--summary-only", action="store_true", help="run nothing; summarise the results in --out")
    ns = parser.parse_args(argv)
    chosen = [n for n in ns.only.split(",") if n]
    unknown = set(chosen) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in ([] if ns.summary_only else chosen):
        command = [sys.executable, str(Path(__file__).parent / f"{name}.py"), "--out", str(ns.out),
                   *(QUICK[name] if ns.quick else [])]
        print(f"\n=== {name}: {' '.join(command[1:])}  (load average {os.getloadavg()[0]:.2f})", flush=True)
        started = time.monotonic()
        code = subprocess.run(command).returncode
        if name == "gpu" and code == EXIT_NO_GPU:
            print("=== gpu: skipped, no GPU on this machine", flush=True)
        elif code != 0:
            failed.append(name)
        print(f"=== {name} took {time.monotonic() - started:.0f} s", flush=True)
    text = summary(ns.out)
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "summary.md").write_text(text + "\n")
    print("\n" + text)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
