"""Git over smart HTTP, read-only, and the git-lfs download API: a mixin of HubApp (routes.py).

=======  ===================================================  ====================================
GET      /[datasets/|spaces/]{org}/{name}[.git]/info/refs     ref advertisement (upload-pack only)
         ?service=git-upload-pack
POST     /[datasets/|spaces/]{org}/{name}[.git]/git-upload-pack   ls-refs and fetch (v2), fetch (v0)
GET/POST .../info/refs?service=git-receive-pack, .../git-receive-pack   refused: the hub is read-only
POST     /[datasets/|spaces/]{org}/{name}.git/info/lfs/objects/batch   operation download (and upload,
                                                              writes.py)
GET      /_lfs/{t}/{org}/{name}/{oid}?...signed...            LFS object download
=======  ===================================================  ====================================

Access follows the read rules of every other route, with one difference that git needs: a caller
without a token who may not read the repo (private, or no such repo) gets 401 with a ``Basic``
challenge, so git asks for credentials (a token as the password, as on the Hub) instead of saying
the repo does not exist.
"""

from __future__ import annotations

import zlib
from urllib.parse import unquote

from reasoner_hub import errors
from reasoner_hub.commit_body import SHA256
from reasoner_hub.errors import HubError
from reasoner_hub.git import upload_pack
from reasoner_hub.git.pktline import DELIM, FLUSH, PktError, error_line, parse, pkt
from reasoner_hub.git.snapshot import snapshot
from reasoner_hub.lfs import URL_LIFETIME_S, UrlSigner, signed_object
from reasoner_hub.metrics import client_of, pid_of
from reasoner_hub.paths import Repo, repo_from_parts
from reasoner_hub.repos import RepoMeta, RepoStore
from reasoner_hub.transport import Request, Response, json_response

MAX_GIT_REQUEST = 16 * 1024 * 1024  # a fetch request: wants and haves, 50 bytes each
CHALLENGE = {"WWW-Authenticate": 'Basic realm="reasoner-localhub", charset="UTF-8"'}
READ_ONLY = "This hub is read-only over git: push with huggingface_hub (upload_folder, create_commit) or hf upload"
LFS_JSON = {"Content-Type": "application/vnd.git-lfs+json"}


def git_path(segs: list[str]) -> tuple[str, str, str] | None:
    """``(org, name, action)`` when ``segs`` (after the type prefix) is a git route, else None."""
    if len(segs) == 4 and segs[2:] == ["info", "refs"]:
        action = "info/refs"
    elif len(segs) == 3 and segs[2] in ("git-upload-pack", "git-receive-pack"):
        action = segs[2]
    else:
        return None
    name = unquote(segs[1])
    return unquote(segs[0]), name[: -len(".git")] if name.endswith(".git") else name, action


def is_git_client_path(segs: list[str]) -> bool:
    """Paths git or git-lfs call (they answer a 401 only when it carries a challenge)."""
    return any(seg.endswith(".git") or seg in ("git-upload-pack", "git-receive-pack") for seg in segs) or (
        segs[-2:] == ["info", "refs"])


def _request_body(req: Request) -> bytes:
    data = req.body.read_all(MAX_GIT_REQUEST)
    if (req.headers.get("Content-Encoding") or "").lower() not in ("gzip", "x-gzip"):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_GIT_REQUEST)
    except zlib.error:
        raise errors.bad_request("upload-pack: the gzip request body is corrupt") from None
    if inflater.unconsumed_tail:
        raise errors.HubError(413, f"upload-pack: the request inflates past {MAX_GIT_REQUEST} bytes")
    return out


def _text_lines(raw: list[bytes | None]) -> list[str]:
    try:
        return [line.decode() for line in raw if line is not None and line != DELIM]
    except UnicodeDecodeError:
        raise errors.bad_request("upload-pack: request lines must be UTF-8") from None


