"""Commit manifests and the operations that build them: the immutable part of the data model.

A commit is a JSON manifest naming every file of the repo at that point (size, sha256, git oid,
LFS or not, the last commit that changed it); file contents live apart, as blobs named by sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from reasoner_hub import errors
from reasoner_hub.git.objects import build_trees, commit_object, object_id
from reasoner_hub.paths import Repo

DEFAULT_BRANCH = "main"
GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
"""


def now_iso() -> str:
    """The Hub's date format, which huggingface_hub's parser insists on."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a regular file: what the Hub reports as its ``oid``/ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit. ``oid`` is the git id (of the content, or of the LFS pointer); ``xet``
    the Xet file hash of an LFS file uploaded through Xet (known when it was committed)."""

    size: int
    sha256: str
    oid: str
    lfs: bool
    commit: str  # the last commit that changed this path
    xet: str | None = None

    def to_json(self) -> dict:
        out = {"size": self.size, "sha256": self.sha256, "oid": self.oid, "lfs": self.lfs, "commit": self.commit}
        if self.xet:
            out["xet"] = self.xet
        return out

    @staticmethod
    def from_json(data: dict) -> FileEntry:
        return FileEntry(data["size"], data["sha256"], data["oid"], data["lfs"], data["commit"], data.get("xet"))

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))


@dataclass(frozen=True)
class Commit:
    """A commit manifest. ``git`` is the body of the git commit object whose id is ``id`` (commits
    made since commits have git ids); None for a commit stored before that, or copied from another
    hub with its id, whose git object is synthesised when git asks for it (git/lineage.py)."""

    id: str
    parents: list[str]
    title: str
    message: str
    authors: list[str]
    date: str
    files: dict[str, FileEntry] = field(repr=False)
    git: str | None = field(default=None, repr=False)

    def to_json(self) -> bytes:
        data = {
            "id": self.id,
            "parents": self.parents,
            "title": self.title,
            "message": self.message,
            "authors": self.authors,
            "date": self.date,
            "files": {path: entry.to_json() for path, entry in sorted(self.files.items())},
        }
        if self.git is not None:
            data["git"] = self.git
        return json.dumps(data, separators=(",", ":")).encode()

    @staticmethod
    def from_json(raw: bytes) -> Commit:
        data = json.loads(raw)
        files = {path: FileEntry.from_json(entry) for path, entry in data["files"].items()}
        return Commit(data["id"], data["parents"], data["title"], data["message"], data["authors"], data["date"], files,
                      data.get("git"))


@dataclass(frozen=True)
class RepoMeta:
    """A repo as clients see it. ``generation`` names this incarnation of the name: a repo deleted
    and created again under the same name has a new one, so anything signed for the old repo (Xet
    tokens, signed URLs) can be refused for the new one."""

    repo: Repo
    private: bool
    created_at: str
    generation: str = ""


# Commit operations, already validated and with their blobs stored.
@dataclass(frozen=True)
class AddFile:
    path: str
    sha256: str
    size: int
    lfs: bool
    oid: str
    xet: str | None = None


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddFile | DeleteFile | DeleteFolder


PENDING = "pending"  # the ``commit`` of file entries a commit being built adds, until its id is known


def seal(parents: list[str], git_parents: list[str], title: str, message: str, author: str, date: str,
         files: dict[str, FileEntry], commit_id: str | None = None) -> Commit:
    """The commit of ``files``, whose entries added by it say ``PENDING``; its id is its git commit id.

    ``git_parents`` are the git ids of ``parents`` (they differ for a parent stored before commits
    had git ids). With ``commit_id`` (a commit copied from another hub with its id) the commit keeps
    that id and gets no git object of its own.
    """
    body = None
    if commit_id is None:
        tree, _ = build_trees({path: entry.oid for path, entry in files.items()})
        raw = commit_object(tree, git_parents, author, date, title, message)
        commit_id, body = object_id("commit", raw), raw.decode()
    stamped = {path: replace(e, commit=commit_id) if e.commit == PENDING else e for path, e in files.items()}
    return Commit(commit_id, parents, title, message, [author], date, stamped, body)


def apply_operations(files: dict[str, FileEntry], operations: list[Operation], commit_id: str) -> dict[str, FileEntry]:
    """The file table after ``operations``; deleting what is not there is 404, a file/folder clash 400."""
    out = dict(files)
    for op in operations:
        if isinstance(op, AddFile):
            out[op.path] = FileEntry(op.size, op.sha256, op.oid, op.lfs, commit_id, op.xet)
        elif isinstance(op, DeleteFile):
            if op.path not in out:
                raise errors.entry_not_found(op.path, message=f"A file with this name doesn't exist: {op.path}")
            del out[op.path]
        elif isinstance(op, DeleteFolder):
            folder = op.path.rstrip("/") + "/"
            doomed = [p for p in out if p.startswith(folder)]
            if not doomed:
                raise errors.entry_not_found(op.path, message=f"A file with this name doesn't exist: {op.path}")
            for path in doomed:
                del out[path]
    folders = {path.rsplit("/", i)[0] for path in out for i in range(1, path.count("/") + 1)}
    clash = sorted(folders & set(out))
    if clash:
        raise errors.bad_request(f"Invalid commit: {clash[0]!r} would be both a file and a folder")
    return out
