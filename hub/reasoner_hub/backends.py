"""``--storage`` to a Storage: a folder, or ``s3://BUCKET[/prefix]``.

Kept apart from ``storage.py`` (the interface and the folder backend) so that the interface never
imports a backend: ``s3storage`` depends on ``storage``, and only this module knows both.
"""

from __future__ import annotations

from reasoner_hub.errors import UserError
from reasoner_hub.s3storage import S3Storage
from reasoner_hub.storage import LocalStorage, Storage


def open_storage(spec: str, s3_endpoint: str | None = None) -> Storage:
    """``DIR`` gives a LocalStorage, ``s3://BUCKET[/prefix]`` an S3Storage (credentials from the AWS env vars)."""
    if spec.startswith("s3://"):
        rest = spec[len("s3://") :].strip("/")
        if not rest:
            raise UserError(f"--storage {spec!r} names no bucket: use s3://BUCKET or s3://BUCKET/prefix")
        bucket, _, prefix = rest.partition("/")
        return S3Storage(bucket, prefix=prefix, endpoint_url=s3_endpoint)
    if "://" in spec:
        raise UserError(f"--storage {spec!r} is neither a folder nor s3://BUCKET[/prefix]")
    return LocalStorage(spec)
