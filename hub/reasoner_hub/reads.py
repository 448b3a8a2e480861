"""Read routes: repo info, tree listings, paths-info, refs, commit history, and file downloads.

A mixin of HubApp (see routes.py), which provides ``store`` and ``_readable``. Every answer is
computed from one resolved commit manifest, so a listing or a download never mixes two commits.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable
from urllib.parse import quote

from reasoner_hub import errors
from reasoner_hub.cards import CardReader
from reasoner_hub.commits import Commit, FileEntry
from reasoner_hub.errors import HubError
from reasoner_hub.git.objects import build_trees
from reasoner_hub.limits import MAX_JSON_BODY
from reasoner_hub.lookup import path_index, paths_request
from reasoner_hub.paths import Repo, file_path, folder_path
from reasoner_hub.repos import RepoStore
from reasoner_hub.transport import Request, Response, json_response


class ReadRoutes:
    store: RepoStore
    tree_page_size: int
    xet_enabled: bool
    _xet_headers: Callable[..., dict[str, str]]  # provided by XetRoutes
    cards: CardReader

    def _readable(self, req: Request, repo: Repo): ...  # provided by HubApp

    def info(self, req: Request, repo: Repo, revision: str | None) -> Response:
        meta = self._readable(req, repo)
        commit = self.store.resolve(repo, revision)
        blobs = req.flag("blobs")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        org = repo.id.split("/")[0]
        data = {
            "_id": hashlib.sha1(repo.label.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": org,
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": meta.created_at,
            "private": meta.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "siblings": siblings,
            "usedStorage": sum(entry.size for entry in commit.files.values()),
            **self.cards.fields(repo, commit),  # cardData and tags from README.md (cards.py)
        }
        if repo.type == "model":
            data["modelId"] = repo.id
        return json_response(data)

    def _file_json(self, repo: Repo, path: str, entry: FileEntry, expand: bool) -> dict:
        item: dict = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.lfs:
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            if entry.xet and self.xet_enabled:  # clients then download it through Xet without a HEAD first
                item["xetHash"] = entry.xet
        if expand:
            item["lastCommit"] = self._last_commit(repo, entry.commit)
        return item

    def _folder_json(self, repo: Repo, path: str, files: dict[str, FileEntry], expand: bool,
                     tree_ids: dict[str, str]) -> dict:
        """A folder, with its git tree id as ``oid`` (what ``git rev-parse COMMIT:path`` says)."""
        if not tree_ids:
            build_trees({p: e.oid for p, e in files.items()}, tree_ids)
        item: dict = {"type": "directory", "oid": tree_ids[path], "size": 0, "path": path}
        if expand:
            inside = [files[p] for p in path_index(files).under(path)]
            newest = max((self.store.get_commit(repo, e.commit) for e in inside), key=_commit_date, default=None)
            item["lastCommit"] = self._last_commit(repo, newest.id) if newest else None
        return item

    def _last_commit(self, repo: Repo, commit_id: str) -> dict | None:
        commit = self.store.get_commit(repo, commit_id)
        if commit is None:
            return None
        return {"id": commit.id, "title": commit.title, "date": commit.date}

    def _entries(self, repo: Repo, commit: Commit, folder: str, recursive: bool, expand: bool) -> list[dict]:
        base = folder + "/" if folder else ""
        files = commit.files
        if folder and folder in files:
            raise errors.entry_not_found(folder, commit.id, f"{folder} is a file, not a folder")
        below = sorted(p for p in files if p.startswith(base))
        if folder and not below:
            raise errors.entry_not_found(folder, commit.id)
        out: list[dict] = []
        seen_dirs: set[str] = set()
        tree_ids: dict[str, str] = {}  # filled on the first folder
        for path in below:
            rest = path[len(base) :].split("/")
            depth = len(rest) if recursive else 1
            for i in range(1, min(depth, len(rest) - 1) + 1):
                sub = base + "/".join(rest[:i])
                if sub not in seen_dirs:
                    seen_dirs.add(sub)
                    out.append(self._folder_json(repo, sub, files, expand, tree_ids))
            if recursive or len(rest) == 1:
                out.append(self._file_json(repo, path, files[path], expand))
        return out

    def tree(self, req: Request, repo: Repo, revision: str | None, path: str) -> Response:
        self._readable(req, repo)
        commit = self.store.resolve(repo, revision)
        folder = folder_path(path)
        expand = req.flag("expand")
        entries = self._entries(repo, commit, folder, req.flag("recursive"), expand)
        try:
            cursor = int(req.arg("cursor") or 0)
        except ValueError:
            raise errors.bad_request("Invalid cursor") from None
        size = max(1, min(self.tree_page_size, 50 if expand else self.tree_page_size))
        page = entries[cursor : cursor + size]
        headers = {}
        if cursor + size < len(entries):
            query = {k: v[0] for k, v in req.query.items() if k != "cursor"}
            query["cursor"] = str(cursor + size)
            link = f"{req.base_url}{req.path}?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response(page, headers=headers)

    def paths_info(self, req: Request, repo: Repo, revision: str | None) -> Response:
        self._readable(req, repo)
        commit = self.store.resolve(repo, revision)
        paths, expand = paths_request(req.body.read_all(MAX_JSON_BODY), req.headers.get("Content-Type") or "")
        out = []
        files = commit.files
        index = path_index(files)
        tree_ids: dict[str, str] = {}  # filled on the first folder
        for raw_path in paths:
            path = folder_path(raw_path)
            if not path:
                continue
            if path in files:
                out.append(self._file_json(repo, path, files[path], expand))
            elif index.is_folder(path):
                out.append(self._folder_json(repo, path, files, expand, tree_ids))
        return json_response(out)

    def refs(self, req: Request, repo: Repo) -> Response:
        self._readable(req, repo)

        def items(kind: str, prefix: str) -> list[dict]:
            return [
                {"name": name, "ref": f"{prefix}{name}", "targetCommit": commit}
                for name, commit in self.store.refs(repo, kind).items()
            ]

        return json_response(
            {
                "branches": items("heads", "refs/heads/"),
                "converts": [],
                "tags": items("tags", "refs/tags/"),
                "pullRequests": [],
            }
        )

    def commits(self, req: Request, repo: Repo, revision: str | None) -> Response:
        self._readable(req, repo)
        start = self.store.resolve(repo, revision)
        try:
            page = int(req.arg("p") or 0)
            limit = max(1, min(int(req.arg("limit") or 100), 1000))
        except ValueError:
            raise errors.bad_request("Invalid page") from None
        items = []
        more = False
        for index, commit in enumerate(self.store.history(repo, start)):
            if index < page * limit:
                continue
            if len(items) == limit:
                more = True
                break
            items.append(
                {
                    "id": commit.id,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": name, "avatar": None} for name in commit.authors],
                    "date": commit.date,
                }
            )
        headers = {}
        if more:
            query = {k: v[0] for k, v in req.query.items() if k != "p"}
            query["p"] = str(page + 1)
            link = f"{req.base_url}{req.path}?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response(items, headers=headers)

    # -- downloads -------------------------------------------------------------------------------
    def resolve(self, req: Request, repo: Repo, revision: str, path: str) -> Response:
        self._readable(req, repo)
        commit = self.store.resolve(repo, revision)
        path = file_path(path)
        entry = commit.files.get(path)
        if entry is None:
            raise errors.entry_not_found(path, commit.id)
        headers = {
            "X-Repo-Commit": commit.id,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
            headers.update(self._xet_headers(req, repo, commit.id, entry))
        span = _parse_range(req.headers.get("Range"), entry.size)
        if span == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{entry.size}"
            raise HubError(416, "Requested range not satisfiable", headers=headers)
        if req.method == "HEAD":
            return Response(200, headers, b"", entry.size)
        if span is None:
            return Response(200, headers, self.store.open_blob(repo, entry.sha256), entry.size)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        return Response(206, headers, self.store.open_blob(repo, entry.sha256, start, end), end - start + 1)


def _commit_date(commit: Commit | None) -> str:
    return commit.date if commit else ""


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``; None for no (or an unsupported multi-) range."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            return "unsatisfiable"
    else:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        start, end = max(0, size - suffix), size - 1
    if size == 0:
        return "unsatisfiable"
    return start, end
