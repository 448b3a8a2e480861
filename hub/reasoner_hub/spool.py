"""Per-process folders for temporary files (uploads being received, objects being written).

A hub process keeps its temporary files in one folder of its own, locked with ``flock`` on the
folder itself for as long as the process lives. The kernel drops the lock when the process dies,
even by ``kill -9``, so at start-up a hub can tell the folders of dead processes (lock free) from
those of live ones sharing the same base (lock held) and remove only the former: a partial upload
cut by a crash never stays on disk, and a neighbour's upload in flight is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
import weakref
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "spool-"
_NEW = ".new-"  # a folder not yet locked: sweepers leave it alone


def _lock_folder(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None when another process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _release(fd: int, path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.close(fd)
    except OSError:
        pass


class Spool:
    """This process's temporary folder under ``base``; removed when the object is collected or at exit."""

    def __init__(self, base: str | os.PathLike) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        fresh = self.base / (_NEW + name)
        fresh.mkdir()
        fd = _lock_folder(fresh)
        if fd is None:  # nobody else knows this folder: cannot happen short of a broken filesystem
            raise OSError(f"cannot lock the spool folder {fresh}")
        self.path = self.base / (PREFIX + name)
        os.rename(fresh, self.path)  # the lock follows the folder: it is never visible unlocked
        self._finalizer = weakref.finalize(self, _release, fd, str(self.path))

    def close(self) -> None:
        self._finalizer()


def sweep(base: str | os.PathLike) -> list[str]:
    """Remove the spool folders under ``base`` whose process is gone; returns what was removed.

    Loose files right under ``base`` are left alone: ``base`` may be a shared temp folder.
    """
    base = Path(base)
    removed: list[str] = []
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.is_dir():
            continue
        fd = _lock_folder(entry)
        if fd is None:
            continue  # a live process owns it
        try:
            leftovers = [str(p) for p in entry.rglob("*") if p.is_file()]
            shutil.rmtree(entry, ignore_errors=True)
            removed.extend(leftovers)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d temporary file(s) left by stopped hub processes under %s", len(removed), base)
    return removed
