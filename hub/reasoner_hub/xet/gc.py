"""Garbage collection of Xet data no repo needs any more (``reasoner-hub gc``).

Xorbs are shared by every repo of a storage and never removed by a delete, a squash or an
overwrite, so their bytes stay until this runs. It marks what the repos still need (``marks.py``:
every commit manifest stored in every repo, so old revisions keep downloading through Xet), then
sweeps what is neither marked nor younger than the grace period, in an order that never leaves a
reader pointing at a missing object:

1. abandoned file records (an upload whose commit never landed): the repo's sha256 map entry, then
   the record, then the shard that registered only such files;
2. dedupe entries naming a xorb that goes: rewritten without it, or removed, so a dedupe question
   about one of its chunks gets 404 and the client uploads the chunk again;
3. the xorb's data, then its index (an index alone is what an upload cut short leaves, and the next
   gc removes it).

Only with every hub on the storage stopped: a running hub keeps the indexes of xorbs it read in
memory and would answer that a xorb it has cached is stored after gc removed it, so gc holds the
storage alone while it deletes and refuses (exit 2) while any hub holds it (``storelock.py``); a
dry run deletes nothing and runs beside hubs. The grace period spares what clients uploaded
recently (a xorb whose shard or commit is still to come). gc refuses to run while the intent
journal holds an unfinished operation (a hub stopped in the middle of a create, delete, move or
commit): start the hub once so it recovers, stop it, then run gc.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from reasoner_hub.errors import UserError
from reasoner_hub.journal import JOURNAL
from reasoner_hub.moves import LEGACY_JOURNAL
from reasoner_hub.storage import NotFound, Storage
from reasoner_hub.storelock import hold_for_gc
from reasoner_hub.xet.marks import Marks, dedupe_entries, mark
from reasoner_hub.xet.store import ROOT

XORBS, INDEXES, DEDUPE = f"{ROOT}xorbs/", f"{ROOT}xorb-index/", f"{ROOT}dedupe/"

# hf_xet remembers the xorbs it uploaded for about three weeks per hub URL and skips uploading them again: a
# xorb kept that long is one that no client's own upload cache still names.
DEFAULT_GRACE_MINUTES = 21 * 24 * 60


@dataclass
class GcReport:
    """What a collection kept and removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    grace_minutes: float
    repos: int = 0
    xorbs_kept: int = 0
    xorbs_young: int = 0  # unmarked, but younger than the grace period: kept
    xorbs_deleted: int = 0
    bytes_freed: int = 0
    records_deleted: int = 0
    shards_deleted: int = 0
    dedupe_rewritten: int = 0
    dedupe_deleted: int = 0

    def line(self) -> str:
        verb, freed = ("would delete", "would free") if self.dry_run else ("deleted", "freed")
        return (
            f"gc{' (dry run)' if self.dry_run else ''}: {self.repos} repo(s) walked; xorbs kept {self.xorbs_kept} "
            f"({self.xorbs_young} younger than {self.grace_minutes:g} min), {verb} {self.xorbs_deleted}; "
            f"{freed} {self.bytes_freed} bytes ({self.bytes_freed / 2**20:.1f} MiB); "
            f"{verb} {self.records_deleted} file record(s), {self.shards_deleted} shard(s), "
            f"{self.dedupe_deleted} dedupe entr(ies) (+{self.dedupe_rewritten} rewritten)"
        )


def check_grace(grace_minutes: float) -> None:
    """UserError unless the grace period is a finite number of minutes, 0 or more."""
    if math.isnan(grace_minutes) or math.isinf(grace_minutes):
        raise UserError(f"--grace-minutes {grace_minutes} is not a number of minutes: give a finite number, 0 or more "
                        f"(default {DEFAULT_GRACE_MINUTES}, three weeks)")
    if grace_minutes < 0:
        raise UserError(f"--grace-minutes {grace_minutes:g} is negative: use 0 or more "
                        f"(default {DEFAULT_GRACE_MINUTES}, three weeks)")


