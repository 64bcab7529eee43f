"""What physically backs a mapping: /proc/self/pagemap, /proc/kpageflags and smaps.

PFNs are only visible with CAP_SYS_ADMIN; without it the backing is reported as unknown.
"""

from __future__ import annotations

from .._record import record
from ..sysfiles import read_all, read_u64s

PAGEMAP_PRESENT = 1 << 63
PFN_MASK = (1 << 55) - 1
KPF_THP = 22
KPF_ZERO_PAGE = 24


@record(frozen=True)
class Observed:
    backing: str  # huge-zero-folio | zero-page | allocated | unknown
    contiguous_bytes: int  # longest run of physically consecutive pages, 0 when unknown
    distinct_pfns: int
    rss_bytes: int


def _pfns(address: int, pages: int, page: int) -> list[int] | None:
    entries = read_u64s("/proc/self/pagemap", address // page, pages)
    if entries is None or min(entries) < PAGEMAP_PRESENT:  # unreadable, or a page not present (bit 63)
        return None
    pfns = [e & PFN_MASK for e in entries]
    return pfns if any(pfns) else None  # all zero: not privileged, the kernel hides PFNs


def _flags(pfn: int) -> int | None:
    flags = read_u64s("/proc/kpageflags", pfn, 1)
    return flags[0] if flags else None


def resident_bytes(address: int, size: int) -> int:
    """Sum of smaps Rss over the VMAs that overlap [address, address+size), -1 when unreadable."""
    text = read_all("/proc/self/smaps")
    if text is None:
        return -1
    import re  # argparse has loaded it already; a scan of the VMA headers beats splitting every line

    total = 0
    for vma in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) ", text, re.MULTILINE):
        if int(vma[1], 16) < address + size and int(vma[2], 16) > address:
            at = text.find("\nRss:", vma.end())
            if at >= 0:
                total += int(text[at + 5 : text.index("kB", at)]) * 1024
    return total


def observe(address: int, size: int, page: int, with_rss: bool = True) -> Observed:
    """Classify the backing of a mapped, already faulted range (``rss_bytes`` is -1 unless
    ``with_rss``: the smaps walk costs more than the rest together)."""
    pages = size // page
    rss = resident_bytes(address, size) if with_rss else -1
    pfns = _pfns(address, pages, page)
    if pfns is None:
        return Observed("unknown", 0, 0, rss)
    longest = run = 1
    for prev, cur in zip(pfns, pfns[1:], strict=False):
        if cur == prev + 1:
            run += 1
            if run > longest:
                longest = run
        else:
            run = 1
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
