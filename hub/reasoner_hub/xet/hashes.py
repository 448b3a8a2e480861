"""The Xet hashes: chunk, xorb and file hashes, term verification hashes, and their string form.

Every hash is 32 bytes. Chunk hashes are blake3 keyed hashes of the chunk bytes; a xorb hash is the
root of a Merkle tree over its (chunk hash, size) pairs whose shape depends on the hashes
themselves; a file hash is that root over all chunks of the file, hashed once more with a zero key.
The string form used in URLs and shards is NOT plain hex: each 8-byte group is read as a
little-endian u64 and printed as 16 hex digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from blake3 import blake3

DATA_KEY = bytes([
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
    157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
])  # fmt: skip
INTERNAL_NODE_KEY = bytes([
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
    93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
])  # fmt: skip
VERIFICATION_KEY = bytes([
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
    164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
])  # fmt: skip
ZERO_KEY = bytes(32)
HASH_SIZE = 32
BOOKEND = b"\xff" * HASH_SIZE  # marks the end of a shard section
MEAN_BRANCHING = 4
MAX_GROUP = 2 * MEAN_BRANCHING + 1
DEDUPE_ELIGIBLE_MODULUS = 1024
_HEX = re.compile(r"^[0-9a-f]{64}$")


def to_hex(digest: bytes) -> str:
    """The Xet string form: four little-endian u64 words, each as 16 hex digits."""
    return "".join(digest[i : i + 8][::-1].hex() for i in range(0, HASH_SIZE, 8))


def from_hex(text: str) -> bytes:
    """The 32 bytes of a hash in Xet string form; ValueError when it is not 64 lowercase hex digits."""
    if not _HEX.fullmatch(text):
        raise ValueError(f"not a Xet hash: {text[:80]!r}")
    return b"".join(bytes.fromhex(text[i : i + 16])[::-1] for i in range(0, 64, 16))


def keyed_hash(data: bytes, key: bytes) -> bytes:
    return blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    return keyed_hash(data, DATA_KEY)


def _last_word(digest: bytes) -> int:
    return int.from_bytes(digest[24:32], "little")


def _next_cut(nodes: Sequence[tuple[bytes, int]], start: int) -> int:
    """End (exclusive) of the group that starts at ``start``: 2 to 9 nodes, cut after a hash divisible by 4."""
    left = len(nodes) - start
    if left <= 2:
        return len(nodes)
    end = min(MAX_GROUP, left)
    for offset in range(2, end):
        if _last_word(nodes[start + offset][0]) % MEAN_BRANCHING == 0:
            return start + offset + 1
    return start + end


def _merge(group: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{to_hex(digest)} : {size}\n" for digest, size in group)
    return keyed_hash(text.encode(), INTERNAL_NODE_KEY), sum(size for _, size in group)


def merkle_root(nodes: Sequence[tuple[bytes, int]]) -> bytes:
    """The aggregated hash of (hash, size) leaves; 32 zero bytes for no leaves."""
    if not nodes:
        return ZERO_KEY
    level = list(nodes)
    while len(level) > 1:
        merged, start = [], 0
        while start < len(level):
            end = _next_cut(level, start)
            merged.append(_merge(level[start:end]))
            start = end
        level = merged
    return level[0][0]


def xorb_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    return merkle_root(chunks)


def file_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    """The Xet file id of a file made of ``chunks``; a file with no chunks hashes to zeros."""
    if not chunks:
        return ZERO_KEY
    return keyed_hash(merkle_root(chunks), ZERO_KEY)


def verification_hash(chunk_hashes: Iterable[bytes]) -> bytes:
    """The hash that proves a shard's author knows the chunk hashes of one term."""
    return keyed_hash(b"".join(chunk_hashes), VERIFICATION_KEY)


def dedupe_eligible(digest: bytes) -> bool:
    """Whether clients may ask the global dedupe API about this chunk (besides a file's first chunk)."""
    return _last_word(digest) % DEDUPE_ELIGIBLE_MODULUS == 0
