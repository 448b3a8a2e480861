"""The one storage interface the hub needs, and the local-folder backend.

Everything the hub keeps is an object under a key (``models/org/name/config.json``): the interface
is the small common ground of a folder and an S3 bucket. The only write with a condition is
``put_if``, used for the tiny ref objects that make a commit visible; every other object is either
immutable (blobs and commit manifests, named by their content or id) or a disposable view.

Durability: ``put``, ``put_file`` and ``put_if`` must survive a power loss once they return (refs,
manifests, blobs and the journal are written with them); ``copy`` is used only for the plain view,
which start-up recovery can rebuild, so it need not. A folder fsyncs the file and its folder; S3
answers a PUT once the object is stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import shutil
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from reasoner_hub.spool import Spool, sweep

CHUNK = 1024 * 1024


class NotFound(Exception):
    """The key holds no object."""


class PreconditionFailed(Exception):
    """A conditional write lost: the object is not at the version the writer expected."""


class Storage(ABC):
    """Objects by key. Keys use ``/`` separators and never start with ``/`` nor contain ``..``."""

    description: str

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object (small objects only); raises NotFound."""

    @abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Chunks of bytes ``start..end`` (end inclusive, None = to the last byte); raises NotFound."""

    @abstractmethod
    def put(self, key: str, data: bytes, durable: bool = True) -> None:
        """Write an object; readers see the old or the new object, never a part.

        ``durable=False``: the object may be lost in a power cut (state that can be rebuilt).
        """

    @abstractmethod
    def put_file(self, key: str, path: str, move: bool = False) -> None:
        """Write an object from a local file (large objects); ``move`` lets the backend take the file."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy an object inside the store; raises NotFound."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix``, recursively."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing one is fine."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``."""
        for key in list(self.list(prefix)):
            self.delete(key)

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; raises NotFound."""

    @abstractmethod
    def modified(self, key: str) -> float:
        """When the object was last written (seconds since the epoch); raises NotFound. Garbage collection
        spares objects younger than its grace period by this time."""

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and an opaque version for ``put_if``, or None when absent."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        """Write only if the object is at version ``expected`` (None: only if absent).

        Returns the new version; raises PreconditionFailed when another writer got there first.
        """

    def temp_dir(self) -> str:
        """Where to spool uploads so that ``put_file(move=True)`` is cheap."""
        return tempfile.gettempdir()

    def list_folders(self, prefix: str) -> Iterator[str]:
        """Names of the folders right under ``prefix`` (which ends with ``/``), sorted: repo listings.

        This default walks every key below; backends override it with a one-level listing.
        """
        names = {key[len(prefix) :].split("/", 1)[0] for key in self.list(prefix) if "/" in key[len(prefix) :]}
        yield from sorted(names)

    def sweep_temp(self) -> list[str]:
        """Remove temporary data left by hub processes that died (partial uploads); returns what went."""
        return []

    def prune(self, prefix: str) -> None:
        """Remove empty folders under ``prefix`` (writes cut by a crash leave them); object stores have none."""


def check_key(key: str) -> str:
    """Refuse keys that could leave the store root: defence in depth behind the HTTP checks."""
    parts = key.split("/")
    if not key or "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


INSTALL_ATTEMPTS = 50


class LocalStorage(Storage):
    """A folder is the bucket: ``<root>/<key>``. Writes go to ``<root>/.tmp/spool-*`` then rename into place.

    ``put_if`` holds an ``fcntl`` lock on ``<root>/.locks/<hash of key>`` while it compares and
    writes, so it is atomic across threads and processes on one host. With ``durable`` (the
    default) every ``put``/``put_file``/``put_if`` fsyncs the file before the rename and the folder
    after it, so what a client was told is stored survives a power loss.
    """

    def __init__(self, root: str | os.PathLike, durable: bool = True) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self._tmp = self.root / ".tmp"
        self._locks = self.root / ".locks"
        self._tmp.mkdir(exist_ok=True)
        self._locks.mkdir(exist_ok=True)
        self._spool = Spool(self._tmp)
        self.description = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _tmpfile(self) -> Path:
        return self._spool.path / uuid.uuid4().hex

    def _make_parents(self, folder: Path, durable: bool) -> None:
        missing = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                pass  # made meanwhile by another writer (if it is gone again, the caller retries)
            if durable:
                _fsync_folder(path.parent)

    def _install(self, tmp: Path, key: str, durable: bool) -> None:
        target = self._path(key)
        try:
            if durable:
                _fsync_file(tmp)
            for attempt in range(INSTALL_ATTEMPTS):
                try:
                    self._make_parents(target.parent, durable)
                    os.replace(tmp, target)
                    break
                except FileNotFoundError:
                    # A delete of a folder's last file (another thread or process) removed the folder
                    # between its creation and this move: make it again.
                    if attempt == INSTALL_ATTEMPTS - 1 or not tmp.exists():
                        raise
                    time.sleep(random.uniform(0, 0.001) * attempt)  # let the racing writers pass
        except BaseException:
            tmp.unlink(missing_ok=True)  # a failed write leaves nothing in the spool
            raise
        if durable:
            _fsync_folder(target.parent)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(key) from None

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(key) from None
        return _read_chunks(handle, start, end)

    def put(self, key: str, data: bytes, durable: bool = True) -> None:
        self._path(key)  # refuse a bad key before writing anything
        tmp = self._tmpfile()
        tmp.write_bytes(data)
        self._install(tmp, key, self.durable and durable)

    def put_file(self, key: str, path: str, move: bool = False) -> None:
        self._path(key)
        tmp = self._tmpfile()
        if move:
            try:
                os.replace(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
        else:
            shutil.copyfile(path, tmp)
        self._install(tmp, key, self.durable)

    def copy(self, src: str, dst: str) -> None:
        self._path(dst)
        tmp = self._tmpfile()
        try:
            shutil.copyfile(self._path(src), tmp)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            tmp.unlink(missing_ok=True)
            raise NotFound(src) from None
        self._install(tmp, dst, durable=False)  # copies make the plain view: rebuilt at start-up

    def list(self, prefix: str) -> Iterator[str]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            if not rel:
                dirnames[:] = [d for d in dirnames if d not in (".tmp", ".locks")]
            dirnames.sort()
            for name in sorted(filenames):
                key = rel + name
                if key.startswith(prefix):
                    yield key

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        self._drop_empty_parents(path.parent)

    def _drop_empty_parents(self, parent: Path) -> None:
        # Drop emptied folders so the plain view of a repo does not keep ghosts of deleted paths.
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_prefix(self, prefix: str) -> None:
        if prefix.endswith("/") and (self.root / check_key(prefix.rstrip("/"))).is_dir():
            shutil.rmtree(self.root / prefix.rstrip("/"), ignore_errors=True)
            self._drop_empty_parents((self.root / prefix.rstrip("/")).parent)
            return
        super().delete_prefix(prefix)

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise NotFound(key)
            return path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None

    def modified(self, key: str) -> float:
        path = self._path(key)
        try:
            if not path.is_file():
                raise NotFound(key)
            return path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.get(key)
        except NotFound:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        lock_path = self._locks / hashlib.sha1(key.encode()).hexdigest()
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read_versioned(key)
                current_version = current[1] if current else None
                if current_version != expected:
                    raise PreconditionFailed(key)
                self.put(key, data)
                return hashlib.sha256(data).hexdigest()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def temp_dir(self) -> str:
        return str(self._spool.path)

    def sweep_temp(self) -> list[str]:
        removed = sweep(self._tmp)
        for stray in self._tmp.iterdir():  # loose files of hub versions that wrote straight into .tmp
            if stray.is_file():
                stray.unlink(missing_ok=True)
                removed.append(str(stray))
        return removed

    def prune(self, prefix: str) -> None:
        top = self.root / check_key(prefix.rstrip("/"))
        if not top.is_dir():
            return
        for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)  # refused while anything is inside: only empty folders go
            except OSError:
                pass
        self._drop_empty_parents(top.parent)

    def list_folders(self, prefix: str) -> Iterator[str]:
        folder = self.root / check_key(prefix.rstrip("/")) if prefix.strip("/") else self.root
        try:
            entries = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return
        yield from (name for name in entries if folder != self.root or name not in (".tmp", ".locks"))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_chunks(handle, start: int, end: int | None) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
