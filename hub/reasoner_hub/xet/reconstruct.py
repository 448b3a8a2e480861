"""File reconstruction: which chunks of which xorbs make up a byte range of a file, as JSON or as bytes.

The same plan answers the reconstruction API (v1: ``fetch_info`` with one signed URL per merged
chunk range of a xorb; v2: the same ranges under ``xorbs``) and rebuilds the bytes on the server
(to verify an upload's sha256 and to store the plain copy every other route reads).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote
from dataclasses import dataclass

from reasoner_hub import errors
from reasoner_hub.errors import HubError
from reasoner_hub.xet.hashes import to_hex
from reasoner_hub.xet.store import StoredFile, XetStore
from reasoner_hub.xet.tokens import CasGrant, XetSigner
from reasoner_hub.xet.xorb import XorbIndex, decode_chunks


@dataclass(frozen=True)
class Slice:
    """Chunks ``[start, end)`` of a xorb, ``length`` bytes once decoded."""

    xorb: bytes
    start: int
    end: int
    length: int


def _index(store: XetStore, xorb: bytes) -> XorbIndex:
    index = store.xorb_index(xorb)
    if index is None:
        raise HubError(500, f"xorb {to_hex(xorb)} of a registered file is missing from storage")
    return index


def plan(store: XetStore, stored: StoredFile, first: int, last: int) -> tuple[int, list[Slice]]:
    """The chunk slices covering bytes ``first..last`` and how many bytes of the first to skip."""
    slices: list[Slice] = []
    skip, position = 0, 0
    for term in stored.terms:
        if position > last:
            break
        if position + term.length <= first:
            position += term.length
            continue
        sizes = _index(store, term.xorb).sizes
        start, start_at = term.start, position
        while start_at + sizes[start] <= first:
            start_at += sizes[start]
            start += 1
        end, end_at = start, start_at
        while end < term.end and end_at <= last:
            end_at += sizes[end]
            end += 1
        if not slices:
            skip = first - start_at
        slices.append(Slice(term.xorb, start, end, end_at - start_at))
        position += term.length
    return skip, slices


def stream(store: XetStore, stored: StoredFile, first: int = 0, last: int | None = None) -> Iterator[bytes]:
    """The exact bytes ``first..last`` (inclusive; None: to the end) of a registered file."""
    last = stored.size - 1 if last is None else last
    skip, slices = plan(store, stored, first, last)
    remaining = last - first + 1
    for piece in slices:
        index = _index(store, piece.xorb)
        byte_first, byte_last = index.byte_range(piece.start, piece.end)
        for data in decode_chunks(store.open_xorb(piece.xorb, byte_first, byte_last)):
            if skip >= len(data):
                skip -= len(data)
                continue
            data = data[skip : skip + remaining]
            skip = 0
            remaining -= len(data)
            yield data
            if remaining <= 0:
                return


def requested_range(header: str | None, size: int) -> tuple[int, int]:
    """``bytes=a-b`` (b clamped to the file) or ``bytes=a-``; the whole file without a header; 416 past the end."""
    if not header:
        return 0, size - 1
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d+)\s*-\s*(\d*)\s*", header)
    if not match:
        raise errors.bad_request(f"Unsupported Range header {header[:100]!r}: use bytes=START-END")
    first = int(match.group(1))
    last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    if first >= size or last < first:
        raise HubError(416, f"Range {header[:100]} is outside the file ({size} bytes)")
    return first, last


def _merged(slices: list[Slice]) -> dict[bytes, list[tuple[int, int]]]:
    """Per xorb, the union of the chunk ranges the slices need, as few ranges as possible."""
    ranges: dict[bytes, list[tuple[int, int]]] = {}
    for piece in slices:
        ranges.setdefault(piece.xorb, []).append((piece.start, piece.end))
    merged: dict[bytes, list[tuple[int, int]]] = {}
    for xorb, spans in ranges.items():
        out: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[xorb] = out
    return merged


def reconstruction(
    store: XetStore, signer: XetSigner, cas_url: str, grant: CasGrant, stored: StoredFile, header: str | None,
    version: int,
) -> dict:
    """The reconstruction API answer (``version`` 1 or 2) for the requested range of a file.

    Its fetch URLs are signed for the grant's repo and generation: they stop working when the
    repo is deleted, even if a new repo takes its name.
    """
    if stored.size == 0:
        if header:
            raise HubError(416, "Range requested on an empty file")
        return {"offset_into_first_range": 0, "terms": [], "fetch_info" if version == 1 else "xorbs": {}}
    first, last = requested_range(header, stored.size)
    skip, slices = plan(store, stored, first, last)
    terms = [
        {"hash": to_hex(s.xorb), "unpacked_length": s.length, "range": {"start": s.start, "end": s.end}}
        for s in slices
    ]
    fetches: dict[str, list[dict]] = {}
    for xorb, spans in _merged(slices).items():
        index, name = _index(store, xorb), to_hex(xorb)
        for start, end in spans:
            byte_first, byte_last = index.byte_range(start, end)
            query = signer.fetch_query(grant.repo, grant.generation, name, byte_first, byte_last)
            url = f"{cas_url}/fetch/{grant.repo.plural}/{quote(grant.repo.id)}/{name}?{query}"
            chunks, span = {"start": start, "end": end}, {"start": byte_first, "end": byte_last}
            if version == 1:
                fetches.setdefault(name, []).append({"range": chunks, "url": url, "url_range": span})
            else:
                fetches.setdefault(name, []).append({"url": url, "ranges": [{"chunks": chunks, "bytes": span}]})
    key = "fetch_info" if version == 1 else "xorbs"
    return {"offset_into_first_range": skip, "terms": terms, key: fetches}
