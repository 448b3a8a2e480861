"""Pull-through mirroring: on a repo miss, copy the repo from another HF-compatible endpoint.

The whole ``main`` revision (every file) is fetched over the same HTTP protocol this hub serves,
stored as a normal repo in one commit that keeps the upstream commit id (so revisions pinned
against the upstream resolve here too), and served from storage ever after. Other revisions, and
``main`` again once it is due, are fetched by ``mirror.py`` with the helpers here (``revision_id``,
``files_at``, ``ref_kind``). Only the standard library is used, so the server keeps no client
dependency.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from reasoner_hub import errors
from reasoner_hub.paths import URL_PREFIXES, Repo, file_path, is_commit_id
from reasoner_hub.commits import AddFile, DeleteFile, FileEntry, git_blob_oid, lfs_pointer
from reasoner_hub.repos import RepoStore
from reasoner_hub.storage import NotFound

log = logging.getLogger(__name__)
MIRROR_RECORD = "mirror.json"  # under the repo's .hub/: what it mirrors, and which upstream main it shows
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class Upstream:
    def __init__(self, url: str, store: RepoStore, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.store = store
        self._token = token
        self._timeout = timeout
        self._locks: dict[Repo, threading.Lock] = {}
        self._guard = threading.Lock()
        self.mirrored: list[str] = []  # repo labels fetched by this process, for tests and logs

    def _request(self, url: str, method: str = "GET"):
        request = urllib.request.Request(url, method=method, headers={"User-Agent": "reasoner-localhub-mirror"})
        if self._token:
            # Unredirected: the token stays with the upstream, never follows a redirect to a CDN.
            request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        return urllib.request.urlopen(request, timeout=self._timeout)  # noqa: S310 - URL given by the operator

    def _json(self, url: str) -> tuple[object, str | None]:
        with self._request(url) as answer:
            body = json.loads(answer.read())
            link = answer.headers.get("Link")
        match = _NEXT_LINK.search(link or "")
        return body, match.group(1) if match else None

    def fetch(self, repo: Repo) -> bool:
        """Mirror ``repo`` if the upstream has it; False if the upstream says it does not exist."""
        with self._guard:
            lock = self._locks.setdefault(repo, threading.Lock())
        with lock:
            if self.store.meta(repo) is not None:  # another request mirrored it meanwhile
                return True
            with self.answering(repo.label):
                try:
                    return self._fetch(repo)
                except urllib.error.HTTPError as error:
                    if error.code in (401, 403, 404):
                        return False
                    raise

    @contextmanager
    def answering(self, what: str) -> Iterator[None]:
        """Upstream failures inside become one 502 line naming the upstream and ``what`` was asked."""
        try:
            yield
        except urllib.error.HTTPError as error:
            raise errors.HubError(502, f"upstream {self.url} answered {error.code} for {what}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise errors.HubError(502, f"upstream {self.url} unreachable for {what}: {reason}") from None

    def _api(self, repo: Repo) -> str:
        return f"{self.url}/api/{repo.plural}/{repo.id}"

    def _tree(self, repo: Repo, sha: str) -> list[dict]:
        entries = []
        page: str | None = f"{self._api(repo)}/tree/{quote(sha, safe='')}?recursive=true"
        while page:
            items, page = self._json(page)
            entries.extend(item for item in items if item.get("type") == "file")
        return entries

    def revision_id(self, repo: Repo, revision: str) -> str | None:
        """The upstream commit id of ``revision`` (a branch, a tag or a commit id); None when it has none."""
        try:
            info, _ = self._json(f"{self._api(repo)}/revision/{quote(revision, safe='')}")
        except urllib.error.HTTPError as error:
            if error.code in (400, 401, 403, 404):
                return None
            raise
        sha = info.get("sha") if isinstance(info, dict) else None
        if not isinstance(sha, str) or not sha:
            raise errors.HubError(502, f"upstream {self.url} gave no commit for {repo.label}@{revision}")
        return sha

    def ref_kind(self, repo: Repo, name: str) -> str | None:
        """``heads`` when the upstream has a branch ``name``, ``tags`` for a tag, else None."""
        refs, _ = self._json(f"{self._api(repo)}/refs")
        for kind, listed in (("heads", "branches"), ("tags", "tags")):
            if any(isinstance(ref, dict) and ref.get("name") == name for ref in (refs or {}).get(listed, [])):
                return kind
        return None

    def files_at(self, repo: Repo, sha: str, known: dict[str, FileEntry]) -> dict[str, AddFile]:
        """Every file of the upstream commit ``sha``, as operations on ``repo`` (which exists): a file equal
        to one in ``known`` (same git id) or whose LFS blob the repo holds is reused, the rest is downloaded."""
        by_oid = {entry.oid: entry for entry in known.values()}
        out: dict[str, AddFile] = {}
        for entry in self._tree(repo, sha):
            path, lfs = file_path(entry["path"]), entry.get("lfs")
            same = by_oid.get(entry.get("oid"))
            if same is not None and self.store.has_blob(repo, same.sha256):
                out[path] = AddFile(path, same.sha256, same.size, same.lfs, same.oid, same.xet)
                continue
            if isinstance(lfs, dict) and self.store.has_blob(repo, str(lfs.get("oid"))):
                size = self.store.blob_size(repo, str(lfs["oid"])) or 0
                out[path] = AddFile(path, str(lfs["oid"]), size, True, lfs_pointer_oid(str(lfs["oid"]), size))
                continue
            sha256, size, tmp = self._download(repo, sha, entry)
            try:
                self.store.put_blob_file(repo, sha256, tmp)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            oid = lfs_pointer_oid(sha256, size) if lfs else self._regular_oid(repo, sha256)
            out[path] = AddFile(path, sha256, size, bool(lfs), oid)
        return out

    def _fetch(self, repo: Repo) -> bool:
        info, _ = self._json(f"{self._api(repo)}/revision/main")
        sha = info.get("sha") if isinstance(info, dict) else None
        if not sha:
            raise errors.HubError(502, f"upstream {self.url} gave no commit for {repo.label}")
        entries = self._tree(repo, sha)
        downloads = []  # (path, lfs, sha256, size, temp file): stored once the repo exists
        try:
            for entry in entries:
                downloads.append((file_path(entry["path"]), bool(entry.get("lfs")), *self._download(repo, sha, entry)))
            self.store.create_repo(repo, private=bool(info.get("private")), author="upstream")
            try:
                operations = self._store_blobs(repo, downloads)
                self.store.commit(
                    repo,
                    "main",
                    operations,
                    title=f"Mirror of {self.url} {repo.label}@{sha}",
                    message="",
                    author="upstream",
                    commit_id=sha if is_commit_id(sha) else None,
                )
            except BaseException:
                self.store.delete_repo(repo)  # no half-mirrored repo: the next request tries again
                raise
        finally:
            for *_, tmp in downloads:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        write_record(self.store, repo, self.url, sha)
        self.mirrored.append(repo.label)
        log.info("mirrored %s from %s (%d files)", repo.label, self.url, len(downloads))
        return True

    def _download(self, repo: Repo, sha: str, entry: dict) -> tuple[str, int, str]:
        """One file into a temp file: (sha256, size, temp path)."""
        path = file_path(entry["path"])
        url = f"{self.url}/{URL_PREFIXES[repo.type]}{repo.id}/resolve/{sha}/{quote(path)}"
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.store.storage.temp_dir())
        try:
            with os.fdopen(fd, "wb") as out, self._request(url) as answer:
                while chunk := answer.read(1024 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp)
            raise
        return digest.hexdigest(), size, tmp

    def _store_blobs(self, repo: Repo, downloads: list) -> list:
        operations: list = []
        for path, is_lfs, sha256, size, tmp in downloads:
            self.store.put_blob_file(repo, sha256, tmp)
            oid = lfs_pointer_oid(sha256, size) if is_lfs else self._regular_oid(repo, sha256)
            operations.append(AddFile(path, sha256, size, is_lfs, oid))
        if ".gitattributes" not in {op.path for op in operations}:
            operations.append(DeleteFile(".gitattributes"))  # keep exactly the upstream's file set
        return operations

    def _regular_oid(self, repo: Repo, sha256: str) -> str:
        data = b"".join(self.store.open_blob(repo, sha256))
        return git_blob_oid(data)


def read_record(store: RepoStore, repo: Repo) -> dict | None:
    """What ``repo`` mirrors (``{"upstream": url, "main": upstream commit id last mirrored on main}``), or None."""
    try:
        record = json.loads(store.storage.get(f"{repo.internal}{MIRROR_RECORD}"))
    except (NotFound, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("main"), str) else None


def write_record(store: RepoStore, repo: Repo, url: str, main: str) -> None:
    store.storage.put(f"{repo.internal}{MIRROR_RECORD}", json.dumps({"upstream": url, "main": main}).encode())


def lfs_pointer_oid(sha256: str, size: int) -> str:
    return git_blob_oid(lfs_pointer(sha256, size))
