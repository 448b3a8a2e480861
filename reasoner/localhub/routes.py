"""The Hub's HTTP API as huggingface_hub 2.4 and datasets 5.2 call it, over a RepoStore.

Routes (``{t}`` is models, datasets or spaces; model download URLs have no type prefix):

=======  ==============================================  =========================================
GET      /api/whoami-v2                                  who the token belongs to
POST     /api/validate-yaml                              model/dataset card metadata check
POST     /api/repos/create, DELETE /api/repos/delete     create_repo / delete_repo
GET      /api/{t}/{org}/{name}[/revision/{rev}]          model_info / dataset_info / repo_info
GET      /api/{t}/{org}/{name}/tree/{rev}[/{path}]       list_repo_tree (Link-paginated)
POST     /api/{t}/{org}/{name}/paths-info/{rev}          get_paths_info
GET      /api/{t}/{org}/{name}/refs                      list_repo_refs
GET      /api/{t}/{org}/{name}/commits/{rev}             list_repo_commits
POST     /api/{t}/{org}/{name}/preupload/{rev}           upload modes (regular / lfs)
POST     /api/{t}/{org}/{name}/commit/{rev}              create_commit (x-ndjson)
POST/DEL /api/{t}/{org}/{name}/branch/{branch}           create_branch / delete_branch
POST/DEL /api/{t}/{org}/{name}/tag/{rev|tag}             create_tag / delete_tag
PUT      /api/{t}/{org}/{name}/settings                  update_repo_settings (visibility)
GET      /api/_metrics, /api/_health                     counters; liveness
HEAD/GET /[datasets/|spaces/]{org}/{name}/resolve/{rev}/{path}   downloads, with Range
POST     /[datasets/|spaces/]{org}/{name}.git/info/lfs/objects/batch   LFS batch (upload)
PUT      /_lfs/{t}/{org}/{name}/{oid}?...signed...       LFS object upload
=======  ==============================================  =========================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
import os
import re
import tempfile
from urllib.parse import parse_qs, quote, unquote

from reasoner.localhub import errors
from reasoner.localhub.auth import Principal, TokenBook
from reasoner.localhub.errors import HubError
from reasoner.localhub.http import Request, Response, json_response
from reasoner.localhub.lfs import UrlSigner, upload_mode
from reasoner.localhub.metrics import CLIENT_HEADER, PID_HEADER, Metrics
from reasoner.localhub.paths import (
    TYPES_BY_PLURAL,
    Repo,
    branch_name,
    file_path,
    folder_path,
    repo_from_parts,
    repo_type,
)
from reasoner.localhub.repos import (
    AddFile,
    Commit,
    DeleteFile,
    DeleteFolder,
    FileEntry,
    RepoMeta,
    RepoStore,
    git_blob_oid,
    lfs_pointer,
)
from reasoner.localhub.upstream import Upstream

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_REGULAR_FILE = 64 * 1024 * 1024  # a regular file travels base64 in the commit body


def _seg(raw: str) -> str:
    return unquote(raw)


class HubApp:
    """Callable: Request -> Response. Holds the store, tokens, metrics, LFS signer and upstream."""

    def __init__(
        self,
        store: RepoStore,
        tokens: TokenBook,
        metrics: Metrics,
        signer: UrlSigner,
        upstream: Upstream | None = None,
        tree_page_size: int = 1000,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        self.signer = signer
        self.upstream = upstream
        self.tree_page_size = tree_page_size

    # -- dispatch --------------------------------------------------------------------------------
    def __call__(self, req: Request) -> Response:
        segs = req.path.split("/")[1:]
        if segs and segs[0] == "_lfs":
            req.kind = "upload"
            return self._lfs_put(req, segs[1:])
        req.principal = self.tokens.identify(req.headers.get("Authorization"))
        if segs and segs[0] == "api":
            return self._api(req, segs[1:])
        return self._files(req, segs)

    def _api(self, req: Request, segs: list[str]) -> Response:
        m = req.method
        head = segs[0] if segs else ""
        if segs == ["whoami-v2"] and m == "GET":
            return self.whoami(req)
        if segs == ["validate-yaml"] and m == "POST":
            return self.validate_yaml(req)
        if segs == ["repos", "create"] and m == "POST":
            return self.create_repo(req)
        if segs == ["repos", "delete"] and m == "DELETE":
            return self.delete_repo(req)
        if segs == ["_metrics"] and m == "GET":
            return json_response(self.metrics.snapshot())
        if segs == ["_health"] and m == "GET":
            return json_response({"status": "ok"})
        if head in TYPES_BY_PLURAL and len(segs) >= 3:
            repo = repo_from_parts(TYPES_BY_PLURAL[head], _seg(segs[1]), _seg(segs[2]))
            req.repo = repo.label
            action, rest = (segs[3], segs[4:]) if len(segs) > 3 else ("", [])
            rev = _seg(rest[0]) if rest else None
            req.revision = rev
            if action == "" and m == "GET":
                return self.info(req, repo, None)
            if action == "revision" and rest and m == "GET":
                return self.info(req, repo, _seg("/".join(rest)))
            if action == "tree" and rest and m == "GET":
                return self.tree(req, repo, rev, _seg("/".join(rest[1:])))
            if action == "paths-info" and rest and m == "POST":
                return self.paths_info(req, repo, rev)
            if action == "refs" and not rest and m == "GET":
                return self.refs(req, repo)
            if action == "commits" and rest and m == "GET":
                return self.commits(req, repo, rev)
            if action == "preupload" and rest and m == "POST":
                return self.preupload(req, repo, rev)
            if action == "commit" and rest and m == "POST":
                req.kind = "upload"
                return self.commit(req, repo, rev)
            if action == "branch" and rest and m in ("POST", "DELETE"):
                return self.branch(req, repo, _seg("/".join(rest)))
            if action == "tag" and rest and m in ("POST", "DELETE"):
                return self.tag(req, repo, _seg("/".join(rest)))
            if action == "settings" and not rest and m == "PUT":
                return self.settings(req, repo)
        raise HubError(404, f"Not found: {req.method} {req.path}")

    def _files(self, req: Request, segs: list[str]) -> Response:
        kind = "model"
        if segs and segs[0] in ("datasets", "spaces"):
            kind, segs = TYPES_BY_PLURAL[segs[0]], segs[1:]
        if len(segs) == 6 and segs[1].endswith(".git") and segs[2:] == ["info", "lfs", "objects", "batch"]:
            if req.method != "POST":
                raise HubError(405, "Use POST for the LFS batch API")
            repo = repo_from_parts(kind, _seg(segs[0]), _seg(segs[1])[: -len(".git")])
            req.repo = repo.label
            return self.lfs_batch(req, repo)
        if len(segs) >= 5 and segs[2] == "resolve" and req.method in ("GET", "HEAD"):
            repo = repo_from_parts(kind, _seg(segs[0]), _seg(segs[1]))
            req.kind, req.repo, req.revision = "download", repo.label, _seg(segs[3])
            return self.resolve(req, repo, _seg(segs[3]), _seg("/".join(segs[4:])))
        raise HubError(404, f"Not found: {req.method} {req.path}")

    # -- access ----------------------------------------------------------------------------------
    def _readable(self, req: Request, repo: Repo) -> RepoMeta:
        meta = self.store.meta(repo)
        if meta is None and self.upstream is not None and self.upstream.fetch(repo):
            meta = self.store.meta(repo)
        principal: Principal = req.principal
        if meta is None or (meta.private and not principal.authenticated):
            raise errors.repo_not_found(repo.id)
        return meta

    def _require_writer(self, req: Request) -> Principal:
        principal: Principal = req.principal
        if not principal.authenticated:
            raise errors.unauthorized("You must be authenticated with a write token to do this")
        if not principal.can_write:
            raise errors.forbidden(f"The token {principal.name!r} is read-only: writing needs a token with role write")
        return principal

    def _writable(self, req: Request, repo: Repo) -> tuple[Principal, RepoMeta]:
        principal = self._require_writer(req)
        meta = self.store.meta(repo)
        if meta is None:
            raise errors.repo_not_found(repo.id)
        return principal, meta

    def _branch_for_write(self, revision: str | None) -> str:
        name = revision or "main"
        if name.startswith("refs/heads/"):
            name = name[len("refs/heads/") :]
        return branch_name(name)

    # -- account and cards -----------------------------------------------------------------------
    def whoami(self, req: Request) -> Response:
        principal: Principal = req.principal
        if not principal.authenticated:
            raise errors.unauthorized("You must be authenticated: send a token")
        return json_response(
            {
                "type": "user",
                "id": principal.name,
                "name": principal.name,
                "fullname": principal.name,
                "email": None,
                "emailVerified": False,
                "isPro": False,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": principal.name, "role": principal.role},
                },
            }
        )

    def validate_yaml(self, req: Request) -> Response:
        data = req.body.json()
        content = data.get("content", "") if isinstance(data, dict) else ""
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content or "", re.S)
        if match:
            import yaml

            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                message = " ".join(str(error).split())
                return json_response({"errors": [{"message": f"Invalid YAML: {message}"}]}, 400)
            if meta is not None and not isinstance(meta, dict):
                return json_response({"errors": [{"message": "The metadata must be a YAML mapping"}]}, 400)
        return json_response({"errors": [], "warnings": []})

    # -- repos -----------------------------------------------------------------------------------
    def create_repo(self, req: Request) -> Response:
        principal = self._require_writer(req)
        data = req.body.json()
        if not isinstance(data, dict) or not data.get("name"):
            raise errors.bad_request("create needs a JSON body with name (and organization, type, private)")
        org = data.get("organization") or principal.name
        repo = repo_from_parts(repo_type(data.get("type")), str(org), str(data["name"]))
        req.repo = repo.label
        visibility = data.get("visibility")
        private = visibility == "private" if visibility is not None else bool(data.get("private"))
        url = repo.url(req.base_url)
        try:
            self.store.create_repo(repo, private, principal.name)
        except HubError as error:
            if error.status == 409:
                return json_response({"error": error.message, "url": url}, 409, {"X-Error-Message": error.message})
            raise
        return json_response({"url": url, "name": repo.id, "id": repo.id})

    def delete_repo(self, req: Request) -> Response:
        self._require_writer(req)
        data = req.body.json()
        if not isinstance(data, dict) or not data.get("name") or not data.get("organization"):
            raise errors.bad_request("delete needs a JSON body with organization and name (and type)")
        repo = repo_from_parts(repo_type(data.get("type")), str(data["organization"]), str(data["name"]))
        req.repo = repo.label
        if self.store.meta(repo) is None:
            raise errors.repo_not_found(repo.id)
        self.store.delete_repo(repo)
        return json_response({})

    def settings(self, req: Request, repo: Repo) -> Response:
        self._writable(req, repo)
        data = req.body.json()
        if isinstance(data, dict):
            if data.get("visibility") in ("private", "public"):
                self.store.set_private(repo, data["visibility"] == "private")
            elif "private" in data:
                self.store.set_private(repo, bool(data["private"]))
        return json_response({})

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
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(entry.size for entry in commit.files.values()),
        }
        if repo.type == "model":
            data["modelId"] = repo.id
        return json_response(data)

    # -- listings --------------------------------------------------------------------------------
    def _file_json(self, repo: Repo, path: str, entry: FileEntry, expand: bool) -> dict:
        item: dict = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.lfs:
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
        if expand:
            item["lastCommit"] = self._last_commit(repo, entry.commit)
        return item

    def _folder_json(self, repo: Repo, path: str, files: dict[str, FileEntry], expand: bool) -> dict:
        inside = sorted((p, e) for p, e in files.items() if p.startswith(path + "/"))
        oid = hashlib.sha1("\n".join(f"{p} {e.oid}" for p, e in inside).encode()).hexdigest()
        item: dict = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            newest = max((self.store.get_commit(repo, e.commit) for _, e in inside), key=_commit_date, default=None)
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
        for path in below:
            rest = path[len(base) :].split("/")
            depth = len(rest) if recursive else 1
            for i in range(1, min(depth, len(rest) - 1) + 1):
                sub = base + "/".join(rest[:i])
                if sub not in seen_dirs:
                    seen_dirs.add(sub)
                    out.append(self._folder_json(repo, sub, files, expand))
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
        content_type = (req.headers.get("Content-Type") or "").lower()
        raw = req.body.read_all()
        if "json" in content_type:
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                raise errors.bad_request("Request body is not valid JSON") from None
            paths = data.get("paths", []) if isinstance(data, dict) else []
            expand = str(data.get("expand", "")).lower() in ("1", "true") if isinstance(data, dict) else False
        else:
            form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", [""])[0]).lower() in ("1", "true")
        if isinstance(paths, str):
            paths = [paths]
        out = []
        files = commit.files
        for raw_path in paths:
            path = folder_path(str(raw_path))
            if not path:
                continue
            if path in files:
                out.append(self._file_json(repo, path, files[path], expand))
            elif any(p.startswith(path + "/") for p in files):
                out.append(self._folder_json(repo, path, files, expand))
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

    # -- refs ------------------------------------------------------------------------------------
    def branch(self, req: Request, repo: Repo, name: str) -> Response:
        self._writable(req, repo)
        name = self._branch_for_write(name)
        if req.method == "DELETE":
            self.store.delete_ref(repo, "heads", name)
            return json_response({})
        data = req.body.json()
        start = data.get("startingPoint") if isinstance(data, dict) else None
        self.store.create_ref(repo, "heads", name, start)
        return json_response({})

    def tag(self, req: Request, repo: Repo, target: str) -> Response:
        self._writable(req, repo)
        if req.method == "DELETE":
            name = branch_name(target)
            self.store.delete_ref(repo, "tags", name)
            return json_response({})
        data = req.body.json()
        if not isinstance(data, dict) or not data.get("tag"):
            raise errors.bad_request("tag needs a JSON body with tag")
        self.store.create_ref(repo, "tags", str(data["tag"]), target)
        return json_response({})

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

    # -- uploads ---------------------------------------------------------------------------------
    def preupload(self, req: Request, repo: Repo, revision: str | None) -> Response:
        self._writable(req, repo)
        branch = self._branch_for_write(revision)
        commit = self.store.resolve(repo, branch)
        data = req.body.json()
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            raise errors.bad_request("preupload needs a JSON body with files: [{path, sample, size}]")
        out = []
        for item in files:
            if not isinstance(item, dict):
                raise errors.bad_request("preupload: each file needs path, sample and size")
            path = file_path(str(item.get("path", "")))
            try:
                sample = base64.b64decode(item.get("sample") or "")
                size = int(item.get("size", 0))
            except (binascii.Error, ValueError, TypeError):
                raise errors.bad_request(f"preupload: invalid sample or size for {path}") from None
            mode = upload_mode(path, size, sample)
            existing = commit.files.get(path)
            oid = None  # the client skips files whose oid matches its own: unchanged content
            if existing is not None:
                if mode == "lfs":
                    oid = existing.sha256
                elif not existing.lfs:
                    oid = existing.oid
                elif existing.size == size:
                    oid = git_blob_oid(b"".join(self.store.open_blob(repo, existing.sha256)))
            out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return json_response({"files": out, "commitOid": commit.id})

    def lfs_batch(self, req: Request, repo: Repo) -> Response:
        self._writable(req, repo)
        data = req.body.json()
        if not isinstance(data, dict) or data.get("operation") != "upload":
            raise errors.bad_request("This hub's LFS batch API serves uploads only; download through /resolve/")
        objects = data.get("objects")
        if not isinstance(objects, list):
            raise errors.bad_request("LFS batch needs objects: [{oid, size}]")
        out = []
        for obj in objects:
            oid = str(obj.get("oid", "")) if isinstance(obj, dict) else ""
            size = obj.get("size") if isinstance(obj, dict) else None
            if not _SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
                out.append({"oid": oid, "size": size if isinstance(size, int) else 0,
                            "error": {"code": 422, "message": "oid must be a sha256 and size an integer"}})
                continue
            item: dict = {"oid": oid, "size": size, "authenticated": True}
            if self.store.blob_size(repo, oid) != size:
                client = req.headers.get(CLIENT_HEADER) or ""
                href = self.signer.upload_href(req.base_url, repo, oid, size, client, req.headers.get(PID_HEADER) or "")
                item["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            out.append(item)
        return json_response({"transfer": "basic", "objects": out, "hash_algo": "sha256"},
                             headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, req: Request, segs: list[str]) -> Response:
        if req.method != "PUT" or len(segs) != 4 or segs[0] not in TYPES_BY_PLURAL:
            raise HubError(404, f"Not found: {req.method} {req.path}")
        repo = repo_from_parts(TYPES_BY_PLURAL[segs[0]], _seg(segs[1]), _seg(segs[2]))
        req.repo = repo.label
        oid = segs[3]
        try:
            size = int(req.arg("size") or -1)
            expires = int(req.arg("expires") or 0)
        except ValueError:
            raise errors.forbidden("Invalid upload URL") from None
        client, pid = req.arg("client") or "", req.arg("pid") or ""
        if not _SHA256.fullmatch(oid) or not self.signer.check(repo, oid, size, expires, req.arg("sig") or "", client, pid):
            raise errors.forbidden("Invalid or expired upload URL: ask the LFS batch API for a new one")
        req.client, req.pid = client or None, pid or None
        if self.store.meta(repo) is None:
            raise errors.repo_not_found(repo.id)
        digest, received = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.store.storage.temp_dir())
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in req.body.chunks():
                    digest.update(chunk)
                    received += len(chunk)
                    out.write(chunk)
            if received != size or digest.hexdigest() != oid:
                raise errors.bad_request(
                    f"Uploaded content does not match: expected {size} bytes with sha256 {oid}, "
                    f"got {received} bytes with sha256 {digest.hexdigest()}"
                )
            self.store.put_blob_file(repo, oid, tmp)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return json_response({})

    def commit(self, req: Request, repo: Repo, revision: str | None) -> Response:
        principal, _ = self._writable(req, repo)
        if req.flag("create_pr"):
            raise errors.bad_request("This hub has no pull requests: commit to a branch instead")
        branch = self._branch_for_write(revision)
        if self.store.read_ref(repo, "heads", branch) is None:
            raise errors.revision_not_found(branch)
        header: dict | None = None
        operations = []
        for line in req.body.lines():
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("commit body must be x-ndjson lines of {key, value}") from None
            if key == "header":
                header = value if isinstance(value, dict) else {}
            elif key == "file":
                operations.append(self._regular_file(repo, value))
            elif key == "lfsFile":
                operations.append(self._lfs_file(repo, value))
            elif key == "deletedFile":
                operations.append(DeleteFile(file_path(str(value.get("path", "")))))
            elif key == "deletedFolder":
                operations.append(DeleteFolder(file_path(str(value.get("path", "")).rstrip("/"))))
            else:
                raise errors.bad_request(f"Unknown commit operation {key!r}")
        if header is None:
            raise errors.bad_request("commit body needs a header line with summary")
        parent = header.get("parentCommit") or None
        if parent is not None and not re.fullmatch(r"[0-9a-fA-F]{4,40}", str(parent)):
            raise errors.bad_request(f"Invalid parentCommit {parent!r}")
        commit = self.store.commit(
            repo,
            branch,
            operations,
            title=str(header.get("summary") or "Upload files"),
            message=str(header.get("description") or ""),
            author=principal.name,
            parent=parent,
        )
        req.revision = branch
        return json_response(
            {
                "success": True,
                "commitOid": commit.id,
                "commitUrl": f"{repo.url(req.base_url)}/commit/{commit.id}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _regular_file(self, repo: Repo, value: dict) -> AddFile:
        path = file_path(str(value.get("path", "")))
        if value.get("encoding", "base64") != "base64":
            raise errors.bad_request(f"{path}: only base64 encoding is supported")
        try:
            data = base64.b64decode(value.get("content") or "", validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(f"{path}: content is not valid base64") from None
        if len(data) > MAX_REGULAR_FILE:
            raise errors.bad_request(f"{path}: regular files are limited to {MAX_REGULAR_FILE} bytes; use LFS")
        sha = self.store.put_blob(repo, data)
        return AddFile(path, sha, len(data), False, git_blob_oid(data))

    def _lfs_file(self, repo: Repo, value: dict) -> AddFile:
        path = file_path(str(value.get("path", "")))
        oid = str(value.get("oid", ""))
        if value.get("algo", "sha256") != "sha256" or not _SHA256.fullmatch(oid):
            raise errors.bad_request(f"{path}: lfsFile needs algo sha256 and a sha256 oid")
        size = self.store.blob_size(repo, oid)
        if size is None:
            raise errors.bad_request(f"{path}: LFS object {oid} was never uploaded; upload it before committing")
        if value.get("size") is not None and int(value["size"]) != size:
            raise errors.bad_request(f"{path}: LFS object {oid} has {size} bytes, not {value['size']}")
        return AddFile(path, oid, size, True, git_blob_oid(lfs_pointer(oid, size)))


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
