"""Aligned memory for O_DIRECT: buffers whose address matches their target offset, and bounce areas."""

from __future__ import annotations

import mmap
import threading

from ..errors import UsageError
from ..syscalls import buffer_address

# The middle of a write whose buffer is not DIO-aligned is copied through this much aligned
# memory per pwritev: bounded, so a 1 GiB write does not double its memory.
DEFAULT_BOUNCE_SIZE = 4 << 20


def aligned_buffer(size: int, *, offset: int = 0, align: int | None = None) -> memoryview:
    """A writable zero-filled buffer whose address is congruent to ``offset`` modulo ``align``.

    Data placed in such a buffer for a write at ``offset`` needs no bounce copy: every
    DIO-aligned file position then sits at a DIO-aligned address. ``align`` defaults to the
    page size. Private anonymous memory: pages cost nothing until touched.
    """
    if size < 0:
        raise UsageError(f"buffer size {size} is negative")
    align = align or mmap.PAGESIZE
    if align & (align - 1):
        raise UsageError(f"alignment {align} is not a power of two")
    phase = offset % align
    mapping = mmap.mmap(-1, max(1, size + phase + align), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    skip = (-buffer_address(mapping)) % align + phase
    # The memoryview keeps the mapping alive; nothing else holds it.
    return memoryview(mapping)[skip: skip + size]


class BouncePool:
    """Aligned bounce areas, one per write in flight, reused: a writer shared by threads
    allocates one per concurrent write, not one per write."""

    def __init__(self, size: int, align: int) -> None:
        self.size = size
        self.align = align
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def get(self) -> memoryview:
        with self._lock:
            if self._free:
                return self._free.pop()
        return aligned_buffer(self.size, align=self.align)

    def put(self, area: memoryview) -> None:
        with self._lock:
            self._free.append(area)
