"""``python -m reasoner_hub serve`` as a real subprocess that tests can stop or ``kill -9``; with ``kill_at`` or
``kill_in_recovery``, the same command through ``hub_testkit.crashserve``, which SIGKILLs it at that storage write."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from hub_testkit import SUPPORT_DIR

from .helpers import HUB_ROOT, REPO_ROOT

URL_LINE = r"^(http://\S+)\s*$"  # the CLI prints the hub URL alone on its own line


class Served:
    """``serve`` in a subprocess; its output is pumped by threads so no read can block a test.

    ``program``: the command to run instead of ``python -m reasoner_hub`` (e.g. an installed ``reasoner-hub``).
    ``wait=False`` returns at once (for a process expected to die before it listens). ``kill_at``: SIGKILL
    before the Nth storage write after start-up recovery; ``kill_in_recovery``: before the Nth write of recovery.
    """

    def __init__(self, args: list[str], env: dict[str, str] | None = None, wait: bool = True,
                 kill_at: int | None = None, kill_in_recovery: int | None = None,
                 program: list[str] | None = None) -> None:
        command = program or [sys.executable, "-m", "reasoner_hub"]
        if kill_at or kill_in_recovery:
            command = [sys.executable, "-m", "hub_testkit.crashserve"]
            command += ["--kill-at-write", str(kill_at)] if kill_at else []
            command += ["--kill-in-recovery", str(kill_in_recovery)] if kill_in_recovery else []
        self.process = subprocess.Popen(
            [*command, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env if program else {**(env or os.environ), "PYTHONPATH": os.pathsep.join([str(HUB_ROOT), str(REPO_ROOT), str(SUPPORT_DIR)])},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.err, False), daemon=True).start()
        self.url = ""
        if wait:
            match = self.wait_for(URL_LINE)
            if match is None:
                raise RuntimeError(f"serve never printed its URL:\n{self.output()}")
            self.url = match.group(1)

    def _pump(self, stream, sink: list[str], lines: bool) -> None:
        for line in stream:
            sink.append(line)
            if lines:
                self._lines.put(line)
        if lines:
            self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match | None:
        """The first stdout line matching ``pattern``; None if the process ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                return None
            if match := re.search(pattern, line.rstrip("\n")):
                return match
        return None

    def output(self) -> str:
        time.sleep(0.1)  # let the pumps drain the pipes
        return "".join(self.out) + "".join(self.err)

    def kill(self) -> int:
        """SIGKILL: no clean-up of any kind, like a crash."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(20)

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(20)
        time.sleep(0.1)
        return code, "".join(self.out), "".join(self.err)
