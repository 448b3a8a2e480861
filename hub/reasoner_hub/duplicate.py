"""``POST /api/{t}/{org}/{name}/lfs-files/duplicate``: LFS files of one repo made available to another.

huggingface_hub calls it on the *source* repo for a ``CommitOperationCopy`` with ``src_repo_id`` (a copy
from another repo), before it commits ``lfsFile`` lines naming the same sha256 in the target. The body
is ``{"target": {"type", "name"}, "files": [{"xetHash", "sha256", "filename"}]}``; the answer
``{"failed": [{"sha256", "error"}]}`` lists the files that could not be copied (the client then raises).

Each file's blob is copied into the target repo, and its Xet record too when the source has one, so
the copy downloads through Xet and plain HTTP exactly as the original (xorbs are shared by every repo:
no Xet data moves). The caller must be able to read the source and write the target; the target's
writes happen under its gate and only while it is the incarnation checked, as an upload's do. A copy
whose commit never comes is an upload whose commit never came: ``reasoner-hub gc`` removes its Xet
record after the grace period, and its blob goes with the repo.
"""

from __future__ import annotations

import os
import tempfile

from reasoner_hub import errors
from reasoner_hub.commit_body import SHA256
from reasoner_hub.commits import RepoMeta
from reasoner_hub.limits import mapping, text
from reasoner_hub.paths import PLURALS, Repo, repo_from_id
from reasoner_hub.repos import RepoStore
from reasoner_hub.storage import NotFound
from reasoner_hub.transport import Request, Response, json_response
from reasoner_hub.xet.store import XetStore

MAX_DUPLICATE_FILES = 1000  # huggingface_hub sends batches of 500


class DuplicateRoutes:
    """A mixin of HubApp (see routes.py), which provides ``store``, ``xet_store`` and the access checks."""

    store: RepoStore
    xet_store: XetStore

    # provided by HubApp
    def _readable(self, req: Request, repo: Repo) -> RepoMeta: ...
    def _writable(self, req: Request, repo: Repo): ...

    def duplicate_lfs(self, req: Request, source: Repo, rest: list[str]) -> Response:
        if rest != ["duplicate"]:
            raise errors.HubError(404, f"Not found: {req.method} {req.path}")
        self._readable(req, source)
        data = mapping(req.body.json(), "lfs-files/duplicate body")
        wanted = mapping(data.get("target"), "lfs-files/duplicate: target")
        kind = text(wanted, "type", "lfs-files/duplicate target", "model") or "model"
        if kind not in PLURALS:
            raise errors.bad_request(f"lfs-files/duplicate: target type {kind!r} is not one of {', '.join(PLURALS)}")
        target = repo_from_id(kind, text(wanted, "name", "lfs-files/duplicate target", "") or "")
        _, meta = self._writable(req, target)
        files = data.get("files")
        if not isinstance(files, list) or len(files) > MAX_DUPLICATE_FILES:
            raise errors.bad_request(f"lfs-files/duplicate: files must be a list of at most {MAX_DUPLICATE_FILES}")
        failed = []
        for item in files:
            sha = text(mapping(item, "lfs-files/duplicate: a file"), "sha256", "lfs-files/duplicate file", "") or ""
            if not SHA256.fullmatch(sha):
                raise errors.bad_request(f"lfs-files/duplicate: sha256 {sha[:70]!r} is not a sha256")
            problem = self._duplicate_one(source, target, meta, sha)
            if problem:
                failed.append({"sha256": sha, "error": problem})
        return json_response({"failed": failed})

    def _duplicate_one(self, source: Repo, target: Repo, meta: RepoMeta, sha: str) -> str | None:
        """Copy the blob (and Xet record) ``sha`` from ``source`` into ``target``; the reason when it cannot."""
        if not self.store.has_blob(source, sha):
            return f"no LFS file with this sha256 is stored in {source.id}"
        file_hash = self.xet_store.file_hash_of(source, sha)
        record = self.xet_store.file(source, file_hash) if file_hash else None
        if not self.store.has_blob(target, sha):
            fd, tmp = tempfile.mkstemp(dir=self.store.storage.temp_dir(), prefix="duplicate-")
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in self.store.open_blob(source, sha):
                        out.write(chunk)
                self.store.put_blob_file(target, sha, tmp, generation=meta.generation)
            except NotFound:
                return f"the LFS file left {source.id} while it was being copied"
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        if record is not None and self.xet_store.file_hash_of(target, sha) != record.file_hash:
            with self.store.gate(target).shared():
                if not self.store.is_generation(target, meta.generation):
                    raise errors.repo_not_found(target.id)
                self.xet_store.register_file(target, record)
        return None