def refuse_unfinished(storage: Storage, spec: str) -> None:
    """UserError when a hub left operations half done: recovery must settle them before anything is judged garbage."""
    pending = [key for prefix in (JOURNAL, LEGACY_JOURNAL) for key in storage.list(prefix)]
    if pending:
        raise UserError(
            f"{spec} has {len(pending)} unfinished operation(s) in {JOURNAL} (a hub stopped in the middle of them, "
            f"or one is running now): start `reasoner-hub serve --storage {spec}` once so it recovers them, stop it, "
            "then run gc again"
        )


def _name(key: str) -> str:
    return key.rsplit("/", 1)[1]


def _stored_xorbs(storage: Storage) -> dict[str, list[str]]:
    """Every xorb with a data or index object (hex -> its keys)."""
    found: dict[str, list[str]] = {}
    for prefix in (XORBS, INDEXES):  # data before index: the order they are deleted in
        for key in storage.list(prefix):
            found.setdefault(_name(key), []).append(key)
    return found


def _doomed_xorbs(storage: Storage, marks: Marks, cutoff: float, report: GcReport) -> dict[str, list[str]]:
    """The unmarked xorbs older than the grace period (hex -> keys); counts the rest as kept."""
    doomed: dict[str, list[str]] = {}
    for name, keys in sorted(_stored_xorbs(storage).items()):
        if name in marks.live_xorbs:
            report.xorbs_kept += 1
            continue
        stamps = []
        for key in keys:
            try:
                stamps.append(storage.modified(key))
            except NotFound:
                pass
        if not stamps or max(stamps) > cutoff:
            report.xorbs_kept += 1
            report.xorbs_young += 1
            continue
        doomed[name] = keys
    return doomed


def _sweep_records(storage: Storage, marks: Marks, report: GcReport) -> None:
    for record in marks.doomed_records:
        report.records_deleted += 1
        if report.dry_run:
            continue
        try:
            if storage.get(record.map_key).decode() == record.file_hash:
                storage.delete(record.map_key)  # the map never names a missing record
        except NotFound:
            pass
        storage.delete(record.key)
    for key in marks.doomed_shards:
        report.shards_deleted += 1
        if not report.dry_run:
            storage.delete(key)


def _sweep_dedupe(storage: Storage, keep: set[str], report: GcReport) -> None:
    """Drop every dedupe answer naming a xorb not kept (gone or about to go)."""
    for key, listed in dedupe_entries(storage, DEDUPE):
        remaining = [name for name in listed if name in keep]
        if remaining == listed and listed:
            continue
        if remaining:
            report.dedupe_rewritten += 1
            if not report.dry_run:
                storage.put(key, json.dumps(remaining).encode())
        else:
            report.dedupe_deleted += 1
            if not report.dry_run:
                storage.delete(key)


def _sweep_xorbs(storage: Storage, doomed: dict[str, list[str]], report: GcReport) -> None:
    for keys in doomed.values():
        for key in keys:
            try:
                report.bytes_freed += storage.size(key)
            except NotFound:
                continue
            if not report.dry_run:
                storage.delete(key)
        report.xorbs_deleted += 1


def collect(storage: Storage, grace_minutes: float = DEFAULT_GRACE_MINUTES, dry_run: bool = False,
            spec: str | None = None) -> GcReport:
    """Mark, then sweep the Xet data of ``storage`` that no repo needs and that is older than ``grace_minutes``."""
    check_grace(grace_minutes)
    # A real collection holds the storage alone (no hub may serve it meanwhile); a dry run deletes nothing.
    hold = None if dry_run else hold_for_gc(storage, spec)
    try:
        return _collect(storage, grace_minutes, dry_run, spec)
    finally:
        if hold is not None:
            hold.release()


def _collect(storage: Storage, grace_minutes: float, dry_run: bool, spec: str | None) -> GcReport:
    refuse_unfinished(storage, spec or storage.description)
    cutoff = time.time() - grace_minutes * 60
    report = GcReport(dry_run=dry_run, grace_minutes=grace_minutes)
    marks = mark(storage, cutoff)
    report.repos = marks.repos
    doomed = _doomed_xorbs(storage, marks, cutoff, report)
    keep = set(_stored_xorbs(storage)) - set(doomed)
    _sweep_records(storage, marks, report)
    _sweep_dedupe(storage, keep, report)
    _sweep_xorbs(storage, doomed, report)
    return report
