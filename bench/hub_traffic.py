"""Hub traffic of a launch with R ranks on N nodes: reasoner's prefetch-once-per-node against every rank
loading from the hub itself.

The nodes are simulated on this machine: each node is its own ``HF_HOME`` (so its own ``HF_HUB_CACHE``).
An embedded hub in this process serves the model and GSM8K rows and counts every request.

* reasoner: ``reasoner prefetch`` once per node (preflight, pin, download), then every rank runs
  ``python -m reasoner.train`` (one real GRPO step) with ``HF_HUB_OFFLINE=1`` on its node's cache, pinned to
  the commits the prefetch printed;
* baseline: every rank runs the plain TRL script against the hub with a cache of its own (what a launch
  that does nothing about it does on nodes without a shared cache).

Counts come from the hub's ``/api/_metrics`` endpoint (requests and bytes per repo, as deltas around each
phase) and its request log (file downloads: GETs of ``/resolve/`` with a body). The ranks of one node run
at the same time, the nodes one after the other.
Goal: reasoner downloads = files x nodes, and zero requests from ranks after the prefetch.

    python bench/hub_traffic.py                   # 4 ranks on 2 nodes
    python bench/hub_traffic.py --nodes 1 --ranks 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def file_downloads(records: list[dict]) -> int:
    """GET requests of repository files that sent a body (HEAD probes and 304s are not downloads)."""
    return sum(1 for r in records if r["method"] == "GET" and "/resolve/" in r["path"] and r["bytes_sent"] > 0)


def snapshot_files(home: Path) -> int:
    """Files in the snapshots a prefetch left in a node cache (model and data set)."""
    return sum(1 for p in (home / "hub").glob("*--*--*/snapshots/*/**/*") if p.is_file())


def run_parallel(commands: list[tuple[list[str], dict[str, str]]]) -> None:
    """Start the ranks of one node together and wait for all of them; fail loudly if one fails."""
    import os

    procs = []
    for command, env in commands:
        log = tempfile.TemporaryFile()
        procs.append((command, log, subprocess.Popen(command, env={**os.environ, **common.QUIET_ENV, **env},
                                                     cwd=str(common.REPO), stdout=log, stderr=subprocess.STDOUT)))
    failed = []
    for command, log, proc in procs:
        if proc.wait() != 0:
            log.seek(0)
            failed.append(f"{' '.join(command[:4])} ... exited {proc.returncode}:\n"
                          + log.read().decode("utf-8", "replace")[-1500:])
        log.close()
    if failed:
        raise RuntimeError("\n".join(failed))


class Phase:
    """Traffic at the hub between ``start()`` and ``stop()``: metrics deltas and the request log slice."""

    def __init__(self, hub: common.SeededHub) -> None:
        self.hub = hub

    def __enter__(self) -> "Phase":
        self.before = self.hub.metrics()
        self.log_start = len(self.hub.requests())
        return self

    def __exit__(self, *exc) -> None:
        self.after = self.hub.metrics()
        records = self.hub.requests()[self.log_start:]
        labels = set(self.hub.repo_labels)
        self.records = [r for r in records if r.get("repo") in labels]
        self.traffic = common.repo_traffic(self.before, self.after, self.hub.repo_labels)
        self.downloads = file_downloads(self.records)


def reasoner_launch(hub: common.SeededHub, ns, work: Path) -> dict:
    per_node = ns.ranks // ns.nodes
    recipe = common.MODEL_RECIPES[hub.model]
    common_args = ["--recipe", recipe, "--model.id", hub.model_repo, "--dataset.id", hub.data_repo,
                   "--dataset.config", "main"]
    homes = [work / "reasoner" / f"node{n}" for n in range(ns.nodes)]
    pins: list[str] = []
    with Phase(hub) as prefetch:
        for n, home in enumerate(homes):
            pins_file = home / "pins.txt"
            common.run_child([common.python(), "-m", "reasoner.cli", "prefetch", *common_args,
                              "--pins-out", str(pins_file)], env={**hub.env(), "HF_HOME": str(home)}).check()
            pins = pins_file.read_text().split()
    files = snapshot_files(homes[0])
    with Phase(hub) as ranks:
        for n, home in enumerate(homes):
            env = {**hub.env(), "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", **common.thread_env()}
            run_parallel([([common.python(), "-m", "reasoner.train", *common_args, *pins, "--no-resume",
                            "--dataset.limit", str(ns.limit), "--max_steps", str(ns.rank_steps),
                            "--save_steps", "100000", "--output_dir", str(work / "reasoner" / f"run-n{n}-r{r}")], env)
                          for r in range(per_node)])
    return {"files": files, "prefetch": {**prefetch.traffic, "file_downloads": prefetch.downloads},
            "ranks": {**ranks.traffic, "file_downloads": ranks.downloads}, "pins": pins}


def baseline_launch(hub: common.SeededHub, ns, work: Path, settings: Path) -> dict:
    per_node = ns.ranks // ns.nodes
    with Phase(hub) as ranks:
        for n in range(ns.nodes):
            commands = []
            for r in range(per_node):
                home = work / "plain" / f"node{n}-rank{r}"
                out = work / "plain" / f"run-n{n}-r{r}"
                commands.append(([common.python(), str(common.PLAIN_SCRIPT), "--model", hub.model_repo,
                                  "--data", hub.data_repo, "--data-config", "main", "--settings", str(settings),
                                  "--limit", str(ns.limit), "--max-steps", str(ns.rank_steps), "--output-dir", str(out)],
                                 {**hub.env(), "HF_HOME": str(home), **common.thread_env()}))
            run_parallel(commands)
    return {"ranks": {**ranks.traffic, "file_downloads": ranks.downloads}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--ranks", type=int, default=4, help="training ranks in all (a multiple of --nodes)")
    parser.add_argument("--model", default="tiny", choices=sorted(common.MODEL_RECIPES))
    parser.add_argument("--rank-steps", type=int, default=1, help="GRPO steps each rank runs")
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    if ns.nodes < 1 or ns.ranks < ns.nodes or ns.ranks % ns.nodes:
        parser.error("--ranks must be a positive multiple of --nodes")
    work = Path(tempfile.mkdtemp(prefix="bench-hub-traffic-"))
    try:
        with common.SeededHub(work / "hub", model=ns.model) as hub:
            recipe = common.load_bench_recipe(ns.model, ["--max_steps", str(ns.rank_steps), "--save_steps", "100000"])
            kwargs = common.grpo_kwargs(recipe)
            settings = work / "settings.json"
            settings.write_text(json.dumps(common.plain_settings(recipe, kwargs)))
            ours = reasoner_launch(hub, ns, work)
            theirs = baseline_launch(hub, ns, work, settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = ours["files"]
    rows = [
        ["reasoner: prefetch, once per node", ns.nodes, ours["prefetch"]["requests"], ours["prefetch"]["bytes_sent"],
         ours["prefetch"]["file_downloads"], files * ns.nodes],
        ["reasoner: ranks, HF_HUB_OFFLINE=1", ns.ranks, ours["ranks"]["requests"], ours["ranks"]["bytes_sent"],
         ours["ranks"]["file_downloads"], 0],
        ["plain TRL: every rank from the hub", ns.ranks, theirs["ranks"]["requests"], theirs["ranks"]["bytes_sent"],
         theirs["ranks"]["file_downloads"], "-"],
    ]
    print(common.table(["who", "processes", "requests", "bytes", "file downloads", "goal downloads"], rows))
    total_ours = ours["prefetch"]["requests"] + ours["ranks"]["requests"]
    goals = {"downloads_equal_files_x_nodes": ours["prefetch"]["file_downloads"] == files * ns.nodes,
             "zero_requests_from_ranks": ours["ranks"]["requests"] == 0}
    print(f"\nfiles in the model + data snapshots: {files}; requests reasoner/plain: {total_ours}/"
          f"{theirs['ranks']['requests']}; bytes reasoner/plain: "
          f"{ours['prefetch']['bytes_sent'] + ours['ranks']['bytes_sent']}/{theirs['ranks']['bytes_sent']}")
    print("goals: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goals.items()))
    path = common.write_result("hub_traffic", {"command": common.this_command(), "nodes": ns.nodes, "ranks": ns.ranks,
                                               "model": ns.model, "files": files, "reasoner": ours, "plain": theirs,
                                               "goals": goals}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
