"""Names the hub accepts (repo types, repo ids, paths in a repo, branch names) and the storage layout.

Every name that reaches a storage key passes through here first, so a request cannot leave its
repo: ``..``, ``.``, absolute paths, backslashes, empty segments, control characters and the
reserved ``.hub`` folder are refused with 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from reasoner_hub.errors import HubError, bad_request

# repo type -> plural used in URLs and in the bucket, and the prefix of its download URLs.
PLURALS = {"model": "models", "dataset": "datasets", "space": "spaces"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
TYPES_BY_PLURAL = {plural: kind for kind, plural in PLURALS.items()}

INTERNAL = ".hub"  # per-repo folder for blobs, commits, refs; never a user path
RESERVED_ORGS = {"api", "datasets", "spaces", "models", "_lfs", INTERNAL}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SEGMENT_BYTES = 255  # one name in a path (UTF-8): the limit of ext4, xfs, btrfs, ...
MAX_REF_KEY_BYTES = 240  # a branch or tag name, percent-quoted into one storage name


def is_commit_id(revision: str) -> bool:
    return bool(_COMMIT.fullmatch(revision))


@dataclass(frozen=True)
class Repo:
    """A repository: its type (model/dataset/space) and id (``org/name``)."""

    type: str
    id: str

    @property
    def plural(self) -> str:
        return PLURALS[self.type]

    @property
    def prefix(self) -> str:
        """Bucket prefix of the repo: its plain files sit right under it."""
        return f"{self.plural}/{self.id}/"

    @property
    def internal(self) -> str:
        return f"{self.prefix}{INTERNAL}/"

    @property
    def label(self) -> str:
        return f"{self.plural}/{self.id}"

    def url(self, base: str) -> str:
        return f"{base}/{URL_PREFIXES[self.type]}{self.id}"


def repo_type(value: str | None) -> str:
    kind = value or "model"
    if not isinstance(kind, str) or kind not in PLURALS:
        raise bad_request(f"Invalid repo type {value!r}: use model, dataset or space")
    return kind


def repo_from_parts(kind: str, org: str, name: str) -> Repo:
    for part in (org, name):
        if not _NAME.fullmatch(part) or ".." in part or "--" in part or part.endswith(".git"):
            raise HubError(
                400,
                f"Invalid repo id {org}/{name}: use org/name with letters, digits, '.', '_' or '-' "
                "(no '--' or '..', at most 96 characters each)",
            )
    if org in RESERVED_ORGS:
        raise bad_request(f"Invalid repo id {org}/{name}: {org!r} is a reserved namespace")
    return Repo(kind, f"{org}/{name}")


def valid_namespace(name: str) -> bool:
    """Whether ``name`` may be a user or organisation (the ``org`` of ``org/name``)."""
    return (
        bool(_NAME.fullmatch(name))
        and ".." not in name
        and "--" not in name
        and not name.endswith(".git")
        and name not in RESERVED_ORGS
    )


def repo_from_id(kind: str, repo_id: str) -> Repo:
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise bad_request(f"Invalid repo id {repo_id!r}: use org/name")
    return repo_from_parts(kind, parts[0], parts[1])


def file_path(path: str) -> str:
    """A path inside a repo: relative, ``/``-separated, no empty/``.``/``..`` segments, not under ``.hub``."""
    if not isinstance(path, str) or not path:
        raise bad_request("Invalid path in repo: empty")
    if path.startswith("/"):
        raise bad_request(f"Invalid path in repo {path!r}: absolute paths are refused")
    if "\\" in path:
        raise bad_request(f"Invalid path in repo {path!r}: backslashes are refused")
    if _CONTROL.search(path):
        raise bad_request(f"Invalid path in repo {path!r}: control characters are refused")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise bad_request(f"Invalid path in repo {path!r}: empty, '.' and '..' segments are refused")
    if parts[0] in (INTERNAL, ".git"):
        raise bad_request(f"Invalid path in repo {path!r}: the {parts[0]}/ folder is reserved")
    if len(path) > 1024:
        raise bad_request("Invalid path in repo: longer than 1024 characters")
    for part in parts:
        if len(part.encode()) > MAX_SEGMENT_BYTES:
            raise bad_request(
                f"Invalid path in repo {path[:60]!r}...: a file or folder name is longer than {MAX_SEGMENT_BYTES} "
                "bytes (what file systems allow); shorten it"
            )
    return path


def folder_path(path: str) -> str:
    """A folder inside a repo; '' is the root."""
    path = path.strip("/") if path not in ("", "/") else ""
    return file_path(path) if path else ""


def branch_name(name: str) -> str:
    """A branch or tag name: git-like, refused if it could escape the refs folder."""
    if name.startswith("refs/heads/"):
        name = name[len("refs/heads/") :]
    if (
        not name
        or len(name) > 200
        or _CONTROL.search(name)
        or "\\" in name
        or name.startswith(("/", "-", "refs/"))
        or name.endswith((".lock", "/", "."))
        or ".." in name
        or any(c in name for c in " ~^:?*[@{")
        or any(part in ("", ".") or part.startswith(".") for part in name.split("/"))
        or is_commit_id(name)
    ):
        raise bad_request(f"Invalid reference for a branch or tag: {name!r}")
    if len(quote(name, safe="")) > MAX_REF_KEY_BYTES:
        raise bad_request(f"Invalid reference for a branch or tag: {name[:40]!r}... is too long; shorten it")
    return name
