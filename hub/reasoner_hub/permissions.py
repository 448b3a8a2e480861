"""Who may do what: the Hugging Face Hub's namespace rules, applied to the principals of auth.py.

A repo lives in a namespace, the ``org`` of ``org/name``: a user or an organisation.

=====================  =============================  ===========================================
principal              reads                          writes (commit, branch, tag, settings,
                                                      delete, move, squash, create)
=====================  =============================  ===========================================
anonymous              public repos                   nothing (401)
read token             public repos + private repos   nothing (403)
                       of its owner and member orgs
write token            same as a read token           its owner's namespace and the orgs where
                                                      it is a member with role write (else 403)
unscoped token         every repo                     every namespace (role write)
(no owner: older                                      or nothing (role read)
token files)
admin token            every repo                     every namespace, and ``/api/_metrics``
open hub (no tokens)   every repo                     every namespace, and ``/api/_metrics``
=====================  =============================  ===========================================

A private repo the caller may not read is a 404 to every route, writes included, as on the Hub: its
name is never confirmed. A write the caller's token role forbids is refused before the repo is
looked up (401 without a token, 403 with a read token), so no answer depends on a repo's existence.
"""

from __future__ import annotations

from reasoner_hub import errors
from reasoner_hub.auth import Principal
from reasoner_hub.paths import Repo

_RANK = {"read": 1, "write": 2}


def namespace(repo: Repo) -> str:
    return repo.id.split("/", 1)[0]


def namespace_role(principal: Principal, space: str) -> str | None:
    """``write``, ``read`` or None: what ``principal`` may do in namespace ``space``."""
    if principal.is_admin:
        return "write"
    if not principal.authenticated:
        return None
    if not principal.scoped:
        return principal.role
    if space == principal.name:
        return principal.role
    member = principal.org_role(space)
    if member is None:
        return None
    return member if _RANK[member] < _RANK[principal.role] else principal.role


def can_read(principal: Principal, repo: Repo, private: bool) -> bool:
    return not private or namespace_role(principal, namespace(repo)) is not None


def can_write(principal: Principal, space: str) -> bool:
    return namespace_role(principal, space) == "write"


def require_writer(principal: Principal) -> None:
    """401 without a token, 403 with a read-only token: before any repo is looked up."""
    if not principal.authenticated:
        raise errors.unauthorized("You must be authenticated with a write token to do this")
    if not principal.can_write:
        raise errors.forbidden(f"The token {principal.token_name!r} is read-only: writing needs a token with role write")


def check_read(principal: Principal, repo: Repo, private: bool) -> None:
    if not can_read(principal, repo, private):
        raise errors.repo_not_found(repo.id)


def check_write(principal: Principal, repo: Repo, private: bool) -> None:
    """May ``principal`` change the existing ``repo``? 401/403 by role, 404 if private to others, 403."""
    require_writer(principal)
    check_read(principal, repo, private)
    space = namespace(repo)
    if not can_write(principal, space):
        raise errors.forbidden(
            f"{principal.name!r} may not write {repo.type} repos in {space!r}: the token writes only in "
            f"{_writable_spaces(principal)}"
        )


def check_create(principal: Principal, repo: Repo) -> None:
    """May ``principal`` create ``repo`` (or move a repo to that name)?"""
    require_writer(principal)
    space = namespace(repo)
    if not can_write(principal, space):
        raise errors.forbidden(
            f"You don't have the rights to create a {repo.type} under the namespace {space!r}: the token "
            f"writes only in {_writable_spaces(principal)}"
        )


def check_admin(principal: Principal, open_hub: bool) -> None:
    """Hub-wide views (metrics): an admin token, or anyone on an open hub."""
    if open_hub or principal.is_admin:
        return
    if not principal.authenticated:
        raise errors.unauthorized("You must be authenticated with an admin token to do this")
    raise errors.forbidden(f"The token {principal.token_name!r} is not an admin token: this needs role admin")


def _writable_spaces(principal: Principal) -> str:
    spaces = [principal.name] if principal.role in ("write", "admin") else []
    spaces += [org for org, _ in principal.orgs if can_write(principal, org)]
    return ", ".join(repr(space) for space in spaces) or "no namespace"


def whoami_json(principal: Principal) -> dict:
    """``/api/whoami-v2`` as huggingface_hub reads it: ``name``, ``orgs[].name``, ``auth.accessToken``."""
    return {
        "type": "user",
        "id": principal.name,
        "name": principal.name,
        "fullname": principal.name,
        "email": None,
        "emailVerified": False,
        "isPro": False,
        "canPay": False,
        "avatarUrl": "",
        "orgs": [
            {
                "type": "org",
                "id": org,
                "name": org,
                "fullname": org,
                "email": None,
                "canPay": False,
                "avatarUrl": "",
                "roleInOrg": namespace_role(principal, org),
                "isEnterprise": False,
            }
            for org, _ in principal.orgs
        ],
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": principal.token_name or principal.name, "role": principal.role},
        },
    }