class GitRoutes:
    store: RepoStore
    signer: UrlSigner

    def _readable(self, req: Request, repo: Repo): ...  # provided by HubApp

    def git(self, req: Request, kind: str, org: str, name: str, action: str) -> Response:
        repo = repo_from_parts(kind, org, name)
        req.repo = repo.label
        service = req.arg("service") if action == "info/refs" else action
        if service == "git-receive-pack" or action == "git-receive-pack":
            return self._refuse_push(req, repo, action)
        if service != "git-upload-pack":
            raise HubError(403, "Only smart HTTP is served: use git 1.6.6 or later (service=git-upload-pack)")
        self._git_readable(req, repo)
        req.kind = "download"
        version2 = "version=2" in (req.headers.get("Git-Protocol") or "").split(":")
        if action == "info/refs":
            if req.method != "GET":
                raise HubError(405, "Use GET for info/refs")
            head = pkt("# service=git-upload-pack\n") + FLUSH
            advert = upload_pack.capabilities_v2() if version2 else upload_pack.advertise_v0(snapshot(self.store, repo))
            return Response(200, {"Content-Type": "application/x-git-upload-pack-advertisement",
                                  "Cache-Control": "no-cache"}, head + advert)
        if req.method != "POST":
            raise HubError(405, "Use POST for git-upload-pack")
        headers = {"Content-Type": "application/x-git-upload-pack-result", "Cache-Control": "no-cache"}
        try:
            body = self._upload_pack(repo, _request_body(req), version2)
        except (HubError, PktError) as error:
            message = error.message if isinstance(error, HubError) else f"upload-pack: {error}"
            return Response(200, headers, error_line(message))
        return Response(200, headers, body)

    def _upload_pack(self, repo: Repo, data: bytes, version2: bool):
        raw = parse(data)
        view = snapshot(self.store, repo)
        if not version2:
            return upload_pack.fetch_v0(self.store, repo, view, _text_lines(raw))
        split = raw.index(DELIM) if DELIM in raw else len(raw)
        header, args = _text_lines(raw[:split]), _text_lines(raw[split + 1 :])
        command = next((line[len("command=") :] for line in header if line.startswith("command=")), None)
        if command == "ls-refs":
            return upload_pack.ls_refs(view, args)
        if command == "fetch":
            return upload_pack.fetch_v2(self.store, repo, view, args)
        raise errors.bad_request(f"upload-pack: unknown command {command!r}: this hub serves ls-refs and fetch")

    def _git_readable(self, req: Request, repo: Repo) -> RepoMeta:
        """``_readable``, but a 401 with a challenge for an anonymous caller refused a repo."""
        try:
            return self._readable(req, repo)
        except HubError as error:
            if error.status == 404 and not getattr(req.principal, "authenticated", True):
                raise HubError(401, "Authentication required: use your token as the password", headers=CHALLENGE) from None
            raise

    def _refuse_push(self, req: Request, repo: Repo, action: str) -> Response:
        self._git_readable(req, repo)  # no answer confirms a repo the caller may not read
        if action == "info/refs":  # git shows an ERR line of the advertisement as "remote error: ..."
            body = pkt("# service=git-receive-pack\n") + FLUSH + error_line(READ_ONLY)
            return Response(200, {"Content-Type": "application/x-git-receive-pack-advertisement"}, body)
        raise errors.forbidden(READ_ONLY)

    # -- git-lfs downloads -------------------------------------------------------------------------
    def lfs_download_batch(self, req: Request, repo: Repo, data: dict) -> Response:
        """Signed download URLs for the objects the repo holds, a 404 entry for each it does not."""
        meta = self._git_readable(req, repo)
        req.kind = "download"
        objects = data.get("objects")
        if not isinstance(objects, list):
            raise errors.bad_request("LFS batch needs objects: [{oid, size}]")
        client, pid = client_of(req.headers, ""), pid_of(req.headers) or ""
        out = []
        for obj in objects:
            oid = str(obj.get("oid", "")) if isinstance(obj, dict) else ""
            size = self.store.blob_size(repo, oid) if SHA256.fullmatch(oid) else None
            if size is None:
                out.append({"oid": oid, "size": obj.get("size", 0) if isinstance(obj, dict) else 0,
                            "error": {"code": 404, "message": "Object does not exist"}})
                continue
            href = self.signer.href("download", req.base_url, repo, meta.generation, oid, size, client, pid)
            out.append({"oid": oid, "size": size, "authenticated": True,
                        "actions": {"download": {"href": href, "expires_in": URL_LIFETIME_S}}})
        return json_response({"transfer": "basic", "objects": out, "hash_algo": "sha256"}, headers=LFS_JSON)

    def lfs_get(self, req: Request, segs: list[str]) -> Response:
        target = signed_object(segs, req.arg)
        req.repo, req.kind = target.repo.label, "download"
        meta = self.store.meta(target.repo)
        if not SHA256.fullmatch(target.oid) or not self.signer.check(
                "download", target.repo, meta.generation if meta else None, target.oid, target.size, target.expires,
                target.sig, target.client, target.pid):
            raise errors.forbidden("Invalid or expired download URL: ask the LFS batch API for a new one")
        req.client, req.pid = target.client or None, target.pid or None
        if self.store.blob_size(target.repo, target.oid) != target.size:
            raise HubError(404, "Object does not exist")
        headers = {"Content-Type": "application/octet-stream"}
        body = b"" if req.method == "HEAD" else self.store.open_blob(target.repo, target.oid)
        return Response(200, headers, body, target.size)

