"""Xorbs: the serialized chunk containers clients upload, parsed, verified and indexed as they stream in.

A xorb is a run of chunks, each an 8-byte header (version 0, compressed size: 3 bytes LE, scheme,
uncompressed size: 3 bytes LE) and its compressed bytes (scheme 0 none, 1 LZ4 frame, 2 LZ4 frame of
the bytes regrouped by position in 4-byte words). Clients may append a metadata footer that starts
with ``XETBLOB``; the hub keeps only the chunk section and its own index: per chunk its hash, the
offset of its header in the xorb and its uncompressed size, which is what reconstruction and dedupe
need without reading the xorb again.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame

from reasoner_hub.xet.hashes import HASH_SIZE, chunk_hash, xorb_hash

HEADER_SIZE = 8
MAX_CHUNK_BYTES = 128 * 1024
MAX_COMPRESSED_BYTES = 2 * MAX_CHUNK_BYTES
MAX_XORB_BYTES = 64 * 1024 * 1024  # of chunk data, uncompressed
MAX_XORB_CHUNKS = 8 * 1024
MAX_FOOTER_BYTES = 4 * 1024 * 1024
FOOTER_IDENT = b"XETBLOB"
_INDEX_MAGIC = b"LHXI"
_INDEX_HEAD = struct.Struct("<4sIQ")
_INDEX_ENTRY = struct.Struct(f"<{HASH_SIZE}sII")


class XorbError(ValueError):
    """The bytes are not a well-formed xorb (or not the one they claim to be)."""


class ByteStream:
    """Exact reads over an iterator of byte strings (a request body, a storage range)."""

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts = iter(parts)
        self._buffer = b""
        self._at = 0  # read position in _buffer: no copying of the unread tail on every read
        self.consumed = 0

    def _fill(self, size: int) -> None:
        if len(self._buffer) - self._at >= size:
            return
        pieces = [self._buffer[self._at :]]
        have = len(pieces[0])
        while have < size:
            part = next(self._parts, None)
            if part is None:
                break
            pieces.append(part)
            have += len(part)
        self._buffer, self._at = b"".join(pieces), 0

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return self._buffer[self._at : self._at + size]

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer only at the end of the stream."""
        self._fill(size)
        data = self._buffer[self._at : self._at + size]
        self._at += len(data)
        self.consumed += len(data)
        return data

    def drain(self, limit: int) -> int:
        """Read to the end; XorbError past ``limit`` bytes. Returns how many bytes were left."""
        total = len(self._buffer) - self._at
        self._buffer, self._at = b"", 0
        for part in self._parts:
            total += len(part)
            if total > limit:
                raise XorbError(f"xorb footer larger than {limit} bytes")
        self.consumed += total
        return total


def _regroup(grouped: bytes) -> bytes:
    """Undo the 4-byte grouping: group k holds bytes k, k+4, k+8, ... of the original."""
    n = len(grouped)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > k else 0) for k in range(4)]
    out = bytearray(n)
    start = 0
    for k, size in enumerate(sizes):
        out[k::4] = grouped[start : start + size]
        start += size
    return bytes(out)


def decode_chunk(scheme: int, payload: bytes, size: int) -> bytes:
    """The chunk's bytes; XorbError when they do not decompress to exactly ``size`` bytes."""
    if scheme == 0:
        data = payload
    elif scheme in (1, 2):
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            data = decompressor.decompress(payload, max_length=size + 1)
        except RuntimeError as error:
            raise XorbError(f"chunk does not decompress: {error}") from None
        if scheme == 2:
            data = _regroup(data)
    else:
        raise XorbError(f"unknown chunk compression scheme {scheme}")
    if len(data) != size:
        raise XorbError(f"chunk decompresses to {len(data)} bytes, its header says {size}")
    return data


