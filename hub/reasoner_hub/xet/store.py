"""Where the Xet data lives in the hub's Storage (a folder or an S3 bucket).

Xorbs are content-addressed and shared by every repo, so a chunk uploaded once is never uploaded
again, whatever repo it goes to next; a repo sees only the files registered in it by a shard::

    .hub/xet/xorbs/<xorb hash>                 the chunk section of a xorb, as uploaded
    .hub/xet/xorb-index/<xorb hash>            its index: chunk hashes, offsets, sizes
    .hub/xet/dedupe/<chunk hash>               xorbs to offer a client that holds this chunk
    <repo>/.hub/xet/files/<file hash>.json     a file registered in the repo: sha256, size, terms
    <repo>/.hub/xet/sha256/<sha256>            the Xet file hash of the content with this sha256
    <repo>/.hub/xet/shards/<sha256 of shard>   the shards uploaded to the repo, as received

The top-level ``.hub`` can never be a repo (the name is reserved). Every object is immutable but
the dedupe lists, which only ever gain xorbs (a lost update loses a dedupe chance, nothing else).
Xorbs stay when a repo is deleted (they are readable only through a registered file) until
``reasoner-hub gc`` (gc.py) removes those no repo needs.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reasoner_hub.paths import Repo
from reasoner_hub.storage import NotFound, Storage
from reasoner_hub.xet.hashes import from_hex, to_hex
from reasoner_hub.xet.shard import Term
from reasoner_hub.xet.xorb import XorbIndex, parse_xorb

ROOT = ".hub/xet/"
DEDUPE_LIST_MAX = 32


@dataclass(frozen=True)
class StoredFile:
    """A file registered in a repo: enough to rebuild its bytes from xorbs."""

    file_hash: str
    sha256: str
    size: int
    terms: tuple[Term, ...]

    def to_json(self) -> bytes:
        terms = [[to_hex(t.xorb), t.start, t.end, t.length] for t in self.terms]
        return json.dumps({"hash": self.file_hash, "sha256": self.sha256, "size": self.size, "terms": terms}).encode()

    @staticmethod
    def from_json(raw: bytes) -> StoredFile:
        data = json.loads(raw)
        terms = tuple(Term(from_hex(x), int(s), int(e), int(n)) for x, s, e, n in data["terms"])
        return StoredFile(data["hash"], data["sha256"], int(data["size"]), terms)


class _Lru:
    def __init__(self, size: int) -> None:
        self._items: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class XetStore:
    """Xorbs, their indexes, dedupe lists and per-repo file records over one Storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._indexes = _Lru(256)  # xorbs are immutable: an index never goes stale

    # -- xorbs -----------------------------------------------------------------------------------
    @staticmethod
    def _xorb_key(xorb: bytes) -> str:
        return f"{ROOT}xorbs/{to_hex(xorb)}"

    @staticmethod
    def _index_key(xorb: bytes) -> str:
        return f"{ROOT}xorb-index/{to_hex(xorb)}"

    def has_xorb(self, xorb: bytes) -> bool:
        return self._indexes.get(xorb) is not None or self.storage.exists(self._xorb_key(xorb))

    def put_xorb(self, xorb: bytes, body: Iterable[bytes]) -> XorbIndex:
        """Parse, verify and store a xorb streamed from ``body``; XorbError when it is not valid."""
        fd, tmp = tempfile.mkstemp(dir=self.storage.temp_dir(), prefix="xorb-")
        try:
            with os.fdopen(fd, "wb") as sink:
                index = parse_xorb(body, xorb, sink)
            # The index first: a xorb is visible (has_xorb) only once both are stored.
            self.storage.put(self._index_key(xorb), index.to_bytes())
            self.storage.put_file(self._xorb_key(xorb), tmp, move=True)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._indexes.put(xorb, index)
        return index

    def xorb_index(self, xorb: bytes) -> XorbIndex | None:
        index = self._indexes.get(xorb)
        if index is None:
            try:
                index = XorbIndex.from_bytes(xorb, self.storage.get(self._index_key(xorb)))
            except NotFound:
                return None
            if not self.storage.exists(self._xorb_key(xorb)):
                return None  # the upload stopped between the index and the data
            self._indexes.put(xorb, index)
        return index

    def open_xorb(self, xorb: bytes, first: int, last: int) -> Iterator[bytes]:
        return self.storage.open(self._xorb_key(xorb), first, last)

    # -- global dedupe ---------------------------------------------------------------------------
    def dedupe_xorbs(self, chunk: bytes) -> list[bytes]:
        try:
            return [from_hex(x) for x in json.loads(self.storage.get(f"{ROOT}dedupe/{to_hex(chunk)}"))]
        except (NotFound, ValueError):
            return []

    def add_dedupe(self, chunk: bytes, xorbs: Iterable[bytes]) -> None:
        known = self.dedupe_xorbs(chunk)
        merged = list(dict.fromkeys([*xorbs, *known]))[:DEDUPE_LIST_MAX]
        if merged != known:
            self.storage.put(f"{ROOT}dedupe/{to_hex(chunk)}", json.dumps([to_hex(x) for x in merged]).encode())

    # -- per-repo files --------------------------------------------------------------------------
    def file(self, repo: Repo, file_hash: str) -> StoredFile | None:
        try:
            return StoredFile.from_json(self.storage.get(f"{repo.internal}xet/files/{file_hash}.json"))
        except NotFound:
            return None

    def file_hash_of(self, repo: Repo, sha256: str) -> str | None:
        """The Xet file hash registered in ``repo`` for the content with this sha256, if any.

        Not cached: a repo deleted and created again must not inherit the records of the old one.
        """
        try:
            return self.storage.get(f"{repo.internal}xet/sha256/{sha256}").decode()
        except NotFound:
            return None

    def register_file(self, repo: Repo, stored: StoredFile) -> None:
        """Record a verified file; the sha256 map goes last so it always names a stored record."""
        self.storage.put(f"{repo.internal}xet/files/{stored.file_hash}.json", stored.to_json())
        self.storage.put(f"{repo.internal}xet/sha256/{stored.sha256}", stored.file_hash.encode())

    def put_shard(self, repo: Repo, digest: str, data: bytes) -> bool:
        """Keep a received shard; False when the repo has it already."""
        key = f"{repo.internal}xet/shards/{digest}"
        if self.storage.exists(key):
            return False
        self.storage.put(key, data)
        return True
