"""Tokens: who the caller is (user, org memberships, role), from an Authorization header.

A hub started with tokens enforces them; a hub started without tokens is open (development mode):
every caller may read and write everything. Tokens are compared in constant time and never logged.
What each principal may do is decided in permissions.py.

Token file (YAML or JSON), either a list or ``{"tokens": [...]}``::

    - {name: alice-laptop, token: hf_xxx, role: write, owner: alice, orgs: [team]}
    - {name: bob-ci, token: hf_yyy, role: read, owner: bob, orgs: {team: read, lab: write}}
    - {name: ops, token: hf_zzz, role: admin}
    - {name: legacy, token: hf_www, role: write}      # no owner: unscoped, as before owners existed

``role`` is ``read``, ``write`` or ``admin`` (default ``read``). ``owner`` is the user the token
belongs to: its namespace. ``orgs`` lists the organisations the owner is a member of, as names
(member with the token's role) or as ``{org: read|write}``. A token without ``owner`` (and without
``orgs``) is unscoped: it reads and, with role ``write``, writes every namespace, which is how
every token behaved before owners existed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reasoner_hub.errors import UserError
from reasoner_hub import errors
from reasoner_hub.paths import valid_namespace

ROLES = ("read", "write", "admin")
MEMBER_ROLES = ("read", "write")


@dataclass(frozen=True)
class Principal:
    """The caller as the hub sees it.

    ``name`` is the user (the token's owner, else the token's name); ``orgs`` maps each member
    organisation to the member's role there; ``scoped`` is False for unscoped tokens and the open
    hub, which are valid in every namespace.
    """

    name: str
    role: str  # "read", "write", "admin", or "anonymous"
    orgs: tuple[tuple[str, str], ...] = ()
    scoped: bool = False
    token_name: str = ""

    @property
    def can_write(self) -> bool:
        return self.role in ("write", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def authenticated(self) -> bool:
        return self.role != "anonymous"

    def org_role(self, org: str) -> str | None:
        """The member's role in ``org`` (``read``/``write``), None when not a member."""
        for name, role in self.orgs:
            if name == org:
                return role
        return None


ANONYMOUS = Principal("anonymous", "anonymous")
OPEN_USER = Principal("localhub", "write", token_name="localhub")


@dataclass(frozen=True, repr=False)
class Token:
    name: str
    secret: str
    role: str
    owner: str | None = None
    orgs: tuple[tuple[str, str], ...] = field(default=())

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Token(name={self.name!r}, role={self.role!r}, owner={self.owner!r})"

    def principal(self) -> Principal:
        scoped = self.owner is not None or bool(self.orgs)
        return Principal(self.owner or self.name, self.role, self.orgs, scoped, self.name)


def parse_token_arg(value: str) -> Token:
    """``NAME=TOKEN:ROLE`` from the command line (an unscoped token; owners come from a token file)."""
    name, sep, rest = value.partition("=")
    secret, sep2, role = rest.rpartition(":")
    if not sep or not sep2 or not name or not secret:
        raise UserError("--token expects NAME=TOKEN:ROLE, e.g. --token alice=hf_abc123:write")
    return _token(name, secret, role, "--token")


def load_token_file(path: str | Path) -> list[Token]:
    """Tokens from a YAML or JSON file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read token file {path}: {error.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:  # yaml and json raise many kinds
        raise UserError(f"token file {path} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    if isinstance(data, dict):
        data = data.get("tokens")
    if not isinstance(data, list):
        raise UserError(f"token file {path} must hold a list of {{name, token, role}} entries (or tokens: [...])")
    tokens = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not {"name", "token"} <= set(item):
            raise UserError(f"token file {path}: entry {index} needs name and token (and role: read|write|admin)")
        owner = item.get("owner")
        orgs = _memberships(item.get("orgs"), str(item["name"]), str(path))
        tokens.append(_token(str(item["name"]), str(item["token"]), str(item.get("role", "read")), str(path),
                             None if owner is None else str(owner), orgs))
    return tokens


def _memberships(value: object, name: str, origin: str) -> tuple[tuple[str, str], ...]:
    """``[org, ...]`` (member with the token's role) or ``{org: read|write}``; None when empty."""
    if value is None:
        return ()
    pairs = value.items() if isinstance(value, dict) else [(org, "write") for org in value] if isinstance(value, list) else None
    if pairs is None:
        raise UserError(f"{origin}: token {name!r} has orgs {value!r}; use a list of names or {{org: read|write}}")
    out = []
    for org, role in pairs:
        if not isinstance(org, str) or not valid_namespace(org):
            raise UserError(f"{origin}: token {name!r} lists org {org!r}, which is not a valid namespace name")
        if role not in MEMBER_ROLES:
            raise UserError(f"{origin}: token {name!r} has role {role!r} in org {org!r}; use read or write")
        out.append((org, str(role)))
    return tuple(out)


def _token(name: str, secret: str, role: str, origin: str, owner: str | None = None,
           orgs: tuple[tuple[str, str], ...] = ()) -> Token:
    if role not in ROLES:
        raise UserError(f"{origin}: token {name!r} has role {role!r}; use read, write or admin")
    if len(secret) < 8:
        raise UserError(f"{origin}: token {name!r} is shorter than 8 characters; use a long random token")
    if owner is not None and not valid_namespace(owner):
        raise UserError(f"{origin}: token {name!r} has owner {owner!r}, which is not a valid namespace name")
    if orgs and owner is None:
        raise UserError(f"{origin}: token {name!r} lists orgs but no owner; add owner: USER")
    return Token(name, secret, role, owner, orgs)


class TokenBook:
    """Maps an Authorization header to a Principal."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self._tokens = list(tokens)
        names = [t.name for t in self._tokens]
        secrets = [t.secret for t in self._tokens]
        if len(set(secrets)) != len(secrets):
            raise UserError("two tokens share the same secret; give each token its own value")
        if len(set(names)) != len(names):
            raise UserError("two tokens share the same name; give each token its own name")

    @property
    def open(self) -> bool:
        return not self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def identify(self, authorization: str | None) -> Principal:
        """Raises 401 for a token that is not ours; no header gives the anonymous reader.

        ``Bearer TOKEN``, or ``Basic`` with the token as the password (what git and git-lfs send
        for ``http://USER:TOKEN@host/...``, as on the Hub; the user name is not checked).
        """
        if self.open:
            return OPEN_USER
        if not authorization:
            return ANONYMOUS
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            secret = _basic_password(secret)
        elif scheme.lower() != "bearer":
            raise errors.unauthorized()
        secret = secret.strip()
        if not secret:
            raise errors.unauthorized()
        found = None
        for token in self._tokens:  # check all: no early exit that times which token matched
            if hmac.compare_digest(token.secret.encode(), secret.encode()):
                found = token
        if found is None:
            raise errors.unauthorized()
        return found.principal()


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise errors.unauthorized() from None
    user, _, password = decoded.partition(":")
    return password or user
