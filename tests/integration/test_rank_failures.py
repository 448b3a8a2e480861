"""A failure on the rank that works for all reaches every rank at once, on real two-rank launches.

The two ranks run as two single-process "nodes" (``--num_machines 2``), each under its own launcher, as on a
cluster: no launcher on the waiting rank's node knows that the other node's rank died. Over NCCL across nodes
the waiting rank would sit in its collective until the process-group timeout; over gloo on one host the dead
peer's closed socket ends the wait, but only as a "Connection closed by peer" traceback that says nothing of
the cause. Either way the fix is the same, and is what these tests check: the outcome itself travels through
the collective, so the waiting rank stops at once with one line naming what failed and where.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 240  # both ranks must have exited by then; the collective's own timeout is 1800 s


class BrokenHub(http.server.BaseHTTPRequestHandler):
    """A hub that answers every request with 500: an error reasoner has no user-facing explanation for."""

    def _fail(self) -> None:
        body = b'{"error": "internal error"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _fail

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def broken_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BrokenHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def launch_two_nodes(tmp_path: Path, train_args: list[str], env: dict[str, str]) -> list[subprocess.Popen]:
    port = free_port()
    procs = []
    for node in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
                   "--config_file", "accelerate_configs/cpu_ddp.yaml", "--num_machines", "2", "--num_processes", "2",
                   "--machine_rank", str(node), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
                   "-m", "reasoner.train", *train_args]
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def wait_all(procs: list[subprocess.Popen], deadline_s: float) -> list[int | None]:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s and any(p.poll() is None for p in procs):
        time.sleep(0.5)
    codes = [p.poll() for p in procs]
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return codes


def test_an_unexpected_error_on_rank_zero_in_preflight_stops_the_other_node_at_once(tmp_path, broken_hub):
    env = {**os.environ, "HF_ENDPOINT": broken_hub, "HF_TOKEN": "hf_test_token", "HF_HUB_OFFLINE": "0",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("ACCELERATE_USE_CPU", None)
    procs = launch_two_nodes(tmp_path, ["--recipe", "tiny-cpu", "--model.id", "org/model",
                                        "--output_dir", str(tmp_path / "out")], env)
    codes = wait_all(procs, DEADLINE_S)
    logs = [(tmp_path / f"node{node}.log").read_text() for node in (0, 1)]
    assert None not in codes, f"a rank was still waiting after {DEADLINE_S} s:\n" + logs[1][-3000:]
    assert codes[0] != 0 and codes[1] != 0, (codes, logs[1][-3000:])
    # Rank zero raised the real error with its traceback; the other rank said in one line what happened there.
    assert "Traceback" in logs[0] and "500" in logs[0], logs[0][-3000:]
    lines = [line for line in logs[1].splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, logs[1][-3000:]
    assert lines[0].startswith("error: global rank 0 failed while checking the hub and pinning commits (HfHubHTTPError")
    assert lines[0].endswith("its log has the traceback")
    # The launcher reports its child's exit with a traceback of its own; the training process printed none.
    assert "reasoner/" not in logs[1], logs[1][-3000:]


def test_a_user_error_on_rank_zero_reaches_the_other_node_as_the_same_line(tmp_path):
    """Nothing listens at the hub: rank zero's one-line error is every rank's error, exit code 2 everywhere."""
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_TOKEN": "hf_test_token",
           "HF_HUB_OFFLINE": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("ACCELERATE_USE_CPU", None)
    procs = launch_two_nodes(tmp_path, ["--recipe", "tiny-cpu", "--model.id", "org/model",
                                        "--output_dir", str(tmp_path / "out")], env)
    codes = wait_all(procs, DEADLINE_S)
    logs = [(tmp_path / f"node{node}.log").read_text() for node in (0, 1)]
    assert None not in codes, logs[1][-3000:]
    errors = [[line for line in log.splitlines() if line.startswith("error: ")] for log in logs]
    assert len(errors[0]) == 1 and errors[0] == errors[1], errors
    assert "unreachable" in errors[0][0]
    assert all("reasoner/" not in log for log in logs), logs


RANK_REWARD = '''
import os

def breaks_on_rank_one(completions, trainer_state=None, **kwargs):
    """Fine on the trial batch and at step 1; on global rank 1 only, raises from step 2 on."""
    if os.environ.get("RANK") == "1" and trainer_state is not None and trainer_state.global_step >= 1:
        raise RuntimeError("score table missing on this rank")
    return [0.5 for _ in completions]
'''


def test_a_reward_that_fails_on_one_rank_stops_every_rank_with_the_same_line(tmp_path, tiny_model):
    """Rank 1's reward raises at step 2 while rank 0's does not: both stop at that call, before the collective that
    gathers the rewards, each with the line naming the reward and the fix; no rank waits for a timeout."""
    import yaml

    from reasoner.recipe.load import load_recipe

    (tmp_path / "rank_rewards.py").write_text(RANK_REWARD)
    recipe = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text())
    recipe["rewards"] = {"correctness": 1.0, "rank_rewards.py:breaks_on_rank_one": 1.0}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop("ACCELERATE_USE_CPU", None)
    procs = launch_two_nodes(tmp_path, ["--recipe", str(tmp_path / "recipe.yaml"), "--model.id", str(tiny_model),
                                        "--max_steps", "3", "--output_dir", str(tmp_path / "out")], env)
    codes = wait_all(procs, 120)
    logs = [(tmp_path / f"node{node}.log").read_text() for node in (0, 1)]
    assert None not in codes, "a rank was still running after 120 s:\n" + logs[0][-3000:]
    assert codes[0] != 0 and codes[1] != 0, (codes, logs[0][-3000:])
    assert all("(exitcode: 2)" in log for log in logs), logs[0][-3000:]  # each training process: a user error
    errors = [[line for line in log.splitlines() if line.startswith("error: ")] for log in logs]
    assert len(errors[0]) == 1 and errors[0] == errors[1], (errors, logs[0][-3000:])
    assert errors[0][0] == (f"error: reward '{tmp_path / 'rank_rewards.py'}:breaks_on_rank_one' raised RuntimeError: "
                            "score table missing on this rank on a batch of 4 completions: fix the function")
    assert "step 1/3" in logs[0] and "step 2/3" not in logs[0]  # the check ran on the second step's batch
    # Neither training process printed a traceback (the launcher reports its child's exit with one of its own).
    assert all("reasoner/" not in log for log in logs), logs
