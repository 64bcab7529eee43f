"""What physically backs a mapping: /proc/self/pagemap, /proc/kpageflags and smaps.

PFNs are only visible with CAP_SYS_ADMIN; without it the backing is reported as unknown.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PAGEMAP_PRESENT = 1 << 63
PFN_MASK = (1 << 55) - 1
KPF_THP = 22
KPF_ZERO_PAGE = 24


@dataclass(frozen=True)
class Observed:
    backing: str  # huge-zero-folio | zero-page | allocated | unknown
    contiguous_bytes: int  # longest run of physically consecutive pages, 0 when unknown
    distinct_pfns: int
    rss_bytes: int


def _pfns(address: int, pages: int, page: int) -> list[int] | None:
    try:
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(address // page * 8)
            raw = f.read(pages * 8)
    except OSError:
        return None
    if len(raw) != pages * 8:
        return None
    entries = struct.unpack(f"{pages}Q", raw)
    if not all(e & PAGEMAP_PRESENT for e in entries):
        return None
    pfns = [e & PFN_MASK for e in entries]
    if not any(pfns):
        return None  # not privileged: the kernel hides PFNs
    return pfns


def _flags(pfn: int) -> int | None:
    try:
        with open("/proc/kpageflags", "rb") as f:
            f.seek(pfn * 8)
            raw = f.read(8)
    except OSError:
        return None
    return struct.unpack("Q", raw)[0] if len(raw) == 8 else None


def resident_bytes(address: int, size: int) -> int:
    """Sum of smaps Rss over the VMAs that overlap [address, address+size)."""
    total = 0
    inside = False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(" ", 1)[0]
                if "-" in head and ":" not in head:
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo < address + size and hi > address
                elif inside and line.startswith("Rss:"):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return -1
    return total


def observe(address: int, size: int, page: int) -> Observed:
    """Classify the backing of a mapped, already faulted range."""
    pages = size // page
    rss = resident_bytes(address, size)
    pfns = _pfns(address, pages, page)
    if pfns is None:
        return Observed("unknown", 0, 0, rss)
    longest = run = 1
    for prev, cur in zip(pfns, pfns[1:], strict=False):
        run = run + 1 if cur == prev + 1 else 1
        longest = max(longest, run)
    distinct = len(set(pfns))
    flags = _flags(pfns[0])
    is_zero = flags is not None and bool(flags >> KPF_ZERO_PAGE & 1)
    is_thp = flags is not None and bool(flags >> KPF_THP & 1)
    if is_zero and is_thp and longest == pages:
        backing = "huge-zero-folio"
    elif distinct == 1 and (is_zero or flags is None):
        backing = "zero-page"
    elif not is_zero:
        backing = "allocated"
    else:
        backing = "unknown"
    return Observed(backing, longest * page, distinct, rss)
