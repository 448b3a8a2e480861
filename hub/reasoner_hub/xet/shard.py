"""Shards: the binary file-reconstruction records clients upload, and the dedupe shards the hub answers.

An uploaded shard is a 48-byte header, a file info section (per file: a header, its terms, one
verification entry per term, a metadata entry holding the sha256), a bookend, a CAS info section
(per new xorb: a header and one entry per chunk), a bookend, and optionally a 200-byte footer.
Every record is 48 bytes. A dedupe shard has no files; its chunk hashes are keyed with a random
HMAC key named in the footer, and the footer's lookup tables let the client load it as is.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from reasoner_hub.xet.hashes import BOOKEND, HASH_SIZE, keyed_hash

HEADER_TAG = bytes([
    72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85,
    105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
])  # fmt: skip  ("HFRepoMetaData\0" and a magic number)
HEADER_VERSION = 2
FOOTER_VERSION = 1
FOOTER_SIZE = 200
RECORD = 48
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA = 1 << 30
MAX_SHARD_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(f"<{HASH_SIZE}sQQ")
_RECORD = struct.Struct(f"<{HASH_SIZE}sIIII")  # hash + four u32: every 48-byte record but the header


class ShardError(ValueError):
    """The bytes are not a well-formed shard."""


@dataclass(frozen=True)
class Term:
    """Chunks ``[start, end)`` of a xorb, ``length`` bytes once decoded."""

    xorb: bytes
    start: int
    end: int
    length: int


@dataclass(frozen=True)
class FileRecord:
    file_hash: bytes
    terms: tuple[Term, ...]
    verifications: tuple[bytes, ...]
    sha256: bytes | None

    @property
    def size(self) -> int:
        return sum(term.length for term in self.terms)


@dataclass(frozen=True)
class XorbListing:
    xorb: bytes
    chunk_hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class Shard:
    files: tuple[FileRecord, ...]
    xorbs: tuple[XorbListing, ...]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def record(self) -> tuple:
        if self.at + RECORD > len(self.data):
            raise ShardError("shard ends inside a record")
        fields = _RECORD.unpack_from(self.data, self.at)
        self.at += RECORD
        return fields


def _read_file(reader: _Reader, digest: bytes, flags: int, count: int) -> FileRecord:
    terms = []
    for _ in range(count):
        xorb, _flags, length, start, end = reader.record()
        if end <= start:
            raise ShardError(f"empty or reversed chunk range [{start}, {end}) in a file term")
        terms.append(Term(xorb, start, end, length))
    verifications = tuple(reader.record()[0] for _ in range(count)) if flags & FLAG_VERIFICATION else ()
    sha256 = reader.record()[0] if flags & FLAG_METADATA else None
    return FileRecord(digest, tuple(terms), verifications, sha256)


def parse_shard(data: bytes) -> Shard:
    """The files and xorb listings of an uploaded shard; ShardError when malformed."""
    if len(data) > MAX_SHARD_BYTES:
        raise ShardError(f"shard larger than {MAX_SHARD_BYTES} bytes: split the upload")
    if len(data) < _HEADER.size:
        raise ShardError("shard shorter than its header")
    tag, version, _footer = _HEADER.unpack_from(data)
    if tag != HEADER_TAG or version != HEADER_VERSION:
        raise ShardError("not a version 2 shard (wrong magic tag or version)")
    reader = _Reader(data)
    reader.at = _HEADER.size
    files = []
    while True:
        digest, flags, count, _a, _b = reader.record()
        if digest == BOOKEND:
            break
        files.append(_read_file(reader, digest, flags, count))
    xorbs = []
    while True:
        digest, _flags, count, _bytes, _disk = reader.record()
        if digest == BOOKEND:
            break
        xorbs.append(XorbListing(digest, tuple(reader.record()[0] for _ in range(count))))
    return Shard(tuple(files), tuple(xorbs))


@dataclass(frozen=True)
class XorbSummary:
    """What a dedupe shard says of one xorb: its chunk hashes and sizes, and its stored length."""

    xorb: bytes
    chunk_hashes: tuple[bytes, ...]
    sizes: tuple[int, ...]
    stored_length: int


def _truncated(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "little")


def dedupe_shard(xorbs: list[XorbSummary], hmac_key: bytes, valid_for_s: int) -> bytes:
    """A shard with no files that lists ``xorbs``, chunk hashes keyed with ``hmac_key``, with lookup tables."""
    out = [_HEADER.pack(HEADER_TAG, HEADER_VERSION, FOOTER_SIZE), _RECORD.pack(BOOKEND, 0, 0, 0, 0)]
    xorb_lookup: list[tuple[int, int]] = []
    chunk_lookup: list[tuple[int, int, int]] = []
    index = 0
    raw_total = stored_total = 0
    for summary in sorted(xorbs, key=lambda s: _truncated(s.xorb)):
        raw = sum(summary.sizes)
        raw_total, stored_total = raw_total + raw, stored_total + summary.stored_length
        out.append(_RECORD.pack(summary.xorb, 0, len(summary.sizes), raw, summary.stored_length))
        xorb_lookup.append((_truncated(summary.xorb), index))
        position = 0
        for i, (digest, size) in enumerate(zip(summary.chunk_hashes, summary.sizes)):
            keyed = keyed_hash(digest, hmac_key)
            out.append(_RECORD.pack(keyed, position, size, 0, 0))
            chunk_lookup.append((_truncated(keyed), index, i))
            position += size
        index += 1 + len(summary.sizes)
    out.append(_RECORD.pack(BOOKEND, 0, 0, 0, 0))
    xorb_info_offset = _HEADER.size + RECORD
    file_lookup_offset = sum(len(part) for part in out)
    xorb_lookup_offset = file_lookup_offset
    out += [struct.pack("<QI", key, value) for key, value in xorb_lookup]
    chunk_lookup_offset = xorb_lookup_offset + 12 * len(xorb_lookup)
    out += [struct.pack("<QII", key, a, b) for key, a, b in sorted(chunk_lookup)]
    footer_offset = chunk_lookup_offset + 16 * len(chunk_lookup)
    now = int(time.time())
    footer = struct.pack(
        f"<9Q{HASH_SIZE}s2Q6Q4Q",
        FOOTER_VERSION, _HEADER.size, xorb_info_offset,
        file_lookup_offset, 0, xorb_lookup_offset, len(xorb_lookup), chunk_lookup_offset, len(chunk_lookup),
        hmac_key, now, now + valid_for_s,
        0, 0, 0, 0, 0, 0,
        stored_total, raw_total, raw_total, footer_offset,
    )  # fmt: skip
    assert len(footer) == FOOTER_SIZE
    out.append(footer)
    return b"".join(out)
