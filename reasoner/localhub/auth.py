"""Tokens: who may read private repos and who may write.

A hub started with tokens enforces them: reading public repos needs none, reading private repos
needs any valid token, writing needs a token with role ``write``. A bad token is refused with 401,
a read-only token that writes with 403, a private repo is a 404 to anyone without a valid token
(as on the Hugging Face Hub). A hub started without tokens is open (development mode): every
caller may read and write everything. Tokens are compared in constant time and never logged.

Token file (YAML or JSON), either a list or ``{"tokens": [...]}``::

    - {name: alice, token: hf_xxx, role: write}
    - {name: ci, token: hf_yyy, role: read}
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reasoner.errors import UserError
from reasoner.localhub import errors

ROLES = ("read", "write")


@dataclass(frozen=True)
class Principal:
    """The caller as the hub sees it."""

    name: str
    role: str  # "read", "write", or "anonymous"

    @property
    def can_write(self) -> bool:
        return self.role == "write"

    @property
    def authenticated(self) -> bool:
        return self.role != "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous")
OPEN_USER = Principal("localhub", "write")


@dataclass(frozen=True, repr=False)
class Token:
    name: str
    secret: str
    role: str

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Token(name={self.name!r}, role={self.role!r})"


def parse_token_arg(value: str) -> Token:
    """``NAME=TOKEN:ROLE`` from the command line."""
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
            raise UserError(f"token file {path}: entry {index} needs name and token (and role: read|write)")
        tokens.append(_token(str(item["name"]), str(item["token"]), str(item.get("role", "read")), str(path)))
    return tokens


def _token(name: str, secret: str, role: str, origin: str) -> Token:
    if role not in ROLES:
        raise UserError(f"{origin}: token {name!r} has role {role!r}; use read or write")
    if len(secret) < 8:
        raise UserError(f"{origin}: token {name!r} is shorter than 8 characters; use a long random token")
    return Token(name, secret, role)


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
        """Raises 401 for a token that is not ours; no header gives the anonymous reader."""
        if self.open:
            return OPEN_USER
        if not authorization:
            return ANONYMOUS
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise errors.unauthorized()
        secret = secret.strip()
        found = None
        for token in self._tokens:  # check all: no early exit that times which token matched
            if hmac.compare_digest(token.secret.encode(), secret.encode()):
                found = token
        if found is None:
            raise errors.unauthorized()
        return Principal(found.name, found.role)
