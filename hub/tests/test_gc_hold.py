"""``reasoner-hub gc`` and a serving hub never touch one storage at once, and gc refuses bad arguments.

A hub serves from its own process (``reasoner-hub serve``); gc runs as the command a user types. gc beside a
serving hub deleted xorbs the hub still counted as stored, and re-uploads of those bytes failed until a restart;
now gc refuses in one line while a hub holds the storage, and a hub refuses to start while gc holds it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from reasoner_hub import storelock
from reasoner_hub.cli import main
from reasoner_hub.storage import LocalStorage
from reasoner_hub.storelock import LEASES, hold_for_gc
from reasoner_hub.xet.gc import DEFAULT_GRACE_MINUTES, XORBS

from .helpers import WRITE_TOKEN, client_env, raw_request, run_client
from .served import Served


def _spec(storage, request) -> tuple[list[str], dict[str, str]]:
    """The ``--storage`` arguments for ``storage`` and the environment a user would have for it."""
    if isinstance(storage, LocalStorage):
        return [str(storage.root)], {}
    seaweed = request.getfixturevalue("seaweedfs")
    return [f"s3://{storage.bucket}/{storage.prefix}", "--s3-endpoint", seaweed.endpoint], seaweed.env()


def _gc(spec: list[str], env: dict[str, str], monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["gc", "--storage", *spec, *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip().splitlines()


def _upload(url: str, home: Path, repo: str, data: Path) -> None:
    run_client("xet_client.py", ["upload-file", repo, str(data), "data.bin"], client_env(url, home, xet=True))


def test_gc_refuses_while_a_hub_serves_and_the_hub_keeps_working(storage, tmp_path, request, monkeypatch, capsys):
    spec, env = _spec(storage, request)
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(600_000))
    home = tmp_path / "home"  # one client cache: it remembers the xorbs it uploaded, as hf_xet does
    served = Served(["--storage", *spec, "--token", f"writer={WRITE_TOKEN}:write"], {**os.environ, **env})
    try:
        _upload(served.url, home, "org/first", data)
        HfApi(endpoint=served.url, token=WRITE_TOKEN).delete_repo("org/first")  # its xorb is now garbage
        xorbs = set(storage.list(XORBS))
        assert xorbs

        code, lines = _gc(spec, env, monkeypatch, capsys, "--grace-minutes", "0")
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith("error: ") and "served by a running hub" in lines[0] and "stop every" in lines[0]
        assert set(storage.list(XORBS)) == xorbs  # nothing deleted

        code, lines = _gc(spec, env, monkeypatch, capsys, "--grace-minutes", "0", "--dry-run")  # reads only: allowed
        assert code == 0 and "would delete 1;" in lines[-1], lines
        assert set(storage.list(XORBS)) == xorbs

        # The same bytes from the same client cache (it skips the xorb it remembers) upload and download whole.
        _upload(served.url, home, "org/second", data)
        status, _, body = raw_request(served.url, "GET", "/org/second/resolve/main/data.bin",
                                      headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert status == 200 and body == data.read_bytes()
        HfApi(endpoint=served.url, token=WRITE_TOKEN).delete_repo("org/second")
    finally:
        code, out, err = served.stop()
    assert code == 0, out + err

    # Stopped: gc runs, and holds the storage alone while it does (a hub starting meanwhile is refused).
    code, lines = _gc(spec, env, monkeypatch, capsys, "--grace-minutes", "0")
    assert code == 0 and "deleted 1;" in lines[-1] and not list(storage.list(XORBS)), lines
    hold = hold_for_gc(storage)
    try:
        refused = Served(["--storage", *spec], {**os.environ, **env}, wait=False)
        assert refused.process.wait(60) == 2
        err = [line for line in refused.output().splitlines() if line.startswith("error: ")]
        assert len(err) == 1 and "being collected by `reasoner-hub gc`" in err[0], refused.output()
        assert "Traceback" not in refused.output()
    finally:
        hold.release()
    again = Served(["--storage", *spec], {**os.environ, **env})  # released: serves again
    assert again.stop()[0] == 0


def test_two_hubs_may_serve_one_folder_and_gc_waits_for_both(folder_storage, tmp_path, monkeypatch, capsys):
    spec = [str(folder_storage.root)]
    first, second = Served(["--storage", *spec]), Served(["--storage", *spec])
    try:
        assert _gc(spec, {}, monkeypatch, capsys)[0] == 2
        assert first.stop()[0] == 0
        assert _gc(spec, {}, monkeypatch, capsys)[0] == 2  # the second still serves
    finally:
        first.kill()
        second.kill()  # kill -9 leaves no stale lock on a folder
    code, lines = _gc(spec, {}, monkeypatch, capsys)
    assert code == 0 and lines[-1].startswith("gc: "), lines


@pytest.mark.parametrize("value, says", [
    ("nan", "is not a number of minutes"),
    ("inf", "is not a number of minutes"),
    ("-inf", "is not a number of minutes"),
    ("-5", "--grace-minutes -5 is negative"),
])
def test_gc_refuses_a_grace_that_is_not_a_finite_count_of_minutes(folder_storage, value, says, capsys):
    folder_storage.put(XORBS + "0" * 64, b"x")
    os.utime(folder_storage.root / XORBS / ("0" * 64), (0, 0))  # old enough for any grace
    assert main(["gc", "--storage", str(folder_storage.root), f"--grace-minutes={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and f"default {DEFAULT_GRACE_MINUTES}," in err[0], err
    assert folder_storage.exists(XORBS + "0" * 64)


def test_a_bad_gc_command_line_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["gc", "--storage", str(tmp_path), "--grace-minutes", "-inf"])  # argparse reads -inf as an option
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "--grace-minutes" in err[0] and "--help" in err[0], err


def test_gc_refuses_a_missing_folder_and_creates_none(tmp_path, capsys):
    missing = tmp_path / "no-such-hub"
    assert main(["gc", "--storage", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "is not a folder" in err[0], err
    assert not missing.exists()
    (tmp_path / "a-file").write_text("x")
    assert main(["gc", "--storage", str(tmp_path / "a-file")]) == 2


@pytest.mark.s3
def test_on_s3_the_lease_of_a_killed_hub_holds_gc_off_until_it_expires(seaweedfs, monkeypatch, capsys):
    storage = seaweedfs.storage(prefix=f"t-{uuid.uuid4().hex[:12]}")
    spec, env = [f"s3://{storage.bucket}/{storage.prefix}", "--s3-endpoint", seaweedfs.endpoint], seaweedfs.env()
    Served(["--storage", *spec], {**os.environ, **env}).kill()  # kill -9: its lease stays behind
    [lease] = storage.list(LEASES)
    code, lines = _gc(spec, env, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and lease in lines[0] and "killed without stopping" in lines[0], lines
    monkeypatch.setattr(storelock, "LEASE_TTL_S", 1.0)  # as if its two minutes had passed
    time.sleep(1.5)
    code, lines = _gc(spec, env, monkeypatch, capsys)
    assert code == 0 and lines[-1].startswith("gc: "), lines
    assert not list(storage.list(LEASES))  # the stale lease is removed, and gc's own once done
