"""S3 backend of the storage interface (boto3, path-style addressing, SigV4).

Refs are updated with S3 conditional writes: ``PutObject`` with ``If-None-Match: *`` to create and
``If-Match: <etag>`` to replace, so two hub processes on one bucket cannot both move a branch from
the same commit. SeaweedFS (4.x) and AWS S3 honour both; at start-up the backend checks that the
store really refuses a second ``If-None-Match: *`` write and, if it does not, records it in
``conditional_writes`` (the server then warns that only one hub process may use the bucket, since
its in-process locks are all that serialise commits).

Uploads are received into a local spool folder of this process (see ``spool.py``) before they are
stored; ``sweep_temp`` removes the spool folders of dead hub processes and aborts the multipart
uploads a crash left unfinished under the hub's prefix (run at start-up: a neighbour hub on the
same prefix with a >8 MB upload in flight at that moment has it fail, and its client retries).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from reasoner_hub.errors import UserError
from reasoner_hub.spool import Spool, sweep
from reasoner_hub.storage import CHUNK, NotFound, PreconditionFailed, Storage, check_key

log = logging.getLogger(__name__)
SPOOL_FOLDER = "reasoner-localhub"  # under the system temp folder ($TMPDIR)
MAX_KEY_BYTES = 1024  # S3's limit


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client=None) -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error = ClientError
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        where = f" (S3 endpoint {endpoint_url})" if endpoint_url else ""
        self.description = f"s3://{bucket}/{self.prefix}".rstrip("/") + where
        self.s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
            ),
        )
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise UserError(
                    f"bucket {bucket!r} does not exist at {endpoint_url or 'the default S3 endpoint'}: create it "
                    f"first (aws s3 mb s3://{bucket} --endpoint-url URL)"
                ) from None
            raise UserError(
                f"cannot use bucket {bucket!r} at {endpoint_url or 'the default S3 endpoint'} ({code}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and --s3-endpoint"
            ) from None
        except BotoCoreError as error:
            raise UserError(
                f"cannot reach the S3 endpoint {endpoint_url or '(default)'}: {error}; check --s3-endpoint"
            ) from None
        self.conditional_writes = self._probe_conditional_writes()
        self._spool_base = Path(tempfile.gettempdir()) / SPOOL_FOLDER
        self._spool = Spool(self._spool_base)

    def temp_dir(self) -> str:
        return str(self._spool.path)

    def sweep_temp(self) -> list[str]:
        removed = sweep(self._spool_base)
        base = self.prefix + "/" if self.prefix else ""
        try:
            pages = self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=base)
            for page in pages:
                for upload in page.get("Uploads", []) or []:
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    removed.append(f"s3://{self.bucket}/{upload['Key']} (unfinished multipart upload)")
        except self._client_error as error:  # a store without the multipart listing: nothing to abort
            log.warning("could not list unfinished multipart uploads: %s", self._code(error) or error)
        return removed

    def _key(self, key: str) -> str:
        check_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode()) > MAX_KEY_BYTES:
            raise ValueError(f"storage key longer than {MAX_KEY_BYTES} bytes: {full[:80]!r}...")
        return full

    def _code(self, error) -> str:
        return str(error.response.get("Error", {}).get("Code", ""))

    def _status(self, error) -> int:
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))

    def _missing(self, error) -> bool:
        return self._code(error) in ("NoSuchKey", "404", "NotFound") or self._status(error) == 404

    def _probe_conditional_writes(self) -> bool:
        key = self._key(f".hub-probe/{uuid.uuid4().hex}")
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"1", IfNoneMatch="*")
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"2", IfNoneMatch="*")
            except self._client_error as error:
                return self._status(error) in (409, 412)
            return False
        except self._client_error:
            return False
        finally:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            except self._client_error:
                pass

    def get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self._client_error as error:
            if self._missing(error):
                raise NotFound(key) from None
            raise

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kwargs = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)["Body"]
        except self._client_error as error:
            if self._missing(error):
                raise NotFound(key) from None
            raise
        return _iter_body(body)

    def put(self, key: str, data: bytes, durable: bool = True) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: str, move: bool = False) -> None:
        self.s3.upload_file(path, self.bucket, self._key(key))

    def copy(self, src: str, dst: str) -> None:
        try:
            self.s3.copy({"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst))
        except self._client_error as error:
            if self._missing(error):
                raise NotFound(src) from None
            raise

    def list(self, prefix: str) -> Iterator[str]:
        base = self.prefix + "/" if self.prefix else ""
        full, strip = base + prefix, len(base)
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                yield item["Key"][strip:]

    def list_folders(self, prefix: str) -> Iterator[str]:
        base = self.prefix + "/" if self.prefix else ""
        full = base + prefix
        paginator = self.s3.get_paginator("list_objects_v2")
        names = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                names.add(item["Prefix"][len(full) :].rstrip("/"))
        yield from sorted(names)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._key(k) for k in self.list(prefix)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def size(self, key: str) -> int:
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except self._client_error as error:
            if self._missing(error):
                raise NotFound(key) from None
            raise

    def modified(self, key: str) -> float:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._key(key))["LastModified"].timestamp()
        except self._client_error as error:
            if self._missing(error):
                raise NotFound(key) from None
            raise

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._client_error as error:
            if self._missing(error):
                return None
            raise
        return answer["Body"].read(), answer["ETag"]

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        if not self.conditional_writes:
            # Compare-then-write: only safe under the server's own per-branch lock (one hub process).
            current = self.read_versioned(key)
            if (current[1] if current else None) != expected:
                raise PreconditionFailed(key)
            return self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)["ETag"]
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            answer = self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except self._client_error as error:
            # 412: the condition failed; 409: a concurrent conditional write is in flight (AWS).
            if self._status(error) in (409, 412) or self._code(error) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise PreconditionFailed(key) from None
            if expected is not None and self._missing(error):
                raise PreconditionFailed(key) from None
            raise
        return answer["ETag"]


def _iter_body(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
