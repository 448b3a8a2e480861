"""Shard upload: check every file a shard describes, then register it in the repo.

A file is accepted only if every term points at a stored xorb, its chunk range exists, its length
is the sum of those chunks, its verification hash matches the chunk hashes (proof that the uploader
knows the data, since a term may reuse chunks it did not upload), the chunks hash to the file hash,
and the rebuilt bytes have the sha256 the shard states. The rebuilt bytes become the repo's blob for
that sha256, so a commit of the LFS pointer, plain HTTP downloads, Range requests and the plain view
of a branch work exactly as for an LFS upload.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from reasoner_hub import errors
from reasoner_hub.repos import RepoStore
from reasoner_hub.xet.hashes import dedupe_eligible, file_hash, to_hex, verification_hash
from reasoner_hub.xet.reconstruct import stream
from reasoner_hub.xet.shard import FileRecord, Shard, ShardError, parse_shard
from reasoner_hub.xet.store import StoredFile, XetStore
from reasoner_hub.xet.tokens import CasGrant

MAX_DEDUPE_XORBS_PER_FILE = 32
# hf_xet remembers the xorbs it uploaded (for three weeks) and skips them next time; after `reasoner-hub gc`
# removed one, only a fresh client cache uploads it again.
GC_HINT = ("; if this client uploaded it before, `reasoner-hub gc` may have removed it since: delete the client's "
           "Xet cache ($HF_XET_CACHE, by default ~/.cache/huggingface/xet) and upload again")


def _check_file(xet: XetStore, record: FileRecord) -> list[bytes]:
    """The file's chunk hashes, in order; 400 naming the first thing that does not hold."""
    name = to_hex(record.file_hash)
    if record.sha256 is None or len(record.verifications) != len(record.terms):
        raise errors.bad_request(f"shard file {name}: needs a verification entry per term and a sha256 entry")
    chunks: list[tuple[bytes, int]] = []
    for number, (term, proof) in enumerate(zip(record.terms, record.verifications)):
        index = xet.xorb_index(term.xorb)
        if index is None:
            raise errors.bad_request(f"shard file {name}: xorb {to_hex(term.xorb)} was not uploaded first{GC_HINT}")
        if term.end > index.num_chunks:
            raise errors.bad_request(f"shard file {name}: term {number} reads past the end of its xorb")
        sizes = index.sizes[term.start : term.end]
        hashes = index.chunk_hashes[term.start : term.end]
        if sum(sizes) != term.length:
            raise errors.bad_request(f"shard file {name}: term {number} length does not match its chunks")
        if verification_hash(hashes) != proof:
            raise errors.bad_request(f"shard file {name}: term {number} verification hash does not match")
        chunks.extend(zip(hashes, sizes))
    if file_hash(chunks) != record.file_hash:
        raise errors.bad_request(f"shard file {name}: the chunks do not hash to the file hash")
    return [digest for digest, _ in chunks]


def _materialize(xet: XetStore, repos: RepoStore, grant: CasGrant, stored: StoredFile) -> None:
    """Rebuild the bytes, check their sha256, keep them as the repo's blob for that sha256 and register the file.

    The rebuild runs in this process's spool folder (swept at start-up if the process dies). The
    blob and the records are stored under the repo's gate and only while the repo the grant was
    issued for exists, like a commit: a registration that races a delete or a move is refused
    (404) rather than leave records under a name whose repo is gone or in a new repo of that name.
    """
    repo = grant.repo
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=repos.storage.temp_dir(), prefix="xet-file-")
    try:
        with os.fdopen(fd, "wb") as out:
            for data in stream(xet, stored):
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != stored.sha256:
            raise errors.bad_request(f"shard file {stored.file_hash}: the bytes do not have the sha256 in the shard")
        with repos.gate(repo).shared():
            if not repos.is_generation(repo, grant.generation):
                raise errors.repo_not_found(repo.id)
            repos.put_blob_file(repo, stored.sha256, tmp)
            xet.register_file(repo, stored)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _register(xet: XetStore, repos: RepoStore, grant: CasGrant, record: FileRecord, chunk_hashes: list[bytes]) -> None:
    repo = grant.repo
    # The sha256 is stored like every hash: as four u64 words, so its usual hex is the Xet string form.
    stored = StoredFile(to_hex(record.file_hash), to_hex(record.sha256 or bytes(32)), record.size, record.terms)
    if xet.file_hash_of(repo, stored.sha256) == stored.file_hash and repos.has_blob(repo, stored.sha256):
        return  # this very file is registered already (a re-upload)
    _materialize(xet, repos, grant, stored)
    if chunk_hashes:
        file_xorbs = list(dict.fromkeys(term.xorb for term in record.terms))[:MAX_DEDUPE_XORBS_PER_FILE]
        xet.add_dedupe(chunk_hashes[0], file_xorbs)


def register_shard(xet: XetStore, repos: RepoStore, grant: CasGrant, data: bytes) -> int:
    """Check and register an uploaded shard in the grant's repo; 1 when new, 0 when the repo had it already."""
    repo = grant.repo
    try:
        shard: Shard = parse_shard(data)
    except ShardError as error:
        raise errors.bad_request(f"Invalid shard: {error}") from None
    for listing in shard.xorbs:
        if not xet.has_xorb(listing.xorb):
            raise errors.bad_request(f"shard lists xorb {to_hex(listing.xorb)}, which was not uploaded first{GC_HINT}")
    checked = [(record, _check_file(xet, record)) for record in shard.files]  # every file, before any is kept
    for record, chunk_hashes in checked:
        _register(xet, repos, grant, record, chunk_hashes)
    for listing in shard.xorbs:  # chunks a later upload may ask the dedupe API about, from our own index
        index = xet.xorb_index(listing.xorb)
        for chunk in index.chunk_hashes if index else ():
            if dedupe_eligible(chunk):
                xet.add_dedupe(chunk, [listing.xorb])
    with repos.gate(repo).shared():
        if not repos.is_generation(repo, grant.generation):
            raise errors.repo_not_found(repo.id)
        return 1 if xet.put_shard(repo, hashlib.sha256(data).hexdigest(), data) else 0
