"""Git's pkt-line framing: each line is its length (4 hex digits, the 4 included) and its bytes;
``0000`` ends a message (flush), ``0001`` separates sections (delim, protocol v2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

FLUSH = b"0000"
DELIM = b"0001"
MAX_DATA = 65516  # the largest payload of one pkt-line
SIDEBAND_DATA = MAX_DATA - 1  # one byte names the band


class PktError(ValueError):
    """The request is not a well-formed pkt-line stream."""


def pkt(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DATA:
        raise ValueError("pkt-line payload too long")
    return b"%04x" % (len(raw) + 4) + raw


def error_line(message: str) -> bytes:
    """An ``ERR`` line: git stops and prints ``remote error: message``."""
    return pkt(f"ERR {message}\n")


def sideband(data: bytes, band: int = 1) -> Iterator[bytes]:
    """``data`` on side band ``band`` (1: pack data, 2: progress text)."""
    for start in range(0, len(data), SIDEBAND_DATA):
        yield pkt(bytes([band]) + data[start : start + SIDEBAND_DATA])


def sideband_stream(chunks: Iterable[bytes], band: int = 1) -> Iterator[bytes]:
    for chunk in chunks:
        yield from sideband(chunk, band)


def parse(data: bytes) -> list[bytes | None]:
    """Every line of ``data``, without its trailing newline; None for a flush, b"" never, DELIM as is."""
    out: list[bytes | None] = []
    position = 0
    while position < len(data):
        head = data[position : position + 4]
        try:
            length = int(head, 16)
        except ValueError:
            raise PktError(f"invalid pkt-line length {head!r}") from None
        if length == 0:
            out.append(None)
            position += 4
        elif length in (1, 2):
            out.append(DELIM if length == 1 else None)
            position += 4
        elif length < 4 or position + length > len(data):
            raise PktError("truncated pkt-line")
        else:
            line = data[position + 4 : position + length]
            out.append(line[:-1] if line.endswith(b"\n") else line)
            position += length
    return out
