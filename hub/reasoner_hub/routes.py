"""The Hub's HTTP API as huggingface_hub 2.4 and datasets 5.2 call it, over a RepoStore.

Routes (``{t}`` is models, datasets or spaces; model download URLs have no type prefix):

=======  ==============================================  =========================================
GET      /api/whoami-v2                                  who the token belongs to, and its orgs
POST     /api/validate-yaml                              model/dataset card metadata check
POST     /api/repos/create, DELETE /api/repos/delete     create_repo / delete_repo
POST     /api/repos/move                                 move_repo (history included)
GET      /api/{t}                                        list_models / list_datasets / list_spaces
GET      /api/{t}/{org}/{name}[/revision/{rev}]          model_info / dataset_info / repo_info
GET      /api/{t}/{org}/{name}/tree/{rev}[/{path}]       list_repo_tree (Link-paginated)
POST     /api/{t}/{org}/{name}/paths-info/{rev}          get_paths_info
GET      /api/{t}/{org}/{name}/refs                      list_repo_refs
GET      /api/{t}/{org}/{name}/commits/{rev}             list_repo_commits
POST     /api/{t}/{org}/{name}/preupload/{rev}           upload modes (regular / lfs)
POST     /api/{t}/{org}/{name}/commit/{rev}              create_commit (x-ndjson)
POST     /api/{t}/{org}/{name}/lfs-files/duplicate       LFS files copied to another repo (duplicate.py)
POST/DEL /api/{t}/{org}/{name}/branch/{branch}           create_branch / delete_branch
POST/DEL /api/{t}/{org}/{name}/tag/{rev|tag}             create_tag / delete_tag
POST     /api/{t}/{org}/{name}/super-squash/{branch}     super_squash_history
PUT      /api/{t}/{org}/{name}/settings                  update_repo_settings (visibility)
GET      /api/_metrics, /api/_health                     counters (admin); liveness
HEAD/GET /[datasets/|spaces/]{org}/{name}/resolve/{rev}/{path}   downloads, with Range
POST     /[datasets/|spaces/]{org}/{name}.git/info/lfs/objects/batch   LFS batch (upload, download)
PUT/GET  /_lfs/{t}/{org}/{name}/{oid}?...signed...       LFS object upload / download
GET/POST /[datasets/|spaces/]{org}/{name}/info/refs, .../git-upload-pack   git clone and fetch
                                                         (read-only; see git/routes.py)
GET      /api/{t}/{org}/{name}/xet-{read|write}-token/{rev}  Xet CAS token; the CAS API is under
                                                         /_xet (see xet/routes.py)
=======  ==============================================  =========================================

Every route that touches a repo goes through ``_readable`` or ``_writable`` (permissions.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import unquote

from reasoner_hub import errors, permissions
from reasoner_hub.auth import Principal, TokenBook
from reasoner_hub.card_yaml import metadata_errors
from reasoner_hub.cards import CardReader
from reasoner_hub.duplicate import DuplicateRoutes
from reasoner_hub.errors import HubError
from reasoner_hub.git.routes import CHALLENGE, GitRoutes, git_path, is_git_client_path
from reasoner_hub.lfs import UrlSigner
from reasoner_hub.limits import MAX_CARD_BODY
from reasoner_hub.listing import ListingRoutes
from reasoner_hub.metrics import Metrics
from reasoner_hub.moves import MoveRoutes
from reasoner_hub.paths import TYPES_BY_PLURAL, Repo, branch_name, repo_from_parts
from reasoner_hub.reads import ReadRoutes
from reasoner_hub.repos import RepoMeta, RepoStore
from reasoner_hub.transport import Request, Response, json_response
from reasoner_hub.mirror import Mirror
from reasoner_hub.writes import WriteRoutes
from reasoner_hub.xet.routes import CAS_PREFIX, XetRoutes
from reasoner_hub.xet.store import XetStore
from reasoner_hub.xet.tokens import XetSigner


def _seg(raw: str) -> str:
    return unquote(raw)


def _rev(rest: list[str]) -> str | None:
    return _seg(rest[0]) if rest else None


def _joined(rest: list[str]) -> str:
    return _seg("/".join(rest))


ApiHandler = Callable[["HubApp", Request], Response]
RepoHandler = Callable[["HubApp", Request, Repo, list[str]], Response]

# (method, path after /api/) -> handler
API_ROUTES: dict[tuple[str, str], ApiHandler] = {
    ("GET", "whoami-v2"): lambda app, req: app.whoami(req),
    ("POST", "validate-yaml"): lambda app, req: app.validate_yaml(req),
    ("POST", "repos/create"): lambda app, req: app.create_repo(req),
    ("DELETE", "repos/delete"): lambda app, req: app.delete_repo(req),
    ("POST", "repos/move"): lambda app, req: app.move(req),
    ("GET", "_metrics"): lambda app, req: app.metrics_snapshot(req),
    ("GET", "_health"): lambda app, req: json_response({"status": "ok"}),
    **{("GET", plural): (lambda app, req, kind=kind: app.list_repos(req, kind)) for plural, kind in TYPES_BY_PLURAL.items()},
}

# (method, action after /api/{t}/{org}/{name}/) -> (whether more segments follow, handler)
REPO_ROUTES: dict[tuple[str, str], tuple[bool, RepoHandler]] = {
    ("GET", ""): (False, lambda app, req, repo, rest: app.info(req, repo, None)),
    ("GET", "revision"): (True, lambda app, req, repo, rest: app.info(req, repo, _joined(rest))),
    ("GET", "tree"): (True, lambda app, req, repo, rest: app.tree(req, repo, _rev(rest), _joined(rest[1:]))),
    ("POST", "paths-info"): (True, lambda app, req, repo, rest: app.paths_info(req, repo, _rev(rest))),
    ("GET", "refs"): (False, lambda app, req, repo, rest: app.refs(req, repo)),
    ("GET", "commits"): (True, lambda app, req, repo, rest: app.commits(req, repo, _rev(rest))),
    ("POST", "preupload"): (True, lambda app, req, repo, rest: app.preupload(req, repo, _rev(rest))),
    ("POST", "commit"): (True, lambda app, req, repo, rest: app.commit(req, repo, _rev(rest))),
    ("POST", "branch"): (True, lambda app, req, repo, rest: app.branch(req, repo, _joined(rest))),
    ("DELETE", "branch"): (True, lambda app, req, repo, rest: app.branch(req, repo, _joined(rest))),
    ("POST", "tag"): (True, lambda app, req, repo, rest: app.tag(req, repo, _joined(rest))),
    ("DELETE", "tag"): (True, lambda app, req, repo, rest: app.tag(req, repo, _joined(rest))),
    ("PUT", "settings"): (False, lambda app, req, repo, rest: app.settings(req, repo)),
    ("POST", "super-squash"): (True, lambda app, req, repo, rest: app.super_squash(req, repo, _joined(rest))),
    ("GET", "xet-read-token"): (True, lambda app, req, repo, rest: app.xet_token(req, repo, "read", _rev(rest))),
    ("GET", "xet-write-token"): (True, lambda app, req, repo, rest: app.xet_token(req, repo, "write", _rev(rest))),
    ("POST", "lfs-files"): (True, lambda app, req, repo, rest: app.duplicate_lfs(req, repo, rest)),
}
UPLOAD_ACTIONS = {"commit"}  # counted as uploads in the metrics


class HubApp(ReadRoutes, WriteRoutes, DuplicateRoutes, ListingRoutes, MoveRoutes, XetRoutes, GitRoutes):
    """Callable: Request -> Response. Holds the store, tokens, metrics, LFS signer and upstream."""

    def __init__(
        self,
        store: RepoStore,
        tokens: TokenBook,
        metrics: Metrics,
        signer: UrlSigner,
        upstream: Mirror | None = None,
        tree_page_size: int = 1000,
        xet: bool = True,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        self.signer = signer
        self.upstream = upstream
        self.tree_page_size = tree_page_size
        self.list_page_size = tree_page_size
        self.cards = CardReader(store)
        self.xet_enabled = xet
        self.xet_store = XetStore(store.storage)
        self.xet_signer = XetSigner(secrets.token_bytes(32))

    # -- dispatch --------------------------------------------------------------------------------
    def __call__(self, req: Request) -> Response:
        segs = req.path.split("/")[1:]
        if segs and segs[0] == "_lfs":
            if req.method in ("GET", "HEAD"):
                return self.lfs_get(req, segs[1:])
            req.kind = "upload"
            return self._lfs_put(req, segs[1:])
        if segs and segs[0] == CAS_PREFIX:  # CAS tokens, not hub tokens, authorize these
            return self.xet_cas(req, segs[1:])
        if segs == ["v1", "telemetry"]:  # where hf_xet posts transfer telemetry (the CAS path joined to /)
            return self.xet_cas(req, segs)
        try:
            req.principal = self.tokens.identify(req.headers.get("Authorization"))
        except HubError as error:
            if error.status == 401 and is_git_client_path(segs):
                error.headers.update(CHALLENGE)  # git and git-lfs ask for credentials only after a challenge
            raise
        if segs and segs[0] == "api":
            return self._api(req, segs[1:])
        return self._files(req, segs)

    def _api(self, req: Request, segs: list[str]) -> Response:
        handler = API_ROUTES.get((req.method, "/".join(segs)))
        if handler is not None:
            return handler(self, req)
        if segs and segs[0] in TYPES_BY_PLURAL and len(segs) >= 3:
            repo = repo_from_parts(TYPES_BY_PLURAL[segs[0]], _seg(segs[1]), _seg(segs[2]))
            req.repo = repo.label
            action, rest = (segs[3], segs[4:]) if len(segs) > 3 else ("", [])
            route = REPO_ROUTES.get((req.method, action))
            if route is not None and route[0] == bool(rest):
                req.revision = _rev(rest)
                if action in UPLOAD_ACTIONS:
                    req.kind = "upload"
                return route[1](self, req, repo, rest)
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
            data = req.body.json()
            if isinstance(data, dict) and data.get("operation") == "download":
                return self.lfs_download_batch(req, repo, data)
            return self.lfs_batch(req, repo, data)
        git = git_path(segs)
        if git is not None:
            return self.git(req, kind, *git)
        if len(segs) >= 5 and segs[2] == "resolve" and req.method in ("GET", "HEAD"):
            repo = repo_from_parts(kind, _seg(segs[0]), _seg(segs[1]))
            req.kind, req.repo, req.revision = "download", repo.label, _seg(segs[3])
            return self.resolve(req, repo, _seg(segs[3]), _seg("/".join(segs[4:])))
        raise HubError(404, f"Not found: {req.method} {req.path}")

    # -- access (rules in permissions.py) --------------------------------------------------------
    def _readable(self, req: Request, repo: Repo) -> RepoMeta:
        meta = self.store.meta(repo)
        if meta is None and self.upstream is not None and self.upstream.fetch(repo):
            meta = self.store.meta(repo)
        if meta is None:
            raise errors.repo_not_found(repo.id)
        permissions.check_read(req.principal, repo, meta.private)
        if self.upstream is not None:  # a mirrored repo: fetch the revision asked for, check main when due
            self.upstream.keep_current(repo, meta, req.revision)
        return meta

    def _require_writer(self, req: Request) -> Principal:
        permissions.require_writer(req.principal)
        return req.principal

    def _writable(self, req: Request, repo: Repo) -> tuple[Principal, RepoMeta]:
        principal = self._require_writer(req)
        meta = self.store.meta(repo)
        if meta is None:
            raise errors.repo_not_found(repo.id)
        permissions.check_write(principal, repo, meta.private)
        return principal, meta

    def _branch_for_write(self, revision: str | None) -> str:
        name = revision or "main"
        if name.startswith("refs/heads/"):
            name = name[len("refs/heads/") :]
        return branch_name(name)

    # -- account, metrics and cards --------------------------------------------------------------
    def whoami(self, req: Request) -> Response:
        principal: Principal = req.principal
        if not principal.authenticated:
            raise errors.unauthorized("You must be authenticated: send a token")
        return json_response(permissions.whoami_json(principal))

    def metrics_snapshot(self, req: Request) -> Response:
        permissions.check_admin(req.principal, self.tokens.open)
        return json_response(self.metrics.snapshot())

    def validate_yaml(self, req: Request) -> Response:
        problems = metadata_errors(req.body.json(MAX_CARD_BODY))
        if problems:
            return json_response({"errors": [{"message": message} for message in problems]}, 400)
        return json_response({"errors": [], "warnings": []})
