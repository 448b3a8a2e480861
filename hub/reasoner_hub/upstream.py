"""Pull-through mirroring: on a repo miss, copy the repo from another HF-compatible endpoint once.

The whole ``main`` revision (every file) is fetched over the same HTTP protocol this hub serves,
stored as a normal repo in one commit that keeps the upstream commit id (so revisions pinned
against the upstream resolve here too), and served from storage ever after. Only the standard
library is used, so the server keeps no client dependency.
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
from urllib.parse import quote

from reasoner_hub import errors
from reasoner_hub.paths import URL_PREFIXES, Repo, file_path, is_commit_id
from reasoner_hub.commits import AddFile, DeleteFile, git_blob_oid, lfs_pointer
from reasoner_hub.repos import RepoStore

log = logging.getLogger(__name__)
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
            try:
                return self._fetch(repo)
            except urllib.error.HTTPError as error:
                if error.code in (401, 403, 404):
                    return False
                raise errors.HubError(502, f"upstream {self.url} answered {error.code} for {repo.label}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise errors.HubError(502, f"upstream {self.url} unreachable for {repo.label}: {reason}") from None

    def _fetch(self, repo: Repo) -> bool:
        api = f"{self.url}/api/{repo.plural}/{repo.id}"
        info, _ = self._json(f"{api}/revision/main")
        sha = info.get("sha") if isinstance(info, dict) else None
        if not sha:
            raise errors.HubError(502, f"upstream {self.url} gave no commit for {repo.label}")
        entries = []
        page: str | None = f"{api}/tree/{quote(sha, safe='')}?recursive=true"
        while page:
            items, page = self._json(page)
            entries.extend(item for item in items if item.get("type") == "file")
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


def lfs_pointer_oid(sha256: str, size: int) -> str:
    return git_blob_oid(lfs_pointer(sha256, size))
