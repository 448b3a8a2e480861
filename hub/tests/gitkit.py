"""The real ``git`` and ``git-lfs`` command lines against a hub, each in a home folder of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GIT_LFS_HINT = "apt-get install -y git-lfs (or: make system)"


class Git:
    """``git`` with its own HOME (git-lfs filters installed there), no prompts, no system config."""

    def __init__(self, home: Path) -> None:
        if shutil.which("git") is None or shutil.which("git-lfs") is None:
            pytest.fail(f"the git tests need git and git-lfs: {GIT_LFS_HINT}", pytrace=False)
        home.mkdir(parents=True, exist_ok=True)
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update(HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_ASKPASS="",
                        NO_PROXY="*", no_proxy="*")
        self.run("lfs", "install", "--skip-repo")
        self.run("config", "--global", "user.name", "Tester")
        self.run("config", "--global", "user.email", "tester@example.org")
        self.run("config", "--global", "init.defaultBranch", "main")

    def run(self, *args: str, cwd: Path | None = None, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *args], cwd=cwd, env={**self.env, **extra_env}, capture_output=True,
                                text=True, timeout=300)
        if check and result.returncode != 0:
            pytest.fail(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result

    def log(self, cwd: Path, rev: str = "HEAD") -> list[str]:
        return self.run("log", "--format=%H", rev, cwd=cwd).stdout.split()


def with_password(url: str, token: str) -> str:
    """``http://user:TOKEN@host:port``: how git is given a token (the user name is not checked)."""
    return url.replace("http://", f"http://hf-user:{token}@", 1)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (outside ``.git``) -> its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }
