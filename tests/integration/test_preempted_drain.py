"""A preempted two-rank run: no rank exits before rank zero's bounded wait for its queued pushes has ended.

torch elastic stops every worker once one exits and kills them about 30 s later, so a rank that left at once
would cut rank zero's wait short. Here the hub goes away after step 1, so the checkpoint rank zero queues on the
preemption signal cannot land and its wait runs its whole bound (``REASONER_PREEMPT_PUSH_S``). Both ranks
print their exit line only after that: each must come after rank zero's "still unfinished" line.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ports import free_port
from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from training_run import TrainingRun, rank_pids, step_records

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_drain_write_0123456789abcdef0123"
WAIT_S = 8


def test_every_rank_waits_for_rank_zeros_pushes_before_exiting(tiny_model, tmp_path):
    hub = HubServer(tmp_path / "bucket", tokens=[Token("trainer", WRITE_TOKEN, "write")]).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_", "ACCELERATE_"))}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=WRITE_TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"),
               HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1", NO_PROXY="*", no_proxy="*",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               REASONER_PUSH_ATTEMPTS="1000", REASONER_PUSH_BACKOFF_S="0.2", REASONER_PUSH_MAX_BACKOFF_S="1",
               REASONER_PREEMPT_PUSH_S=str(WAIT_S))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
               "accelerate_configs/cpu_ddp.yaml", "--main_process_port", str(free_port()), "-m", "reasoner.train",
               "--recipe", "tiny-cpu", "--model.id", str(tiny_model), "--max_steps", "30", "--save_steps", "100",
               "--output_dir", str(out), "--hub.push", "true", "--hub.push_checkpoints", "true",
               "--hub.repo_id", "org/drain"]
    run = TrainingRun(out, command, env)
    try:
        deadline = time.monotonic() + 300
        while max((r["step"] for r in step_records(out)), default=0) < 1:
            assert run.process.poll() is None and time.monotonic() < deadline, run.text()[-3000:]
            time.sleep(0.05)
        hub.stop()  # from now on no push lands: rank zero's wait on the signal runs its whole bound
        while max((r["step"] for r in step_records(out)), default=0) < 2:
            assert run.process.poll() is None and time.monotonic() < deadline, run.text()[-3000:]
            time.sleep(0.05)
        ranks = rank_pids(run.process.pid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[0], signal.SIGUSR1)
        run.wait(timeout=300)
    finally:
        hub.stop()
    log = run.text()
    waited = log.find(f"still unfinished after {WAIT_S} s")
    assert waited >= 0, log[-4000:]
    exits = [i for i in range(len(log)) if log.startswith("; exiting with 75 (", i)]
    assert len(exits) == 2, log[-4000:]  # both ranks say it
    assert min(exits) > waited, "a rank exited while rank zero was still waiting for its pushes:\n" + log[-4000:]
