"""Waiting for the generation server: its health endpoint answers, its process died, or the time ran out.

A server that dies while loading (a wrong model path, no GPU, a missing vLLM) must stop the launch at once with its
log's last lines, not after the whole timeout; one that never answers must stop it after the timeout with where to
look. Local addresses are asked directly, bypassing any HTTP proxy of the environment.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from reasoner.errors import UserError
from reasoner.launch.processes import is_running

LOG_TAIL_LINES = 40


def answers(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers with a 2xx status."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_health(url: str, *, timeout: float, pid: int | None = None, log: Path | None = None, interval: float = 2.0,
                name: str = "the vLLM server", alive: Callable[[int], bool] = is_running,
                clock: Callable[[], float] = time.monotonic) -> None:
    """Return once ``url`` answers; UserError when process ``pid`` dies first or ``timeout`` seconds pass."""
    deadline = clock() + timeout
    where = f"; its log is {log}" if log else ""
    while not answers(url):
        if pid is not None and not alive(pid):
            tail = log_tail(log)
            if tail:
                print(tail, file=sys.stderr, flush=True)
            raise UserError(f"{name} exited before answering {url}{where}" + (" (last lines above)" if tail else ""))
        if clock() >= deadline:
            raise UserError(f"{name} did not answer {url} within {timeout:g}s{where}; look there, or raise "
                            "REASONER_VLLM_TIMEOUT")
        time.sleep(interval)
