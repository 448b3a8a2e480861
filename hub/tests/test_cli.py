"""``python -m reasoner_hub serve``: the hub as a separate process, stopped by SIGTERM."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from reasoner_hub.cli import main

from .helpers import READ_TOKEN, WRITE_TOKEN
from .served import Served


def test_serve_with_tokens(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"- {{name: ci, token: {WRITE_TOKEN}, role: write}}\n")
    log = tmp_path / "requests.jsonl"
    served = Served(["--storage", str(tmp_path / "hub"), "--token-file", str(tokens),
                     "--token", f"viewer={READ_TOKEN}:read", "--request-log", str(log)])
    url = served.url
    try:
        api = HfApi(endpoint=url, token=WRITE_TOKEN)
        api.create_repo("org/served")
        api.upload_file(path_or_fileobj=b"served", path_in_repo="f.txt", repo_id="org/served")
        with pytest.raises(HfHubHTTPError) as error:
            HfApi(endpoint=url, token=READ_TOKEN).upload_file(path_or_fileobj=b"x", path_in_repo="x",
                                                              repo_id="org/served")
        assert error.value.response.status_code == 403
        path = hf_hub_download("org/served", "f.txt", endpoint=url, cache_dir=tmp_path / "cache", token=False)
        assert Path(path).read_bytes() == b"served"
    finally:
        code, out, err = served.stop()
    assert code == 0 and "stopped" in out and "2 token(s) enforced" in out
    everything = out + err + log.read_text()
    assert WRITE_TOKEN not in everything and READ_TOKEN not in everything
    assert (tmp_path / "hub" / "models" / "org" / "served" / "f.txt").read_bytes() == b"served"


def test_serve_without_tokens_warns_it_is_open(tmp_path):
    served = Served(["--storage", str(tmp_path / "hub")])
    try:
        HfApi(endpoint=served.url, token=False).create_repo("org/open")
    finally:
        code, out, err = served.stop()
    assert code == 0 and "WARNING no tokens configured" in err


@pytest.mark.s3
def test_serve_on_s3_with_credentials_from_the_environment(seaweedfs, tmp_path):
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **seaweedfs.env()}
    served = Served(["--storage", f"s3://{seaweedfs.bucket}/{prefix}", "--s3-endpoint", seaweedfs.endpoint], env)
    try:
        api = HfApi(endpoint=served.url, token=WRITE_TOKEN)
        api.create_repo("org/in-s3")
        api.upload_file(path_or_fileobj=b"\x00" * 1000, path_in_repo="w.bin", repo_id="org/in-s3")
    finally:
        code, _, _ = served.stop()
    assert code == 0
    listed = seaweedfs.client().list_objects_v2(Bucket=seaweedfs.bucket, Prefix=f"{prefix}/models/org/in-s3/",
                                                Delimiter="/")
    assert [o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]] == [".gitattributes", "w.bin"]


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    assert main(["serve", "--storage", "s3://"]) == 2
    assert main(["serve", "--storage", str(tmp_path), "--token", "no-role-here"]) == 2
    (tmp_path / "t.yaml").write_text("- {name: a, token: hf_abcdefgh, role: owner}\n")
    assert main(["serve", "--storage", str(tmp_path), "--token-file", str(tmp_path / "t.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "Traceback" not in "".join(err)


def test_port_in_use_exits_2(tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["serve", "--storage", str(tmp_path), "--port", str(port)]) == 2
    assert "pick another --port" in capsys.readouterr().err
