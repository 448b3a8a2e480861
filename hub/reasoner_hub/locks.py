"""In-process locks of the repo store.

* a branch lock (re-entrant) serialises the commits, ref moves and view refreshes of one branch;
* a repo gate lets any number of writers change a repo's content at once (``shared``: commits,
  squashes, uploads, Xet registrations, branches, view refreshes) but creating, deleting or moving
  the repo waits for all of them and keeps them out meanwhile (``exclusive``). A commit that raced
  a delete therefore either lands before the delete starts (and is deleted with the repo) or finds
  the repo gone: it can never write plain files of a repo that was just deleted.

Order, so that no two threads wait for each other: a repo's gate before any branch lock of it; a
move takes the gates of its two repos in name order (``moves.py``); no one holding a gate waits
for another repo's gate otherwise.

Both are re-entrant for the thread that holds them. A thread that waits for ``exclusive`` stops
new ``shared`` holders (so a stream of commits cannot starve a delete), except threads already
inside ``shared``, which may nest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RepoGate:
    """A re-entrant readers-writer lock: ``shared`` for content writers, ``exclusive`` for create/delete/move."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared: dict[int, int] = {}  # thread id -> nesting depth
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner != me and me not in self._shared:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
            self._shared[me] = self._shared.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._shared[me] -= 1
                if not self._shared[me]:
                    del self._shared[me]
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                if me in self._shared:
                    raise RuntimeError("a thread inside a repo's shared gate cannot take it exclusively")
                self._waiting += 1
                try:
                    while self._owner is not None or self._shared:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    self._cond.notify_all()


class LockTable:
    """One lock object per key, made on first use and kept (keys are repos and branches: few)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple, threading.RLock] = {}
        self._gates: dict[object, RepoGate] = {}

    def lock(self, *key) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    def gate(self, repo: object) -> RepoGate:
        with self._guard:
            return self._gates.setdefault(repo, RepoGate())
