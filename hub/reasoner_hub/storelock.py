"""Who may use a storage now: hubs serving it (any number at once), or ``reasoner-hub gc`` (alone).

gc deletes xorbs a running hub may remember as stored (it keeps the indexes of xorbs it read in
memory), so a gc beside a serving hub breaks later uploads of the same bytes. Each hub therefore
holds its storage while it serves, gc holds it alone while it deletes, and each side refuses to
start (one line, exit 2) while the other holds it:

* a folder: an ``flock`` on ``<root>/.locks/serving``, shared by every hub, exclusive for gc, never
  waited for. The kernel drops it when the process ends, ``kill -9`` included, so nothing stale is
  ever left. It covers processes of one machine (and of machines whose network file system
  implements ``flock``, which NFS does only with working lock services).
* S3: lease objects under ``.hub-leases/``. A hub writes ``hub-<id>``, gc ``gc-<id>``; the holder
  rewrites it every ``HEARTBEAT_S`` and deletes it when done. A lease counts while its object is
  younger than ``LEASE_TTL_S`` by the store's own clock (compared with the age of a lease just
  written, so the machines' clocks do not matter). Each side writes its lease before it looks for
  the other's: of a hub and a gc starting together, at least one sees the other and gives up.
  Not covered: a hub killed without stopping (``kill -9``, a power cut) leaves its lease for up to
  ``LEASE_TTL_S`` (gc refuses meanwhile); a hub frozen for longer than that (stopped, swapping)
  loses its lease while alive; hubs of versions that write no lease are not seen.
"""

from __future__ import annotations

import abc
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from reasoner_hub.errors import UserError
from reasoner_hub.storage import NotFound, Storage

log = logging.getLogger(__name__)

LEASES = ".hub-leases/"
HEARTBEAT_S = 30.0
LEASE_TTL_S = 120.0
LOCK_NAME = "serving"


class _Busy(Exception):
    """The other side holds the storage; the text says who, for the operator."""


class StorageHold(abc.ABC):
    """A hold on a storage (``release()`` once done; releasing twice is fine)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let the other side have the storage."""


class _FolderHold(StorageHold):
    def __init__(self, root: Path, exclusive: bool) -> None:
        locks = root / ".locks"
        locks.mkdir(exist_ok=True)
        path = locks / LOCK_NAME
        self._file = open(path, "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._file, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise _Busy(f"{path} is locked") from None

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing the descriptor drops the flock


class _LeaseHold(StorageHold):
    def __init__(self, storage: Storage, kind: str, rival: str) -> None:
        self._storage = storage
        self.key = f"{LEASES}{kind}-{uuid.uuid4().hex}"
        self._body = json.dumps({"kind": kind, "host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.time()}).encode()
        storage.put(self.key, self._body)
        try:
            now = storage.modified(self.key)
            fresh, stale = _leases(storage, f"{LEASES}{rival}-", now)
        except BaseException:
            storage.delete(self.key)
            raise
        if fresh:
            storage.delete(self.key)
            raise _Busy(fresh[0])
        for key in stale:  # left by processes killed without stopping; a live one that was frozen writes its own again
            storage.delete(key)
        self._stop = threading.Event()
        self._releasing = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{kind}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._storage.put(self.key, self._body)
            except Exception as error:  # a lost beat shortens the lease; the next one restores it
                log.warning("could not renew the storage lease %s: %s", self.key, error)

    def release(self) -> None:
        with self._releasing:  # a second caller returns once the lease is really gone
            if self._stop.is_set():
                return
            self._stop.set()
            self._thread.join(5)
            self._storage.delete(self.key)


def _leases(storage: Storage, prefix: str, now: float) -> tuple[list[str], list[str]]:
    """Lines naming each lease under ``prefix`` renewed less than LEASE_TTL_S before ``now`` (the store's clock),
    and the keys of the older ones."""
    found, stale = [], []
    for key in storage.list(prefix):
        try:
            age = now - storage.modified(key)
            holder = json.loads(storage.get(key))
        except (NotFound, ValueError):
            continue  # released meanwhile, or not a lease
        if age >= LEASE_TTL_S:
            stale.append(key)
        else:
            found.append(f"lease {key} of {holder.get('host')} pid {holder.get('pid')}, renewed {max(age, 0):.0f} s ago; "
                         f"a hub killed without stopping leaves it until {LEASE_TTL_S:.0f} s have passed")
    return found, stale


def _hold(storage: Storage, exclusive: bool) -> StorageHold:
    root = getattr(storage, "root", None)  # a folder (also when wrapped: wrappers pass attributes through)
    if isinstance(root, Path):
        return _FolderHold(root, exclusive)
    kind, rival = ("gc", "hub") if exclusive else ("hub", "gc")
    return _LeaseHold(storage, kind, rival)


def hold_for_serving(storage: Storage, spec: str | None = None) -> StorageHold:
    """Held by a hub while it serves; UserError while gc runs on the same storage."""
    try:
        return _hold(storage, exclusive=False)
    except _Busy as busy:
        raise UserError(f"{spec or storage.description} is being collected by `reasoner-hub gc` ({busy}): wait until "
                        "it is done, then start the hub again") from None


def hold_for_gc(storage: Storage, spec: str | None = None) -> StorageHold:
    """Held by gc while it deletes; UserError while any hub serves the same storage."""
    try:
        return _hold(storage, exclusive=True)
    except _Busy as busy:
        raise UserError(f"{spec or storage.description} is served by a running hub ({busy}): stop every "
                        "`reasoner-hub serve` on it, then run gc again (gc would delete data a running hub "
                        "still counts as stored)") from None
