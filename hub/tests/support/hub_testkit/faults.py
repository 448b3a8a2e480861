"""Crash injection for the crash-safety tests: the hub process kills itself at its Nth storage write.

The server itself knows nothing of this: ``python -m hub_testkit.crashserve`` (see there) wraps the
storage the real ``serve`` command opens in a KillSwitch:

* ``--kill-at-write N``: SIGKILL before the Nth storage write after start-up recovery;
* ``--kill-in-recovery N``: SIGKILL before the Nth write of start-up recovery itself.

A storage write is one ``put``, ``put_file``, ``put_if``, ``copy`` or ``delete``; ``delete_prefix``
counts one per object, so a kill can land in the middle of removing a repo. SIGKILL gives the
process no chance to clean up, exactly like a power cut of the process (the OS keeps what was
written, so this tests crash consistency; fsync is what covers a power cut of the machine).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

from reasoner_hub.storage import Storage

class KillSwitch(Storage):
    """Wraps a Storage; counts writes once armed and SIGKILLs the process at write number ``at``."""

    def __init__(self, inner: Storage, at: int | None, in_recovery: int | None) -> None:
        self._inner = inner
        self._at = at
        self._in_recovery = in_recovery
        self._count = 0
        self._armed = in_recovery is not None
        self.description = inner.description

    def __getattr__(self, name: str):
        return getattr(self._inner, name)  # root, bucket, conditional_writes, ... of the real store

    def arm(self) -> None:
        """Start-up recovery is over: count the serving writes from here."""
        self._count = 0
        self._armed = self._at is not None
        self._in_recovery = None

    def _tick(self) -> None:
        if not self._armed:
            return
        self._count += 1
        limit = self._in_recovery if self._in_recovery is not None else self._at
        if limit is not None and self._count >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    def get(self, key: str) -> bytes:
        return self._inner.get(key)

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self._inner.open(key, start, end)

    def put(self, key: str, data: bytes, durable: bool = True) -> None:
        self._tick()
        self._inner.put(key, data, durable)

    def put_file(self, key: str, path: str, move: bool = False) -> None:
        self._tick()
        self._inner.put_file(key, path, move)

    def copy(self, src: str, dst: str) -> None:
        self._tick()
        self._inner.copy(src, dst)

    def list(self, prefix: str) -> Iterator[str]:
        return self._inner.list(prefix)

    def delete(self, key: str) -> None:
        self._tick()
        self._inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        for key in list(self._inner.list(prefix)):
            self.delete(key)

    def size(self, key: str) -> int:
        return self._inner.size(key)

    def modified(self, key: str) -> float:
        return self._inner.modified(key)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        return self._inner.read_versioned(key)

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        self._tick()
        return self._inner.put_if(key, data, expected)

    def temp_dir(self) -> str:
        return self._inner.temp_dir()

    def list_folders(self, prefix: str) -> Iterator[str]:
        return self._inner.list_folders(prefix)

    def prune(self, prefix: str) -> None:
        self._inner.prune(prefix)  # removes only empty folders: no object is written

    def sweep_temp(self) -> list[str]:
        return self._inner.sweep_temp()
