"""Byte-range locks shared by every DirectWriter of one inode or device in the process."""

from __future__ import annotations

import threading
import weakref

from ..targets import Target


class RangeLocks:
    """Byte-range locks over one file or device.

    A write locks the granules it touches (its whole block when it may pad): two writes of the
    same process that share a granule run one after the other, so a hole seen by one is not
    filled by the other before the padding lands; writes on disjoint granules run in parallel.
    Other processes are not covered (docs/direct-io.md, "Concurrent writers").
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: list[tuple[int, int]] = []

    def acquire(self, lo: int, hi: int) -> None:
        with self._cond:
            while any(a < hi and lo < b for a, b in self._held):
                self._cond.wait()
            self._held.append((lo, hi))

    def release(self, lo: int, hi: int) -> None:
        with self._cond:
            self._held.remove((lo, hi))
            self._cond.notify_all()


_tables: weakref.WeakValueDictionary[tuple[str, int, int], RangeLocks] = weakref.WeakValueDictionary()
_guard = threading.Lock()


def range_locks(tgt: Target) -> RangeLocks:
    """The lock table of ``tgt``'s inode or device (one per process, alive while a writer holds it)."""
    with _guard:
        locks = _tables.get(tgt.key)
        if locks is None:
            locks = RangeLocks()
            _tables[tgt.key] = locks
        return locks
