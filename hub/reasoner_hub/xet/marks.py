"""The mark half of Xet garbage collection: which xorbs the repos of a storage still need.

A xorb is live when a file record that must stay (``<repo>/.hub/xet/files/<hash>.json``) names it
in its terms. A record must stay when any commit manifest stored in its repo names the file:
every stored manifest counts, reachable from a branch or tag or not, since any of them can be
downloaded by its commit id (a squashed branch's old commits included). A file entry names its
Xet hash in ``xet``; entries stored before that field existed are matched through the repo's
sha256 map, as the download routes do. A record no commit names is an upload whose commit has
not landed yet while it is younger than the grace period (kept, with its xorbs), and an abandoned
upload after that (the record, its sha256 map entry and, when it registered nothing else that
stays, its shard go; the repo's plain blob of the file is untouched).

Every repo found under ``models/``, ``datasets/`` and ``spaces/`` is walked, whatever the state
of its record: a repo hidden while it is created, deleted or moved keeps its xorbs until the
intent is settled (gc refuses to run while any is pending anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from reasoner_hub.errors import UserError
from reasoner_hub.commits import Commit
from reasoner_hub.paths import PLURALS, Repo
from reasoner_hub.storage import NotFound, Storage
from reasoner_hub.xet.hashes import to_hex
from reasoner_hub.xet.shard import ShardError, parse_shard
from reasoner_hub.xet.store import StoredFile


@dataclass(frozen=True)
class DoomedRecord:
    """A file record no commit names, older than the grace period."""

    repo: Repo
    file_hash: str
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.repo.internal}xet/files/{self.file_hash}.json"

    @property
    def map_key(self) -> str:
        return f"{self.repo.internal}xet/sha256/{self.sha256}"


@dataclass
class Marks:
    """What the walk found: xorbs to keep (hex), records and shards that can go."""

    live_xorbs: set[str] = field(default_factory=set)
    doomed_records: list[DoomedRecord] = field(default_factory=list)
    doomed_shards: list[str] = field(default_factory=list)
    repos: int = 0


def every_repo(storage: Storage) -> Iterator[Repo]:
    """Every repo folder in the storage (any state), by type, org and name."""
    for kind, plural in PLURALS.items():
        for org in storage.list_folders(f"{plural}/"):
            for name in storage.list_folders(f"{plural}/{org}/"):
                yield Repo(kind, f"{org}/{name}")


def _named_files(storage: Storage, repo: Repo) -> set[str]:
    """The Xet file hashes named by any commit manifest stored in ``repo``."""
    named: set[str] = set()
    mapped: dict[str, str | None] = {}
    for key in storage.list(f"{repo.internal}commits/"):
        try:
            commit = Commit.from_json(storage.get(key))
        except NotFound:
            continue
        except (ValueError, KeyError, TypeError):
            raise UserError(f"cannot read the commit manifest {key}: restore or remove it, then run gc again") from None
        for entry in commit.files.values():
            if not entry.lfs:
                continue
            if entry.xet:
                named.add(entry.xet)
                continue
            if entry.sha256 not in mapped:
                try:
                    mapped[entry.sha256] = storage.get(f"{repo.internal}xet/sha256/{entry.sha256}").decode()
                except NotFound:
                    mapped[entry.sha256] = None
            if mapped[entry.sha256]:
                named.add(mapped[entry.sha256])
    return named


def _young(storage: Storage, key: str, cutoff: float) -> bool:
    """Written after ``cutoff`` (or gone meanwhile, which counts as young: never act on it)."""
    try:
        return storage.modified(key) > cutoff
    except NotFound:
        return True


def _mark_records(storage: Storage, repo: Repo, named: set[str], cutoff: float, marks: Marks) -> set[str]:
    """Mark the xorbs of the records that stay; collect the others. Returns the hashes of the records that stay."""
    staying: set[str] = set()
    prefix = f"{repo.internal}xet/files/"
    for key in storage.list(prefix):
        file_hash = key[len(prefix) :].removesuffix(".json")
        try:
            stored = StoredFile.from_json(storage.get(key))
        except NotFound:
            continue
        except (ValueError, KeyError, TypeError):
            raise UserError(f"cannot read the Xet file record {key}: restore or remove it, then run gc again") from None
        if file_hash in named or _young(storage, key, cutoff):
            staying.add(file_hash)
            marks.live_xorbs.update(to_hex(term.xorb) for term in stored.terms)
        else:
            marks.doomed_records.append(DoomedRecord(repo, file_hash, stored.sha256))
    return staying


def _mark_shards(storage: Storage, repo: Repo, staying: set[str], cutoff: float, marks: Marks) -> None:
    """A received shard can go once it is old and registered no file whose record stays."""
    for key in storage.list(f"{repo.internal}xet/shards/"):
        if _young(storage, key, cutoff):
            continue
        try:
            shard = parse_shard(storage.get(key))
        except NotFound:
            continue
        except ShardError:
            continue  # not ours to judge: kept
        if not any(to_hex(record.file_hash) in staying for record in shard.files):
            marks.doomed_shards.append(key)


def mark(storage: Storage, cutoff: float) -> Marks:
    """Walk every repo; ``cutoff`` is the time before which an unnamed record counts as abandoned."""
    marks = Marks()
    for repo in every_repo(storage):
        marks.repos += 1
        named = _named_files(storage, repo)
        staying = _mark_records(storage, repo, named, cutoff, marks)
        _mark_shards(storage, repo, staying, cutoff, marks)
    return marks


def dedupe_entries(storage: Storage, prefix: str) -> Iterator[tuple[str, list[str]]]:
    """Every dedupe entry under ``prefix`` as (key, xorb hashes); unreadable ones as (key, [])."""
    for key in storage.list(prefix):
        try:
            listed = json.loads(storage.get(key))
        except NotFound:
            continue
        except ValueError:
            listed = []
        yield key, [str(x) for x in listed] if isinstance(listed, list) else []
