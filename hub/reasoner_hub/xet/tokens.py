"""Short-lived credentials of the Xet side: CAS access tokens and signed xorb range URLs.

The hub hands a CAS access token to a client that passed its usual token checks for a repo
(``xet-read-token`` / ``xet-write-token``); the CAS routes trust only that token, never a hub token.
It names the repo, the repo's generation (which incarnation of the name: a repo deleted and
created again has a new one), the scope and an expiry; it is an HMAC-signed claim, so the server
keeps no session state. Xorb ranges are fetched without any header (as from a pre-signed storage
URL), so each fetch URL carries its own signature over the repo and its generation, the xorb, the
byte range and an expiry. A token or URL of a repo that was deleted since is refused, also when a
new repo now has that name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from reasoner_hub import errors
from reasoner_hub.paths import Repo, repo_from_id, repo_type

TOKEN_LIFETIME_S = 3600
FETCH_URL_LIFETIME_S = 3600
SCOPES = ("read", "write")
_PREFIX = "xet1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CasGrant:
    """What a valid CAS access token allows: ``scope`` on ``repo`` (the incarnation ``generation``)
    until ``expires`` (unix seconds)."""

    repo: Repo
    generation: str
    scope: str
    expires: int

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


class XetSigner:
    """Issues and checks CAS tokens and fetch URLs with one server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.sha256(b"localhub-xet\0" + secret).digest()

    def _sign(self, message: bytes) -> str:
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def issue(self, repo: Repo, generation: str, scope: str, lifetime_s: int = TOKEN_LIFETIME_S) -> tuple[str, int]:
        """A token for ``scope`` on ``repo`` (its incarnation ``generation``) and its expiry."""
        if scope not in SCOPES:
            raise ValueError(f"unknown Xet scope {scope!r}")
        expires = int(time.time()) + lifetime_s
        claim = _b64(json.dumps({"t": repo.type, "r": repo.id, "g": generation, "s": scope, "e": expires}).encode())
        return f"{_PREFIX}.{claim}.{self._sign(claim.encode())}", expires

    def check(self, authorization: str | None) -> CasGrant:
        """The grant of a ``Bearer`` CAS token; 401 when it is missing, forged or expired."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        parts = token.strip().split(".")
        if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != _PREFIX:
            raise errors.unauthorized("Send a Xet access token from the hub's xet-read-token or xet-write-token route")
        if not hmac.compare_digest(self._sign(parts[1].encode()), parts[2]):
            raise errors.unauthorized("Invalid Xet access token")
        try:
            claim = json.loads(_unb64(parts[1]))
            repo = repo_from_id(repo_type(claim["t"]), claim["r"])
            grant = CasGrant(repo, str(claim["g"]), claim["s"], int(claim["e"]))
        except (ValueError, KeyError, TypeError, errors.HubError):
            raise errors.unauthorized("Invalid Xet access token") from None
        if grant.expires < time.time():
            raise errors.unauthorized("Expired Xet access token: ask the hub for a new one")
        return grant

    @staticmethod
    def _fetch_message(repo: Repo, generation: str, xorb_hex: str, first: int, last: int, expires: int) -> bytes:
        return f"fetch\n{repo.type}\n{repo.id}\n{generation}\n{xorb_hex}\n{first}\n{last}\n{expires}".encode()

    def fetch_query(self, repo: Repo, generation: str, xorb_hex: str, first: int, last: int) -> str:
        """The query string that lets anyone GET bytes ``first..last`` of one xorb for a while,
        as long as ``repo`` is still the incarnation ``generation``."""
        expires = int(time.time()) + FETCH_URL_LIFETIME_S
        sig = self._sign(self._fetch_message(repo, generation, xorb_hex, first, last, expires))
        return f"range={first}-{last}&expires={expires}&sig={sig}"

    def check_fetch(self, repo: Repo, generation: str | None, xorb_hex: str, span: str, expires: str,
                    sig: str) -> tuple[int, int]:
        """The signed byte range of a fetch URL; 403 when the URL is forged or expired, or its repo
        is gone (``generation`` None) or is another repo of the same name."""
        try:
            first, last = (int(v) for v in span.split("-"))
            until = int(expires)
        except ValueError:
            raise errors.forbidden("Invalid xorb fetch URL") from None
        expected = self._sign(self._fetch_message(repo, generation or "", xorb_hex, first, last, until))
        if generation is None or until < time.time() or not hmac.compare_digest(expected, sig):
            raise errors.forbidden("Invalid or expired xorb fetch URL: ask for the reconstruction again")
        return first, last
