"""The launchers' steps as Python commands (reasoner.launch), each on its own, with real processes and servers.

The scripts that chain them run for real in tests/integration/test_scripts.py (one machine) and tests/slurm (two nodes).
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from script_vars import read_assignments, script_reads
from training_run import TrainingRun

from reasoner.errors import UserError
from reasoner.launch import health, launchenv, nodes, processes, requeue
from reasoner.train.preempted import MARKER_ENV, read_marker, write_marker

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"local": ROOT / "launch" / "grpo_local.sh", "slurm": ROOT / "slurm" / "grpo.sbatch"}
# Exported for the processes the local launcher starts (reasoner.launch.noproxy, reasoner.launch.ports), not read
# by the script itself.
FOR_CHILDREN = {"NO_PROXY", "REASONER_MAIN_PORT", "REASONER_VLLM_PORT", "REASONER_GROUP_PORT"}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full, timeout=timeout)


# ---- launch-env -----------------------------------------------------------------------------------

def test_request_forms_and_usage():
    assert launchenv.parse_request(["local", "--check", "tiny-cpu", "--max_steps", "2"]) == launchenv.Request(
        "local", "tiny-cpu", ("--max_steps", "2"), None, True)
    assert launchenv.parse_request(["slurm", "--pins", "p.txt", "r"]).pins == Path("p.txt")
    for bad in ([], ["elsewhere", "r"], ["local"], ["local", "--pins"], ["local", "--max_steps", "1"]):
        with pytest.raises(UserError, match="usage: reasoner launch-env"):
            launchenv.parse_request(bad)


def test_train_only_flags_do_not_reach_plan_and_prefetch():
    args = ["--max_steps", "2", "--resume-from-hub", "--time-budget-minutes", "5", "--no-resume", "--dry-run",
            "--model.id", "org/m"]
    assert launchenv.recipe_overrides("tiny-cpu", args) == ["--max_steps", "2", "--model.id", "org/m"]


def test_assignments_round_trip_through_bash():
    values = {"PLAIN": "a b 'c'", "EMPTY": [], "COMMAND": ["x", '{"backend": "nccl"}', "it's", "$HOME"]}
    script = launchenv.shell_assignments({"EXPORTED": "/tmp/{node} x"}, values)
    script += 'printf "<%s>\\n" "$PLAIN" "${#EMPTY[@]}" "${COMMAND[@]}"; bash -c \'printf "<%s>\\n" "$EXPORTED"\'\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["<a b 'c'>", "<0>", "<x>", '<{"backend": "nccl"}>', "<it's>", "<$HOME>", "</tmp/{node} x>"]


def launch_env(tmp_path: Path, *args: str, **extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONER_", "SLURM_", "CUDA_VISIBLE"))}
    env.update(REASONER_LOG_DIR=str(tmp_path / "logs"), REASONER_PYTHON=sys.executable, **extra)
    result = cli("launch-env", *args, env=env)
    return (read_assignments(result.stdout) if result.returncode == 0 else {}), result


def test_local_check_pass_prints_the_prefetch_step_only(tmp_path):
    values, result = launch_env(tmp_path, "local", "--check", "tiny-cpu", "--max_steps", "1", "--resume-from-hub",
                                REASONER_GPUS_PER_NODE="0")
    assert result.returncode == 0, result.stderr
    assert set(values) == {"PINS_FILE", "PREFETCH_ARGS", *FOR_CHILDREN}
    assert values["PREFETCH_ARGS"] == ["--recipe", "tiny-cpu", "--max_steps", "1"]
    assert Path(values["PINS_FILE"][0]).parent == tmp_path / "logs"
    assert result.stderr == ""  # the table waits for the pinned pass


def test_local_full_pass_gives_the_server_and_training_commands(tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text("--model.revision " + "a" * 40 + "\n")
    values, result = launch_env(tmp_path, "local", "--pins", str(pins), "tiny-cpu", "--generation.backend", "vllm",
                                "--generation.placement", "dedicated-gpu",  # the planner colocates when left to it
                                "--model.id", "Qwen/Qwen2.5-0.5B-Instruct", REASONER_GPUS_PER_NODE="3",
                                REASONER_VLLM_PORT="8123")
    assert result.returncode == 0, result.stderr
    assert "CUDA_VISIBLE_DEVICES (generation)  0" in result.stderr and "checkpoints:" in result.stderr
    server = values["SERVER_COMMAND"]
    assert server[:6] == [sys.executable, "-m", "reasoner.cli", "serve-generation", "--devices", "0"]
    assert server[6] == "--" and server[7:9] == ["--model", "Qwen/Qwen2.5-0.5B-Instruct"] and "a" * 40 in server
    assert values["SERVER_URL"] == ["http://127.0.0.1:8123/health"]
    train = values["TRAIN_COMMAND"]
    assert train[:6] == [sys.executable, "-m", "reasoner.cli", "train-node", "--machine_rank", "0"]
    options = train[6:train.index("--")]
    assert options == ["--cuda-visible-devices", "1,2", "--weight-sync-host", "127.0.0.1"]
    launch = train[train.index("--") + 1:]
    assert launch[:2] == ["--config_file", "accelerate_configs/cpu_ddp.yaml"]
    assert launch[launch.index("--num_processes") + 1] == "2"
    assert launch[launch.index("-m") + 1:][:3] == ["reasoner.train", "--recipe", "tiny-cpu"]
    assert launch[-2:] == ["--model.revision", "a" * 40] and "--vllm_group_port" in launch


def test_local_full_pass_starts_the_colocated_layout_the_planner_chose(tmp_path):
    """Left to the planner, three GPUs train and generate in every rank: no server, three processes, and the
    colocated engine's tensor-parallel size, memory share and sleep mode (off: the engine fits awake) reach the
    ranks."""
    pins = tmp_path / "pins.txt"
    pins.write_text("--model.revision " + "a" * 40 + "\n")
    values, result = launch_env(tmp_path, "local", "--pins", str(pins), "tiny-cpu", "--generation.backend", "vllm",
                                "--model.id", "Qwen/Qwen2.5-0.5B-Instruct", REASONER_GPUS_PER_NODE="3")
    assert result.returncode == 0, result.stderr
    assert "chosen: colocate tp1" in result.stderr and "placement colocate" in result.stderr
    assert not any(values["SERVER_COMMAND"]) and values["SERVER_URL"] == [""]
    train = values["TRAIN_COMMAND"]
    launch = train[train.index("--") + 1:]
    assert launch[launch.index("--num_machines") + 1] == "1" and launch[launch.index("--num_processes") + 1] == "3"
    args = launch[launch.index("-m") + 1:]
    for flag, value in (("--generation.placement", "colocate"), ("--generation.tensor_parallel_size", "1"),
                        ("--generation.gpu_memory_utilization", "0.3"), ("--vllm_enable_sleep_mode", "false")):
        assert args[args.index(flag) + 1] == value


@pytest.mark.parametrize("extra,message", [
    ({"REASONER_PLACEMENT": "dedicated-node", "REASONER_GPUS_PER_NODE": "8"}, "no node left to train"),
    ({"REASONER_ACCELERATE_CONFIG": "accelerate_configs/nope.yaml", "REASONER_GPUS_PER_NODE": "0"},
     "accelerate config accelerate_configs/nope.yaml not found"),
])
def test_local_launch_refuses_what_it_cannot_start(tmp_path, extra, message):
    _values, result = launch_env(tmp_path, "local", "--check", "tiny-cpu", "--generation.backend", "vllm"
                                 if "PLACEMENT" in str(extra) else "transformers", **extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_local_launcher_reads_every_variable_launch_env_prints_and_nothing_else(tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text("\n")
    printed = set(launch_env(tmp_path, "local", "--check", "tiny-cpu", REASONER_GPUS_PER_NODE="0")[0])
    printed |= set(launch_env(tmp_path, "local", "--pins", str(pins), "tiny-cpu", REASONER_GPUS_PER_NODE="0")[0])
    reads = script_reads(SCRIPTS["local"]) - {"REASONER_PYTHON", "BASH_SOURCE"}
    assert printed - FOR_CHILDREN == reads


# ---- node-env, requested GPUs --------------------------------------------------------------------

def test_node_env_expands_the_cache_per_node():
    result = cli("node-env", env={"REASONER_CACHE_DIR": "/scratch/cache-{node}", "SLURMD_NODENAME": "gpu07"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["export REASONER_CACHE_DIR=/scratch/cache-gpu07",
                                          "export HF_HUB_CACHE=/scratch/cache-gpu07/hub",
                                          "export HF_DATASETS_CACHE=/scratch/cache-gpu07/datasets"]
    assert cli("node-env", env={"REASONER_CACHE_DIR": ""}).stdout == ""


def test_requested_gpus_come_from_the_jobs_request():
    def scontrol(text: str):
        return lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, text, "")

    show = "JobId=7 JobName=x\n   TresPerNode=gres:gpu:4\n   TRES=cpu=64,node=2"
    assert nodes.requested_gpus_per_node("7", 2, scontrol(show)) == 4
    assert nodes.requested_gpus_per_node("7", 2, scontrol("   TresPerNode=gres/gpu:h100:8,gres/nic:1")) == 8
    assert nodes.requested_gpus_per_node("7", 2, scontrol("   TresPerJob=gres:gpu:16")) == 8
    assert nodes.requested_gpus_per_node("7", 2, scontrol("   TRES=cpu=64,node=2,gres/gpu=8")) == 0  # implied only


# ---- stopping and signals ------------------------------------------------------------------------

def test_stop_process_waits_then_kills_what_ignores_the_signal():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert processes.stop_process(polite.pid, grace=10)
    assert polite.wait(5) == -signal.SIGTERM
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    time.sleep(0.5)
    assert not processes.stop_process(stubborn.pid, grace=1)  # still there after the grace period
    assert processes.stop_process(stubborn.pid, grace=1, kill=True)
    assert stubborn.wait(5) == -signal.SIGKILL


def test_stop_process_stops_a_whole_session():
    leader = subprocess.Popen(["setsid", "bash", "-c", "sleep 60 & sleep 60 & wait"])
    time.sleep(0.5)
    children = processes.children_of(leader.pid)
    assert len(children) == 2
    result = cli("stop-process", str(leader.pid), "--group", "--grace", "10", "--kill")
    assert result.returncode == 0, result.stderr
    leader.wait(5)
    assert not any(processes.is_running(pid) for pid in children)


def test_the_launcher_ignores_stop_signals_and_the_ranks_get_usr1(tmp_path):
    """A stand-in launcher (a real process) starts a stand-in rank; SIGTERM to the node process reaches the rank as
    SIGUSR1, the launcher lives on and exits with the rank's code."""
    rank = tmp_path / "rank.py"
    rank.write_text(textwrap.dedent(f"""
        import signal, sys, time
        def stop(signum, frame):
            open({str(tmp_path / 'rank-got')!r}, "w").write(signal.Signals(signum).name)
            sys.exit(75)
        signal.signal(signal.SIGUSR1, stop)
        signal.signal(signal.SIGTERM, stop)
        open({str(tmp_path / 'rank-ready')!r}, "w").write("ready")
        time.sleep(60)
    """))
    launcher = tmp_path / "launcher.py"
    launcher.write_text(textwrap.dedent(f"""
        import os, signal, subprocess, sys
        open({str(tmp_path / 'launcher-env')!r}, "w").write(os.environ.get("PET_SIGNALS_TO_HANDLE", "") + " "
            + str(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN))
        sys.exit(subprocess.call([sys.executable, {str(rank)!r}]))
    """))
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        from reasoner.launch.processes import run_launcher
        sys.exit(run_launcher([sys.executable, {str(launcher)!r}], os.environ, log=print))
    """)], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "rank-ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=60)
    assert driver.returncode == 75
    assert (tmp_path / "rank-got").read_text() == "SIGUSR1"
    assert (tmp_path / "launcher-env").read_text() == "SIGINT,SIGHUP,SIGQUIT True"
    assert "SIGTERM: asked 1 training rank(s) to checkpoint and stop" in out


# ---- health --------------------------------------------------------------------------------------

class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_wait_health_returns_once_the_server_answers():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        result = cli("wait-health", url, "--timeout", "20", "--pid", str(os.getpid()))
        assert result.returncode == 0 and "answers" in result.stderr
        assert not health.answers(url.replace("/health", "/missing"))
    finally:
        server.shutdown()


def test_wait_health_stops_when_the_server_dies_and_shows_its_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("loading\nImportError: no vLLM here\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = _closed_port()
    started = time.monotonic()
    result = cli("wait-health", f"http://127.0.0.1:{port}/health", "--timeout", "120", "--pid", str(dead.pid),
                 "--log", str(log))
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert "ImportError: no vLLM here" in result.stderr
    assert f"the vLLM server exited before answering http://127.0.0.1:{port}/health; its log is {log}" in result.stderr
    with pytest.raises(UserError, match=r"did not answer .* within 1s"):
        health.wait_health(f"http://127.0.0.1:{port}/health", timeout=1, interval=0.2)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- requeue -------------------------------------------------------------------------------------

def test_requeue_only_a_run_that_saved_on_the_warning(tmp_path):
    marker = tmp_path / "preempted.json"
    assert requeue.requeue_decision("USR1", marker) == (
        False, "preemption warning, but the run saved no checkpoint on it (it had ended); not requeueing")
    assert requeue.requeue_decision("USR1", marker, started=False)[0] is True
    write_marker(12, "/out/checkpoint-12", env={MARKER_ENV: str(marker)})
    assert read_marker(marker) == {"step": 12, "checkpoint": "/out/checkpoint-12"}
    assert requeue.requeue_decision("USR1", marker)[0] is True
    for signal_name in ("TERM", None):
        requeue_it, why = requeue.requeue_decision(signal_name, marker)
        assert not requeue_it and "checkpoint /out/checkpoint-12 (step 12) saved" in why
    assert cli("should-requeue", "--signal", "USR1", "--marker", str(marker)).returncode == 0
    term = cli("should-requeue", "--signal", "TERM", "--marker", str(marker))
    assert term.returncode == 1 and "not requeueing" in term.stderr
    assert write_marker(1, "x", env={}) is None  # no marker path: nothing written


def test_a_preempted_training_run_leaves_its_marker(tmp_path):
    """The ranks exit 75, which launchers turn into 1; the marker is what the job script reads."""
    from reasoner.models.tiny import ensure_tiny_model

    marker = tmp_path / "marker.json"
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               **{MARKER_ENV: str(marker)})
    run = TrainingRun(out, [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--model.id",
                            str(ensure_tiny_model()), "--max_steps", "20", "--save_steps", "100", "--output_dir",
                            str(out)], env)
    run.wait_for_step(2)
    run.process.send_signal(signal.SIGUSR1)
    assert run.wait() == 75, run.text()[-3000:]
    record = read_marker(marker)
    assert record is not None and record["checkpoint"] == str(out / f"checkpoint-{record['step']}")
    assert (out / f"checkpoint-{record['step']}" / "trainer_state.json").is_file()
    assert not marker.with_name(marker.name + ".partial").exists()
    assert shlex.split(f"'{marker}'") == [str(marker)]  # a path a job script can pass on
    assert json.loads(marker.read_text())["step"] == record["step"]


# ---- prefetch --------------------------------------------------------------------------------------------

def test_prefetch_from_an_unreachable_hub_never_says_it_answers(tmp_path):
    """Without a token nothing reaches the hub before pinning: "answers" may only follow the hub's first answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*",
               no_proxy="*")
    result = cli("prefetch", "--recipe", "tiny-cpu", "--model.id", "org/tiny", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "answers" not in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is unreachable" in lines[0] and "start the hub or fix HF_ENDPOINT" in lines[0], lines
