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
GET      /api/{t}/{org}/{name}/xet-{read|write}-token/{rev}  Xet CAS token; the CAS API is under
                                                         /_xet (see xet/routes.py)
=======  ==============================================  =========================================
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import unquote

from reasoner.localhub import errors
from reasoner.localhub.auth import Principal, TokenBook
from reasoner.localhub.errors import HubError
from reasoner.localhub.lfs import UrlSigner
from reasoner.localhub.metrics import Metrics
from reasoner.localhub.paths import TYPES_BY_PLURAL, Repo, branch_name, repo_from_parts
from reasoner.localhub.reads import ReadRoutes
from reasoner.localhub.repos import RepoMeta, RepoStore
from reasoner.localhub.transport import Request, Response, json_response
from reasoner.localhub.upstream import Upstream
from reasoner.localhub.writes import WriteRoutes
from reasoner.localhub.xet.routes import CAS_PREFIX, XetRoutes
from reasoner.localhub.xet.store import XetStore
from reasoner.localhub.xet.tokens import XetSigner


def _seg(raw: str) -> str:
    return unquote(raw)


class HubApp(ReadRoutes, WriteRoutes, XetRoutes):
    """Callable: Request -> Response. Holds the store, tokens, metrics, LFS signer and upstream."""

    def __init__(
        self,
        store: RepoStore,
        tokens: TokenBook,
        metrics: Metrics,
        signer: UrlSigner,
        upstream: Upstream | None = None,
        tree_page_size: int = 1000,
        xet: bool = True,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        self.signer = signer
        self.upstream = upstream
        self.tree_page_size = tree_page_size
        self.xet_enabled = xet
        self.xet_store = XetStore(store.storage)
        self.xet_signer = XetSigner(secrets.token_bytes(32))

    # -- dispatch --------------------------------------------------------------------------------
    def __call__(self, req: Request) -> Response:
        segs = req.path.split("/")[1:]
        if segs and segs[0] == "_lfs":
            req.kind = "upload"
            return self._lfs_put(req, segs[1:])
        if segs and segs[0] == CAS_PREFIX:  # CAS tokens, not hub tokens, authorize these
            return self.xet_cas(req, segs[1:])
        if segs == ["v1", "telemetry"]:  # where hf_xet posts transfer telemetry (the CAS path joined to /)
            return self.xet_cas(req, segs)
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
            if action in ("xet-read-token", "xet-write-token") and m == "GET":
                return self.xet_token(req, repo, action.split("-")[1], rev)
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
