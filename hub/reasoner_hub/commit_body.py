"""The body of ``POST /api/{type}s/{repo}/commit/{rev}``: x-ndjson lines of ``{key, value}``, checked one by one.

Keys as huggingface_hub sends them: ``header`` (summary, description, parentCommit), ``file``
(a regular file, base64 content), ``lfsFile`` (an LFS object uploaded before, by sha256),
``deletedFile``, ``deletedFolder``. Regular files are stored as blobs while the body streams in;
the branch moves only once every line is read and valid. Every malformed line or field is a 400
naming the line's key and the field, never an internal error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reasoner_hub import errors
from reasoner_hub.commits import AddFile, DeleteFile, DeleteFolder, Operation, git_blob_oid, lfs_pointer
from reasoner_hub.limits import MAX_REGULAR_FILE, integer, mapping, parse_json, text
from reasoner_hub.paths import Repo, file_path
from reasoner_hub.repos import RepoStore

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PARENT = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass
class CommitRequest:
    summary: str = "Upload files"
    description: str = ""
    parent: str | None = None
    operations: list[Operation] = field(default_factory=list)


XetHashOf = Callable[[str], "str | None"]


def parse_commit(lines: Iterable[bytes], store: RepoStore, repo: Repo,
                 xet_hash_of: XetHashOf = lambda sha256: None) -> CommitRequest:
    """The checked commit; ``xet_hash_of`` names the Xet file hash of an LFS object registered
    through Xet (kept in the manifest, so tree listings can show it without a lookup per file)."""
    request, header = CommitRequest(), None
    for line in lines:
        key, value = _split(line)
        if key == "header":
            header = mapping(value, "commit header")
        elif key == "file":
            request.operations.append(_regular_file(store, repo, mapping(value, "file")))
        elif key == "lfsFile":
            request.operations.append(_lfs_file(store, repo, mapping(value, "lfsFile"), xet_hash_of))
        elif key == "deletedFile":
            request.operations.append(DeleteFile(_path(mapping(value, "deletedFile"), "deletedFile")))
        elif key == "deletedFolder":
            request.operations.append(DeleteFolder(_path(mapping(value, "deletedFolder"), "deletedFolder", folder=True)))
        else:
            raise errors.bad_request(f"Unknown commit operation {key!r}: use header, file, lfsFile, deletedFile "
                                     "or deletedFolder")
    if header is None:
        raise errors.bad_request("commit body needs a header line with summary")
    request.summary = text(header, "summary", "commit header") or "Upload files"
    request.description = text(header, "description", "commit header", "") or ""
    request.parent = text(header, "parentCommit", "commit header") or None
    if request.parent is not None and not _PARENT.fullmatch(request.parent):
        raise errors.bad_request(f"Invalid parentCommit {request.parent[:60]!r}: use a commit id")
    return request


def _split(line: bytes) -> tuple[str, object]:
    item = parse_json(line, "commit body must be x-ndjson lines of {key, value}: a line")
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
        raise errors.bad_request("commit body must be x-ndjson lines of {key, value}")
    return item["key"], item["value"]


def _path(value: dict, what: str, folder: bool = False) -> str:
    path = text(value, "path", what, "") or ""
    return file_path(path.rstrip("/") if folder else path)


def _regular_file(store: RepoStore, repo: Repo, value: dict) -> AddFile:
    path = _path(value, "file")
    if (text(value, "encoding", f"file {path}", "base64") or "base64") != "base64":
        raise errors.bad_request(f"{path}: only base64 encoding is supported")
    try:
        data = base64.b64decode(text(value, "content", f"file {path}", "") or "", validate=True)
    except (binascii.Error, ValueError):
        raise errors.bad_request(f"{path}: content is not valid base64") from None
    if len(data) > MAX_REGULAR_FILE:
        raise errors.bad_request(f"{path}: regular files are limited to {MAX_REGULAR_FILE} bytes; use LFS")
    sha = store.put_blob(repo, data)
    return AddFile(path, sha, len(data), False, git_blob_oid(data))


def _lfs_file(store: RepoStore, repo: Repo, value: dict, xet_hash_of: XetHashOf) -> AddFile:
    path = _path(value, "lfsFile")
    oid = text(value, "oid", f"lfsFile {path}", "") or ""
    if (text(value, "algo", f"lfsFile {path}", "sha256") or "sha256") != "sha256" or not SHA256.fullmatch(oid):
        raise errors.bad_request(f"{path}: lfsFile needs algo sha256 and a sha256 oid")
    declared = integer(value, "size", f"lfsFile {path}")
    size = store.blob_size(repo, oid)
    if size is None:
        raise errors.bad_request(f"{path}: LFS object {oid} was never uploaded; upload it before committing")
    if declared is not None and declared != size:
        raise errors.bad_request(f"{path}: LFS object {oid} has {size} bytes, not {declared}")
    return AddFile(path, oid, size, True, git_blob_oid(lfs_pointer(oid, size)), xet_hash_of(oid))
