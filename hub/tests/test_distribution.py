"""``pip install ./hub`` alone, in a fresh virtual environment, gives a working ``reasoner-hub serve``.

The environment has no system site packages and no path into the checkout: the hub it runs is the
installed copy, with the hub's own dependencies and none of the trainer's (torch, transformers, trl,
datasets). pip's cache makes the install take seconds after the first time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download

from .helpers import REPO_ROOT, WRITE_TOKEN
from .served import Served

TRAINER_ONLY = ("torch", "transformers", "trl", "datasets")


def _fresh_install(tmp_path: Path) -> Path:
    """A venv (no system site packages) with ``pip install hub/`` from a copy of the checkout; its bin folder."""
    source = tmp_path / "checkout" / "hub"
    shutil.copytree(REPO_ROOT / "hub", source,
                    ignore=shutil.ignore_patterns("tests", "*.egg-info", "build", "__pycache__"))
    home = tmp_path / "venv"
    venv.create(home, with_pip=True, system_site_packages=False)
    python = home / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return home / "bin"


def test_pip_install_hub_alone_serves_huggingface_hub(tmp_path):
    bin_dir = _fresh_install(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    probe = ("import importlib.util, reasoner_hub; print(reasoner_hub.__file__); "
             f"print([m for m in {TRAINER_ONLY!r} if importlib.util.find_spec(m)])")
    seen = subprocess.run([str(bin_dir / "python"), "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert seen.returncode == 0, seen.stderr
    location, trainer_modules = seen.stdout.splitlines()
    assert Path(location).is_relative_to(tmp_path / "venv"), location  # the installed copy, not the checkout
    assert trainer_modules == "[]", f"the hub's install pulled {trainer_modules}"
    no_torch = subprocess.run([str(bin_dir / "python"), "-c", "import torch"], env=env, capture_output=True)
    assert no_torch.returncode != 0

    served = Served(["--storage", str(tmp_path / "store")], env, program=[str(bin_dir / "reasoner-hub")])
    try:
        api = HfApi(endpoint=served.url, token=WRITE_TOKEN)
        api.create_repo("org/standalone")
        api.upload_file(path_or_fileobj=b"served by the installed hub", path_in_repo="f.txt", repo_id="org/standalone")
        assert api.model_info("org/standalone").sha
        path = hf_hub_download("org/standalone", "f.txt", endpoint=served.url, cache_dir=tmp_path / "cache",
                               token=False)
        assert Path(path).read_bytes() == b"served by the installed hub"
    finally:
        code, out, err = served.stop()
    assert code == 0 and "reasoner-hub: serving" in out, out + err
