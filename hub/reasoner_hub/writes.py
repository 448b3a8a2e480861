"""Write routes: create/delete repos, settings, branches and tags, preupload, LFS, commits.

A mixin of HubApp (see routes.py), which provides ``store``, ``signer`` and the access checks.
A commit's blobs are stored while its body streams in; the branch moves only at the end, in one
conditional write (RepoStore.commit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile

from reasoner_hub import errors, permissions
from reasoner_hub.commit_body import SHA256 as _SHA256
from reasoner_hub.commit_body import parse_commit
from reasoner_hub.commits import git_blob_oid
from reasoner_hub.errors import HubError
from reasoner_hub.limits import MAX_COMMIT_BODY, MAX_COMMIT_LINE, text
from reasoner_hub.lfs import UrlSigner, signed_object, upload_mode
from reasoner_hub.metrics import client_of, pid_of
from reasoner_hub.paths import Repo, branch_name, file_path, repo_from_parts, repo_type
from reasoner_hub.repos import RepoStore
from reasoner_hub.transport import Request, Response, json_response
from reasoner_hub.xet.store import XetStore



class WriteRoutes:
    store: RepoStore
    signer: UrlSigner
    xet_store: XetStore

    # provided by HubApp
    def _require_writer(self, req: Request): ...
    def _writable(self, req: Request, repo: Repo): ...
    def _branch_for_write(self, revision: str | None) -> str: ...

    def create_repo(self, req: Request) -> Response:
        principal = self._require_writer(req)
        data = req.body.json()
        if not isinstance(data, dict) or not data.get("name"):
            raise errors.bad_request("create needs a JSON body with name (and organization, type, private)")
        org = data.get("organization") or principal.name
        repo = repo_from_parts(repo_type(data.get("type")), str(org), str(data["name"]))
        req.repo = repo.label
        permissions.check_create(principal, repo)
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
        self._writable(req, repo)
        if not self.store.delete_repo(repo):  # moved or deleted while this request waited for the repo
            raise errors.repo_not_found(repo.id)
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

    def branch(self, req: Request, repo: Repo, name: str) -> Response:
        self._writable(req, repo)
        name = self._branch_for_write(name)
        if req.method == "DELETE":
            self.store.delete_ref(repo, "heads", name)
            return json_response({})
        data = req.body.json()
        start = text(data, "startingPoint", "branch") if isinstance(data, dict) else None
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

    def lfs_batch(self, req: Request, repo: Repo, data: object) -> Response:
        """The LFS batch API for uploads (``data`` is the request; downloads: git/routes.py)."""
        _, meta = self._writable(req, repo)
        if not isinstance(data, dict) or data.get("operation") != "upload":
            raise errors.bad_request("LFS batch: operation must be upload or download")
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
                client = client_of(req.headers, "")
                href = self.signer.href("upload", req.base_url, repo, meta.generation, oid, size, client,
                                        pid_of(req.headers) or "")
                item["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            out.append(item)
        return json_response({"transfer": "basic", "objects": out, "hash_algo": "sha256"},
                             headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, req: Request, segs: list[str]) -> Response:
        if req.method != "PUT":
            raise HubError(404, f"Not found: {req.method} {req.path}")
        target = signed_object(segs, req.arg)
        repo, oid, size = target.repo, target.oid, target.size
        req.repo = repo.label
        meta = self.store.meta(repo)
        generation = meta.generation if meta else None
        if not _SHA256.fullmatch(oid) or not self.signer.check("upload", repo, generation, oid, size, target.expires,
                                                               target.sig, target.client, target.pid):
            raise errors.forbidden("Invalid or expired upload URL: ask the LFS batch API for a new one")
        req.client, req.pid = target.client or None, target.pid or None
        oversized = errors.bad_request(f"Upload is larger than the {size} bytes this URL was signed for")
        if req.body.declared is not None and req.body.declared != size:
            raise oversized if req.body.declared > size else errors.bad_request(
                f"Upload is smaller than the {size} bytes this URL was signed for")
        digest, received = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.store.storage.temp_dir())
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in req.body.chunks(min(size + 1, 1024 * 1024) or 1):
                    received += len(chunk)
                    if received > size:  # a chunked body may not say its size: stop at the signed one
                        raise oversized
                    digest.update(chunk)
                    out.write(chunk)
            if received != size or digest.hexdigest() != oid:
                raise errors.bad_request(
                    f"Uploaded content does not match: expected {size} bytes with sha256 {oid}, "
                    f"got {received} bytes with sha256 {digest.hexdigest()}"
                )
            self.store.put_blob_file(repo, oid, tmp, generation=generation)
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
        body = parse_commit(req.body.lines(MAX_COMMIT_LINE, MAX_COMMIT_BODY), self.store, repo,
                            lambda sha256: self.xet_store.file_hash_of(repo, sha256))
        commit = self.store.commit(
            repo,
            branch,
            body.operations,
            title=body.summary,
            message=body.description,
            author=principal.name,
            parent=body.parent,
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
