"""The Xet routes of the hub: CAS access tokens on the Hub API, and the CAS API itself under ``/_xet``.

A mixin of HubApp (see routes.py), which provides ``store``, ``xet_store``, ``xet_signer`` and the
access checks. The CAS routes follow the published CAS API (``/v1/xorbs``, ``/v1/shards``,
``/v2/shards``, ``/v1/chunks``, ``/v1`` and ``/v2/reconstructions``); the xorb bytes a
reconstruction points at are served under ``/_xet/fetch`` by URLs signed for one byte range.

=======  ==============================================  =========================================
GET      /api/{t}/{org}/{name}/xet-read-token/{rev}      CAS token to download (repo readable)
GET      /api/{t}/{org}/{name}/xet-write-token/{rev}     CAS token to upload (write token)
POST     /_xet/v1/xorbs/default/{hash}                   xorb upload (verified against its hash)
POST     /_xet/v1/shards, /_xet/v2/shards                register the files of a shard in the repo
GET      /_xet/v1/chunks/default-merkledb/{hash}         global dedupe: a shard of xorbs, or 404
GET      /_xet/v1|v2/reconstructions/{file hash}         how to rebuild a file (Range supported)
GET      /_xet/fetch/{t}/{org}/{name}/{xorb}?range=...   signed byte range of a stored xorb
=======  ==============================================  =========================================
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote, unquote

from reasoner_hub import errors
from reasoner_hub.commits import FileEntry
from reasoner_hub.errors import HubError
from reasoner_hub.paths import TYPES_BY_PLURAL, Repo, repo_from_parts
from reasoner_hub.repos import RepoStore
from reasoner_hub.transport import Request, Response, json_response
from reasoner_hub.xet.hashes import from_hex
from reasoner_hub.xet.reconstruct import reconstruction
from reasoner_hub.xet.register import register_shard
from reasoner_hub.xet.shard import MAX_SHARD_BYTES, XorbSummary, dedupe_shard
from reasoner_hub.xet.store import XetStore
from reasoner_hub.xet.tokens import CasGrant, XetSigner
from reasoner_hub.xet.xorb import XorbError

log = logging.getLogger(__name__)

CAS_PREFIX = "_xet"
HEARTBEAT_S = 10.0
DEDUPE_SHARD_LIFETIME_S = 7 * 24 * 3600
MAX_TELEMETRY_BYTES = 1024 * 1024


def _progress_stream(work: Callable[[], int], heartbeat_s: float = HEARTBEAT_S) -> Iterator[bytes]:
    """The ``/v2/shards`` answer: NDJSON progress frames while ``work`` runs, then one terminal frame.

    Verifying a shard rebuilds its files, which can take longer than a client waits in silence; a
    frame every ``heartbeat_s`` keeps the connection alive. An error becomes an ``error`` frame, since
    the 200 status is sent before the work starts.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except HubError as error:
            outcome["error"] = error.message
        except Exception as error:  # noqa: BLE001 - reported to the client, logged here
            log.exception("shard registration failed")
            outcome["error"], outcome["retryable"] = f"Internal error: {type(error).__name__}", True

    worker = threading.Thread(target=run, name="xet-shard", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(heartbeat_s)
        if worker.is_alive():
            yield b'{"type":"validating","verified":0,"total":1}\n'
    if "error" in outcome:
        frame = {"type": "error", "message": outcome["error"], "retryable": bool(outcome.get("retryable"))}
        yield json.dumps(frame).encode() + b"\n"
    else:
        yield b'{"type":"result"}\n'


def _hash(name: str, what: str) -> bytes:
    try:
        return from_hex(name)
    except ValueError:
        raise errors.bad_request(f"Invalid {what} hash {name[:80]!r}: 64 lowercase hex digits") from None


NO_XET = "This hub does not offer Xet storage: set HF_HUB_DISABLE_XET=1 in the client to upload through LFS"


class XetRoutes:
    store: RepoStore
    xet_enabled: bool
    xet_store: XetStore
    xet_signer: XetSigner

    # provided by HubApp
    def _readable(self, req: Request, repo: Repo): ...
    def _writable(self, req: Request, repo: Repo): ...

    # -- hub side --------------------------------------------------------------------------------
    def xet_token(self, req: Request, repo: Repo, scope: str, revision: str | None) -> Response:
        """A CAS token for ``scope`` on ``repo``, after the same checks as reading or writing the repo."""
        if not self.xet_enabled:
            raise HubError(404, NO_XET)
        if scope == "write":
            _, meta = self._writable(req, repo)
        else:
            meta = self._readable(req, repo)
            self.store.resolve(repo, revision)  # 404 for a revision the repo does not have
        token, expires = self.xet_signer.issue(repo, meta.generation, scope)
        cas_url = f"{req.base_url}/{CAS_PREFIX}"
        headers = {"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(expires)}
        return json_response({"accessToken": token, "exp": expires, "casUrl": cas_url}, headers=headers)

    def _xet_headers(self, req: Request, repo: Repo, commit_id: str, entry: FileEntry) -> dict[str, str]:
        """For a file uploaded through Xet: its Xet hash and where to get a read token (downloads use Xet)."""
        if not entry.lfs or not self.xet_enabled:
            return {}
        file_hash = entry.xet or self.xet_store.file_hash_of(repo, entry.sha256)
        if file_hash is None:
            return {}
        route = f"{req.base_url}/api/{repo.plural}/{quote(repo.id)}/xet-read-token/{commit_id}"
        return {"X-Xet-Hash": file_hash, "X-Xet-Refresh-Route": route}

    # -- CAS side --------------------------------------------------------------------------------
    def xet_cas(self, req: Request, segs: list[str]) -> Response:
        if not self.xet_enabled:
            raise HubError(404, NO_XET)
        method = req.method
        if len(segs) == 5 and segs[0] == "fetch" and segs[1] in TYPES_BY_PLURAL and method in ("GET", "HEAD"):
            repo = repo_from_parts(TYPES_BY_PLURAL[segs[1]], unquote(segs[2]), unquote(segs[3]))
            return self._xet_fetch(req, repo, segs[4])
        if segs == ["v1", "telemetry"] and method == "POST":
            req.body.read_all(MAX_TELEMETRY_BYTES)  # accepted and dropped: the hub keeps its own metrics
            return json_response({})
        grant = self.xet_signer.check(req.headers.get("Authorization"))
        req.repo = grant.repo.label
        if not self.store.is_generation(grant.repo, grant.generation):
            raise errors.unauthorized("This Xet access token is for a repo that was deleted or replaced since: "
                                      "ask the hub for a new one")
        version, what, rest = (segs[0], segs[1], segs[2:]) if len(segs) >= 2 else ("", "", [])
        if version == "v1" and what == "xorbs" and len(rest) == 2 and method in ("POST", "HEAD"):
            return self._xet_xorb(req, grant, rest[0], rest[1])
        if version in ("v1", "v2") and what == "shards" and not rest and method == "POST":
            return self._xet_shard(req, grant, int(version[1]))
        if version == "v1" and what == "chunks" and len(rest) == 2 and method == "GET":
            return self._xet_dedupe(rest[0], rest[1])
        if version in ("v1", "v2") and what == "reconstructions" and len(rest) == 1 and method == "GET":
            return self._xet_reconstruction(req, grant, rest[0], int(version[1]))
        raise HubError(404, f"Not found: {method} {req.path}")

    def _xet_xorb(self, req: Request, grant: CasGrant, prefix: str, name: str) -> Response:
        if prefix != "default":
            raise errors.bad_request(f"Invalid xorb prefix {prefix!r}: use default")
        xorb = _hash(name, "xorb")
        if req.method == "HEAD":
            return Response(200 if self.xet_store.has_xorb(xorb) else 404, {}, b"", 0)
        if not grant.can_write:
            raise errors.forbidden("Uploading a xorb needs a token from xet-write-token")
        req.kind = "upload"
        if self.xet_store.has_xorb(xorb):
            for _ in req.body.chunks():  # content-addressed: the stored xorb is this one
                pass
            return json_response({"was_inserted": False})
        try:
            self.xet_store.put_xorb(xorb, req.body.chunks())
        except XorbError as error:
            raise errors.bad_request(f"Invalid xorb {name}: {error}") from None
        return json_response({"was_inserted": True})

    def _xet_shard(self, req: Request, grant: CasGrant, version: int) -> Response:
        if not grant.can_write:
            raise errors.forbidden("Uploading a shard needs a token from xet-write-token")
        req.kind = "upload"
        data = req.body.read_all(MAX_SHARD_BYTES)
        if version == 2:
            return Response(200, {"Content-Type": "application/x-ndjson"},
                            _progress_stream(lambda: register_shard(self.xet_store, self.store, grant, data)))
        return json_response({"result": register_shard(self.xet_store, self.store, grant, data)})

    def _xet_dedupe(self, prefix: str, name: str) -> Response:
        if prefix not in ("default-merkledb", "default"):
            raise errors.bad_request(f"Invalid dedupe prefix {prefix!r}: use default-merkledb")
        chunk = _hash(name, "chunk")
        indexes = [i for x in self.xet_store.dedupe_xorbs(chunk) if (i := self.xet_store.xorb_index(x)) is not None]
        if not indexes:
            raise HubError(404, "This chunk is not known to the global dedupe index")
        summaries = [XorbSummary(i.hash, i.chunk_hashes, i.sizes, i.length) for i in indexes]
        body = dedupe_shard(summaries, os.urandom(32), DEDUPE_SHARD_LIFETIME_S)
        return Response(200, {"Content-Type": "application/octet-stream"}, body)

    def _xet_reconstruction(self, req: Request, grant: CasGrant, name: str, version: int) -> Response:
        _hash(name, "file")
        stored = self.xet_store.file(grant.repo, name)
        if stored is None:
            raise HubError(404, f"File {name} is not registered in {grant.repo.label}")
        cas_url = f"{req.base_url}/{CAS_PREFIX}"
        answer = reconstruction(self.xet_store, self.xet_signer, cas_url, grant, stored, req.headers.get("Range"),
                                version)
        return json_response(answer)

    def _xet_fetch(self, req: Request, repo: Repo, name: str) -> Response:
        xorb = _hash(name, "xorb")
        meta = self.store.meta(repo)
        first, last = self.xet_signer.check_fetch(repo, meta.generation if meta else None, name,
                                                  req.arg("range") or "", req.arg("expires") or "",
                                                  req.arg("sig") or "")
        req.repo = repo.label
        req.kind = "download"
        index = self.xet_store.xorb_index(xorb)
        if index is None or last >= index.length:
            raise HubError(404, f"Xorb {name} is not stored")
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        wanted = req.headers.get("Range")
        status, start, end = 200, first, last
        if wanted:
            match = re.fullmatch(r"\s*bytes\s*=\s*(\d+)\s*-\s*(\d+)\s*", wanted)
            if not match or not first <= int(match.group(1)) <= int(match.group(2)) <= last:
                raise errors.forbidden("The Range header must stay inside the range this URL was signed for")
            status, start, end = 206, int(match.group(1)), int(match.group(2))
            headers["Content-Range"] = f"bytes {start}-{end}/{index.length}"
        body = b"" if req.method == "HEAD" else self.xet_store.open_xorb(xorb, start, end)
        return Response(status, headers, body, end - start + 1)
