"""Git pack files, version 2, without deltas: every object stored whole, zlib-compressed, streamed.

An object's content may come as one bytes value or as an iterable of chunks (a blob read from
storage), so a pack of any size is written with bounded memory. The trailer is the SHA-1 of all
that precedes it.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

TYPES = {"commit": 1, "tree": 2, "blob": 3}
FLUSH_AT = 256 * 1024


@dataclass(frozen=True)
class PackObject:
    """One object of a pack: its kind, size, and how to read its content when its turn comes."""

    kind: str
    size: int
    content: Callable[[], Iterable[bytes]]


def object_header(kind: str, size: int) -> bytes:
    """The type-and-size header of a pack entry (size in 4 bits, then 7 bits per byte)."""
    first = (TYPES[kind] << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    out.append(first)
    return bytes(out)


def write_pack(objects: list[PackObject]) -> Iterator[bytes]:
    """The pack of ``objects``, in pieces of about FLUSH_AT bytes; 500 if content and size disagree."""
    digest = hashlib.sha1()
    buffer = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    for item in objects:
        buffer += object_header(item.kind, item.size)
        compressor = zlib.compressobj(1)
        seen = 0
        for chunk in item.content():
            seen += len(chunk)
            buffer += compressor.compress(chunk)
            if len(buffer) >= FLUSH_AT:
                digest.update(buffer)
                yield bytes(buffer)
                buffer.clear()
        if seen != item.size:
            raise RuntimeError(f"a {item.kind} of {item.size} bytes read as {seen} bytes")
        buffer += compressor.flush()
    digest.update(buffer)
    yield bytes(buffer) + digest.digest()
