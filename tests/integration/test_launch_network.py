"""The launchers' network settings: the run's hosts bypass the job's HTTP proxy, and each run on one machine gets
its own free ports.

The proxy tests run TRL's own ``VLLMClient.check_server`` (the loop that never ends on a proxy's 502) in a
separate process, against a real HTTP server standing in for the vLLM server's ``/health``, with ``http_proxy``
pointing at a proxy that answers 502 to everything (or at a dead port), and with exactly the environment the
launcher code produced. Without that environment the same check goes to the proxy and never reaches the server
(the control case), so the tests can fail.
"""

from __future__ import annotations

import http.server
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port
from script_vars import read_assignments

from reasoner.launch import noproxy, ports

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` and records the request line."""

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.server.seen.append(self.requestline)  # type: ignore[attr-defined]
        body = b"{}"
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


def serve(status: int, port: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    server.status, server.seen = status, []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def health() -> Iterator[http.server.ThreadingHTTPServer]:
    """The stand-in for the vLLM server: 200 on every path, /health included."""
    server = serve(200)
    yield server
    server.shutdown()


@pytest.fixture(params=["proxy-502", "dead-proxy"])
def proxy(request) -> Iterator[tuple[str, http.server.ThreadingHTTPServer | None]]:
    """A proxy that cannot reach the compute nodes (answers 502), or a proxy address nothing listens on."""
    if request.param == "dead-proxy":
        yield f"http://127.0.0.1:{free_port()}", None
        return
    server = serve(502)
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()


def proxied_env(proxy_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES and not k.startswith(("REASONER_", "SLURM_"))}
    env.update({name: proxy_url for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")})
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    return env


CHECK = textwrap.dedent("""
    import sys
    from trl.generation.vllm_client import VLLMClient
    client = VLLMClient.__new__(VLLMClient)  # the server check alone: the constructor also needs vLLM installed
    client.base_url = sys.argv[1]
    client.check_server(total_timeout=3, retry_interval=0.2)
    print("reached", client.base_url)
""")


def trl_check_server(base_url: str, env: dict[str, str], timeout: float = 60) -> str:
    """stdout of TRL's check_server in a fresh process ("" when it did not return in ``timeout`` seconds)."""
    try:
        result = subprocess.run([sys.executable, "-c", CHECK, base_url], env=env, capture_output=True, text=True,
                                timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout


def launch_env(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, list[str]]:
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", "launch-env", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    values = read_assignments(result.stdout)  # upper-case names only: add no_proxy as bash reads it
    values["no_proxy"] = subprocess.run(["bash", "-c", f'{result.stdout}\nprintf %s "$no_proxy"'], capture_output=True,
                                        text=True, check=True).stdout.split("\0")
    return values


def test_the_local_launchers_environment_reaches_the_server_past_the_proxy(tmp_path, health, proxy):
    proxy_url, proxy_server = proxy
    port = health.server_address[1]
    pins = tmp_path / "pins.txt"
    pins.write_text("--model.revision " + "a" * 40 + "\n")
    env = proxied_env(proxy_url, NO_PROXY="registry.example.org", REASONER_LOG_DIR=str(tmp_path / "logs"),
                      REASONER_PYTHON=sys.executable, REASONER_GPUS_PER_NODE="3", REASONER_VLLM_PORT=str(port))
    values = launch_env(tmp_path, env, "local", "--pins", str(pins), "tiny-cpu", "--generation.backend", "vllm",
                        "--generation.placement", "dedicated-gpu",  # a server; left to it, the planner colocates
                        "--model.id", "Qwen/Qwen2.5-0.5B-Instruct")
    assert values["NO_PROXY"] == values["no_proxy"]
    entries = values["NO_PROXY"][0].split(",")
    assert entries[0] == "registry.example.org" and "127.0.0.1" in entries  # the user's entry kept, first
    base_url = values["SERVER_URL"][0].removesuffix("/health")
    assert base_url == f"http://127.0.0.1:{port}"

    # Without the launcher's variables TRL's check goes to the proxy: it loops on the 502, or fails on the dead port.
    assert "reached" not in trl_check_server(base_url, env, timeout=15)
    assert not health.seen
    if proxy_server is not None:
        assert proxy_server.seen, "the control request never went to the proxy"
        proxy_server.seen.clear()

    launched = {**env, "NO_PROXY": values["NO_PROXY"][0], "no_proxy": values["no_proxy"][0]}
    assert f"reached {base_url}" in trl_check_server(base_url, launched)
    assert health.seen and all(line.startswith("GET /health") for line in health.seen), health.seen
    assert proxy_server is None or not proxy_server.seen, proxy_server.seen


def test_the_slurm_launchers_environment_names_every_node(tmp_path):
    names, addrs = ["gpu-a1", "gpu-a2"], ["10.1.0.11", "10.1.0.12"]
    env = {**os.environ, "no_proxy": "corp.example", "REASONER_NODELIST": " ".join(names),
           "REASONER_NODE_ADDRS": " ".join(addrs)}
    from reasoner.launch import launchenv
    from reasoner.topology import plan_for_recipe
    from reasoner.recipe.load import load_recipe

    recipe = load_recipe("tiny-cpu", ["--generation.backend", "vllm"])
    layout = plan_for_recipe(recipe, env={**env, "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2"}, gpus_per_node=4,
                             nodes=2)
    hosts = launchenv.run_hosts(layout)
    assert set(addrs) <= set(hosts) and set(names) <= set(hosts) and layout.vllm_host in hosts
    values = noproxy.no_proxy_env(env, hosts)
    assert values["NO_PROXY"].split(",")[0] == "corp.example" and set(addrs) <= set(values["no_proxy"].split(","))


def test_reasoner_train_in_server_mode_reaches_its_server_past_the_proxy(tmp_path, health, proxy):
    """Plain ``reasoner train`` with a server on a GPU of its node: the grpo config it builds puts the server on
    NO_PROXY before TRL makes its client."""
    proxy_url, proxy_server = proxy
    port = health.server_address[1]
    script = textwrap.dedent(f"""
        import os
        from reasoner.recipe.load import load_recipe
        from reasoner.train.run import build_grpo_config
        recipe = load_recipe("tiny-cpu", ["--generation.backend", "vllm", "--generation.placement", "dedicated-gpu"])
        config = build_grpo_config(recipe)
        print(f"http://{{config.vllm_server_host}}:{{config.vllm_server_port}}")
        print(os.environ["no_proxy"])
        print(os.environ["NO_PROXY"])
    """)
    env = proxied_env(proxy_url, no_proxy="corp.example", REASONER_VLLM_PORT=str(port))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    base_url, lower, upper = result.stdout.split()[-3:]
    assert lower == upper and lower.split(",")[0] == "corp.example"
    assert f"reached {base_url}" in trl_check_server(base_url, {**env, "no_proxy": lower, "NO_PROXY": upper})
    assert health.seen and (proxy_server is None or not proxy_server.seen)


def test_no_proxy_merges_both_spellings_once():
    env = {"no_proxy": "a.example, 10.0.0.0/8", "NO_PROXY": "a.example,b.example"}
    values = noproxy.no_proxy_env(env, ["10.1.2.3", None, "b.example", "node7"])
    assert values["no_proxy"] == values["NO_PROXY"] == (
        "a.example,10.0.0.0/8,b.example,localhost,127.0.0.1,::1,10.1.2.3,node7")
    assert noproxy.no_proxy_env({}, [])["NO_PROXY"] == "localhost,127.0.0.1,::1"


# ---- ports -----------------------------------------------------------------------------------------------

def test_two_local_launches_get_distinct_free_ports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONER_", "SLURM_", "CUDA_VISIBLE"))}
    env.update(REASONER_LOG_DIR=str(tmp_path / "logs"), REASONER_PYTHON=sys.executable, REASONER_GPUS_PER_NODE="0",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [launch_env(tmp_path, env, "local", "--check", "tiny-cpu") for _ in range(2)]
    chosen = [int(run[name][0]) for run in runs for name in ports.PORT_VARIABLES.values()]
    assert len(set(chosen)) == 6, chosen
    assert all(ports.PORT_RANGE[0] <= port <= ports.PORT_RANGE[1] and ports.is_free(port) for port in chosen)
    # The pinned pass inherits the exported ports: the rendezvous the training command uses is the one chosen.
    pins = tmp_path / "pins.txt"
    pins.write_text("\n")
    inherited = {**env, **{name: runs[0][name][0] for name in ports.PORT_VARIABLES.values()}}
    second = launch_env(tmp_path, inherited, "local", "--pins", str(pins), "tiny-cpu")
    train = second["TRAIN_COMMAND"]
    assert train[train.index("--main_process_port") + 1] == runs[0]["REASONER_MAIN_PORT"][0]
    assert {name: second[name] for name in ports.PORT_VARIABLES.values()} == {
        name: runs[0][name] for name in ports.PORT_VARIABLES.values()}


class Scripted(random.Random):
    """A random source that proposes the given ports in order."""

    def __init__(self, proposals: list[int]) -> None:
        super().__init__(0)
        self.proposals = iter(proposals)

    def randint(self, a: int, b: int) -> int:  # noqa: ARG002 - random.Random API
        return next(self.proposals)


def test_a_port_in_use_is_never_given_and_overrides_are_kept():
    first, second, third = ports.free_ports(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first))
        busy.listen()
        assert not ports.is_free(first)
        assert ports.free_ports(2, rng=Scripted([first, second, first, second, third])) == [second, third]
    picked = ports.local_ports({"REASONER_VLLM_PORT": "8123"})
    assert picked["REASONER_VLLM_PORT"] == "8123"
    assert len({picked["REASONER_MAIN_PORT"], picked["REASONER_GROUP_PORT"], "8123"}) == 3
