"""LFS side of uploads: which files go through LFS, and the signed URLs they are PUT to.

huggingface_hub PUTs an LFS object to the ``href`` the batch API returns without any
Authorization header (on the Hub the href is a pre-signed storage URL), so our hrefs carry their
own short-lived HMAC signature over (operation, repo, the repo's generation, oid, size, expiry),
keyed by a secret of the running server. The generation ties a URL to one incarnation of the repo:
once the repo is deleted its URLs are refused, also when a new repo takes its name.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

from reasoner_hub import errors
from reasoner_hub.paths import TYPES_BY_PLURAL, Repo, repo_from_parts

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub's limit for regular (non-LFS) files
URL_LIFETIME_S = 3600
BINARY_SUFFIXES = {
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib", ".lz4", ".mlmodel",
    ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt",
    ".pth", ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp3", ".mp4", ".wav", ".flac", ".ogg", ".pdf",
}


def upload_mode(path: str, size: int, sample: bytes) -> str:
    """``lfs`` for large files, known binary formats (parquet, safetensors, ...) and binary content."""
    if size == 0:
        return "regular"  # the client uploads empty files as regular anyway
    if size >= LFS_THRESHOLD or posixpath.splitext(path)[1].lower() in BINARY_SUFFIXES:
        return "lfs"
    return "lfs" if _looks_binary(sample) else "regular"


def _looks_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # The sample is cut at 512 bytes: a multi-byte character split at the end is still text.
        return error.start < len(sample) - 3
    return False


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _signature(self, operation: str, repo: Repo, generation: str, oid: str, size: int, expires: int,
                   client: str, pid: str) -> str:
        fields = (operation, repo.type, repo.id, generation, oid, str(size), str(expires), client, pid)
        return hmac.new(self._secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()

    def href(self, operation: str, base: str, repo: Repo, generation: str, oid: str, size: int, client: str = "",
             pid: str = "") -> str:
        """The URL to PUT (``upload``) or GET (``download``) one object of one incarnation of ``repo``.

        ``client``/``pid`` name the caller in the metrics (the request to the URL carries no headers).
        """
        expires = int(time.time()) + URL_LIFETIME_S
        sig = self._signature(operation, repo, generation, oid, size, expires, client, pid)
        extra = "".join(f"&{k}={quote(v, safe='')}" for k, v in (("client", client), ("pid", pid)) if v)
        return f"{base}/_lfs/{repo.plural}/{quote(repo.id)}/{oid}?size={size}&expires={expires}{extra}&sig={sig}"

    def check(self, operation: str, repo: Repo, generation: str | None, oid: str, size: int, expires: int, sig: str,
              client: str = "", pid: str = "") -> bool:
        """Whether ``sig`` signs this URL for ``operation``; never when the repo is gone (``generation`` None)."""
        if expires < time.time() or generation is None:
            return False
        return hmac.compare_digest(self._signature(operation, repo, generation, oid, size, expires, client, pid), sig)


@dataclass(frozen=True)
class SignedObject:
    """What an ``/_lfs/{t}/{org}/{name}/{oid}?...`` URL names, signature not yet checked."""

    repo: Repo
    oid: str
    size: int
    expires: int
    sig: str
    client: str
    pid: str


def signed_object(segs: list[str], arg) -> SignedObject:
    """The object an ``/_lfs/`` URL names (``segs`` after ``_lfs``, ``arg`` reads the query); 403 if malformed."""
    if len(segs) != 4 or segs[0] not in TYPES_BY_PLURAL:
        raise errors.HubError(404, "Not found: an LFS object URL is /_lfs/{type}s/{org}/{name}/{oid}")
    repo = repo_from_parts(TYPES_BY_PLURAL[segs[0]], unquote(segs[1]), unquote(segs[2]))
    try:
        size, expires = int(arg("size") or -1), int(arg("expires") or 0)
    except ValueError:
        raise errors.forbidden("Invalid LFS object URL") from None
    return SignedObject(repo, segs[3], size, expires, arg("sig") or "", arg("client") or "", arg("pid") or "")