def read_chunk(stream: ByteStream) -> tuple[bytes, bytes] | None:
    """The next (raw header + payload, decoded data), or None at the end of the chunk section."""
    head = stream.peek(HEADER_SIZE)
    if not head or head[:1] == FOOTER_IDENT[:1]:
        return None
    if len(head) < HEADER_SIZE:
        raise XorbError("xorb ends inside a chunk header")
    if head[0] != 0:
        raise XorbError(f"unknown chunk header version {head[0]}")
    compressed = int.from_bytes(head[1:4], "little")
    size = int.from_bytes(head[5:8], "little")
    if size > MAX_CHUNK_BYTES or compressed > MAX_COMPRESSED_BYTES:
        raise XorbError(f"chunk of {size} bytes ({compressed} compressed) is over the 128 KiB chunk limit")
    raw = stream.read(HEADER_SIZE + compressed)
    if len(raw) < HEADER_SIZE + compressed:
        raise XorbError("xorb ends inside a chunk")
    return raw, decode_chunk(head[4], raw[HEADER_SIZE:], size)


def decode_chunks(parts: Iterable[bytes]) -> Iterator[bytes]:
    """The decoded data of each chunk in a serialized range of chunks."""
    stream = ByteStream(parts)
    while (chunk := read_chunk(stream)) is not None:
        yield chunk[1]


@dataclass(frozen=True)
class XorbIndex:
    """What the hub knows of a stored xorb: chunk hashes, header offsets and uncompressed sizes."""

    hash: bytes
    chunk_hashes: tuple[bytes, ...]
    offsets: tuple[int, ...]  # byte offset of each chunk header; one more entry: the total length
    sizes: tuple[int, ...]

    @property
    def num_chunks(self) -> int:
        return len(self.sizes)

    @property
    def length(self) -> int:
        return self.offsets[-1]

    def byte_range(self, start: int, end: int) -> tuple[int, int]:
        """First and last (inclusive) byte of chunks ``[start, end)`` in the stored xorb."""
        return self.offsets[start], self.offsets[end] - 1

    def to_bytes(self) -> bytes:
        parts = [_INDEX_HEAD.pack(_INDEX_MAGIC, self.num_chunks, self.length)]
        parts += [_INDEX_ENTRY.pack(h, o, s) for h, o, s in zip(self.chunk_hashes, self.offsets, self.sizes)]
        return b"".join(parts)

    @staticmethod
    def from_bytes(xorb: bytes, raw: bytes) -> XorbIndex:
        magic, count, length = _INDEX_HEAD.unpack_from(raw)
        if magic != _INDEX_MAGIC or len(raw) != _INDEX_HEAD.size + count * _INDEX_ENTRY.size:
            raise XorbError("corrupt xorb index")
        entries = [_INDEX_ENTRY.unpack_from(raw, _INDEX_HEAD.size + i * _INDEX_ENTRY.size) for i in range(count)]
        return XorbIndex(
            xorb,
            tuple(e[0] for e in entries),
            tuple(e[1] for e in entries) + (length,),
            tuple(e[2] for e in entries),
        )


def parse_xorb(parts: Iterable[bytes], expected: bytes, sink: BinaryIO) -> XorbIndex:
    """Read a xorb, write its chunk section to ``sink`` and check it hashes to ``expected``."""
    stream = ByteStream(parts)
    hashes: list[bytes] = []
    offsets: list[int] = []
    sizes: list[int] = []
    position = total = 0
    while (chunk := read_chunk(stream)) is not None:
        raw, data = chunk
        hashes.append(chunk_hash(data))
        offsets.append(position)
        sizes.append(len(data))
        sink.write(raw)
        position += len(raw)
        total += len(data)
        if len(sizes) > MAX_XORB_CHUNKS or total > MAX_XORB_BYTES:
            raise XorbError(f"xorb over the limits of {MAX_XORB_CHUNKS} chunks and {MAX_XORB_BYTES} bytes")
    if stream.peek(1) and stream.peek(len(FOOTER_IDENT)) != FOOTER_IDENT:
        raise XorbError("unexpected bytes after the last chunk")
    stream.drain(MAX_FOOTER_BYTES)
    if not hashes:
        raise XorbError("a xorb needs at least one chunk")
    actual = xorb_hash(list(zip(hashes, sizes)))
    if actual != expected:
        raise XorbError("the xorb's chunks do not hash to the xorb hash in the URL")
    return XorbIndex(expected, tuple(hashes), tuple(offsets) + (position,), tuple(sizes))
