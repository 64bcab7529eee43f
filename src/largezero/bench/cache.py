"""The page-cache state of a target: set before every run, observed and stated in the report.

Buffered results move by more than 3x with the state of the cache, so every round starts
from the same one:

* ``cold``: the pattern written, flushed and dropped (FADV_DONTNEED): nothing cached;
* ``warm``: the cache dropped, the pattern written in PMD-sized (2 MiB) aligned pieces and
  flushed: cached clean, in 2 MiB folios where the filesystem gives large folios;
* ``warm-4k``: the same written in 4 KiB pieces: cached clean, 4 KiB folios;
* ``resident``: tmpfs and ramfs, whose pages are the file: always cached, never clean.

What is cached is observed with ``mincore`` (residency) and /proc/self/pagemap with
/proc/kpageflags (folio sizes, from compound head and tail flags; root only).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
from collections import Counter

from .._record import field, record
from ..mm.zero_page import pmd_size
from ..syscalls import BLKFLSBUF, buffer_address
from ..syscalls import libc as _libc
from ..sysfiles import read_u64s
from ..units import format_size

CACHE_STATES = ("cold", "warm", "warm-4k")
RESIDENT = "resident"
PAGE = mmap.PAGESIZE
PATTERN_CHUNK = pmd_size() or (2 << 20)

KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
_PRESENT = 1 << 63
_PFN_MASK = (1 << 55) - 1

_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.mincore.restype = ctypes.c_int


@functools.cache
def pattern() -> bytes:
    """The fill pattern, one PMD long: never a zero byte, and not periodic at any power of two
    below the chunk. Built on first use, not at import (it costs ~150 ms of start-up)."""
    return bytes((i * 7 + i // 251 + 13) % 255 + 1 for i in range(PATTERN_CHUNK))


def __getattr__(name: str) -> bytes:
    # ``cache.PATTERN`` still works for callers of the old constant, lazily.
    if name == "PATTERN":
        return pattern()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pattern_at(offset: int, length: int) -> bytes:
    """The bytes the fill writes at [offset, offset+length): PATTERN repeated from byte 0."""
    out = bytearray()
    pos = offset
    while len(out) < length:
        start = pos % PATTERN_CHUNK
        piece = pattern()[start : start + length - len(out)]
        out += piece
        pos += len(piece)
    return bytes(out)


def fill(fd: int, size: int, piece: int) -> None:
    """Write the pattern over [0, size) in aligned ``piece``-byte writes."""
    view = memoryview(pattern())
    pos = 0
    while pos < size:
        start = pos % PATTERN_CHUNK
        n = min(piece - pos % piece, size - pos, PATTERN_CHUNK - start)
        pos += os.pwrite(fd, view[start : start + n], pos)


def drop(fd: int, block: bool) -> None:
    """Write back and drop the cached pages of the target."""
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if block:
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, BLKFLSBUF, 0)


def prepare(path: str, size: int, state: str, *, block: bool, memfs: bool) -> None:
    """Fill the whole target with the pattern and leave its cache in ``state``."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        if memfs or state == RESIDENT:
            fill(fd, size, PATTERN_CHUNK)
            return
        if state not in CACHE_STATES:
            raise ValueError(f"unknown cache state {state!r}")
        # Drop first, so the fill allocates new folios of the size its writes ask for.
        drop(fd, block)
        fill(fd, size, PAGE if state == "warm-4k" else PATTERN_CHUNK)
        os.fdatasync(fd)
        if state == "cold":
            drop(fd, block)
    finally:
        os.close(fd)


@record(frozen=True)
class CacheObservation:
    """What the page cache held over the range before a run."""

    state: str
    resident_fraction: float
    folio_bytes: dict[int, int] = field(default_factory=dict)  # folio size -> how many

    @property
    def dominant_folio(self) -> int | None:
        if not self.folio_bytes:
            return None
        return max(self.folio_bytes, key=lambda k: k * self.folio_bytes[k])

    def describe(self) -> str:
        if self.resident_fraction == 0:
            return f"{self.state}: uncached"
        folios = ", ".join(f"{format_size(size, 'exact')} x{count}" for size, count in sorted(self.folio_bytes.items()))
        return f"{self.state}: {self.resident_fraction:.0%} cached" + (f"; folios {folios}" if folios else "")

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "resident_fraction": round(self.resident_fraction, 4),
            "folios": {str(k): v for k, v in sorted(self.folio_bytes.items())},
            "dominant_folio": self.dominant_folio,
            "text": self.describe(),
        }


def observe(path: str, offset: int, length: int, state: str) -> CacheObservation:
    """Residency with mincore; folio sizes from pagemap and kpageflags where readable.

    Only pages mincore reports resident are touched, so observing changes nothing cached.
    """
    start = offset - offset % PAGE
    span = offset + length - start
    span += (-span) % PAGE
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        m = mmap.mmap(fd, span, mmap.MAP_SHARED, mmap.PROT_READ, offset=start)
    finally:
        os.close(fd)
    try:
        addr = buffer_address(m)
        pages = span // PAGE
        vec = (ctypes.c_ubyte * pages)()
        if _libc.mincore(ctypes.c_void_p(addr), span, vec) != 0:
            return CacheObservation(state, -1.0)
        resident = [i for i in range(pages) if vec[i] & 1]
        for i in resident:
            m[i * PAGE]  # map the cached page; a resident page costs no I/O
        folios = _folio_sizes(addr, pages, set(resident))
        return CacheObservation(state, len(resident) / pages if pages else 0.0, folios)
    finally:
        with contextlib.suppress(BufferError):
            m.close()


def _folio_sizes(addr: int, pages: int, resident: set[int]) -> dict[int, int]:
    """Sizes of the folios behind the mapped pages, counting each run of head + tails once."""
    entries = read_u64s("/proc/self/pagemap", addr // PAGE, pages) if resident else None
    if entries is None:
        return {}
    pfns = [e & _PFN_MASK if e & _PRESENT else 0 for e in entries]
    if not any(pfns):
        return {}  # not privileged
    flags = _read_flags(pfns)
    hist: Counter[int] = Counter()
    run = 0
    for pfn in pfns:
        bits = flags.get(pfn)
        if not pfn or bits is None:
            if run:
                hist[run * PAGE] += 1
            run = 0
            continue
        if bits >> KPF_COMPOUND_TAIL & 1 and run:
            run += 1
        else:
            if run:
                hist[run * PAGE] += 1
            run = 1
    if run:
        hist[run * PAGE] += 1
    return dict(hist)


def _read_flags(pfns: list[int]) -> dict[int, int]:
    """kpageflags for every PFN, read in runs of consecutive PFNs."""
    out: dict[int, int] = {}
    ordered = sorted({p for p in pfns if p})
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        for k, value in enumerate(read_u64s("/proc/kpageflags", ordered[i], j - i + 1) or ()):
            out[ordered[i] + k] = value
        i = j + 1
    return out
